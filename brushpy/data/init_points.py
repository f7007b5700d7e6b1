"""``InitPoints``: the coloured point cloud a dataset ships for initialisation.

Loaders fill it from COLMAP ``points3D``, a transforms file's ``ply_file_path`` or an
``init.ply``; turning it into splats is training's decision (:mod:`brushpy.train.init`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..io.ply import PlyFormatError, read_ply_points

#: Colour of points whose file has none (RGB in [0, 1]).
DEFAULT_POINT_COLOR = 0.5


@dataclass
class InitPoints:
    """A coloured point cloud.

    Attributes:
        positions: float32 [P,3] world coordinates.
        colors: float32 [P,3] RGB in [0, 1].
    """

    positions: np.ndarray
    colors: np.ndarray

    def __post_init__(self):
        self.positions = np.asarray(self.positions, np.float32).reshape(-1, 3)
        self.colors = np.asarray(self.colors, np.float32).reshape(-1, 3)
        if len(self.positions) != len(self.colors):
            raise ValueError(f"InitPoints: {len(self.positions)} positions but {len(self.colors)} colours")

    def __len__(self) -> int:
        return len(self.positions)

    def subsample(self, every: int | None) -> "InitPoints":
        """Every ``every``-th point (all when None or 1)."""
        if not every or every == 1:
            return self
        return InitPoints(self.positions[::every], self.colors[::every])

    @classmethod
    def from_ply(cls, data: bytes, origin: str = "points.ply") -> "InitPoints":
        """The points of PLY bytes (:func:`brushpy.io.ply.read_ply_points`); grey 0.5 where the file
        has no colours.

        Raises:
            PlyFormatError: not a PLY with a vertex element holding x, y, z, or positions that are
                NaN or infinite (names ``origin``).
        """
        positions, colors = read_ply_points(data, origin)
        bad = ~np.all(np.isfinite(np.asarray(positions, np.float64).reshape(-1, 3)), axis=1)
        if bad.any():
            raise PlyFormatError(f"{origin}: {int(bad.sum())} of {len(bad)} point(s) have NaN or infinite "
                                 "coordinates; remove them, or remove the file to start from random points")
        return cls(positions, np.full_like(positions, DEFAULT_POINT_COLOR) if colors is None else colors)
