"""Model I/O: Gaussian splat files (INRIA 3DGS PLY, PlayCanvas compressed PLY and SOG, Niantic
SPZ, antimatter15 .splat) through one entry point, :mod:`brushpy.io.formats`."""

from .formats import UnknownFormatError, detect_format, read_splats, write_splats
from .ply import PlyFormatError, SplatData, read_ply, read_ply_points, write_ply
from .ply_compressed import write_compressed_ply
from .sog import SogFormatError, read_sog, write_sog
from .splat_file import read_splat_file, write_splat_file
from .spz import SpzFormatError, read_spz, write_spz

__all__ = [
    "PlyFormatError", "SogFormatError", "SplatData", "SpzFormatError", "UnknownFormatError",
    "detect_format", "read_ply", "read_ply_points", "read_sog", "read_splat_file", "read_splats",
    "read_spz", "write_compressed_ply", "write_ply", "write_sog", "write_splat_file", "write_splats",
    "write_spz",
]
