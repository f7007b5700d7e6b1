"""MIP training: fit emissive Gaussians to multi-view MIPs of a volume.

One step (:meth:`MipTrainer.record_step`, one recorder, no readback but the loss)
drives every view through the autodiff tape (:mod:`brushpy.autodiff`), as
:meth:`brushpy.train.Trainer.step` does: per view it records

- :class:`~brushpy.mip.render.MipRenderOp` (the soft-MIP render, image
  float32 [H, W, 4] = (out, out, out, 1)),
- :class:`MipLossOp`, the view's term of the loss ``λ_MSE·MSE + λ_SSIM·(1 - SSIM)``
  averaged over views (MSE over pixels; SSIM from :class:`brushpy.loss.ImageLoss`
  with ``ssim_weight=1`` on the grey image in r, g, b, whose mean over channels is
  the grey SSIM), whose gradient ``dL/d image`` is computed with its forward
  (``mip_loss.wgsl``),

then ``tape.backward``. The views share one scratch frame and one set of gradient
buffers, so each view's backward is recorded right after its forward (one tape
backward per view, before the next view overwrites the frame) and the projection
backward adds its gradients into the shared buffers: memory does not grow with the
number of views and no accumulation passes are needed. After the last view
``Gradients.of(model)`` holds the sum over views. Outside the tape (like refine in
brushpy.train) come the gradient clipping to total norm ``max_grad_norm`` (a GPU
reduction), Adam (:class:`brushpy.optim.Adam`: ``lr`` for means and amplitudes,
``0.1·lr`` for scales and rotations; MIP's ``log_amplitudes`` use the
``raw_opacities`` group's slot; the means' LR is not scaled by an extent and, with
``mean_lr_final_factor < 1``, decays exponentially from ``lr`` to ``lr·factor`` over
``iterations`` (Brush's mean-LR schedule; 1 = constant, the default)) and the clamps
``log_scales ∈ [-6, 0]``, ``log_amplitudes ∈ [-10, 6]`` and the means into the box.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..autodiff import FusedLossOp, Tape
from ..gpu import GpuTensor, Kernel, Recorder, UniformLayout, workgroups_for
from ..loss import ImageLoss, ImageMetrics
from ..optim.adam import Adam, AdamConfig
from .camera import MipCamera
from .model import LOG_AMPLITUDE_RANGE, LOG_SCALE_RANGE, PARAM_NAMES, MipGaussians
from .render import DEFAULT_TEMPERATURE, MipRenderer, MipRenderOp

# ------------------------------------------------------------------ uniform layouts
#: shaders/mip_loss.wgsl
LOSS_PARAMS = UniformLayout("Params", [
    ("count", "u32", "pixels"),
    ("partial_offset", "u32", "first partial sum of this view"),
    ("scale_mse", "f32", "λ_MSE / (pixels · views)"),
    ("scale_ssim", "f32", "λ_SSIM / views"),
])
#: shaders/mip_loss_total.wgsl
LOSS_TOTAL_PARAMS = UniformLayout("Params", [
    ("partials_per_view", "u32"),
    ("views", "u32"),
    ("inv_pixels", "f32"),
    ("lambda_mse", "f32"),
    ("lambda_ssim", "f32"),
    ("_pad0", "u32"),
    ("_pad1", "u32"),
    ("_pad2", "u32"),
])
#: shaders/mip_grad_norm.wgsl
GRAD_NORM_PARAMS = UniformLayout("Params", [("count", "u32", "Gaussians"), ("_pad0", "u32"), ("_pad1", "u32"), ("_pad2", "u32")])
#: shaders/mip_grad_clip.wgsl
GRAD_CLIP_PARAMS = UniformLayout("Params", [
    ("count", "u32", "Gaussians"),
    ("num_partials", "u32"),
    ("max_norm", "f32"),
    ("_pad0", "u32"),
])
#: shaders/mip_clamp.wgsl
CLAMP_PARAMS = UniformLayout("Params", [
    ("count", "u32", "Gaussians"),
    ("_pad0", "u32"),
    ("_pad1", "u32"),
    ("_pad2", "u32"),
    ("scale_min", "f32"),
    ("scale_max", "f32"),
    ("amp_min", "f32"),
    ("amp_max", "f32"),
])

# MIP parameter -> brushpy.optim.adam parameter group carrying its learning rate
ADAM_GROUPS = {"means": "means", "log_scales": "log_scales", "rotations": "rotations", "log_amplitudes": "raw_opacities"}


@dataclass
class MipTrainConfig:
    """Training options (CLI names in brackets)."""

    iterations: int = 1000          # --iterations
    lr: float = 1e-3                # --lr (means, amplitudes; scales and rotations get 0.1·lr)
    lambda_mse: float = 1.0         # --lambda-mse
    lambda_ssim: float = 0.1        # --lambda-ssim
    temperature: float = DEFAULT_TEMPERATURE  # --temperature (soft-max 1/p)
    max_grad_norm: float = 1.0      # --max-grad-norm
    mean_lr_final_factor: float = 1.0  # --mean-lr-final-factor: means LR decays exponentially to lr·factor
    adam_eps: float = 1e-8
    log_scale_range: tuple = field(default_factory=lambda: LOG_SCALE_RANGE)
    log_amplitude_range: tuple = field(default_factory=lambda: LOG_AMPLITUDE_RANGE)

    def __post_init__(self):
        if self.iterations < 0:
            raise ValueError(f"--iterations must be >= 0, got {self.iterations}")
        if not self.lr > 0:
            raise ValueError(f"--lr must be > 0, got {self.lr}")
        if self.lambda_mse < 0 or self.lambda_ssim < 0 or self.lambda_mse + self.lambda_ssim == 0:
            raise ValueError(f"--lambda-mse and --lambda-ssim must be >= 0 and not both 0, got {self.lambda_mse}, {self.lambda_ssim}")
        if not 0 < self.mean_lr_final_factor <= 1:
            raise ValueError(f"--mean-lr-final-factor must be in (0, 1], got {self.mean_lr_final_factor}")
        if not self.max_grad_norm > 0:
            raise ValueError(f"--max-grad-norm must be > 0, got {self.max_grad_norm}")


def grey_to_rgba(img: np.ndarray) -> np.ndarray:
    """[H, W] grey -> float32 [H, W, 4] (g, g, g, 1), the layout of the renderer's image."""
    img = np.asarray(img, np.float32)
    out = np.empty(img.shape + (4,), np.float32)
    out[..., :3] = img[..., None]
    out[..., 3] = 1.0
    return out


class MipLoss:
    """The MIP training loss over ``num_views`` views of ``height x width``:
    ``L = (1/V) Σ_v λ_MSE·MSE_v + λ_SSIM·(1 - SSIM_v)``.

    Each view's term and its gradient are recorded by :meth:`record_view` (or a
    :class:`MipLossOp`); :meth:`record_total` then sums the terms into :attr:`out`.

    Attributes:
        out: float32 [4] on the GPU: (loss, mean MSE, mean 1 - SSIM, 0) of the last
            :meth:`record_total`.
        loss_value: ``out[0]`` as a tensor [1] of its own (a view of :attr:`out`), the
            output of :class:`MipLossOp`.
        unit_seed: float32 [1] = 1, the seed gradient of :attr:`loss_value` (never written).
        v_image: float32 [H, W, 4], ``dL/d image`` of the last recorded view (reused view
            after view: a view's backward must be recorded before the next view's loss).
    """

    def __init__(self, num_views: int, height: int, width: int, lambda_mse: float, lambda_ssim: float):
        self.num_views, self.height, self.width = int(num_views), int(height), int(width)
        self.lambda_mse, self.lambda_ssim = float(lambda_mse), float(lambda_ssim)
        n = self.height * self.width
        self.groups_per_view = math.ceil(n / 256)
        self.image_loss = ImageLoss(ssim_weight=1.0, match_alpha_weight=0.0)
        self.v_ssim = GpuTensor.empty((self.height, self.width, 4), np.float32, "mip v_ssim")
        self.v_image = GpuTensor.empty((self.height, self.width, 4), np.float32, "mip v_image")
        self.mse_partials = GpuTensor.empty((self.num_views * self.groups_per_view,), np.float32, "mip mse partials")
        self.ssim_losses = GpuTensor.empty((self.num_views,), np.float32, "mip ssim losses")
        self.out = GpuTensor.empty((4,), np.float32, "mip loss")
        self.loss_value = GpuTensor.view_of(self.out.buffer, (1,), np.dtype(np.float32), "mip loss value", self.out.ctx)
        self.unit_seed = GpuTensor.from_numpy(np.ones(1, np.float32), "mip loss seed (1)")
        self._k_loss = Kernel("mip_loss.wgsl", structs=[LOSS_PARAMS])
        self._k_total = Kernel("mip_loss_total.wgsl", structs=[LOSS_TOTAL_PARAMS])

    def record_view(self, rec: Recorder, image: GpuTensor, target: GpuTensor, view: int,
                    v_image: GpuTensor | None = None) -> GpuTensor:
        """Record view ``view``'s loss term and its gradient ``dL/d image``; returns that gradient.

        Args:
            image: the rendered MIP, float32 [H, W, 4] = (out, out, out, 1).
            target: the ground truth in the same layout (:func:`grey_to_rgba`).
            view: index in ``[0, num_views)`` (where its partial sums go).
            v_image: float32 [H, W, 4] to write the gradient into (default :attr:`v_image`).
        """
        if not 0 <= view < self.num_views:
            raise ValueError(f"view {view} is outside [0, {self.num_views})")
        if v_image is None:
            v_image = self.v_image
        elif v_image.dtype != np.float32 or tuple(v_image.shape) != (self.height, self.width, 4):
            raise ValueError(f"v_image must be float32 [{self.height}, {self.width}, 4], got {v_image.dtype.name} {v_image.shape}")
        n = self.height * self.width
        if self.lambda_ssim > 0:
            self.image_loss.record(rec, image, target, v_image=self.v_ssim)
            rec.copy(self.image_loss.loss, self.ssim_losses, 4, dst_offset=4 * view)
        params = LOSS_PARAMS.pack(count=n, partial_offset=view * self.groups_per_view,
                                  scale_mse=self.lambda_mse / (n * self.num_views), scale_ssim=self.lambda_ssim / self.num_views)
        with rec.stage("mip_loss"):
            rec.dispatch(self._k_loss, {"params": params, "image": image, "gt": target, "v_ssim": self.v_ssim,
                                        "v_image": v_image, "partials": self.mse_partials}, workgroups_for(n, 256))
        return v_image

    def record_total(self, rec: Recorder) -> None:
        """Record the sum of the views' terms into :attr:`out` (after every view's :meth:`record_view`)."""
        params = LOSS_TOTAL_PARAMS.pack(partials_per_view=self.groups_per_view, views=self.num_views,
                                        inv_pixels=1.0 / (self.height * self.width), lambda_mse=self.lambda_mse,
                                        lambda_ssim=self.lambda_ssim)
        with rec.stage("mip_loss"):
            rec.dispatch(self._k_total, {"params": params, "partials": self.mse_partials, "ssim_losses": self.ssim_losses,
                                         "out": self.out}, (1, 1, 1))

    def read(self) -> dict:
        """``{"loss", "mse", "ssim_loss"}`` of the last :meth:`record_total` (waits for the GPU)."""
        out = self.out.numpy()
        return {"loss": float(out[0]), "mse": float(out[1]), "ssim_loss": float(out[2])}


class MipLossOp(FusedLossOp):
    """One view's term of :class:`MipLoss` as an autodiff op: records :meth:`MipLoss.record_view`
    on construction.

    The kernels compute ``dL/d image`` together with the forward (one fused pass), so the
    backward records nothing and returns that precomputed gradient; it is the gradient
    for a seed of exactly 1, so the op must be seeded with :attr:`seed` (any other seed
    raises), as :class:`brushpy.loss.ImageLossOp`.

    inputs: ``{"image": image}`` float32 [H, W, 4] (a :class:`~brushpy.mip.render.MipRenderOp`
    output); the target is a constant.
    outputs: ``{"loss": loss_fn.loss_value}`` float32 [1], the step's loss over all views
    (its value is complete once :meth:`MipLoss.record_total` has run; this view's image
    enters only its own term, so ``dL/d image`` is that term's gradient).

    Args:
        loss_fn: the :class:`MipLoss` (its buffers are reused).
        rec: the step's recorder.
        image, target, view, v_image: as :meth:`MipLoss.record_view` (the default ``v_image``
            is reused view after view: with several views on one tape give each its own).

    Example::

        render = tape.record(MipRenderOp(renderer, rec, model, cam, slot=v))
        loss = tape.record(MipLossOp(loss_fn, rec, render.outputs["image"], target, v))
        grads = tape.backward(rec, loss.seed)
    """

    name = "mip_loss"

    def __init__(self, loss_fn: MipLoss, rec: Recorder, image: GpuTensor, target: GpuTensor, view: int = 0,
                 v_image: GpuTensor | None = None):
        self.loss_fn = loss_fn
        self._set(image, loss_fn.loss_value, loss_fn.unit_seed, loss_fn.record_view(rec, image, target, view, v_image))


class MipTrainer:
    """Trains a :class:`MipGaussians` against ground-truth MIPs.

    Args:
        model: the parameters (updated in place).
        cameras: training views (same size).
        targets: ground-truth MIPs, float32 [H, W] in [0, 1], one per camera.
        config: :class:`MipTrainConfig`.
        profiler: optional :class:`brushpy.gpu.Profiler` (per-stage GPU time).
    """

    def __init__(self, model: MipGaussians, cameras: list[MipCamera], targets: list[np.ndarray],
                 config: MipTrainConfig | None = None, profiler=None):
        if not cameras:
            raise ValueError("MIP training needs at least one view (--num-views)")
        if len(cameras) != len(targets):
            raise ValueError(f"{len(cameras)} cameras but {len(targets)} target images")
        self.config = c = config or MipTrainConfig()
        self.model = model
        self.cameras = list(cameras)
        h, w = cameras[0].height, cameras[0].width
        for cam, t in zip(cameras, targets):
            if (cam.height, cam.width) != (h, w) or np.shape(t) != (h, w):
                raise ValueError(f"all views and targets must be {h}x{w}; got camera {cam.height}x{cam.width}, target {np.shape(t)}")
        self.height, self.width = h, w
        self.profiler = profiler
        K = model.num_gaussians
        self.renderer = MipRenderer(K, h, w, c.temperature, max_slots=max(64, len(cameras)))
        self.targets = [GpuTensor.from_numpy(grey_to_rgba(t), label="mip target") for t in targets]
        self.loss_fn = MipLoss(len(cameras), h, w, c.lambda_mse, c.lambda_ssim)
        self.adam = Adam(AdamConfig(lr_mean=c.lr, lr_mean_end=c.lr * c.mean_lr_final_factor, lr_opac=c.lr, lr_scale=0.1 * c.lr,
                                    lr_rotation=0.1 * c.lr, eps=c.adam_eps, total_steps=max(1, c.iterations)),
                         scene_extent=1.0)
        self.grads = {n: GpuTensor.empty(getattr(model, n).shape, np.float32, f"mip grad {n}") for n in PARAM_NAMES}
        self.norm_partials = GpuTensor.empty((math.ceil(K / 256),), np.float32, "mip grad norm partials")
        self.norm_out = GpuTensor.empty((4,), np.float32, "mip grad norm")
        self._k_norm = Kernel("mip_grad_norm.wgsl", structs=[GRAD_NORM_PARAMS])
        self._k_clip = Kernel("mip_grad_clip.wgsl", structs=[GRAD_CLIP_PARAMS])
        self._k_clamp = Kernel("mip_clamp.wgsl", structs=[CLAMP_PARAMS])
        self.step_count = 0
        #: names of the ops one view recorded on the tape in the last step
        self.last_ops: tuple = ()

    def record_step(self, rec: Recorder) -> None:
        """Record one full training step: per view MipRenderOp + MipLossOp on the tape and
        its backward, the loss total, then clip, Adam, clamps (see the module docstring)."""
        r = self.renderer
        m = self.model
        for g in self.grads.values():
            rec.clear(g)
        tape = Tape()
        for v, cam in enumerate(self.cameras):
            # the shared frame and gradient buffers: this view's backward is recorded before the next forward
            render = tape.record(MipRenderOp(r, rec, m, cam, slot=v, frame=r.frame, grads=self.grads))
            loss = tape.record(MipLossOp(self.loss_fn, rec, render.outputs["image"], self.targets[v], v))
            grads = tape.backward(rec, loss.seed)
            self.last_ops = tuple(op.name for op in tape.ops)
            tape.clear()
        self.loss_fn.record_total(rec)
        g = grads.of(m)  # the sum over views: every view's render op added into self.grads
        self.record_clip(rec, g)
        self.adam.step(rec, {ADAM_GROUPS[n]: t for n, t in m.params().items()},
                       {ADAM_GROUPS[n]: t for n, t in g.items()}, self.step_count)
        self.record_clamp(rec)
        self.step_count += 1

    def record_clip(self, rec: Recorder, grads: dict | None = None) -> None:
        """Record the gradient clipping of ``grads`` (``{name: tensor}`` in PARAM_NAMES, scaled
        in place; default :attr:`grads`): total L2 norm over all parameter gradients
        (``mip_grad_norm``), then scaling by ``min(1, max_norm / (norm + 1e-6))``
        (``mip_grad_clip``); :attr:`norm_out` gets (norm, scale)."""
        K = self.model.num_gaussians
        g = self.grads if grads is None else grads
        v = {f"v_{n}": g[n] for n in PARAM_NAMES}
        with rec.stage("mip_clip"):
            rec.dispatch(self._k_norm, {"params": GRAD_NORM_PARAMS.pack(count=K), **v, "partials": self.norm_partials},
                         workgroups_for(K, 256))
            params = GRAD_CLIP_PARAMS.pack(count=K, num_partials=self.norm_partials.shape[0], max_norm=self.config.max_grad_norm)
            rec.dispatch(self._k_clip, {"params": params, "partials": self.norm_partials, **v, "norm_out": self.norm_out},
                         workgroups_for(K, 256))

    def record_clamp(self, rec: Recorder) -> None:
        """Record the parameter clamps (log_scales, log_amplitudes ranges; means into [0, 1])."""
        c = self.config
        m = self.model
        K = m.num_gaussians
        (scale_min, scale_max), (amp_min, amp_max) = c.log_scale_range, c.log_amplitude_range
        params = CLAMP_PARAMS.pack(count=K, scale_min=scale_min, scale_max=scale_max, amp_min=amp_min, amp_max=amp_max)
        with rec.stage("mip_clamp"):
            rec.dispatch(self._k_clamp, {"params": params, "means": m.means, "log_scales": m.log_scales,
                                         "log_amplitudes": m.log_amplitudes}, workgroups_for(K, 256))

    def step(self, read_loss: bool = True) -> dict | None:
        """Run one step; returns ``{"loss", "mse", "ssim_loss"}`` when ``read_loss`` (one readback)."""
        rec = Recorder(profiler=self.profiler)
        self.record_step(rec)
        rec.submit()
        if not read_loss:
            return None
        out = self.loss_fn.read()
        if not math.isfinite(out["loss"]):
            raise FloatingPointError(f"MIP training: the loss became {out['loss']} at step {self.step_count}; lower --lr")
        return out

    def check(self) -> None:
        """Raise if any view overflowed the tile lists (reads back the totals)."""
        self.renderer.check_totals(len(self.cameras))

    def grad_norm(self) -> float:
        """Total gradient norm of the last step, before clipping (reads back)."""
        return float(self.norm_out.numpy()[0])


def evaluate(model: MipGaussians, cameras: list[MipCamera], targets: list[np.ndarray], temperature: float,
             renderer: MipRenderer | None = None) -> tuple[list[dict], list[np.ndarray]]:
    """PSNR / SSIM (``brushpy.loss`` metrics, peak 1) of the model's MIPs against ``targets``.

    Returns (per-view ``{"angle", "psnr", "ssim"}``, rendered images float32 [H, W]).
    """
    if not cameras:
        return [], []
    h, w = cameras[0].height, cameras[0].width
    r = renderer or MipRenderer(model.num_gaussians, h, w, temperature)
    metrics = ImageMetrics(capacity=len(cameras))
    results, images = [], []
    for cam, t in zip(cameras, targets):
        img = r.render(model, cam)
        images.append(img)
        rec = Recorder()
        metrics.record(rec, GpuTensor.from_numpy(grey_to_rgba(img), label="eval image"),
                       GpuTensor.from_numpy(grey_to_rgba(t), label="eval target"))
        rec.submit()
        res = metrics.read()[0]
        results.append({"angle": cam.angle, **res})
    return results, images
