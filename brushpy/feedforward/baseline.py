"""The untrained classical baseline: plane-sweep stereo on raw pixels, lifted to splats.

Acceptance row (b) of issue 15: the same pipeline as the encoder with no learned weights. For
each of the two context views (reference ``i``, source ``j``) the source image is warped into the
reference at D planes uniform in inverse depth (:func:`brushpy.nn.plane_sweep_warp` at full
resolution, on the GPU), the photometric cost per plane is the absolute colour difference
averaged over RGB and a ``window``² box (the classical SAD of plane-sweep stereo, Collins 1996),
samples outside the source count as no match, and each pixel takes the plane of least cost
(winner-takes-all). Pixels with no valid plane get the farthest. The depths are lifted with
:class:`~brushpy.feedforward.lift.PixelLiftOp` with a zero head (pixel colour, one-footprint
isotropic scales, identity rotation) and opacity logit ``opacity_logit``.
"""

from __future__ import annotations

import numpy as np

from ..gpu import GpuTensor, Recorder
from ..nn import plane_sweep_warp
from .encoder import plane_inverse_depths
from .lift import HEAD_CHANNELS, PixelLiftOp

#: the model name that selects the baseline on the command line
BASELINE_NAME = "plane-sweep"


def box_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Mean over a ``window`` x ``window`` box of the last two axes (edge-clamped), float64."""
    r = window // 2
    p = np.pad(np.asarray(x, np.float64), [(0, 0)] * (x.ndim - 2) + [(r, r), (r, r)], mode="edge")
    c = np.cumsum(np.cumsum(p, -1), -2)
    c = np.pad(c, [(0, 0)] * (x.ndim - 2) + [(1, 0), (1, 0)])
    h, w = x.shape[-2:]
    s = c[..., window:window + h, window:window + w] - c[..., :h, window:window + w] \
        - c[..., window:window + h, :w] + c[..., :h, :w]
    return s / (window * window)


def plane_sweep_inverse_depth(samples, near: float, far: float, num_planes: int = 32, window: int = 5):
    """Winner-takes-all inverse depth of each context view: list of float64 [H, W] (and the planes).

    Args:
        samples: two :class:`~brushpy.feedforward.context.ViewSample` of one size.
        near, far: depth range; num_planes: D; window: box side of the cost aggregation (odd).
    """
    inv_planes = plane_inverse_depths(near, far, num_planes)
    depths = (1.0 / inv_planes).astype(np.float32)
    out = []
    for i in range(2):
        ref, src = samples[i], samples[1 - i]
        rec = Recorder()
        src_t = GpuTensor.from_numpy(np.ascontiguousarray(src.image.transpose(2, 0, 1)), "baseline source")
        warped, mask = plane_sweep_warp(rec, src_t, depths, ref.camera.intrinsics, ref.camera.world_to_camera,
                                        src.camera.intrinsics, src.camera.world_to_camera)
        rec.submit()
        wv, m = warped.numpy().astype(np.float64), mask.numpy().astype(np.float64)  # [3, D, H, W], [D, H, W]
        diff = np.abs(wv - ref.image.transpose(2, 0, 1)[:, None].astype(np.float64)).mean(0)
        cost = box_mean(diff, window)
        valid = box_mean(m, window) > 0.999
        cost = np.where(valid, cost, np.inf)
        best = np.argmin(cost, 0)
        inv = inv_planes[best]
        inv[~np.isfinite(cost.min(0))] = inv_planes[-1]
        out.append(inv)
    return out, inv_planes


def plane_sweep_splats(samples, near: float, far: float, num_planes: int = 32, window: int = 5,
                       opacity_logit: float = 2.0):
    """The baseline's splats (``Splats``, ``2·H·W``) and its inverse depths (list of [H, W])."""
    inv, inv_planes = plane_sweep_inverse_depth(samples, near, far, num_planes, window)
    rec = Recorder()
    invs, heads, images = [], [], []
    for s, d in zip(samples, inv):
        h, w = d.shape
        head = np.zeros((1, HEAD_CHANNELS, h, w), np.float32)
        head[0, 1] = opacity_logit
        invs.append(GpuTensor.from_numpy(d.astype(np.float32).reshape(1, 1, h, w), "baseline inverse depth"))
        heads.append(GpuTensor.from_numpy(head, "baseline head"))
        images.append(s.tensor())
    lift = PixelLiftOp(rec, invs, heads, images, [s.camera for s in samples], float(inv_planes[0] - inv_planes[1]),
                       0.5 / far)
    rec.submit()
    return lift.splats, inv
