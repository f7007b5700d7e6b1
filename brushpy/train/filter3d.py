"""Mip-Splatting's 3D smoothing filter: a per-splat scale floor from the training cameras.

A splat smaller than what any training view can resolve aliases when seen from closer
or at a higher resolution. Mip-Splatting (Yu et al., CVPR 2024, §4.1) convolves each
Gaussian with an isotropic 3D Gaussian of standard deviation

    f_i = sqrt(factor) · min over training views v that see splat i of (z_v / focal_v)

(``z_v`` the camera-space depth of the mean, ``focal_v = (fx + fy) / 2`` in pixels;
``factor = 0.1`` as in Brush, ``docs/options.md`` ``--min-scale-factor``; Mip-Splatting's own code
uses 0.2). A view "sees" the splat when ``z >= 0.01`` and the projected mean lies in
the image grown by 15% per side (Mip-Splatting's test); a splat no view sees gets the
largest floor of the seen ones (as Mip-Splatting). Brush's variant takes the Euclidean
distance to every camera centre instead; the depth and the frustum test follow the
paper and the brief of this feature.

The convolution of two Gaussians gives, per axis and for the opacity (energy kept):

    s' = sqrt(s² + f²),    o' = o · sqrt(det diag(s²) / det diag(s² + f²)).

Like Brush (``min_scale`` on its splats, applied by the render path and baked by
``bake_min_scale`` at export) and Mip-Splatting, the filter is part of the model
*during training*: every training step renders the filtered splats and the gradients
flow back through the map above (``f`` held constant); ``f`` is recomputed from the
current means after every refine (the set of splats changes) and saved in checkpoints
(so a resumed run uses the same floors). Exports fold it in (:meth:`Filter3D.bake`),
so the PLY holds ordinary INRIA values that any viewer renders as training did.

GPU kernels: ``shaders/filter3d_min_scale.wgsl`` (N splats × V cameras, one thread per
splat looping over a [V,20] camera table; then a fill pass for unseen splats) and
``shaders/filter3d_apply.wgsl`` (the fold and its VJP, one thread per splat).
Float64 reference: ``tests/reference/filter3d.py``.
"""

from __future__ import annotations

import numpy as np

from ..autodiff import Op
from ..gpu import GpuTensor, Kernel, Recorder, UniformLayout, get_context, workgroups_for
from ..render.splats import Splats

#: Brush's factor (the floor is sqrt(0.1) · depth / focal; ``docs/options.md`` ``--min-scale-factor``)
FILTER_3D_FACTOR = 0.1
#: floats per camera in the table the min-scale kernel reads
CAMERA_STRIDE = 20
_WG = 256

#: shaders/filter3d_min_scale.wgsl (both entry points)
MIN_SCALE_PARAMS = UniformLayout("Params", [
    ("num_splats", "u32"),
    ("num_cameras", "u32"),
    ("factor_sqrt", "f32", "sqrt(factor)"),
    ("_pad", "u32"),
])
#: shaders/filter3d_apply.wgsl (both entry points)
APPLY_PARAMS = UniformLayout("Params", [("num_splats", "u32"), ("_pad0", "u32"), ("_pad1", "u32"), ("_pad2", "u32")])


def camera_table(cameras) -> np.ndarray:
    """[V,20] float32: ``world_to_camera`` rows 0..2, fx, fy, cx, cy, width, height, 0, 0.

    ``cameras``: :class:`brushpy.render.camera.Camera` objects (the training views).
    """
    table = np.zeros((len(cameras), CAMERA_STRIDE), np.float32)
    for i, cam in enumerate(cameras):
        table[i, :12] = np.asarray(cam.world_to_camera, np.float64)[:3, :4].ravel()
        table[i, 12:18] = (cam.fx, cam.fy, cam.cx, cam.cy, cam.width, cam.height)
    return table


def fold_min_scale(log_scales, raw_opacities, min_scale) -> tuple[np.ndarray, np.ndarray]:
    """Fold the floor into the parameters on the host (float64 maths, float32 out).

    Args:
        log_scales: [N,3] natural-log standard deviations.
        raw_opacities: [N] opacity logits.
        min_scale: [N] floors ``f`` (world units; 0 leaves a splat unchanged).

    Returns:
        ``(log_scales' [N,3], raw_opacities' [N])`` float32 with
        ``exp(log_scales') = sqrt(s² + f²)`` and ``sigmoid(raw') = sigmoid(raw) · Π s / s'``,
        evaluated stably (``0.5 · logaddexp(2 log s, 2 log f)``; the logit as
        ``raw + L - softplus(raw + log(1 - e^L))``, ``L = Σ log s - log s'``), so huge or
        tiny scales and opacities near 0 or 1 stay finite.

    Raises:
        ValueError: shapes that disagree.
    """
    ls = np.asarray(log_scales, np.float64)
    raw = np.asarray(raw_opacities, np.float64).reshape(-1)
    f = np.asarray(min_scale, np.float64).reshape(-1)
    n = ls.shape[0]
    if ls.shape != (n, 3) or raw.shape != (n,) or f.shape != (n,):
        raise ValueError(f"fold_min_scale: log_scales {ls.shape}, raw_opacities {raw.shape}, min_scale {f.shape}; "
                         "expected (N, 3), (N,), (N,)")
    with np.errstate(divide="ignore", invalid="ignore"):
        log_f = np.where(f > 0, np.log(np.where(f > 0, f, 1.0)), -np.inf)
        new_ls = 0.5 * np.logaddexp(2.0 * ls, 2.0 * log_f[:, None])
        L = (ls - new_ls).sum(-1)
        log_1mc = np.log(-np.expm1(L))  # -inf where f = 0 (c = 1)
        new_raw = raw + L - np.logaddexp(0.0, raw + log_1mc)
    return new_ls.astype(np.float32), new_raw.astype(np.float32)


class Filter3D:
    """The 3D filter of one training run: camera table, per-splat floors, GPU kernels.

    Args:
        cameras: the training views' :class:`~brushpy.render.camera.Camera` objects.
        factor: ``f = sqrt(factor) · min z / focal``; must be > 0.

    Attributes:
        min_scale: f32 [N] floors on the GPU (``None`` until :meth:`update` or
            :meth:`load` ran).

    Raises:
        ValueError: no cameras, or ``factor <= 0``.
    """

    def __init__(self, cameras, factor: float = FILTER_3D_FACTOR, ctx=None):
        if not cameras:
            raise ValueError("the 3D filter needs at least one training camera")
        if not factor > 0:
            raise ValueError(f"3D filter factor {factor}: must be > 0 (0 disables the filter)")
        self.ctx = ctx or get_context()
        self.factor = float(factor)
        self.num_cameras = len(cameras)
        self.cameras = GpuTensor.from_numpy(camera_table(cameras), "filter3d.cameras", self.ctx)
        self._min = Kernel("filter3d_min_scale.wgsl", entry_point="main", ctx=self.ctx, structs=[MIN_SCALE_PARAMS])
        self._fill = Kernel("filter3d_min_scale.wgsl", entry_point="fill", ctx=self.ctx, structs=[MIN_SCALE_PARAMS])
        self._apply = Kernel("filter3d_apply.wgsl", entry_point="main", ctx=self.ctx, structs=[APPLY_PARAMS])
        self._backward = Kernel("filter3d_apply.wgsl", entry_point="backward", ctx=self.ctx, structs=[APPLY_PARAMS])
        self._max_bits = GpuTensor.empty((1,), np.uint32, "filter3d.max_bits", self.ctx)
        self.min_scale: GpuTensor | None = None
        self._out: tuple[GpuTensor, GpuTensor] | None = None

    # -- floors -----------------------------------------------------------------
    def update(self, means: GpuTensor, rec: Recorder | None = None) -> GpuTensor:
        """Recompute the floors from ``means`` f32 [N,3] (recorded into ``rec``, or submitted here)."""
        n = int(means.shape[0])
        if self.min_scale is None or self.min_scale.shape[0] != n:
            self.min_scale = self._tensor((n,), "filter3d.min_scale")
        if n == 0:
            return self.min_scale
        own = rec is None
        rec = rec or Recorder()
        params = MIN_SCALE_PARAMS.pack(num_splats=n, num_cameras=self.num_cameras, factor_sqrt=float(np.sqrt(self.factor)))
        bindings = {"params": params, "means": means, "cameras": self.cameras, "min_scale": self.min_scale,
                    "max_bits": self._max_bits}
        rec.clear(self._max_bits)
        with rec.stage("filter3d_min_scale"):
            rec.dispatch(self._min, bindings, workgroups_for(n, _WG, self.ctx))
            rec.dispatch(self._fill, bindings, workgroups_for(n, _WG, self.ctx))
        if own:
            rec.submit()
        return self.min_scale

    def load(self, min_scale: np.ndarray) -> None:
        """Use these floors (f32 [N], e.g. from a checkpoint) instead of recomputing them."""
        arr = np.ascontiguousarray(min_scale, np.float32).reshape(-1)
        self.min_scale = self._tensor(arr.shape, "filter3d.min_scale")
        if arr.size:
            self.min_scale.write(arr)

    # -- the filtered splats and the VJP -----------------------------------------------
    def apply(self, rec: Recorder, splats: Splats) -> Splats:
        """Record the filtered ``log_scales`` and ``raw_opacities`` and return the splats to render.

        The result shares ``means``, ``rotations`` and ``sh_coeffs`` with ``splats``; its
        ``log_scales`` [N,3] and ``raw_opacities`` [N] are buffers of this object, rewritten
        by the next :meth:`apply` (record the render that reads them first).

        Raises:
            RuntimeError: the floors do not match ``splats`` (call :meth:`update` after refine).
        """
        n = splats.num_splats
        self._check(n)
        if self._out is None or self._out[1].shape[0] != n:
            self._out = (self._tensor((n, 3), "filter3d.log_scales"), self._tensor((n,), "filter3d.raw_opacities"))
        ls, op = self._out
        if n:
            with rec.stage("filter3d_apply"):
                rec.dispatch(self._apply, self._apply_bindings(splats, ls, op), workgroups_for(n, _WG, self.ctx))
        return Splats(splats.means, splats.rotations, ls, splats.sh_coeffs, op)

    def backward(self, rec: Recorder, splats: Splats, v_log_scales: GpuTensor, v_raw_opacities: GpuTensor) -> None:
        """Record the VJP of :meth:`apply`: turn the gradients w.r.t. the filtered
        ``log_scales`` [N,3] / ``raw_opacities`` [N] into gradients w.r.t. ``splats``' own
        (in place; the floors are constants, so ``means`` gradients are unchanged)."""
        n = splats.num_splats
        self._check(n)
        if n:
            with rec.stage("filter3d_backward"):
                rec.dispatch(self._backward, self._apply_bindings(splats, v_log_scales, v_raw_opacities),
                             workgroups_for(n, _WG, self.ctx))

    def _apply_bindings(self, splats: Splats, io_log_scales: GpuTensor, io_raw_opacities: GpuTensor) -> dict:
        """Bindings of filter3d_apply.wgsl (both entry points)."""
        return {"params": APPLY_PARAMS.pack(num_splats=splats.num_splats), "min_scale": self.min_scale,
                "log_scales": splats.log_scales, "raw_opacities": splats.raw_opacities,
                "io_log_scales": io_log_scales, "io_raw_opacities": io_raw_opacities}

    def bake(self, splats: Splats):
        """The splats with the filter folded in, on the host, as a :class:`brushpy.io.ply.SplatData`."""
        from ..io.ply import SplatData

        self._check(splats.num_splats)
        data = SplatData.from_gpu(splats)
        data.log_scales, data.raw_opacities = fold_min_scale(data.log_scales, data.raw_opacities, self.min_scale.numpy())
        return data

    def _tensor(self, shape: tuple, label: str) -> GpuTensor:
        """A float32 tensor of ``shape`` (a one-element buffer behind an empty one)."""
        t = GpuTensor.empty((max(int(np.prod(shape)), 1),), np.float32, label, self.ctx)
        return GpuTensor.view_of(t.buffer, tuple(int(v) for v in shape), t.dtype, label, self.ctx)

    def _check(self, n: int) -> None:
        if self.min_scale is None or self.min_scale.shape[0] != n:
            have = None if self.min_scale is None else self.min_scale.shape[0]
            raise RuntimeError(f"3D filter floors are for {have} splats but there are {n}; call Filter3D.update(means) first")


class Filter3DOp(Op):
    """The 3D filter's fold as an autodiff op: records :meth:`Filter3D.apply` on construction.

    inputs: ``{"log_scales", "raw_opacities"}`` of ``splats`` (the raw parameters).
    outputs: the same names, the filtered tensors (:attr:`filtered` is the splat set to
    render: these two plus ``splats``' own means, rotations and SH coefficients, whose
    gradients go straight to ``splats``).

    The backward is :meth:`Filter3D.backward`: it rewrites the incoming gradients
    (w.r.t. the filtered values) in place into the gradients w.r.t. the raw ones and
    returns those same tensors, so no buffer is allocated. The floors ``f`` are
    constants; :meth:`Filter3D.update` (after refine) stays outside the tape.

    Raises:
        RuntimeError: the floors do not match ``splats`` (from :meth:`Filter3D.apply`).
    """

    name = "filter3d"

    def __init__(self, filter3d: Filter3D, rec: Recorder, splats: Splats):
        self.filter3d = filter3d
        self.splats = splats
        self.filtered = filter3d.apply(rec, splats)
        self.inputs = {"log_scales": splats.log_scales, "raw_opacities": splats.raw_opacities}
        self.outputs = {"log_scales": self.filtered.log_scales, "raw_opacities": self.filtered.raw_opacities}

    def backward(self, rec: Recorder, grad_outputs: dict) -> dict:
        v_ls, v_op = grad_outputs["log_scales"], grad_outputs["raw_opacities"]
        if v_ls is None or v_op is None:  # the kernel maps both together (the opacity term depends on the scales)
            n = self.splats.num_splats
            if v_ls is None:
                v_ls = GpuTensor.empty((n, 3), np.float32, "v_log_scales (filter3d)", self.filter3d.ctx)
                rec.clear(v_ls)
            if v_op is None:
                v_op = GpuTensor.empty((n,), np.float32, "v_raw_opacities (filter3d)", self.filter3d.ctx)
                rec.clear(v_op)
        self.filter3d.backward(rec, self.splats, v_ls, v_op)
        return {"log_scales": v_ls, "raw_opacities": v_op}
