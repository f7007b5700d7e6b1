"""Model I/O: Gaussian splat files (INRIA 3DGS PLY, PlayCanvas compressed PLY, Niantic SPZ)."""

from .ply import PlyFormatError, SplatData, read_ply, read_ply_points, write_ply
from .spz import SpzFormatError, read_spz, write_spz

__all__ = [
    "PlyFormatError", "SplatData", "SpzFormatError", "read_ply", "read_ply_points", "read_spz", "write_ply",
    "write_spz",
]
