"""Model I/O: Gaussian splat files (INRIA 3DGS PLY, PlayCanvas compressed PLY, PlayCanvas SOG)."""

from .ply import PlyFormatError, SplatData, read_ply, read_ply_points, write_ply
from .sog import SogFormatError, read_sog, write_sog

__all__ = [
    "PlyFormatError", "SogFormatError", "SplatData", "read_ply", "read_ply_points", "read_sog", "write_ply",
    "write_sog",
]
