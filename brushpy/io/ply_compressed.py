"""PlayCanvas / SuperSplat compressed PLY (``.compressed.ply``): read (and, to come, write).

The layout is described in :func:`brushpy.io.ply._decode_compressed`.
"""

from __future__ import annotations

from pathlib import Path

from .ply import SplatData, read_ply


def sniff(head: bytes, path: Path) -> bool:
    """A PLY whose header declares a ``chunk`` element and ``packed_position``."""
    if head[:3] != b"ply":
        return False
    header = head.split(b"end_header", 1)[0]
    return b"element chunk" in header and b"packed_position" in header


def read(path: Path) -> SplatData:
    return read_ply(path)


def write(path: Path, data: SplatData, option: str | None = None, **options) -> None:
    raise NotImplementedError("compressed PLY writing is not built yet")
