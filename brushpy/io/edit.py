"""Small edits of a host splat set (:class:`~brushpy.io.ply.SplatData`) and export file names.

Used by ``brushpy convert`` (``--sh-degree``, ``--prune-alpha``), by LOD building
(:mod:`brushpy.io.lod`) and by the trainer's exports (``--export-format``). Every function
returns a new :class:`SplatData`; the input is never changed. A subset keeps the splats'
order, their normals (when the set has them), ``render_mode`` and ``vertical_axis``.
"""

from __future__ import annotations

import os
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from .formats import EXTENSIONS, WRITE_FORMATS, format_from_extension
from .ply import SplatData


def select_splats(data: SplatData, keep) -> SplatData:
    """The splats ``keep`` picks (a bool mask [N] or integer indices), in their original order
    (indices are sorted; a repeated index is kept once).

    Raises:
        ValueError: a mask of the wrong length, or an index out of range.
    """
    keep = np.asarray(keep)
    n = data.num_splats
    if keep.dtype == bool:
        if keep.shape != (n,):
            raise ValueError(f"select_splats: mask has shape {keep.shape}; expected ({n},)")
        idx = np.flatnonzero(keep)
    else:
        idx = np.unique(keep.astype(np.int64).reshape(-1))
        if idx.size and (idx[0] < 0 or idx[-1] >= n):
            raise ValueError(f"select_splats: index out of range for {n} splats")
    return replace(
        data,
        means=data.means[idx],
        rotations=data.rotations[idx],
        log_scales=data.log_scales[idx],
        sh_coeffs=data.sh_coeffs[idx],
        raw_opacities=data.raw_opacities[idx],
        normals=None if data.normals is None else data.normals[idx],
    )


def truncate_sh(data: SplatData, degree: int) -> SplatData:
    """Keep SH bands 0..``degree`` (drop the higher ones; K becomes ``(degree+1)^2``).

    A ``degree`` at or above the set's own returns it unchanged.

    Raises:
        ValueError: ``degree`` is negative.
    """
    if degree < 0:
        raise ValueError(f"SH degree {degree} must be >= 0")
    if degree >= data.sh_degree:
        return data
    return replace(data, sh_coeffs=data.sh_coeffs[:, : (degree + 1) ** 2, :])


def prune_by_opacity(data: SplatData, min_opacity: float) -> SplatData:
    """Drop the splats whose opacity (sigmoid of the logit) is below ``min_opacity`` (in [0, 1]).

    Splats with a NaN opacity are dropped too (when ``min_opacity > 0``).
    """
    if min_opacity <= 0:
        return data
    with np.errstate(invalid="ignore"):
        keep = data.opacities >= np.float32(min_opacity)
    return select_splats(data, keep)


def parse_fraction(text) -> float:
    """A number in [0, 1] written as a decimal (``0.004``) or a fraction (``1/255``).

    Raises:
        ValueError: anything else (the message shows both forms).
    """
    s = str(text).strip()
    try:
        value = float(Fraction(s.replace(" ", "")))
    except (ValueError, ZeroDivisionError):
        value = float("nan")
    if not (0.0 <= value <= 1.0):
        raise ValueError(f"{text!r} is not an opacity in [0, 1]; write a decimal (0.004) or a fraction (1/255)")
    return value


def extension_for(fmt: str) -> str:
    """The file extension a written format gets: ``.ply``, ``.compressed.ply``, ``.spz``,
    ``.sog``, ``.splat`` (SOG is written bundled).

    Raises:
        ValueError: ``fmt`` is not one of :data:`~brushpy.io.formats.WRITE_FORMATS`.
    """
    if fmt not in WRITE_FORMATS:
        raise ValueError(f"unknown splat format {fmt!r}; use one of {', '.join(WRITE_FORMATS)}")
    return next(ext for ext, f in EXTENSIONS.items() if f == fmt and ext.startswith("."))


def split_extension(name: str | os.PathLike) -> tuple[str, str]:
    """``name`` split into (stem, splat extension), the extension as written in ``name``
    (``"a.compressed.ply"`` -> ``("a", ".compressed.ply")``; ``meta.json`` is all extension);
    ``(name, "")`` when it ends in no splat extension."""
    name = str(name)
    low = name.lower()
    for ext in sorted(EXTENSIONS, key=len, reverse=True):
        if low.endswith(ext):
            return name[: len(name) - len(ext)], name[len(name) - len(ext):]
    return name, ""


def with_format_extension(name: str, fmt: str) -> str:
    """``name`` with its splat extension (if any) replaced by ``fmt``'s (:func:`extension_for`):
    ``export_100.ply`` + ``spz`` -> ``export_100.spz``; a name without one gets it appended.
    A name that already ends in ``fmt``'s extension is returned as it is."""
    if format_from_extension(name) == fmt and not name.lower().endswith("meta.json"):
        return name
    stem, _ = split_extension(name)
    return stem + extension_for(fmt)


def file_size(path: str | os.PathLike) -> int:
    """Bytes on disk of a written splat file; for an unbundled SOG (``meta.json``), the
    ``meta.json`` plus the ``.webp`` images beside it."""
    p = Path(path)
    if p.name.lower() == "meta.json":
        return p.stat().st_size + sum(f.stat().st_size for f in p.parent.glob("*.webp") if f.is_file())
    return p.stat().st_size
