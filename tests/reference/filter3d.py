"""Float64 NumPy reference of Mip-Splatting's 3D smoothing filter (``brushpy/train/filter3d.py``).

* ``min_scale``: ``sqrt(factor) · min_v z_v / f_v`` over the views whose frustum (image
  grown by 15% per side, ``z >= 0.01``) holds the mean; ``f_v = (fx + fy) / 2``; unseen
  splats get the largest floor of the seen ones (Mip-Splatting, Yu et al. 2024,
  ``compute_3D_filter``).
* ``fold``: ``s' = sqrt(s² + f²)`` per axis, ``o' = o · sqrt(det diag(s²) / det diag(s² + f²))``
  (Mip-Splatting's ``get_scaling_with_3D_filter`` / ``get_opacity_with_3D_filter``),
  written plainly (no stabilisation), as logits.
"""

from __future__ import annotations

import numpy as np


def min_scale(means, cameras, factor: float = 0.1) -> np.ndarray:
    """``means`` [N,3]; ``cameras``: objects with ``world_to_camera``, ``fx, fy, cx, cy``,
    ``width``, ``height``. Returns float64 [N] (zeros when no splat is seen)."""
    m = np.asarray(means, np.float64)
    best = np.full(m.shape[0], np.inf)
    for cam in cameras:
        w2c = np.asarray(cam.world_to_camera, np.float64)
        p = m @ w2c[:3, :3].T + w2c[:3, 3]
        z = p[:, 2]
        with np.errstate(all="ignore"):
            u = cam.fx * p[:, 0] / z + cam.cx
            v = cam.fy * p[:, 1] / z + cam.cy
        seen = (z >= 0.01) & (u >= -0.15 * cam.width) & (u <= 1.15 * cam.width) & (v >= -0.15 * cam.height) & (v <= 1.15 * cam.height)
        r = np.where(seen, z / (0.5 * (cam.fx + cam.fy)), np.inf)
        best = np.minimum(best, r)
    out = best * np.sqrt(factor)
    seen = np.isfinite(out)
    out[~seen] = out[seen].max() if seen.any() else 0.0
    return out


def fold(log_scales, raw_opacities, min_scale_):
    """Filtered ``(log_scales' [N,3], raw_opacities' [N])`` in float64."""
    s = np.exp(np.asarray(log_scales, np.float64))
    f = np.asarray(min_scale_, np.float64)[:, None]
    s2f = s * s + f * f
    coef = np.sqrt(np.prod(s * s, -1) / np.prod(s2f, -1))
    o = coef / (1.0 + np.exp(-np.asarray(raw_opacities, np.float64)))
    return 0.5 * np.log(s2f), np.log(o / (1.0 - o))
