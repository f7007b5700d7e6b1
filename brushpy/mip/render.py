"""Differentiable soft-MIP renderer (forward and backward WGSL kernels).

For each view (a :class:`~brushpy.mip.camera.MipCamera`):

1. ``mip_project``: per Gaussian, box -> camera (``c = M u + t``), 2D mean,
   2D covariance ``J M Σ Mᵀ Jᵀ + 0.3·I`` (pixels²; ``Σ = R diag(s²) Rᵀ`` from the
   normalised quaternion and ``s = exp(log_scales)``), conic, and the tiles its
   ``c = 1/255`` contour touches (exact axis-aligned extent
   ``sqrt(2·log(255·a)·Σ2D_ii)``); counts per tile.
2. ``mip_bin_scan`` + ``mip_bin_scatter``: per-tile lists of Gaussian ids (no
   depth order: the soft maximum is order-free).
3. ``mip_rasterize``: per pixel the p-norm soft maximum
   ``out = (Σ_k c_k^p)^(1/p)``, ``c_k = a_k·exp(-½ dᵀ Q d)``, ``p = 1/temperature``
   (contributions below 1/255 are dropped; ``out = 0`` where none remains).
   The hard MIP ``max_k c_k`` is the ``temperature -> 0`` limit and
   ``max ≤ out ≤ n^(1/p)·max`` for ``n`` contributions. Evaluated stably in the
   log domain with a running maximum (see the shader).
4. backward: ``mip_rasterize_backward`` (per-Gaussian gradients of the 2D
   mean, conic and log amplitude with atomics) and ``mip_project_backward``
   (gradients of the parameters, added into the gradient buffers).

Reference (float64 NumPy): ``tests/reference/mip.py``.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import RunError
from ..autodiff import Op
from ..gpu import GpuTensor, Kernel, Recorder, UniformLayout, get_context, workgroups_for
from .camera import MipCamera
from .model import PARAM_NAMES, MipGaussians

TILE = 16
DEFAULT_TEMPERATURE = 0.1

#: shaders/mip_bin_scan.wgsl
BIN_SCAN_PARAMS = UniformLayout("Params", [
    ("slot", "u32", "where the view's intersection total goes in totals"),
    ("_pad0", "u32"),
    ("_pad1", "u32"),
    ("_pad2", "u32"),
])


class MipOverflowError(RunError):
    """The tile lists needed more entries than one storage buffer holds."""


class MipFrame:
    """Per-view scratch of a :class:`MipRenderer`: projected Gaussians, tile lists,
    the image and pixel state a backward needs. A renderer owns one (reused view
    after view); a :class:`MipRenderOp` keeps its own until its backward ran."""

    def __init__(self, r: "MipRenderer"):
        K, T = r.num_gaussians, r.tiles_x * r.tiles_y
        self.proj = GpuTensor.empty((K, 8), np.float32, "mip projected")
        self.rects = GpuTensor.empty((K, 4), np.uint32, "mip tile rects")
        self.tile_counts = GpuTensor.empty((T,), np.uint32, "mip tile counts")
        self.tile_base = GpuTensor.empty((T,), np.uint32, "mip tile base")
        self.tile_ranges = GpuTensor.empty((T, 2), np.uint32, "mip tile ranges")
        self.cursor = GpuTensor.empty((T,), np.uint32, "mip tile cursor")
        self.isect_ids = GpuTensor.empty((r.capacity,), np.uint32, "mip intersections")
        self.image = GpuTensor.empty((r.height, r.width, 4), np.float32, "mip image")
        self.state = GpuTensor.empty((r.height, r.width, 2), np.float32, "mip pixel state")
        self.v_proj = GpuTensor.empty((K, 6), np.float32, "mip v_projected")


class MipRenderer:
    """Owns the kernels and per-view scratch buffers for ``num_gaussians`` at ``height x width``.

    Args:
        num_gaussians: K.
        height, width: image size in pixels (all views share it).
        temperature: soft-maximum temperature ``1/p`` (``--temperature``, > 0).
        blur: added to the 2D covariance diagonal in pixels² (0.3).
        max_slots: how many views' intersection totals one step can record.

    Attributes:
        frame: the default :class:`MipFrame` (scratch reused view after view).
        image: ``frame.image``, float32 [H, W, 4] of the last forward, (out, out, out, 1).
        totals: uint32 [max_slots] intersections each recorded view needed.
    """

    def __init__(self, num_gaussians: int, height: int, width: int, temperature: float = DEFAULT_TEMPERATURE,
                 blur: float = 0.3, max_slots: int = 64):
        if not temperature > 0:
            raise ValueError(f"--temperature must be > 0, got {temperature}")
        if num_gaussians < 1:
            raise ValueError(f"MipRenderer needs at least one Gaussian, got {num_gaussians}")
        ctx = get_context()
        self.num_gaussians = K = int(num_gaussians)
        self.height, self.width = int(height), int(width)
        self.temperature = float(temperature)
        self.power = 1.0 / self.temperature
        self.blur = float(blur)
        self.tiles_x, self.tiles_y = math.ceil(self.width / TILE), math.ceil(self.height / TILE)
        T = self.tiles_x * self.tiles_y
        self.capacity = int(min(K * T, ctx.max_binding_bytes // 4))
        self._k_project = Kernel("mip_project.wgsl")
        self._k_scan = Kernel("mip_bin_scan.wgsl", structs=[BIN_SCAN_PARAMS])
        self._k_scatter = Kernel("mip_bin_scatter.wgsl")
        self._k_raster = Kernel("mip_rasterize.wgsl")
        self._k_raster_bwd = Kernel("mip_rasterize_backward.wgsl")
        self._k_project_bwd = Kernel("mip_project_backward.wgsl")
        self.frame = MipFrame(self)
        self.totals = GpuTensor.empty((max_slots,), np.uint32, "mip intersection totals")
        self._views: dict = {}

    @property
    def image(self) -> GpuTensor:
        return self.frame.image

    # -- views --------------------------------------------------------------------
    def view_tensor(self, cam: MipCamera) -> GpuTensor:
        """The camera's packed view record on the GPU (cached per camera object)."""
        if (cam.height, cam.width) != (self.height, self.width):
            raise ValueError(f"camera is {cam.height}x{cam.width} but the renderer was built for {self.height}x{self.width}")
        key = id(cam)
        hit = self._views.get(key)
        if hit is None or hit[0] is not cam:
            t = GpuTensor.from_numpy(cam.pack(self.num_gaussians, self.capacity, self.power, self.blur, TILE),
                                     label="mip view", dtype=np.uint32)
            hit = self._views[key] = (cam, t)
        return hit[1]

    def _check_model(self, model: MipGaussians):
        if model.num_gaussians != self.num_gaussians:
            raise ValueError(f"model has {model.num_gaussians} Gaussians, renderer built for {self.num_gaussians}")

    # -- forward / backward ---------------------------------------------------------
    def record_forward(self, rec: Recorder, model: MipGaussians, cam: MipCamera, slot: int = 0,
                       frame: MipFrame | None = None) -> GpuTensor:
        """Record projection, binning and rasterization of one view; returns the frame's image
        (float32 [H, W, 4] = (out, out, out, 1)).

        ``slot`` is where the view's intersection count goes in :attr:`totals`;
        ``frame`` the scratch to use (default :attr:`frame`).
        """
        self._check_model(model)
        f = frame or self.frame
        view = self.view_tensor(cam)
        K = self.num_gaussians
        p = model.params()
        rec.clear(f.tile_counts)
        rec.clear(f.cursor)
        with rec.stage("mip_project"):
            rec.dispatch(self._k_project, {"view": view, **p, "proj": f.proj, "rects": f.rects,
                                           "tile_counts": f.tile_counts}, workgroups_for(K, 256))
        with rec.stage("mip_bin"):
            rec.dispatch(self._k_scan, {"view": view, "tile_counts": f.tile_counts, "tile_base": f.tile_base,
                                        "tile_ranges": f.tile_ranges, "totals": self.totals,
                                        "params": BIN_SCAN_PARAMS.pack(slot=slot)}, (1, 1, 1))
            rec.dispatch(self._k_scatter, {"view": view, "rects": f.rects, "tile_base": f.tile_base, "cursor": f.cursor,
                                           "isect_ids": f.isect_ids}, workgroups_for(K, 256))
        with rec.stage("mip_rasterize"):
            rec.dispatch(self._k_raster, {"view": view, "proj": f.proj, "tile_ranges": f.tile_ranges,
                                          "isect_ids": f.isect_ids, "image": f.image, "state": f.state},
                         workgroups_for(self.tiles_x * self.tiles_y, 1))
        return f.image

    def record_backward(self, rec: Recorder, model: MipGaussians, cam: MipCamera, v_image: GpuTensor,
                        grads: dict[str, GpuTensor], frame: MipFrame | None = None) -> None:
        """Record the backward of the forward last recorded into ``frame`` (same camera,
        unchanged parameters): adds the gradients of ``Σ v_image·image`` into ``grads``
        (name -> float32 tensors shaped like the parameters).

        ``v_image`` float32 [H, W, 4] is the gradient of the image (out, out, out, 1); the
        gradient of the grey value ``out`` is the sum of its r, g, b channels (alpha is
        constant).
        """
        self._check_model(model)
        f = frame or self.frame
        if v_image.dtype != np.float32 or tuple(v_image.shape) != (self.height, self.width, 4):
            raise ValueError(f"the MIP image gradient must be float32 [{self.height}, {self.width}, 4], "
                             f"got {v_image.dtype.name} {v_image.shape}")
        view = self.view_tensor(cam)
        p = model.params()
        rec.clear(f.v_proj)
        with rec.stage("mip_rasterize_backward"):
            rec.dispatch(self._k_raster_bwd, {"view": view, "proj": f.proj, "tile_ranges": f.tile_ranges,
                                              "isect_ids": f.isect_ids, "image": f.image, "state": f.state,
                                              "v_image": v_image, "v_proj": f.v_proj},
                         workgroups_for(self.tiles_x * self.tiles_y, 1))
        with rec.stage("mip_project_backward"):
            rec.dispatch(self._k_project_bwd, {"view": view, **p, "v_proj": f.v_proj,
                                               **{f"v_{n}": grads[n] for n in PARAM_NAMES}},
                         workgroups_for(self.num_gaussians, 256))

    def check_totals(self, count: int = 1) -> np.ndarray:
        """Read the intersection totals of the first ``count`` slots.

        Raises:
            MipOverflowError: a view needed more than :attr:`capacity` entries.
        """
        tot = self.totals.numpy()[:count]
        if tot.size and int(tot.max()) > self.capacity:
            raise MipOverflowError(
                f"a MIP view needed {int(tot.max())} tile entries but the list holds {self.capacity} "
                "(one storage binding); use fewer Gaussians or a lower --resolution")
        return tot

    # -- convenience --------------------------------------------------------------------
    def render(self, model: MipGaussians, cam: MipCamera) -> np.ndarray:
        """Render one view and return the soft MIP as float32 [H, W] (reads back)."""
        rec = Recorder()
        self.record_forward(rec, model, cam)
        rec.submit()
        self.check_totals(1)
        return self.image.numpy()[..., 0].copy()

    def render_vjp(self, model: MipGaussians, cam: MipCamera, v_out: np.ndarray) -> dict[str, np.ndarray]:
        """Gradients of ``Σ v_out·render(model, cam)`` (``v_out`` [H, W]; numpy in, numpy out; for tests)."""
        grads = {n: GpuTensor.empty(getattr(model, n).shape, np.float32, f"mip grad {n}") for n in PARAM_NAMES}
        v_image = np.zeros((self.height, self.width, 4), np.float32)
        v_image[..., 0] = np.asarray(v_out, np.float32).reshape(self.height, self.width)
        v = GpuTensor.from_numpy(v_image, label="mip v_image")
        rec = Recorder()
        self.record_forward(rec, model, cam)
        self.record_backward(rec, model, cam, v, grads)
        rec.submit()
        self.check_totals(1)
        return {n: g.numpy() for n, g in grads.items()}


class MipRenderOp(Op):
    """One view's soft-MIP render as an op of the autodiff tape (:mod:`brushpy.autodiff`).

    Records the forward into ``rec`` on construction, into ``frame`` (default: a
    :class:`MipFrame` of its own, kept until the backward runs).

    inputs: ``model.params()`` (means, log_scales, rotations, log_amplitudes).
    outputs: ``{"image": image}`` float32 [H, W, 4] = (out, out, out, 1). Its gradient
    has the same shape (e.g. :class:`brushpy.mip.train.MipLossOp`'s); the backward
    takes the gradient of the grey value ``out`` as the sum of the r, g, b gradients
    (alpha is constant).

    Args:
        renderer, rec, model, cam, slot: as :meth:`MipRenderer.record_forward`.
        frame: scratch to render into; passing the renderer's shared ``frame`` is only
            correct when this op's backward runs before the next forward into it (one
            tape backward per view, as :class:`brushpy.mip.train.MipTrainer` does).
        grads: ``{name: float32 tensor}`` to *add* this view's gradients into (the
            projection backward accumulates in place; the caller clears them once per
            step). They are returned as the inputs' gradients, so they hold the sum over
            the views recorded so far. Fresh zeroed tensors when None.

    Example::

        tape = Tape()
        op = tape.record(MipRenderOp(renderer, rec, model, cam))
        grads = tape.backward(rec, {op.outputs["image"]: v_image})
        v_means = grads[model.means]
    """

    name = "mip_render"

    def __init__(self, renderer: MipRenderer, rec: Recorder, model: MipGaussians, cam: MipCamera, slot: int = 0,
                 frame: MipFrame | None = None, grads: dict | None = None):
        self.renderer, self.model, self.cam = renderer, model, cam
        self.frame = frame if frame is not None else MipFrame(renderer)
        self.grads = grads
        image = renderer.record_forward(rec, model, cam, slot=slot, frame=self.frame)
        self.inputs = model.params()
        self.outputs = {"image": image}

    def backward(self, rec: Recorder, grad_outputs: dict) -> dict:
        grads = self.grads
        if grads is None:
            grads = {name: GpuTensor.empty(t.shape, np.float32, f"mip grad {name}") for name, t in self.inputs.items()}
            for t in grads.values():
                rec.clear(t)
        self.renderer.record_backward(rec, self.model, self.cam, grad_outputs["image"], grads, frame=self.frame)
        return dict(grads)
