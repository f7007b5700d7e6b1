"""Read-only access to a dataset that is a folder or a ``.zip`` of one.

Every file is addressed by its path relative to the dataset root, with ``/``
separators (``images/0001.jpg``). A zip whose members all sit under one top
folder (``scene/images/...``) is rooted at that folder, so zipping a dataset
folder or zipping its contents give the same relative paths.
"""

from __future__ import annotations

import os
import threading
import zipfile
import zlib
from pathlib import Path

from ..errors import InputError


class DatasetError(InputError):
    """A dataset that cannot be used (the message names the folder and what is wrong)."""


class DatasetSource:
    """Files of a dataset folder or zip archive.

    Args:
        path: a dataset folder or a ``.zip`` file.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        DatasetError: when ``path`` is a file that is not a readable zip archive.

    Folders are walked following symbolic links, each real folder once (a link back to a
    folder above does not loop).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"dataset {self.path} not found: give a dataset folder or a .zip of one")
        self._zip: zipfile.ZipFile | None = None
        self._lock = threading.Lock()
        self._prefix = ""
        if self.path.is_dir():
            files = _walk_files(self.path)
        else:
            if not zipfile.is_zipfile(self.path):
                raise DatasetError(f"dataset {self.path} is a file but not a zip archive: give a folder or a .zip")
            try:
                self._zip = zipfile.ZipFile(self.path)
            except (zipfile.BadZipFile, OSError) as exc:
                raise DatasetError(f"dataset {self.path}: cannot open the zip archive ({exc}); "
                                   "re-create the zip or give the unpacked folder") from None
            members = [n for n in self._zip.namelist() if not n.endswith("/") and not n.startswith("__MACOSX/")]
            tops = {n.split("/", 1)[0] for n in members}
            if len(tops) == 1 and all("/" in n for n in members):
                self._prefix = next(iter(tops)) + "/"
            files = [n[len(self._prefix):] for n in members]
        self.files: list[str] = sorted(files)
        self._file_set = set(self.files)
        self._lower = {}
        for f in self.files:
            self._lower.setdefault(f.lower(), f)

    @property
    def name(self) -> str:
        """Dataset name: the folder name or the zip's stem (or its single top folder)."""
        if self._zip is not None:
            return self._prefix.rstrip("/") or self.path.stem
        return self.path.resolve().name

    @property
    def is_zip(self) -> bool:
        return self._zip is not None

    def exists(self, rel: str) -> bool:
        """Whether ``rel`` names a file (exact match)."""
        return rel in self._file_set

    def resolve(self, rel: str) -> str | None:
        """``rel`` normalised (``./a/../b`` -> ``b``) and matched exactly, then case-insensitively; None if absent."""
        norm = os.path.normpath(rel.replace("\\", "/")).replace(os.sep, "/")
        if norm.startswith("./"):
            norm = norm[2:]
        if norm in self._file_set:
            return norm
        return self._lower.get(norm.lower())

    def read_bytes(self, rel: str) -> bytes:
        """Contents of file ``rel``.

        Raises:
            FileNotFoundError: naming the dataset and the file.
            DatasetError: a zip member that cannot be read back (CRC error, corrupt or
                unsupported compression), naming it.
        """
        if rel not in self._file_set:
            raise FileNotFoundError(f"{self.display_path(rel)} not found")
        if self._zip is None:
            return (self.path / rel).read_bytes()
        try:
            with self._lock:
                return self._zip.read(self._prefix + rel)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OSError) as exc:
            raise DatasetError(f"{self.display_path(rel)}: the zip member is corrupt ({exc}); "
                               "re-create the zip or give the unpacked folder") from None

    def open_for_pil(self, rel: str):
        """A path (folder) or an in-memory stream (zip) that ``PIL.Image.open`` accepts."""
        if self._zip is None:
            return self.path / rel
        import io

        return io.BytesIO(self.read_bytes(rel))

    def display_path(self, rel: str) -> str:
        """Human-readable location of ``rel`` for messages: ``<folder>/<rel>`` or ``<zip>:<rel>``."""
        if self._zip is None:
            return str(self.path / rel)
        return f"{self.path}:{self._prefix}{rel}"

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def __repr__(self) -> str:
        return f"DatasetSource({str(self.path)!r}, {len(self.files)} files)"


def _walk_files(top: Path) -> list[str]:
    """Files below ``top`` as ``/``-separated relative paths, following symbolic links to folders,
    except a link to a folder the walk is already inside (a link loop), which is skipped."""
    files = []
    inside = {str(top): frozenset([os.path.realpath(top)])}  # walk path -> real folders on the way there
    for root, dirs, names in os.walk(top, followlinks=True):
        above = inside.pop(root, frozenset([os.path.realpath(root)]))
        keep = []
        for d in dirs:
            child = os.path.join(root, d)
            real = os.path.realpath(child)
            if real not in above:
                keep.append(d)
                inside[child] = above | {real}
        dirs[:] = keep
        rel_root = os.path.relpath(root, top)
        for name in names:
            rel = name if rel_root == "." else f"{rel_root}/{name}"
            files.append(rel.replace(os.sep, "/"))
    return files
