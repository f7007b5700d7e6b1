"""Robust axis-aligned bounds of splat centres: one rule, two uses.

:func:`scene_bounds` is the box between two symmetric quantiles of the means, per
axis (Brush's ``bounds_from_pos`` rule). Its two callers differ only in how much
of the scene they keep:

- :data:`BOUND_PERCENTILE` (0.8, the 10–90% box, Brush's BOUND_PERCENTILE): the
  training scene extent (``brushpy.train.refine``: mean learning rate, noise and
  prune limits);
- :data:`FRAMING_PERCENTILE` (0.98, the 1–99% box): the viewer's camera framing
  (``brushpy.viewer.camera.framing_bounds``), which ignores far floaters but keeps
  the scene's edges in view.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..gpu import GpuTensor

#: Fraction of the splats (per axis) inside the training bounds: Brush's 10–90% box.
BOUND_PERCENTILE = 0.8
#: Fraction of the splats (per axis) inside the viewer's framing bounds: the 1–99% box.
FRAMING_PERCENTILE = 0.98


@dataclass
class SceneBounds:
    """An axis-aligned box around the bulk of the splats (Brush's ``BoundingBox``).

    Attributes:
        center: float64 [3] box centre (world units).
        half_extent: float64 [3] half side lengths.
    """

    center: np.ndarray
    half_extent: np.ndarray

    @property
    def lo(self) -> np.ndarray:
        """float64 [3] lower corner."""
        return self.center - self.half_extent

    @property
    def hi(self) -> np.ndarray:
        """float64 [3] upper corner."""
        return self.center + self.half_extent

    @property
    def median_size(self) -> float:
        """Median side length of the box: the "scene extent" that scales the mean LR and noise."""
        return float(2.0 * np.sort(self.half_extent)[1])

    @property
    def max_half_extent(self) -> float:
        """Largest half side: prune limits are ``PRUNE_EXTENT_FACTOR`` times this."""
        return float(np.max(self.half_extent))


def _quantile_box(means, percentile: float):
    """(lo, hi) float64 [3] by Brush's index rule, or None when an axis has no finite value."""
    m = means.numpy() if isinstance(means, GpuTensor) else np.asarray(means, np.float32)
    m = m.reshape(-1, 3)
    lo = np.empty(3)
    hi = np.empty(3)
    for a in range(3):
        v = m[:, a]
        v = v[np.isfinite(v)]
        n = v.size
        if n == 0:
            return None
        il = int((np.float32(1) - np.float32(percentile)) / np.float32(2) * np.float32(n))
        ih = min(n - 1, int((np.float32(1) + np.float32(percentile)) / np.float32(2) * np.float32(n)))
        part = np.partition(v, (il, ih))
        lo[a], hi[a] = float(part[il]), float(part[ih])
    return lo, hi


def scene_bounds(means, percentile: float = BOUND_PERCENTILE, require_finite: bool = False) -> SceneBounds:
    """The box between the ``(1−p)/2`` and ``(1+p)/2`` quantiles of the means, per axis.

    With Brush's default ``p = 0.8`` that is the 10–90% box; its median side
    (:attr:`SceneBounds.median_size`) is the scene extent of ``docs/options.md``.
    Index rule as Brush (``bounds_from_pos``, float32 arithmetic): sorted finite
    values ``v``, ``lo = v[int((1−p)/2·n)]``, ``hi = v[min(n−1, int((1+p)/2·n))]``.
    Non-finite coordinates are ignored; with none left on some axis the box is
    ``[-1, 1]³``, or ``ValueError`` when ``require_finite``.

    Args:
        means: [N,3] GpuTensor (read back: 12 bytes per splat) or numpy array (world units).
        percentile: p in (0, 1]: :data:`BOUND_PERCENTILE` (training) or
            :data:`FRAMING_PERCENTILE` (viewer framing).
        require_finite: raise instead of returning the unit box.

    Raises:
        ValueError: ``require_finite`` and some axis has no finite coordinate (or N = 0).
    """
    box = _quantile_box(means, percentile)
    if box is None:
        if require_finite:
            raise ValueError("scene_bounds: no finite splat positions")
        return SceneBounds(np.zeros(3), np.ones(3))
    lo, hi = box
    return SceneBounds((lo + hi) / 2.0, (hi - lo) / 2.0)
