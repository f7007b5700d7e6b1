"""Model I/O: Gaussian splat files (INRIA 3DGS PLY, PlayCanvas compressed PLY)."""

from .ply import PlyFormatError, SplatData, read_ply, read_ply_points, write_ply

__all__ = ["PlyFormatError", "SplatData", "read_ply", "read_ply_points", "write_ply"]
