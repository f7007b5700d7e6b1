"""Backward pass of the splat renderer: gradients of the image w.r.t. every splat parameter.

Two kernels, recorded into the caller's :class:`~brushpy.gpu.Recorder`:

1. ``rasterize_backward.wgsl``: walks each tile's intersection list back to
   front from every pixel's ``final_index`` (the forward's stopping point) and
   accumulates ``v_projected [V,9]``, the gradients w.r.t. the projected
   values (x, y, conic a, b, c, r, g, b, opacity; the layout of
   ``ForwardState.projected``), with float atomics or, without
   ``shader-float32-atomic``, a compare-and-swap loop.
2. ``project_backward.wgsl``: per visible splat, chains those into the
   gradients of means, rotations (raw quaternions), log_scales, sh_coeffs and
   raw_opacities, written at the splat's input index. Culled splats get
   exact zeros.

The maths is the float64 reference ``tests/reference/render_backward.py``
(gsplat's "classic" rasterizer; exact, including the J clamp, the 0.999
alpha clamp and the SH view-direction term). The render mode is the forward's
(``ForwardState.render_mode``): in ``"mip"`` mode the gradient of the opacity
compensation ``sqrt(det Σ2D / det(Σ2D + 0.1 I))`` flows to the 2D covariance
(hence to scales, rotations and means) and to the opacity logit.

Depth (a state rendered with ``outputs`` holding ``"D"`` or ``"ED"``): given a depth
cotangent ``v_depth`` [H,W], both kernels run in their ``ACC_DEPTH`` variants: the
depth is differentiated as one more colour channel (gsplat's way), ``ED = D / max(A,
1e-10)`` exactly as a ratio (into the alpha of every blended splat), and the gradient
w.r.t. each splat's camera z (``SplatGrads.v_depths`` [V]) reaches the means. Without
a depth cotangent the plain kernels run, unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..autodiff import Op
from ..gpu import GpuTensor, Kernel, Recorder, UniformLayout, get_context, workgroups_for
from .camera import Camera
from .params import RENDER_PARAMS, RenderOutputs, parse_outputs
from .forward import raster_defines, render_forward
from .splats import Splats
from .state import PROJECTED_STRIDE, ForwardState

_PROJECT_WG = 128

#: the uniform block of shaders/rasterize_backward.wgsl (``#struct Params``)
RASTERIZE_BACKWARD_PARAMS = UniformLayout("Params", [
    ("background", "vec4<f32>", "rgb, unused"),
    ("width", "u32"),
    ("height", "u32"),
    ("tiles_x", "u32"),
    ("tiles_y", "u32"),
])
#: the uniform block of shaders/project_backward.wgsl (``#struct Params``)
PROJECT_BACKWARD_PARAMS = UniformLayout("Params", [
    ("world_to_camera", "mat4x4<f32>"),
    ("cam_pos", "vec4<f32>", "camera centre in world coordinates (xyz), 0"),
    ("intrinsics", "vec4<f32>", "fx, fy, cx, cy"),
    ("size", "vec4<f32>", "width, height, render mode (0 default, 1 mip), 0"),
    ("num_visible", "u32"),
    ("num_coeffs", "u32", "coefficients used, (degree + 1)^2"),
    ("view_dir_const", "u32"),
    ("coeff_stride", "u32", "K, coefficients stored per splat"),
])


@dataclass
class SplatGrads:
    """Gradients of the loss w.r.t. one splat set (float32 GPU tensors, input order).

    Attributes:
        means: [N,3]
        rotations: [N,4] w.r.t. the raw (unnormalised) quaternion (w, x, y, z).
        log_scales: [N,3]
        sh_coeffs: [N,K,3]
        raw_opacities: [N] w.r.t. the opacity logits.
        refine_weight: [N] the densification statistic ``|(∂L/∂x · W, ∂L/∂y · H)|``,
            the norm of the gradient w.r.t. the 2D mean (pixels) scaled by the
            image width and height; 0 for culled splats.
        visible: u32 [N], 1 where the splat survived the cull (was projected), else 0.
        v_projected: f32 [V,9] gradients w.r.t. ``ForwardState.projected`` (compact order).
        refine_weight_abs: [N] Brush's densification statistic (its current
            ``rasterize_backwards.wgsl``): ``max(W, H) · Σ_pixels (|∂L/∂x_p| + |∂L/∂y_p|)
            / max(α_p, 0.001)``, the per-pixel 2D-mean gradients summed in absolute
            value, each divided by that pixel's final alpha (the 0.999 clamp is
            ignored for it); 0 for culled splats.
        refine_abs: f32 [V] the same in compact order (what the rasterize backward accumulates).
        v_depths: f32 [V] gradient w.r.t. each visible splat's camera z (compact order);
            written only by a backward given a depth cotangent (otherwise stale).
    """

    means: GpuTensor
    rotations: GpuTensor
    log_scales: GpuTensor
    sh_coeffs: GpuTensor
    raw_opacities: GpuTensor
    refine_weight: GpuTensor
    visible: GpuTensor
    v_projected: GpuTensor
    refine_weight_abs: GpuTensor
    refine_abs: GpuTensor
    v_depths: GpuTensor | None = None

    def params(self) -> dict[str, GpuTensor]:
        """``{name: gradient}`` of the five parameters, named and ordered as :attr:`Splats.PARAM_NAMES`."""
        return {k: getattr(self, k) for k in Splats.PARAM_NAMES}

    def numpy(self) -> dict[str, np.ndarray]:
        """Copy every gradient to the host (waits for the GPU)."""
        return {k: getattr(self, k).numpy() for k in Splats.PARAM_NAMES + ("refine_weight", "refine_weight_abs", "visible")}


class RenderBackward:
    """The two backward kernels, built once per device and set of feature flags.

    Args:
        defines: extra template defines (tests may pass ``{"HAS_SUBGROUPS": False}``
            or ``{"HAS_FLOAT_ATOMICS": False}`` to force a fallback path, or
            ``{"PIXELS_PER_THREAD": 1|2|4|8}`` to override
            :func:`brushpy.render.forward.default_pixels_per_thread`).
    """

    def __init__(self, defines: dict | None = None, ctx=None):
        self.ctx = ctx or get_context()
        rd = raster_defines(defines, self.ctx)
        self.pixels_per_thread = int(rd["PIXELS_PER_THREAD"])
        self.rasterize = Kernel("rasterize_backward.wgsl", defines=rd, ctx=self.ctx, structs=[RASTERIZE_BACKWARD_PARAMS])
        self.project = Kernel("project_backward.wgsl", defines=defines, ctx=self.ctx,
                              structs=[RENDER_PARAMS, PROJECT_BACKWARD_PARAMS])
        self._defines = dict(defines or {})
        self._depth_kernels: dict = {}
        self._zero_images: dict = {}

    def kernels(self, depth_mode: str | None) -> tuple[Kernel, Kernel]:
        """(rasterize, project) backward kernels: the plain ones, or the ``"D"``/``"ED"`` variant."""
        if depth_mode is None:
            return self.rasterize, self.project
        if depth_mode not in self._depth_kernels:
            d = {**self._defines, **RenderOutputs(depth=depth_mode).kernel_defines()}
            self._depth_kernels[depth_mode] = (
                Kernel("rasterize_backward.wgsl", defines=raster_defines(d, self.ctx), ctx=self.ctx,
                       structs=[RASTERIZE_BACKWARD_PARAMS]),
                Kernel("project_backward.wgsl", defines=d, ctx=self.ctx, structs=[RENDER_PARAMS, PROJECT_BACKWARD_PARAMS]),
            )
        return self._depth_kernels[depth_mode]

    def _zero_image(self, h: int, w: int) -> GpuTensor:
        """A zero [H,W,4] image cotangent (for a backward from the depth alone), kept per size."""
        if (h, w) not in self._zero_images:
            self._zero_images[(h, w)] = GpuTensor.from_numpy(np.zeros((h, w, 4), np.float32), "zero_v_image", self.ctx)
        return self._zero_images[(h, w)]

    def allocate(self, n: int, num_coeffs: int, num_visible: int) -> SplatGrads:
        """Zeroed gradient buffers for ``n`` splats with ``num_coeffs`` SH coefficients.

        ``num_visible`` sizes the compact buffers (``v_projected``, ``refine_abs``):
        pass ``n`` to reuse the result (``record(..., out=...)``) for any view.
        """
        e = GpuTensor.empty
        return SplatGrads(
            e((n, 3), np.float32, "v_means", self.ctx),
            e((n, 4), np.float32, "v_rotations", self.ctx),
            e((n, 3), np.float32, "v_log_scales", self.ctx),
            e((n, num_coeffs, 3), np.float32, "v_sh_coeffs", self.ctx),
            e((n,), np.float32, "v_raw_opacities", self.ctx),
            e((n,), np.float32, "refine_weight", self.ctx),
            e((n,), np.uint32, "visible", self.ctx),
            e((max(num_visible, 1), PROJECTED_STRIDE), np.float32, "v_projected", self.ctx),
            e((n,), np.float32, "refine_weight_abs", self.ctx),
            e((max(num_visible, 1),), np.float32, "refine_abs", self.ctx),
            e((max(num_visible, 1),), np.float32, "v_depths", self.ctx),
        )

    def record(
        self,
        rec: Recorder,
        state: ForwardState,
        splats: Splats,
        v_image: GpuTensor,
        view_dir_const: bool = False,
        out: SplatGrads | None = None,
        v_depth: GpuTensor | None = None,
    ) -> SplatGrads:
        """Record the backward pass into ``rec``; see :func:`render_backward`.

        ``out``: buffers from :meth:`allocate` to write into instead of fresh ones
        (a training loop reuses them every step); they are cleared first.
        """
        cam = state.camera
        h, w = cam.height, cam.width
        if v_depth is not None:
            if state.depth is None:
                raise ValueError(f"v_depth given but the ForwardState has no depth (outputs={state.outputs!r}); "
                                 "render with outputs='RGB+D' or 'RGB+ED'")
            if tuple(v_depth.shape) != (h, w):
                raise ValueError(f"v_depth has shape {tuple(v_depth.shape)}; expected ({h}, {w}) for this ForwardState")
        if v_image is None:
            if v_depth is None:
                raise ValueError("render backward needs v_image, v_depth or both")
            v_image = self._zero_image(h, w)
        if tuple(v_image.shape) != (h, w, 4):
            raise ValueError(f"v_image has shape {tuple(v_image.shape)}; expected ({h}, {w}, 4) for this ForwardState")
        n = splats.num_splats
        if state.num_splats != n:
            raise ValueError(f"ForwardState was rendered from {state.num_splats} splats but {n} splats were given")
        k = splats.sh_coeffs.shape[1]
        if out is None:
            grads = self.allocate(n, k, state.num_visible)
        else:
            grads = out
            want = {"means": (n, 3), "rotations": (n, 4), "log_scales": (n, 3), "sh_coeffs": (n, k, 3), "raw_opacities": (n,)}
            for name, shape in want.items():
                if tuple(getattr(out, name).shape) != shape:
                    raise ValueError(f"out.{name} has shape {getattr(out, name).shape}; expected {shape}")
            if out.v_projected.shape[0] < state.num_visible or out.refine_abs.shape[0] < state.num_visible:
                raise ValueError(
                    f"out holds {out.v_projected.shape[0]} visible splats but this view has {state.num_visible}; "
                    "allocate it with num_visible = N"
                )
        depth_mode = state.depth_mode if v_depth is not None else None
        if depth_mode is not None and (grads.v_depths is None or grads.v_depths.shape[0] < state.num_visible):
            grads.v_depths = GpuTensor.empty((max(state.num_visible, 1),), np.float32, "v_depths", self.ctx)
        for t in (*grads.params().values(), grads.refine_weight, grads.visible, grads.v_projected, grads.refine_weight_abs, grads.refine_abs):
            rec.clear(t)
        if depth_mode is not None:
            rec.clear(grads.v_depths)
        k_raster, k_project = self.kernels(depth_mode)
        if state.num_visible == 0:
            return grads

        bg = np.zeros(4, np.float32)
        bg[:3] = np.asarray(state.background, np.float32)[:3]
        raster_params = RASTERIZE_BACKWARD_PARAMS.pack(background=bg, width=w, height=h, tiles_x=state.tiles_x,
                                                       tiles_y=state.tiles_y)
        raster_binds = {}
        if depth_mode is not None:
            raster_binds = {"depths": state.depths, "depth": state.depth, "v_depth": v_depth, "v_depths": grads.v_depths}
        with rec.stage("rasterize_backward"):
            rec.dispatch(
                k_raster,
                {
                    **raster_binds,
                    "params": raster_params,
                    "compact_from_isect": state.compact_from_isect,
                    "tile_ranges": state.tile_ranges,
                    "projected": state.projected,
                    "final_index": state.final_index,
                    "image": state.image,
                    "v_image": v_image,
                    "v_projected": grads.v_projected,
                    "refine_abs": grads.refine_abs,
                },
                workgroups_for(state.tiles_x * state.tiles_y, 1, self.ctx),
            )

        fx, fy, cx, cy = cam.intrinsics
        mip = 1.0 if getattr(state, "render_mode", "default") == "mip" else 0.0
        proj_params = PROJECT_BACKWARD_PARAMS.pack(
            world_to_camera=np.asarray(cam.world_to_camera, np.float32),
            cam_pos=np.append(np.asarray(cam.position, np.float32), np.float32(0.0)),
            intrinsics=np.array((fx, fy, cx, cy), np.float32),
            size=np.array((w, h, mip, 0.0), np.float32),
            num_visible=state.num_visible,
            num_coeffs=min(k, (int(state.sh_degree) + 1) ** 2),
            view_dir_const=int(bool(view_dir_const)),
            coeff_stride=k,
        )
        with rec.stage("project_backward"):
            binds = {name: getattr(splats, name) for name in Splats.PARAM_NAMES}
            binds.update({"v_" + name: g for name, g in grads.params().items()})
            binds.update(params=proj_params, global_from_compact=state.global_from_compact, v_projected=grads.v_projected,
                         refine_weight=grads.refine_weight, visible=grads.visible, refine_abs=grads.refine_abs,
                         refine_weight_abs=grads.refine_weight_abs)
            if depth_mode is not None:
                binds["v_depths"] = grads.v_depths
            rec.dispatch(k_project, binds, workgroups_for(state.num_visible, _PROJECT_WG, self.ctx))
        return grads


def _new_backward(ctx) -> RenderBackward:
    return RenderBackward(ctx=ctx)


def _kernels(ctx) -> RenderBackward:
    """The context's default :class:`RenderBackward` (in its cache)."""
    return ctx.cache(RenderBackward, _new_backward)


def render_backward(
    state: ForwardState,
    splats: Splats,
    v_image: GpuTensor,
    rec: Recorder,
    view_dir_const: bool = False,
    out: SplatGrads | None = None,
    v_depth: GpuTensor | None = None,
) -> SplatGrads:
    """Record the gradients of ``sum(image * v_image) + sum(depth * v_depth)`` w.r.t. every splat parameter.

    Args:
        state: what the forward render of ``splats`` kept (:class:`ForwardState`).
        splats: the splat set that was rendered (same N, same values).
        v_image: f32 [H,W,4] gradient of the loss w.r.t. ``state.image`` (RGB + alpha),
            or None (zero) when only ``v_depth`` is given.
        rec: recorder the two backward stages are recorded into (nothing is
            submitted or read back here).
        view_dir_const: treat the SH view direction as a constant (no gradient
            from colour to the means through it), as gsplat's reference data does.
        out: reuse these buffers (from ``RenderBackward.allocate(N, K, N)``) instead
            of allocating; they are cleared, then written.
        v_depth: f32 [H,W] gradient w.r.t. ``state.depth`` (D or ED, as the forward was
            asked), or None (zero: the plain kernels run).

    The render mode is ``state.render_mode`` (the forward's), so forward and backward
    always agree.

    Returns:
        :class:`SplatGrads` (fresh GPU tensors, or ``out``), valid once ``rec`` is submitted.

    Raises:
        ValueError: when ``v_image``, ``splats`` or ``out`` do not match ``state``.
    """
    return _kernels(rec.ctx).record(rec, state, splats, v_image, view_dir_const, out, v_depth)


def rasterize_vjp(
    means,
    rotations,
    log_scales,
    sh_coeffs,
    raw_opacities,
    world_to_camera,
    intrinsics,
    width: int,
    height: int,
    v_image,
    background=(0.0, 0.0, 0.0),
    sh_degree: int | None = None,
    view_dir_const: bool = False,
    render_mode: str = "default",
    v_depth=None,
    outputs: str | None = None,
) -> dict[str, np.ndarray]:
    """Gradients of ``sum(image * v_image) + sum(depth * v_depth)`` w.r.t. the splat parameters, as numpy arrays.

    Renders forward on the GPU (:func:`brushpy.render.forward.render_forward`), then
    runs :func:`render_backward`, recorded into one recorder (the forward reads back
    its visible/intersection counts; the gradients are read back at the end).

    Args:
        means [N,3], rotations [N,4] (w,x,y,z), log_scales [N,3], sh_coeffs [N,K,3],
        raw_opacities [N]: splat parameters (numpy or :class:`GpuTensor`).
        world_to_camera: 4x4 (OpenCV axes). intrinsics: (fx, fy, cx, cy) in pixels.
        width, height: image size. v_image: [H,W,4] gradient w.r.t. the image.
        background: RGB behind the splats. sh_degree: degree used (default: all of K).
        view_dir_const: hold the SH view direction constant.
        render_mode: ``"default"`` or ``"mip"`` (see :func:`brushpy.render.forward.render_forward`).
        v_depth: [H,W] gradient w.r.t. the depth (None: zero). v_image may then be None.
        outputs: which depth ``v_depth`` is for: ``"RGB+D"``/``"D"`` (accumulated) or
            ``"RGB+ED"``/``"ED"`` (expected); default ``"RGB"``, which needs ``v_depth`` None.

    Returns:
        ``dict(means, rotations, log_scales, sh_coeffs, raw_opacities)`` float32 arrays
        with the shapes of the inputs (culled splats and SH coefficients above
        ``sh_degree``: zeros).

    Raises:
        ValueError: inconsistent shapes (from the forward or :func:`render_backward`).
    """
    inputs = (means, rotations, log_scales, sh_coeffs, raw_opacities)
    shapes = [tuple(a.shape) if isinstance(a, GpuTensor) else np.shape(a) for a in inputs]
    if all(isinstance(a, GpuTensor) for a in inputs):
        splats = Splats(means, rotations, log_scales, sh_coeffs, raw_opacities)
    else:
        splats = Splats.from_numpy(
            *(a.numpy() if isinstance(a, GpuTensor) else a for a in (means, rotations, log_scales, sh_coeffs, raw_opacities))
        )
    fx, fy, cx, cy = (float(v) for v in intrinsics)
    camera = Camera(np.asarray(world_to_camera, np.float64), fx, fy, cx, cy, width, height)
    want = parse_outputs("RGB" if outputs is None else outputs)
    want = RenderOutputs(rgb=want.rgb, depth=want.depth)  # the median depth has no gradient
    v_dep = None
    if v_depth is not None:
        if want.depth is None:
            raise ValueError(f"v_depth given with outputs={want.name!r}; pass outputs='RGB+D' or 'RGB+ED' (which depth)")
        if isinstance(v_depth, GpuTensor):
            v_dep = v_depth
        else:
            d_np = np.asarray(v_depth, np.float32)
            if d_np.shape != (height, width):
                raise ValueError(f"v_depth has shape {d_np.shape}; expected ({height}, {width})")
            v_dep = GpuTensor.from_numpy(d_np, "v_depth")
    if v_image is None or isinstance(v_image, GpuTensor):
        v_img = v_image
    else:
        v_np = np.asarray(v_image, np.float32)
        if v_np.shape != (height, width, 4):
            raise ValueError(f"v_image has shape {v_np.shape}; expected ({height}, {width}, 4) (H, W, RGB + alpha)")
        v_img = GpuTensor.from_numpy(v_np, "v_image")
    rec = Recorder()
    state = render_forward(splats, camera, background=tuple(background), sh_degree=sh_degree, rec=rec, render_mode=render_mode,
                           outputs=want)
    grads = render_backward(state, splats, v_img, rec, view_dir_const=view_dir_const, v_depth=v_dep)
    rec.submit()
    out = grads.numpy()
    return {k: out[k].reshape(shape) for k, shape in zip(Splats.PARAM_NAMES, shapes)}


class RenderOp(Op):
    """The splat render as an autodiff op (see :mod:`brushpy.autodiff`).

    inputs: the :class:`Splats` tensors by name (``Splats.PARAM_NAMES``; with a 3D
    filter, ``log_scales`` and ``raw_opacities`` are the filtered ones).
    outputs: ``{"image": state.image}`` float32 [H,W,4], plus ``"depth": state.depth``
    float32 [H,W] when the state was rendered with a depth (``outputs="RGB+D"``/``"RGB+ED"``...).
    Its backward takes the cotangents of either or both (a missing one is zero) and
    records :func:`render_backward`; the full :class:`SplatGrads`
    (with ``refine_weight_abs`` and ``visible`` for densification and the position
    noise) stays on the op as ``op.grads`` after the tape's backward.

    Args:
        state: the forward render of ``splats``.
        splats: the rendered splat set.
        view_dir_const: hold the SH view direction constant in the backward.
        out: gradient buffers to reuse (``RenderBackward.allocate(N, K, N)``), as a
            training loop does every step; fresh ones when None.
    """

    name = "render"

    def __init__(self, state: ForwardState, splats: Splats, view_dir_const: bool = False, out: SplatGrads | None = None):
        self.state = state
        self.splats = splats
        self.view_dir_const = view_dir_const
        self.out = out
        self.inputs = splats.params()
        self.outputs = {"image": state.image}
        if state.depth is not None:
            self.outputs["depth"] = state.depth
        self.grads: SplatGrads | None = None

    def backward(self, rec: Recorder, grad_outputs: dict) -> dict:
        self.grads = _kernels(rec.ctx).record(rec, self.state, self.splats, grad_outputs.get("image"), self.view_dir_const,
                                              self.out, grad_outputs.get("depth"))
        return self.grads.params()
