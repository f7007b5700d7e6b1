"""One entry point for every splat file format brushpy reads and writes.

=====================  ==========================  ====================================
format name            extension(s)                module
=====================  ==========================  ====================================
``ply``                ``.ply``                    :mod:`brushpy.io.ply` (INRIA 3DGS)
``compressed.ply``     ``.compressed.ply``         :mod:`brushpy.io.ply_compressed` (PlayCanvas)
``spz``                ``.spz``                    :mod:`brushpy.io.spz` (Niantic SPZ)
``sog``                ``.sog``, ``meta.json``     :mod:`brushpy.io.sog` (PlayCanvas SOG)
``splat``              ``.splat``                  :mod:`brushpy.io.splat_file` (antimatter15)
=====================  ==========================  ====================================

Reading picks the format from the file's content (:func:`detect_format`), not only its
name; writing picks it from the output's extension (:func:`format_from_extension`) unless
``format=`` is given. Each format module has ``sniff(head: bytes, path: Path) -> bool``,
``read(path: Path) -> SplatData`` and ``write(path: Path, data: SplatData, **options)``
(atomic, like :func:`brushpy.io.ply.write_ply`).

Every reader returns brushpy's in-memory convention (:class:`brushpy.io.ply.SplatData`:
INRIA PLY axes, i.e. the training cameras' world frame; quaternions (w, x, y, z); log
scales; opacity logits; SH channel-last). A format that stores other axes converts on read
and write; its module docstring says which.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from .ply import PlyFormatError, SplatData

#: Format name -> module (relative to brushpy.io). Order is the sniffing order.
_MODULES = {
    "compressed.ply": "ply_compressed",
    "ply": "ply",
    "spz": "spz",
    "sog": "sog",
    "splat": "splat_file",
}

#: Extensions (lower case) -> format name, longest first when matching.
EXTENSIONS = {
    ".compressed.ply": "compressed.ply",
    ".ply": "ply",
    ".spz": "spz",
    ".sog": "sog",
    "meta.json": "sog",
    ".splat": "splat",
}

#: The formats :func:`write_splats` writes (``brushpy convert``, ``--export-format``).
WRITE_FORMATS = ("ply", "compressed.ply", "spz", "sog", "splat")

_HEAD_BYTES = 4096


class UnknownFormatError(PlyFormatError):
    """A file none of the readers recognises (the message names the file and the formats)."""


def _module(fmt: str):
    return importlib.import_module(f".{_MODULES[fmt]}", __package__)


def _available_module(fmt: str):
    """The format's module, or None when this build has no such module (a format whose reader is
    not installed is not detected; any other import error is raised)."""
    try:
        return _module(fmt)
    except ModuleNotFoundError as exc:
        if exc.name == f"{__package__}.{_MODULES[fmt]}":
            return None
        raise


def format_from_extension(path: str | os.PathLike) -> str | None:
    """The format a file name asks for (``"ply"``, ``"spz"``, ...) or None."""
    name = Path(path).name.lower()
    for ext in sorted(EXTENSIONS, key=len, reverse=True):
        if name.endswith(ext):
            return EXTENSIONS[ext]
    return None


def detect_format(path: str | os.PathLike) -> str:
    """The format of an existing file, from its first bytes (and its name where the bytes agree).

    Raises:
        FileNotFoundError: no such file.
        UnknownFormatError: none of the formats recognises it.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"splat file not found: {path}")
    head = b""
    if path.is_file():
        with open(path, "rb") as f:
            head = f.read(_HEAD_BYTES)
    for fmt in _MODULES:
        module = _available_module(fmt)
        if module is not None and module.sniff(head, path):
            return fmt
    readable = ", ".join(sorted({*EXTENSIONS} - {"meta.json"})) + ", SOG meta.json"
    raise UnknownFormatError(f"{path} is not a splat file brushpy reads (it reads {readable})")


def read_splats(path: str | os.PathLike) -> SplatData:
    """Read a splat file of any supported format (detected from its content).

    Raises:
        FileNotFoundError, UnknownFormatError, PlyFormatError (an InputError): with the file
        named and what is wrong.
    """
    path = Path(path)
    return _module(detect_format(path)).read(path)


def write_splats(path: str | os.PathLike, data, format: str | None = None, option: str | None = None, **options) -> None:
    """Write ``data`` (:class:`SplatData` or GPU ``Splats``) as ``format`` (default: from ``path``'s extension).

    ``options`` go to the format's writer (e.g. ``version=4`` for SPZ, ``comments=`` for PLY).
    ``option`` is the command-line option that chose ``path`` (named in a write error).

    Raises:
        ValueError: an unknown format, or an extension that names none (message lists them).
        WriteError: the file cannot be written.
    """
    path = Path(path)
    fmt = format or format_from_extension(path)
    if fmt not in WRITE_FORMATS:
        raise ValueError(
            f"{path}: cannot tell which splat format to write (got {fmt or 'no known extension'}); "
            f"use one of {', '.join(WRITE_FORMATS)}"
        )
    data = SplatData.coerce(data, "write_splats")
    _module(fmt).write(path, data, option=option, **options)
