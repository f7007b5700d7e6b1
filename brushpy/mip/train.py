"""MIP training: fit emissive Gaussians to multi-view MIPs of a volume.

One step renders every training view, and per view records

- the loss ``λ_MSE·MSE + λ_SSIM·(1 - SSIM)`` (MSE over pixels; SSIM from
  :class:`brushpy.loss.ImageLoss` with ``ssim_weight=1`` on the grey image copied
  into r, g, b, whose mean over channels is the grey SSIM), averaged over views,
- its gradient (``mip_loss.wgsl``) and the renderer's backward, accumulating the
  parameter gradients over the views;

then clips the gradients to total norm ``max_grad_norm`` (a GPU reduction, no
readback), runs Adam (:class:`brushpy.optim.Adam`: ``lr`` for means and
amplitudes, ``0.1·lr`` for scales and rotations; MIP's ``log_amplitudes`` use
the ``raw_opacities`` group's slot; the means' LR is not scaled by an extent
and, with ``mean_lr_final_factor < 1``, decays exponentially from ``lr`` to
``lr·factor`` over ``iterations`` (Brush's mean-LR schedule; 1 = constant, the default)
and clamps ``log_scales ∈ [-6, 0]``, ``log_amplitudes ∈ [-10, 6]`` and the means
into the box. Everything is one command buffer; the loss is the one readback.

The step drives the renderer directly rather than through the autodiff tape
(:class:`~brushpy.mip.render.MipRenderOp` is the tape form of the same kernels):
views are processed one after the other through one reused scratch frame and
their gradients are added in place by the projection backward, so memory does
not grow with the number of views and no accumulation passes are needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..gpu import GpuTensor, Kernel, Recorder, Uniform, workgroups_for
from ..loss import ImageLoss, ImageMetrics
from ..optim.adam import Adam, AdamConfig
from .camera import MipCamera
from .model import LOG_AMPLITUDE_RANGE, LOG_SCALE_RANGE, PARAM_NAMES, MipGaussians
from .render import DEFAULT_TEMPERATURE, MipRenderer

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
        self.image_loss = ImageLoss(ssim_weight=1.0, match_alpha_weight=0.0)
        self.adam = Adam(AdamConfig(lr_mean=c.lr, lr_mean_end=c.lr * c.mean_lr_final_factor, lr_opac=c.lr, lr_scale=0.1 * c.lr,
                                    lr_rotation=0.1 * c.lr, eps=c.adam_eps, total_steps=max(1, c.iterations)),
                         scene_extent=1.0)
        self.grads = {n: GpuTensor.empty(getattr(model, n).shape, np.float32, f"mip grad {n}") for n in PARAM_NAMES}
        self.v_image = GpuTensor.empty((h, w, 4), np.float32, "mip v_image")
        self.v_out = GpuTensor.empty((h, w), np.float32, "mip v_out")
        self.groups_per_view = math.ceil(h * w / 256)
        self.mse_partials = GpuTensor.empty((len(cameras) * self.groups_per_view,), np.float32, "mip mse partials")
        self.ssim_losses = GpuTensor.empty((len(cameras),), np.float32, "mip ssim losses")
        self.loss_out = GpuTensor.empty((4,), np.float32, "mip loss")
        self.norm_partials = GpuTensor.empty((math.ceil(K / 256),), np.float32, "mip grad norm partials")
        self.norm_out = GpuTensor.empty((4,), np.float32, "mip grad norm")
        self._k_loss = Kernel("mip_loss.wgsl")
        self._k_total = Kernel("mip_loss_total.wgsl")
        self._k_norm = Kernel("mip_grad_norm.wgsl")
        self._k_clip = Kernel("mip_grad_clip.wgsl")
        self._k_clamp = Kernel("mip_clamp.wgsl")
        self.step_count = 0

    def _loss_params(self, view: int) -> Uniform:
        c = self.config
        n = self.height * self.width
        V = len(self.cameras)
        p = np.zeros(8, np.uint32)
        p[0], p[1] = n, view * self.groups_per_view
        f = p.view(np.float32)
        f[4] = c.lambda_mse / (n * V)
        f[5] = c.lambda_ssim / V
        return Uniform(p)

    def record_step(self, rec: Recorder) -> None:
        """Record one full training step (all views, clip, Adam, clamps)."""
        c = self.config
        r = self.renderer
        for g in self.grads.values():
            rec.clear(g)
        for v, cam in enumerate(self.cameras):
            image = r.record_forward(rec, self.model, cam, slot=v)
            if c.lambda_ssim > 0:
                self.image_loss.record(rec, image, self.targets[v], v_image=self.v_image)
                rec.copy(self.image_loss.loss, self.ssim_losses, 4, dst_offset=4 * v)
            with rec.stage("mip_loss"):
                rec.dispatch(self._k_loss, [self._loss_params(v), image, self.targets[v], self.v_image, self.v_out,
                                            self.mse_partials], workgroups_for(self.height * self.width, 256))
            r.record_backward(rec, self.model, cam, self.v_out, self.grads)
        n = self.height * self.width
        tp = np.zeros(8, np.uint32)
        tp[0], tp[1] = self.groups_per_view, len(self.cameras)
        tf = tp.view(np.float32)
        tf[4], tf[5], tf[6] = 1.0 / n, c.lambda_mse, c.lambda_ssim
        with rec.stage("mip_loss"):
            rec.dispatch(self._k_total, [Uniform(tp), self.mse_partials, self.ssim_losses, self.loss_out], (1, 1, 1))
        self.record_clip(rec)
        m = self.model
        self.adam.step(rec, {ADAM_GROUPS[n_]: getattr(m, n_) for n_ in PARAM_NAMES},
                       {ADAM_GROUPS[n_]: self.grads[n_] for n_ in PARAM_NAMES}, self.step_count)
        self.record_clamp(rec)
        self.step_count += 1

    def record_clip(self, rec: Recorder) -> None:
        """Record the gradient clipping: total L2 norm over all parameter gradients
        (``mip_grad_norm``), then scaling by ``min(1, max_norm / (norm + 1e-6))``
        (``mip_grad_clip``); :attr:`norm_out` gets (norm, scale)."""
        K = self.model.num_gaussians
        g = self.grads
        with rec.stage("mip_clip"):
            rec.dispatch(self._k_norm, [Uniform(np.array([K, 0, 0, 0], np.uint32)), g["means"], g["log_scales"],
                                        g["rotations"], g["log_amplitudes"], self.norm_partials], workgroups_for(K, 256))
            cp = np.zeros(8, np.uint32)
            cp[0], cp[1] = K, self.norm_partials.shape[0]
            cp.view(np.float32)[4] = self.config.max_grad_norm
            rec.dispatch(self._k_clip, [Uniform(cp), self.norm_partials, g["means"], g["log_scales"], g["rotations"],
                                        g["log_amplitudes"], self.norm_out], workgroups_for(K, 256))

    def record_clamp(self, rec: Recorder) -> None:
        """Record the parameter clamps (log_scales, log_amplitudes ranges; means into [0, 1])."""
        c = self.config
        m = self.model
        K = m.num_gaussians
        kp = np.zeros(8, np.uint32)
        kp[0] = K
        kp.view(np.float32)[4:8] = [*c.log_scale_range, *c.log_amplitude_range]
        with rec.stage("mip_clamp"):
            rec.dispatch(self._k_clamp, [Uniform(kp), m.means, m.log_scales, m.log_amplitudes], workgroups_for(K, 256))

    def step(self, read_loss: bool = True) -> dict | None:
        """Run one step; returns ``{"loss", "mse", "ssim_loss"}`` when ``read_loss`` (one readback)."""
        rec = Recorder(profiler=self.profiler)
        self.record_step(rec)
        rec.submit()
        if not read_loss:
            return None
        out = self.loss_out.numpy()
        if not np.isfinite(out[0]):
            raise FloatingPointError(f"MIP training: the loss became {out[0]} at step {self.step_count}; lower --lr")
        return {"loss": float(out[0]), "mse": float(out[1]), "ssim_loss": float(out[2])}

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
