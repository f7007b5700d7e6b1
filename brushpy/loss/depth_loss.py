"""Inverse-depth L1 loss against a sensor depth map, gradient fused (``shaders/loss_depth.wgsl``).

Loss::

    valid[p] = gt[p] > 0                      (and α[p] >= alpha_min when an alpha is given)
    L        = w / N · Σ_{valid p} | 1 / max(d[p], ε) − 1 / gt[p] |,     N = #valid pixels
    dL/dd[p] = w / N · sign(1/d[p] − 1/gt[p]) · (−1 / d[p]²)   where d[p] > ε, else 0

- ``d`` is the rendered expected depth (float32 [H, W], scene units: the renderer's
  ``ForwardState.depth`` / ``RenderOp.outputs["depth"]``), ``gt`` the sensor depth
  (float32 [H, W], same units; 0 = no measurement). Non-finite or negative sensor values
  are treated as 0 (invalid) by :func:`gt_depth_tensor`, the upload helper.
- ``w`` = ``weight`` (``--depth-loss-weight``, scheduled by
  :meth:`brushpy.train.config.TrainConfig.depth_loss_weight_at`).
- ``ε`` = :data:`DEPTH_EPS` = 1e-3 scene units by default. Where the rendered depth is
  at or below ``ε`` (a pixel no splat covers renders depth ~0, or a NaN) its inverse is
  clamped to ``1/ε``: the pixel still counts in the loss (a large, constant term) but
  its gradient is exactly 0 (the derivative of the clamp), so an empty pixel neither
  explodes nor pulls on anything. Pass ``alpha`` to leave such pixels out instead.
- ``alpha`` (optional, a constant mask: no gradient flows into it): the rendered alpha,
  float32 [H, W], or the rendered image [H, W, 4] whose channel 3 is read. Pixels
  with ``α < alpha_min`` (:data:`DEFAULT_ALPHA_MIN` = 0.5) are not valid: neither in
  the sum nor in ``N``.
- ``N = 0`` (a view with no valid pixel) gives ``L = 0`` and a zero gradient.
- ``|·|`` has derivative 0 at 0 (``sign(0) = 0``), as in PyTorch and the image loss.

Source: the depth regularisation of the INRIA 3DGS code base (``train.py`` since its 2024
update for Hierarchical 3DGS: ``|invDepth − mono_invdepth| · depth_mask``, mean, weighted by
``get_expon_lr_func(depth_l1_weight_init=1.0, depth_l1_weight_final=0.01)``). Differences:
the sensor depth is metric and inverted here (``1/gt``), the rendered depth is inverted
here too (``1/max(d, ε)``; INRIA's renderer outputs inverse depth directly), and the mean is
over the valid pixels (INRIA: over all pixels, invalid ones contributing 0). Inverse depth
weights near surfaces more than far ones and is bounded for far pixels; L1 is robust to
the outliers of sensor depth.

The sums run on the GPU: one invocation per pixel writes the unnormalised gradient and
a workgroup pair-sum (``reduce.wgsl``: Σ|·|, count), ``loss_reduce.wgsl`` (the image
loss's) sums the partials, a last dispatch divides (``weight / N``). Nothing is read back.
"""

from __future__ import annotations

import numpy as np

from ..autodiff import FusedLossOp
from ..gpu import GpuTensor, Kernel, Recorder, UniformLayout, workgroups_for
from .image_loss import REDUCE_PARAMS, reduce_kernel

#: rendered depths at or below this (scene units) count as 1/DEPTH_EPS, with zero gradient
DEPTH_EPS = 1e-3
#: with an alpha given, pixels rendered with less coverage than this are left out
DEFAULT_ALPHA_MIN = 0.5
_WG = 256

#: the uniform block of shaders/loss_depth.wgsl (``#struct DepthLossParams``)
DEPTH_LOSS_PARAMS = UniformLayout("DepthLossParams", [
    ("pixels", "u32", "H W"),
    ("alpha_stride", "u32", "floats per pixel of the alpha tensor (1 or 4)"),
    ("alpha_offset", "u32", "the alpha's float within a pixel (0 or 3)"),
    ("_pad0", "u32"),
    ("eps", "f32", "rendered depths <= eps count as 1/eps, gradient 0"),
    ("weight", "f32", "w in L = w / N sum |1/d - 1/gt|"),
    ("alpha_min", "f32", "pixels with alpha < alpha_min are not valid (ALPHA_MASK)"),
    ("_pad1", "f32"),
])


def _kernel(entry: str, alpha_mask: bool) -> Kernel:
    return Kernel("loss_depth.wgsl", entry, {"ALPHA_MASK": alpha_mask}, structs=[DEPTH_LOSS_PARAMS])


def sanitize_depth(depth) -> np.ndarray:
    """float32 [H, W] C-contiguous copy of a sensor depth map with every non-finite or
    non-positive value set to 0 (invalid).

    Raises:
        ValueError: ``depth`` is not 2-D (a trailing axis of 1 is dropped).
    """
    d = np.asarray(depth, np.float32)
    if d.ndim == 3 and d.shape[2] == 1:
        d = d[..., 0]
    if d.ndim != 2:
        raise ValueError(f"a depth map must be float32 [H, W], got shape {d.shape}")
    return np.ascontiguousarray(np.where(np.isfinite(d) & (d > 0), d, np.float32(0)), np.float32)


def gt_depth_tensor(depth, label: str = "gt depth") -> GpuTensor:
    """Upload a sensor depth map (see :func:`sanitize_depth`) as float32 [H, W]."""
    return GpuTensor.from_numpy(sanitize_depth(depth), label)


class DepthTargets:
    """The sensor depths of a set of views on the GPU: one tensor per view, uploaded on first
    use and reused after (the depth counterpart of the trainer's packed ground-truth images).

    ``get(key, depth)`` returns the tensor stored for ``key`` (a view index or id), uploading
    ``depth`` (float32 [H, W], 0 = invalid; or a callable returning it) the first time, or
    ``None`` when the view has no depth map (``depth is None``): skip its depth loss.
    """

    def __init__(self):
        self._tensors: dict = {}

    def get(self, key, depth) -> GpuTensor | None:
        if key in self._tensors:
            return self._tensors[key]
        if callable(depth):
            depth = depth()
        t = None if depth is None else gt_depth_tensor(depth, f"gt depth {key}")
        self._tensors[key] = t
        return t

    def __len__(self) -> int:
        return sum(t is not None for t in self._tensors.values())

    def clear(self) -> None:
        """Drop every uploaded tensor."""
        self._tensors.clear()


def _check_depth(t: GpuTensor, name: str) -> tuple[int, int]:
    if not isinstance(t, GpuTensor):
        raise TypeError(f"{name} must be a GpuTensor, got {type(t).__name__}")
    shape = tuple(t.shape)
    if t.dtype != np.float32 or not (len(shape) == 2 or (len(shape) == 3 and shape[2] == 1)):
        raise ValueError(f"{name} must be float32 [H, W], got {t.dtype.name} {shape}")
    return shape[0], shape[1]


class DepthLoss:
    """Inverse-depth L1 loss (see the module docstring): records loss and gradient together.

    Args:
        weight: ``w`` (``--depth-loss-weight``); :meth:`record` may override it per step.
        eps: the clamp ``ε`` of the rendered depth (scene units).
        alpha_min: coverage below which a pixel is left out, when :meth:`record` gets an alpha.

    Attributes:
        state: float32 [4] on the GPU: ``[loss, 0, Σ|1/d − 1/gt|, N]`` of the last recorded step.
        loss_value: a [1] view of ``state[0]``, the output of :class:`DepthLossOp`.
        unit_seed: float32 [1] = 1, the seed of :attr:`loss_value` (never written).
    """

    def __init__(self, weight: float = 1.0, eps: float = DEPTH_EPS, alpha_min: float = DEFAULT_ALPHA_MIN):
        if not weight >= 0:
            raise ValueError(f"depth loss weight (--depth-loss-weight) must be >= 0, got {weight}")
        if not eps > 0:
            raise ValueError(f"depth loss eps must be > 0, got {eps}")
        self.weight = float(weight)
        self.eps = float(eps)
        self.alpha_min = float(alpha_min)
        self.state = GpuTensor.from_numpy(np.zeros(4, np.float32), "depth loss state")
        self.loss_value = GpuTensor.view_of(self.state.buffer, (1,), np.dtype(np.float32), "depth loss value",
                                            self.state.ctx)
        self.unit_seed = GpuTensor.from_numpy(np.ones(1, np.float32), "depth loss seed (1)")
        self._dummy_alpha = GpuTensor.empty((4,), np.float32, "depth loss alpha (unused)")
        self._partials: GpuTensor | None = None
        self._reduce = reduce_kernel()

    def _partials_for(self, groups: int) -> GpuTensor:
        if self._partials is None or self._partials.shape[0] < groups:
            self._partials = GpuTensor.empty((groups, 2), np.float32, "depth loss partials")
        return self._partials

    def record(self, rec: Recorder, depth: GpuTensor, gt_depth: GpuTensor, *, alpha: GpuTensor | None = None,
               weight: float | None = None, v_depth: GpuTensor | None = None) -> GpuTensor:
        """Record the loss and its gradient; returns ``v_depth = dL/d depth`` (shaped like ``depth``).

        Args:
            rec: the step's recorder (stage ``"depth_loss"``).
            depth: rendered expected depth, float32 [H, W] (or [H, W, 1]).
            gt_depth: sensor depth, float32 [H, W], 0 = invalid (:func:`gt_depth_tensor`).
            alpha: optional rendered coverage, float32 [H, W] or the rendered image [H, W, 4].
            weight: this step's ``w`` (default: the constructor's).
            v_depth: output tensor to fill (allocated when None).

        Raises:
            ValueError / TypeError: on shapes and dtypes.
        """
        h, w = _check_depth(depth, "depth (rendered)")
        if _check_depth(gt_depth, "gt_depth") != (h, w):
            raise ValueError(f"gt_depth must be [{h}, {w}] like the rendered depth, got {tuple(gt_depth.shape)}")
        stride, offset, alpha_t = 1, 0, self._dummy_alpha
        if alpha is not None:
            shape = tuple(alpha.shape)
            if alpha.dtype != np.float32 or shape[:2] != (h, w) or shape[2:] not in ((), (1,), (4,)):
                raise ValueError(f"alpha must be float32 [{h}, {w}] or the rendered image [{h}, {w}, 4], "
                                 f"got {alpha.dtype.name} {shape}")
            if shape[2:] == (4,):
                stride, offset = 4, 3
            alpha_t = alpha
        if v_depth is None:
            v_depth = GpuTensor.empty(tuple(depth.shape), np.float32, "v_depth")
        elif v_depth.dtype != np.float32 or v_depth.numel != h * w:
            raise ValueError(f"v_depth must be float32 [{h}, {w}], got {v_depth.dtype.name} {tuple(v_depth.shape)}")
        w_step = self.weight if weight is None else float(weight)
        if not w_step >= 0:
            raise ValueError(f"depth loss weight must be >= 0, got {w_step}")
        n = h * w
        grid = workgroups_for(n, _WG)
        groups = grid[0] * grid[1]
        partials = self._partials_for(groups)
        uni = DEPTH_LOSS_PARAMS.pack(pixels=n, alpha_stride=stride, alpha_offset=offset, eps=self.eps,
                                     weight=w_step, alpha_min=self.alpha_min)
        binds = {"params": uni, "depth": depth, "gt_depth": gt_depth, "alpha": alpha_t, "v_depth": v_depth,
                 "partials": partials, "state": self.state}
        masked = alpha is not None
        with rec.stage("depth_loss"):
            rec.dispatch(_kernel("forward", masked), binds, grid)
            rec.dispatch(self._reduce, {"params": REDUCE_PARAMS.pack(count=groups, out_offset=2),
                                        "partials": partials, "out": self.state}, (1, 1, 1))
            rec.dispatch(_kernel("finalize", masked), binds, grid)
        return v_depth

    def read(self) -> dict:
        """``{"loss", "abs_sum", "valid_pixels"}`` of the last recorded step (waits for the GPU)."""
        s = self.state.numpy()
        return {"loss": float(s[0]), "abs_sum": float(s[2]), "valid_pixels": int(round(float(s[3])))}

    def read_loss(self) -> float:
        """The last recorded loss as a Python float (waits for the GPU)."""
        return float(self.state.numpy()[0])


class DepthLossOp(FusedLossOp):
    """The depth loss as an autodiff op (records :meth:`DepthLoss.record` on construction).

    inputs: ``{"depth": depth}`` float32 [H, W]; ``gt_depth`` and ``alpha`` are constants.
    outputs: ``{"loss": loss_fn.loss_value}`` float32 [1]. Seed with :attr:`seed`; with the
    image loss on the same tape, seed both: ``tape.backward(rec, [image_loss.seed, depth.seed])``.

    Example::

        render = tape.record(RenderOp(state, splats))
        image = tape.record(ImageLossOp(loss_fn, rec, render.outputs["image"], gt))
        depth = tape.record(DepthLossOp(depth_fn, rec, render.outputs["depth"], gt_depth, weight=w))
        grads = tape.backward(rec, [image.seed, depth.seed])
    """

    name = "depth_loss"
    input_name = "depth"

    def __init__(self, loss_fn: DepthLoss, rec: Recorder, depth: GpuTensor, gt_depth: GpuTensor, **kwargs):
        self.loss_fn = loss_fn
        self._set(depth, loss_fn.loss_value, loss_fn.unit_seed, loss_fn.record(rec, depth, gt_depth, **kwargs))
