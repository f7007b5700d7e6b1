"""Plane-sweep warp: a source view's features seen from the reference view at D depth planes.

For the multi-view cost volume of a DepthSplat/MVSplat-style encoder: every reference pixel
``(x, y)`` at each fronto-parallel plane of depth ``d_k`` (reference camera z) is unprojected,
moved into the source camera and projected; the source features are sampled there bilinearly.

Conventions (brushpy's camera, DESIGN.md): OpenCV axes (+x right, +y down, +z forward),
``world_to_camera`` 4x4, intrinsics ``fx, fy, cx, cy`` in pixels *of the feature maps* (scale a
full-resolution camera's by the feature stride), pixel centres at +0.5. Sampling at
``(u - 0.5, v - 0.5)`` in index space with zero padding (``grid_sample(padding_mode="zeros",
align_corners=False)``). ``mask`` is 1 where the point lies in front of the source camera
(``z > 1e-6``) and projects inside the source image (``0 ≤ u ≤ w, 0 ≤ v ≤ h``), else 0 (and the
warped features are 0 there).

The op is differentiable with respect to the source features only (the cameras and depths are
data). Kernels: ``shaders/nn_plane_sweep.wgsl`` (the backward adds with atomics, so its sums are
not bit-reproducible run to run). Reference: :func:`brushpy.nn.reference.plane_sweep_warp`.
"""

from __future__ import annotations

import numpy as np

from ..autodiff import Op
from ..gpu import GpuTensor, Kernel, Recorder, UniformLayout, workgroups_for
from ._checks import check_grad, check_tensor, record
from .reference import WARP_Z_MIN

#: shaders/nn_plane_sweep.wgsl
WARP_PARAMS = UniformLayout("WarpParams", [
    ("m0", "vec4<f32>", "row 0 of R_rel K_ref^-1 (xyz)"),
    ("m1", "vec4<f32>"),
    ("m2", "vec4<f32>"),
    ("t", "vec4<f32>", "translation of w2c_src w2c_ref^-1 (xyz)"),
    ("k_src", "vec4<f32>", "fx, fy, cx, cy of the source"),
    ("channels", "u32"),
    ("count", "u32", "D*H*W"),
    ("h", "u32", "reference height"),
    ("w", "u32", "reference width"),
    ("hs", "u32", "source height"),
    ("ws", "u32", "source width"),
])


def intrinsics_matrix(k) -> np.ndarray:
    """A 3x3 intrinsics matrix from ``(fx, fy, cx, cy)`` or a 3x3 array (float64).

    Raises:
        ValueError: another shape, or non-positive focal lengths.
    """
    k = np.asarray(k, np.float64)
    if k.shape == (4,):
        k = np.array([[k[0], 0, k[2]], [0, k[1], k[3]], [0, 0, 1]], np.float64)
    if k.shape != (3, 3) or not (k[0, 0] > 0 and k[1, 1] > 0):
        raise ValueError(f"intrinsics must be (fx, fy, cx, cy) or 3x3 with fx, fy > 0, got {k.tolist()}")
    return k


def _kernel(entry: str, backward: bool, ctx) -> Kernel:
    return Kernel("nn_plane_sweep.wgsl", entry, {"BACKWARD": backward, "Z_MIN": f"{WARP_Z_MIN:e}"}, ctx=ctx,
                  structs=[WARP_PARAMS])


class PlaneSweepWarpOp(Op):
    """Warp ``src`` [C, h_s, w_s] into the reference view at the planes ``depths`` [D].

    Args:
        rec: recorder for the forward.
        src: float32 [C, h_s, w_s] source features.
        depths: float32 GpuTensor [D] of plane depths (> 0, reference camera z), or an array
            (uploaded).
        k_ref, k_src: intrinsics at the feature resolution: (fx, fy, cx, cy) or 3x3.
        w2c_ref, w2c_src: 4x4 world-to-camera matrices (OpenCV axes).
        ref_size: (H, W) of the reference feature map (default: the source's).

    inputs: ``{"src"}``; outputs: ``{"warped"}`` float32 [C, D, H, W] and ``{"mask"}`` float32
    [D, H, W] (no gradient flows through the mask).

    Raises:
        ValueError: bad shapes, non-positive or non-finite depths (when given as an array),
            singular matrices.
    """

    name = "plane_sweep_warp"

    def __init__(self, rec: Recorder, src: GpuTensor, depths, k_ref, w2c_ref, k_src, w2c_src, ref_size=None):
        c, hs, ws = check_tensor(src, "plane-sweep source features", 3, "[C, h, w]")
        ctx = src.ctx
        if not isinstance(depths, GpuTensor):
            d = np.asarray(depths, np.float64).ravel()
            if d.size == 0 or not np.all(np.isfinite(d)) or np.any(d <= 0):
                raise ValueError(f"plane-sweep depths must be finite and > 0, got {d.tolist()}")
            depths = GpuTensor.from_numpy(d.astype(np.float32), "plane-sweep depths", ctx)
        elif depths.dtype != np.float32 or len(depths.shape) != 1:
            raise ValueError(f"plane-sweep depths must be float32 [D], got {depths.dtype.name} {depths.shape}")
        h, w = (hs, ws) if ref_size is None else (int(ref_size[0]), int(ref_size[1]))
        kr, ks = intrinsics_matrix(k_ref), intrinsics_matrix(k_src)
        w2c_ref, w2c_src = np.asarray(w2c_ref, np.float64), np.asarray(w2c_src, np.float64)
        if w2c_ref.shape != (4, 4) or w2c_src.shape != (4, 4):
            raise ValueError(f"world_to_camera matrices must be 4x4, got {w2c_ref.shape} and {w2c_src.shape}")
        rel = w2c_src @ np.linalg.inv(w2c_ref)
        m = rel[:3, :3] @ np.linalg.inv(kr)
        n_planes = depths.shape[0]
        count = n_planes * h * w
        self.params = WARP_PARAMS.pack(
            m0=[*m[0], 0.0], m1=[*m[1], 0.0], m2=[*m[2], 0.0], t=[*rel[:3, 3], 0.0],
            k_src=[ks[0, 0], ks[1, 1], ks[0, 2], ks[1, 2]], channels=c, count=count, h=h, w=w, hs=hs, ws=ws)
        self.count, self.depths = count, depths
        warped = GpuTensor.empty((c, n_planes, h, w), np.float32, "plane-sweep warped", ctx)
        mask = GpuTensor.empty((n_planes, h, w), np.float32, "plane-sweep mask", ctx)
        with rec.stage("nn_plane_sweep"):
            rec.dispatch(_kernel("forward", False, ctx), {"params": self.params, "depths": depths, "src": src,
                                                          "out": warped, "mask": mask},
                         workgroups_for(count, 256, ctx))
        self.inputs = {"src": src}
        self.outputs = {"warped": warped, "mask": mask}

    def backward(self, rec: Recorder, grad_outputs: dict) -> dict:
        g = grad_outputs.get("warped")
        if g is None:
            return {}
        g = check_grad(g, self.outputs["warped"], self.name)
        src = self.inputs["src"]
        ctx = src.ctx
        grad = GpuTensor.empty(src.shape, np.float32, "plane-sweep grad src", ctx)
        with rec.stage("nn_plane_sweep_backward"):
            rec.clear(grad)
            rec.dispatch(_kernel("backward", True, ctx), {"params": self.params, "depths": self.depths, "gout": g,
                                                          "grad_src": grad}, workgroups_for(self.count, 256, ctx))
        return {"src": grad}


def plane_sweep_warp(rec: Recorder, src: GpuTensor, depths, k_ref, w2c_ref, k_src, w2c_src, ref_size=None,
                     tape=None) -> tuple[GpuTensor, GpuTensor]:
    """Record :class:`PlaneSweepWarpOp` (on ``tape`` when given); returns ``(warped, mask)``."""
    op = PlaneSweepWarpOp(rec, src, depths, k_ref, w2c_ref, k_src, w2c_src, ref_size)
    return record(op, tape, "warped"), op.outputs["mask"]
