"""Pixel-aligned Gaussians from predicted inverse depth and a Gaussian head: :class:`PixelLiftOp`.

The last stage of the encoder (DepthSplat, Xu et al. 2025, section 3.2; pixelSplat/MVSplat
before it): every pixel of every context view becomes one Gaussian on its unprojected point.
Per view with camera ``world_to_camera = [R | t]`` (OpenCV axes), intrinsics ``fx, fy, cx, cy``
at the image resolution, plane spacing ``dinv`` (inverse-depth step between two cost-volume
planes) and floor ``inv_floor``; pixel ``(x, y)``, ``p = y·W + x``, head channels ``h[0..11]``:

* depth: ``inv_t = inv[p] + dinv·h[0]`` (the depth offset, in units of one plane step),
  ``z = 1 / max(inv_t, inv_floor)`` (no gradient where the floor holds);
* mean: ``Rᵀ(z·((x+½−cx)/fx, (y+½−cy)/fy, 1) − t)`` (pixel centres at +0.5, as the renderer);
* raw opacity (logit; the renderer applies the sigmoid): ``h[1]``;
* log-scales: ``log(z·σ₀) + SCALE_RANGE·tanh(h[2+k])``, ``σ₀ = 1/sqrt(fx·fy)`` (one pixel's
  footprint at depth z, as ``brushpy.train.lift``), so a scale stays within e^±2 footprints;
* rotation (w, x, y, z), not normalised (the renderer normalises): ``(1 + h[5], h[6], h[7], h[8])``;
* SH band 0: ``(rgb − ½)/C₀ + h[9+c]`` (the pixel's colour plus a residual; C₀ = 0.2820948).

Splat ``n = v·H·W + p``: views in order, pixels row-major. Kernel: ``shaders/ff_pixel_lift.wgsl``
(one thread per pixel, forward and backward, no atomics). Reference: :func:`lift_reference`,
:func:`lift_vjp_reference` (float64).
"""

from __future__ import annotations

import math

import numpy as np

from ..autodiff import Op
from ..gpu import GpuTensor, Kernel, Recorder, UniformLayout, workgroups_for
from ..io.ply import rgb_to_sh_dc
from ..render.camera import Camera
from ..render.splats import Splats

#: head channels: depth offset 1, opacity 1, scales 3, rotation 4, SH DC 3
HEAD_CHANNELS = 12
#: bound of a log-scale's deviation from one pixel footprint (``SCALE_RANGE·tanh``)
SCALE_RANGE = 2.0


#: shaders/ff_pixel_lift.wgsl
LIFT_PARAMS = UniformLayout("LiftParams", [
    ("r0", "vec4<f32>", "row 0 of the camera-to-world rotation Rᵀ (xyz)"),
    ("r1", "vec4<f32>"),
    ("r2", "vec4<f32>"),
    ("centre", "vec4<f32>", "camera centre -Rᵀt (xyz)"),
    ("intr", "vec4<f32>", "fx, fy, cx, cy"),
    ("pixels", "u32", "H*W"),
    ("width", "u32"),
    ("offset", "u32", "first splat of this view"),
    ("dinv", "f32", "inverse-depth step of one plane"),
    ("inv_floor", "f32", "smallest inverse depth"),
    ("sigma0", "f32", "1 / sqrt(fx fy)"),
    ("scale_range", "f32"),
])


def _camera_rows(cam: Camera):
    w2c = np.asarray(cam.world_to_camera, np.float64)
    rot_t = w2c[:3, :3].T
    return rot_t, -rot_t @ w2c[:3, 3]


def lift_params(cam: Camera, pixels: int, offset: int, dinv: float, inv_floor: float) -> bytes:
    """The kernel's uniform for one view (``cam`` at the image resolution)."""
    rot_t, centre = _camera_rows(cam)
    return LIFT_PARAMS.pack(r0=[*rot_t[0], 0.0], r1=[*rot_t[1], 0.0], r2=[*rot_t[2], 0.0], centre=[*centre, 0.0],
                            intr=[cam.fx, cam.fy, cam.cx, cam.cy], pixels=pixels, width=cam.width, offset=offset,
                            dinv=float(dinv), inv_floor=float(inv_floor), sigma0=1.0 / math.sqrt(cam.fx * cam.fy),
                            scale_range=SCALE_RANGE)


class PixelLiftOp(Op):
    """Lift V views' pixels to one splat set (see the module docstring for the formulas).

    Args:
        rec: recorder for the forward.
        inv_depths: per view float32 GpuTensor of H·W elements (``[1, 1, H, W]``), inverse depth.
        heads: per view float32 GpuTensor ``[1, 12, H, W]``: the Gaussian head's raw outputs.
        images: per view float32 GpuTensor ``[1, 3, H, W]`` (RGB in [0, 1]; not differentiated).
        cameras: per view :class:`~brushpy.render.camera.Camera` of size W x H.
        dinv: inverse-depth step of one plane (scales the depth offset); inv_floor: smallest
            inverse depth (largest depth) a splat may get, > 0.

    inputs: ``{"inv0", "head0", "inv1", ...}``; outputs: the :class:`Splats` tensors by name
    (``Splats.PARAM_NAMES``, SH degree 0); :attr:`splats` is the set (render it with a
    :class:`brushpy.render.backward.RenderOp` on the same tape).

    Raises:
        ValueError: lists of different lengths, shapes that disagree with the cameras, inv_floor <= 0.
    """

    name = "pixel_lift"

    def __init__(self, rec: Recorder, inv_depths, heads, images, cameras, dinv: float, inv_floor: float):
        if not len(inv_depths) == len(heads) == len(images) == len(cameras) or not cameras:
            raise ValueError("PixelLiftOp: give one inverse depth, head, image and camera per view")
        if not inv_floor > 0:
            raise ValueError(f"PixelLiftOp: inv_floor must be > 0, got {inv_floor}")
        ctx = heads[0].ctx
        self.cameras, self.images = list(cameras), list(images)
        self.uniforms = []
        n = 0
        for v, (inv, head, img, cam) in enumerate(zip(inv_depths, heads, images, cameras)):
            p = cam.width * cam.height
            if inv.numel != p or head.numel != HEAD_CHANNELS * p or img.numel != 3 * p:
                raise ValueError(f"PixelLiftOp view {v}: inverse depth {inv.shape}, head {head.shape} and image "
                                 f"{img.shape} do not fit its camera {cam.width}x{cam.height} (need {HEAD_CHANNELS} "
                                 "head channels)")
            self.uniforms.append(lift_params(cam, p, n, dinv, inv_floor))
            n += p
        self.splats = Splats(GpuTensor.empty((n, 3), np.float32, "ff means", ctx),
                             GpuTensor.empty((n, 4), np.float32, "ff rotations", ctx),
                             GpuTensor.empty((n, 3), np.float32, "ff log_scales", ctx),
                             GpuTensor.empty((n, 1, 3), np.float32, "ff sh_coeffs", ctx),
                             GpuTensor.empty((n,), np.float32, "ff raw_opacities", ctx))
        kernel = Kernel("ff_pixel_lift.wgsl", defines={"BACKWARD": False}, structs=[LIFT_PARAMS], ctx=ctx)
        with rec.stage("ff_pixel_lift"):
            for u, inv, head, img in zip(self.uniforms, inv_depths, heads, images):
                pixels = inv.numel
                rec.dispatch(kernel, {"params": u, "inv_depth": inv, "head": head, "rgb": img,
                                      "means": self.splats.means, "rotations": self.splats.rotations,
                                      "log_scales": self.splats.log_scales, "sh": self.splats.sh_coeffs,
                                      "raw_opacities": self.splats.raw_opacities}, workgroups_for(pixels, 256, ctx))
        self.inputs = {}
        for v, (inv, head) in enumerate(zip(inv_depths, heads)):
            self.inputs[f"inv{v}"] = inv
            self.inputs[f"head{v}"] = head
        self.outputs = self.splats.params()

    def backward(self, rec: Recorder, grad_outputs: dict) -> dict:
        first = self.inputs["head0"]
        ctx = first.ctx
        g = {}
        for name, t in self.outputs.items():
            gt = grad_outputs.get(name)
            if gt is None:  # nothing downstream used it: a zero gradient
                gt = GpuTensor.zeros(t.shape, np.float32, f"zero grad {name}", ctx)
            g[name] = gt
        kernel = Kernel("ff_pixel_lift.wgsl", defines={"BACKWARD": True}, structs=[LIFT_PARAMS], ctx=ctx)
        out = {}
        with rec.stage("ff_pixel_lift_backward"):
            for v, u in enumerate(self.uniforms):
                inv, head = self.inputs[f"inv{v}"], self.inputs[f"head{v}"]
                gi = GpuTensor.empty(inv.shape, np.float32, "grad inv depth", ctx)
                gh = GpuTensor.empty(head.shape, np.float32, "grad head", ctx)
                rec.dispatch(kernel, {"params": u, "inv_depth": inv, "head": head, "rgb": self.images[v],
                                      "g_means": g["means"], "g_rot": g["rotations"], "g_scales": g["log_scales"],
                                      "g_sh": g["sh_coeffs"], "g_opac": g["raw_opacities"], "grad_inv": gi,
                                      "grad_head": gh}, workgroups_for(inv.numel, 256, ctx))
                out[f"inv{v}"], out[f"head{v}"] = gi, gh
        return out


# -- float64 reference -------------------------------------------------------------------------

def _ref_view(inv, head, rgb, cam: Camera, dinv, inv_floor):
    h, w = cam.height, cam.width
    inv = np.asarray(inv, np.float64).reshape(h * w)
    head = np.asarray(head, np.float64).reshape(HEAD_CHANNELS, h * w)
    rgb = np.asarray(rgb, np.float64).reshape(3, h * w)
    inv_t = inv + dinv * head[0]
    z = 1.0 / np.maximum(inv_t, inv_floor)
    ys, xs = np.divmod(np.arange(h * w), w)
    ray_c = np.stack([(xs + 0.5 - cam.cx) / cam.fx, (ys + 0.5 - cam.cy) / cam.fy, np.ones(h * w)])
    rot_t, centre = _camera_rows(cam)
    ray = rot_t @ ray_c  # [3, P]
    return inv_t, z, ray, centre, head, rgb


def lift_reference(inv_depths, heads, images, cameras, dinv: float, inv_floor: float) -> dict[str, np.ndarray]:
    """Float64 forward of :class:`PixelLiftOp` on NumPy arrays (same shapes); returns the splat arrays by name."""
    parts = []
    for inv, head, rgb, cam in zip(inv_depths, heads, images, cameras):
        _, z, ray, centre, head, rgb = _ref_view(inv, head, rgb, cam, dinv, inv_floor)
        sigma0 = 1.0 / math.sqrt(cam.fx * cam.fy)
        parts.append({
            "means": (centre[:, None] + z * ray).T,
            "rotations": np.stack([1.0 + head[5], head[6], head[7], head[8]], 1),
            "log_scales": (np.log(z * sigma0) + SCALE_RANGE * np.tanh(head[2:5])).T,
            "sh_coeffs": (rgb_to_sh_dc(rgb) + head[9:12]).T[:, None, :],  # rgb [3,HW]: elementwise
            "raw_opacities": head[1].copy(),
        })
    return {k: np.concatenate([p[k] for p in parts]) for k in Splats.PARAM_NAMES}


def lift_vjp_reference(inv_depths, heads, images, cameras, dinv: float, inv_floor: float, grads: dict):
    """Float64 gradients ``(list of d/d inv [H·W], list of d/d head [12, H·W])`` of
    ``Σ_name sum(grads[name] · lift_reference(...)[name])``."""
    g_inv, g_head, n = [], [], 0
    for inv, head, rgb, cam in zip(inv_depths, heads, images, cameras):
        inv_t, z, ray, _, head, _ = _ref_view(inv, head, rgb, cam, dinv, inv_floor)
        p = z.size
        sl = slice(n, n + p)
        n += p
        gm, gr = np.asarray(grads["means"], np.float64)[sl], np.asarray(grads["rotations"], np.float64)[sl]
        gs = np.asarray(grads["log_scales"], np.float64)[sl]
        gsh = np.asarray(grads["sh_coeffs"], np.float64)[sl].reshape(p, 3)
        go = np.asarray(grads["raw_opacities"], np.float64)[sl]
        dz = np.sum(gm.T * ray, 0) + gs.sum(1) / z
        gi = np.where(inv_t >= inv_floor, -dz * z * z, 0.0)
        gh = np.zeros((HEAD_CHANNELS, p))
        gh[0] = gi * dinv
        gh[1] = go
        gh[2:5] = gs.T * SCALE_RANGE * (1.0 - np.tanh(head[2:5]) ** 2)
        gh[5:9] = gr.T
        gh[9:12] = gsh.T
        g_inv.append(gi)
        g_head.append(gh)
    return g_inv, g_head
