"""The training loop: render, loss, backward, Adam, noise and refine, all on the GPU.

One :meth:`Trainer.step` records a whole step into one recorder: the ops (3D
filter, render, image loss) on an autodiff tape (:mod:`brushpy.autodiff`), the
tape's backward, then Adam, with the refine statistics and position noise
outside the tape using what the render op produced. The forward submits once
to read back the visible and intersection counts that size its buffers; the
rest is submitted together. Nothing else crosses to the CPU except the scalar
loss (read every ``log_every`` steps).

Defaults and rules follow Brush (options: ``docs/options.md``); the refine pass
itself lives in :mod:`brushpy.train.refine`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..autodiff import Tape
from ..errors import InputError
from ..gpu import BufferTooLargeError, GpuTensor, Kernel, Recorder, UniformLayout, get_context, workgroups_for
from ..data import ViewOrder
from ..data.scene import cameras_vertical_axis
from ..loss import (DepthLoss, DepthLossOp, ImageLoss, ImageLossOp, ImageMetrics, depth_abs_rel, gt_depth_tensor,
                    noisy_background)
from ..optim import Adam, AdamConfig
from ..render.backward import RenderBackward, RenderOp, SplatGrads
from ..render.forward import release_forward_state, render_forward
from ..render.splats import Splats
from .config import ProcessConfig, TrainConfig
from .errors import CheckpointError, TrainingError
from .exposure import Exposure, ExposureOp, split_fit_metrics
from .filter3d import Filter3D, Filter3DOp
from .health import (HEALTH_EVERY, DivergedError, HealthCheck, NonFiniteSplatsError, NothingVisibleError,
                     blind_steps_limit, count_non_finite, finite_rows, nothing_visible_message)
from .init import scene_initial_splats
from . import mcmc
from .refine import RefineStats, refine, scene_bounds, stream_key

log = logging.getLogger("brushpy.train")

#: Refine runs until this fraction of training (Brush).
REFINE_STOP_FRACTION = 0.95

#: Random stream id of the position noise (refine uses 0..2).
_NOISE_STREAM = 7
#: shaders/mean_noise.wgsl
NOISE_PARAMS = UniformLayout("Params", [
    ("num_splats", "u32"),
    ("key", "u32", "random stream of this step"),
    ("scale", "f32", "lr_mean · mean_noise_weight"),
    ("clamp_to", "f32", "scene extent"),
])


@dataclass
class StepInfo:
    """What one :meth:`Trainer.step` did.

    Attributes:
        step: the step number just completed (1-based count of steps done).
        loss: the step's loss when it was read back (every ``log_every`` steps), else None.
        num_splats: splats after the step (and after a refine, if one ran).
        num_visible: splats that survived culling in this step's view.
        lr_mean: the mean learning rate used.
        refine: the refine counts when a refine ran this step, else None.
        lrs: every parameter's learning rate this step, ``{name: lr}`` (:meth:`Adam.learning_rates
            <brushpy.optim.Adam.learning_rates>`: ``means`` (scene units), ``rotations``, ``log_scales``,
            ``sh_coeffs`` (band 0), ``sh_coeffs_rest``, ``raw_opacities``).
    """

    step: int
    loss: float | None
    num_splats: int
    num_visible: int
    lr_mean: float
    refine: dict | None = None
    lrs: dict = field(default_factory=dict)


@dataclass
class _TrainView:
    camera: object
    gt: GpuTensor  # packed RGBA8 u32 [H,W]
    alpha_mode: str
    gt_depth: GpuTensor | None = None  # sensor depth f32 [H,W], 0 = invalid (only with the depth loss on)


def expand_sh(sh_coeffs: np.ndarray, degree: int) -> np.ndarray:
    """Pad or cut SH coefficients [N,K,3] to degree ``degree`` ((degree+1)^2 coefficients, new bands zero)."""
    k = (degree + 1) ** 2
    sh = np.asarray(sh_coeffs, np.float32)
    if sh.ndim == 2:
        sh = sh[:, None, :]
    out = np.zeros((sh.shape[0], k, 3), np.float32)
    m = min(k, sh.shape[1])
    out[:, :m] = sh[:, :m]
    return out


def max_splats_for_device(sh_degree: int, ctx=None) -> int:
    """The most splats whose largest tensor (``sh_coeffs``) fits one storage binding."""
    ctx = ctx or get_context()
    per_splat = (sh_degree + 1) ** 2 * 3 * 4
    return ctx.max_binding_bytes // per_splat


class Trainer:
    """Trains a splat set on a :class:`brushpy.data.Scene`.

    Args:
        scene: loaded dataset (train and eval views, initial points).
        config: optimisation options (:class:`TrainConfig`).
        process: seed, evaluation and export options (:class:`ProcessConfig`).
        initial: initial splat parameters (numpy, Splats layout); default:
            :func:`brushpy.train.init.scene_initial_splats` (point init, else random
            init with ``config.random_init_scene_scale`` and ``process.seed``).
        log_every: read the loss back every this many steps (it syncs the GPU).

    Raises:
        TrainingError: when the initial splats or the images cannot fit the
            device's buffers (the message names the option to lower).
    """

    def __init__(self, scene, config: TrainConfig | None = None, process: ProcessConfig | None = None,
                 initial: dict | None = None, log_every: int = 1):
        self.scene = scene
        self.config = config = config or TrainConfig()
        self.process = process = process or ProcessConfig()
        config.validate()
        self.ctx = get_context()
        self.log_every = max(1, int(log_every))
        if not scene.train_views:
            raise TrainingError(f"dataset {scene.name!r} has no training views")

        capacity = max_splats_for_device(config.sh_degree, self.ctx)
        # refine grows at most to what one GPU buffer holds
        self._refine_config = replace(config, max_splats=min(int(config.max_splats), capacity))
        #: things the user should know about this run's options (``brushpy train`` prints them)
        self.notes: list[str] = []
        if config.max_splats > capacity:
            self.notes.append(
                f"--max-splats {config.max_splats:,} is more than one GPU buffer holds at SH degree "
                f"{config.sh_degree} on this device ({self.ctx.max_binding_bytes / 2**20:.0f} MiB per binding): "
                f"growth stops at {capacity:,} splats"
            )

        init = initial if initial is not None else scene_initial_splats(
            scene, config.random_init_scene_scale, process.seed, init=config.init, stride=config.init_stride)
        n0 = int(np.asarray(init["means"]).shape[0])
        if n0 > config.max_splats:  # the cap holds from the start: keep an even subset of the initial splats
            keep = np.unique(np.linspace(0, n0 - 1, int(config.max_splats)).round().astype(np.int64))
            init = {k: np.asarray(v)[keep] for k, v in init.items()}
            self.notes.append(f"--max-splats {config.max_splats:,}: training starts from {keep.size:,} of the "
                              f"{n0:,} initial splats")
            n0 = keep.size
        if n0 > capacity:
            raise TrainingError(
                f"the initial point cloud has {n0:,} splats but this device's buffers hold at most {capacity:,} at "
                f"SH degree {config.sh_degree}: lower --subsample-points, --max-splats or --sh-degree"
            )
        self.splats = Splats.from_numpy(
            init["means"], init["rotations"], init["log_scales"],
            expand_sh(init["sh_coeffs"], config.sh_degree), init["raw_opacities"],
        )
        self.bounds = scene_bounds(self.splats.means)
        #: the world's up axis from the training cameras (``"+z"``, ...; None when they do not say),
        #: written into exports as their vertical axis (viewers use it for their default camera)
        self.vertical_axis = cameras_vertical_axis([v.camera for v in scene.train_views])
        # Mip-Splatting's 3D filter: rendered in training, folded into exports (filter3d.py)
        self.filter3d = Filter3D([v.camera for v in scene.train_views], config.min_scale_factor) if config.min_scale_factor > 0 else None
        if self.filter3d is not None:
            self.filter3d.update(self.splats.means)
        self.adam = Adam(AdamConfig.from_options(config), scene_extent=self.bounds.median_size)
        self.loss_fn = ImageLoss(config.ssim_weight, config.match_alpha_weight)
        #: per-training-image colour transforms (``--exposure``), else None
        self.exposure = Exposure(len(scene.train_views), config.lr_exposure, config.lr_exposure_end,
                                 config.total_steps, config.exposure_reg_weight) if config.exposure else None
        self.depth_loss_fn = DepthLoss() if config.depth_loss_weight > 0 else None
        self.stats = RefineStats(self.splats.num_splats)
        #: ``--strategy mcmc``: the regularisers' buffers (None for the default strategy; brushpy/train/mcmc.py)
        self.mcmc_reg = (mcmc.MCMCRegularizer(config.mcmc_opacity_reg, config.mcmc_scale_reg)
                         if config.strategy == "mcmc" else None)
        if config.strategy == "mcmc" and config.max_splats == TrainConfig.max_splats:
            self.notes.append(f"--strategy mcmc grows {config.mcmc_cap_growth:g}x per refine up to --max-splats "
                              f"({config.max_splats:,}); set --max-splats to your splat budget (gsplat's default "
                              "cap: 1,000,000)")
        self.step_count = 0
        self.noise_rng = np.random.default_rng(process.seed)
        self._views: list[_TrainView] = []
        self._eval_gt: dict[int, GpuTensor] = {}
        self._noise_kernel = Kernel("mean_noise.wgsl", structs=[NOISE_PARAMS])
        self.health = HealthCheck()
        self._blind_steps = 0  # steps in a row that rendered no splat (a run whose splats all left the views)
        self._health_step = 0  # the step of the last health check
        self._bad_splats_seen = 0  # non-finite splats at the last check (warned about when it changes)
        #: the DivergedError that stopped training, if it did (exports and checkpoints then refuse)
        self.divergence: DivergedError | None = None
        self._grads: SplatGrads | None = None  # reused every step; reallocated when N changes
        self._v_images: dict[tuple[int, int], GpuTensor] = {}
        self.order = ViewOrder(len(scene.train_views), seed=process.seed)
        self._upload_views()
        self.last_loss: float | None = None
        #: names of the ops the last step recorded on its tape, in forward order
        #: (``("filter3d", "render", "loss")``, no ``"filter3d"`` without the 3D filter)
        self.last_ops: tuple[str, ...] = ()
        #: Optional :class:`brushpy.gpu.Profiler`; when set, every step's and refine's
        #: recorder times its stages into it (``benchmarks/bench_train.py``).
        self.profiler = None

    # -- data ------------------------------------------------------------------
    def _upload_views(self) -> None:
        """Upload every training image once (packed RGBA8)."""
        for view in self.scene.train_views:
            img = view.image
            h, w = img.shape[:2]
            if (w, h) != (view.camera.width, view.camera.height):
                raise TrainingError(f"view {view.name}: image {w}x{h} does not match its camera "
                                    f"{view.camera.width}x{view.camera.height}")
            has_alpha = img.shape[2] == 4
            if self.scene.alpha_mode == "masked" and (view.mask is not None or has_alpha):
                mode = "masked"  # packed_rgba8 carries the mask (or the image's alpha) in alpha
            elif self.scene.alpha_mode == "transparent" and has_alpha:
                mode = "transparent"
            else:
                mode = "opaque"
            try:
                gt = GpuTensor.from_numpy(view.packed_rgba8(), label=f"gt {view.name}", dtype=np.uint32)
            except BufferTooLargeError as exc:
                raise TrainingError(f"image {view.name} ({w}x{h}) is too large for one GPU buffer: "
                                    f"lower --max-resolution ({exc})") from exc
            gt_depth = None
            if self.config.depth_loss_weight > 0 and view.depth is not None:
                gt_depth = gt_depth_tensor(view.depth, f"gt depth {view.name}")
            self._views.append(_TrainView(view.camera, gt, mode, gt_depth))
        if self.config.depth_loss_weight > 0 and not any(v.gt_depth is not None for v in self._views):
            raise InputError(f"--depth-loss-weight {self.config.depth_loss_weight:g}: dataset {self.scene.name!r} has "
                             "no depth maps (a depth/ folder, depth_file_path, an RGB-D layout) to supervise with; "
                             "for a COLMAP dataset add --depth-from-points, or leave the depth loss off")

    # -- the step ----------------------------------------------------------------
    @property
    def params(self) -> dict[str, GpuTensor]:
        """The trained tensors by name (``Splats.PARAM_NAMES``)."""
        return self.splats.params()

    @property
    def sh_degree_now(self) -> int:
        """The SH degree of the last step taken (of the first step before any): what
        :meth:`evaluate` renders with under ``--sh-degree-interval``
        (:meth:`TrainConfig.active_sh_degree`); ``--sh-degree`` without the schedule."""
        return self.config.active_sh_degree(max(self.step_count - 1, 0))

    def refine_due(self, step: int) -> bool:
        """Whether a refine runs after completing ``step`` steps."""
        c = self.config
        if c.strategy == "mcmc" and step <= c.mcmc_refine_start:  # gsplat: refine_start_iter < step
            return False
        return step % c.refine_every == 0 and step < REFINE_STOP_FRACTION * c.total_steps

    def step(self) -> StepInfo:
        """Run one training step (and a refine when one is due).

        Raises:
            TrainingError: the loss became non-finite (names the step), or a view
                needs more GPU memory than one buffer holds.
            NonFiniteSplatsError: (a TrainingError) some splats hold NaN or ±inf (names the
                step, tensors and learning-rate options); checked with the loss read-back at most
                every :data:`~brushpy.train.health.HEALTH_EVERY` steps, at the last step, and before
                every export and checkpoint.
            NothingVisibleError: (a TrainingError) no splat was visible for
                :func:`~brushpy.train.health.blind_steps_limit` steps in a row.
        """
        c = self.config
        step = self.step_count  # 0-based index of this step
        view_index = self.order.next()
        view = self._views[view_index]
        bg = noisy_background(c.background_color, c.background_noise_strength, self.noise_rng)
        rec = Recorder(profiler=self.profiler)
        splats = self.splats
        tape = Tape()
        # record ops: 3D filter -> render -> loss (each op's forward is recorded as it is built)
        render_splats = splats if self.filter3d is None else tape.record(Filter3DOp(self.filter3d, rec, splats)).filtered
        depth_weight = c.depth_loss_weight_at(step) if view.gt_depth is not None else 0.0
        try:
            state = render_forward(render_splats, view.camera, background=bg, sh_degree=c.active_sh_degree(step), rec=rec,
                                   render_mode=c.render_mode, outputs="RGB+ED" if depth_weight > 0 else "RGB")
        except BufferTooLargeError as exc:
            raise TrainingError(f"step {step + 1}: {exc}. Lower --max-resolution or --max-splats.") from exc
        render = tape.record(RenderOp(state, render_splats, out=self._grad_buffers()))
        image = render.outputs["image"]
        if self.exposure is not None:  # this image's colour transform (--exposure)
            image = tape.record(ExposureOp(self.exposure, rec, image, view_index)).outputs["image"]
        image_loss = tape.record(ImageLossOp(self.loss_fn, rec, image, view.gt, background=bg,
                                       alpha_mode=view.alpha_mode, v_image=self._v_image(view.camera)))
        seeds = [image_loss.seed]
        if depth_weight > 0:  # inverse-depth L1 against the sensor depth (--depth-loss-weight)
            depth_loss = tape.record(DepthLossOp(self.depth_loss_fn, rec, render.outputs["depth"], view.gt_depth,
                                                 alpha=render.outputs["image"], weight=depth_weight,
                                                 v_depth=self._v_image(view.camera, channels=None)))
            seeds.append(depth_loss.seed)
        if self.mcmc_reg is not None and self.mcmc_reg.enabled:  # --strategy mcmc: opacity and scale regularisers
            seeds.append(tape.record(mcmc.MCMCRegularizerOp(self.mcmc_reg, rec, splats)).seed)
        # backward through the tape, then Adam on the parameter group
        grads = tape.backward(rec, seeds)
        if self.mcmc_reg is None:  # (the MCMC refine uses no gradient statistics)
            self.stats.accumulate(rec, state, render.grads.refine_weight_abs)
        lrs = self.adam.step(rec, splats, grads, step)
        if self.exposure is not None:
            lrs["exposure"] = self.exposure.step(rec, grads, step)
        self._record_noise(rec, render.grads.visible, lrs["means"], step)
        self.last_ops = tuple(op.name for op in tape.ops)
        read_back = (step + 1) % self.log_every == 0 or step + 1 == c.total_steps
        # with the loss (not more often than every HEALTH_EVERY steps: the pass costs about as much
        # as Adam), count non-finite splats: a diverged run's loss can stay finite
        check_health = read_back and (step + 1 - self._health_step >= HEALTH_EVERY or step + 1 == c.total_steps)
        if check_health:
            self.health.record(rec, splats)
            self._health_step = step + 1
        release_forward_state(state, rec)  # its buffers return to the renderer's pool at submit
        rec.submit()
        self.step_count += 1

        loss = None
        if read_back:
            loss = self.loss_fn.read_loss()
            if not math.isfinite(loss):
                raise TrainingError(
                    f"the loss became {loss} at step {self.step_count}; stopping (the last export is kept). "
                    "Try lower learning rates (e.g. --lr-mean) or check the input images."
                )
            report = self.health.read() if check_health else None
            if report is not None and report.diverged:
                raise self._diverged(NonFiniteSplatsError(report.message(self.step_count)))
            if report is not None and report.bad_splats != self._bad_splats_seen:
                self._bad_splats_seen = report.bad_splats
                if report.bad_splats:
                    log.warning(report.warning(self.step_count))
            self.last_loss = loss
        self._blind_steps = self._blind_steps + 1 if state.num_visible == 0 and splats.num_splats else 0
        if self._blind_steps >= blind_steps_limit(len(self._views)):
            largest = float(np.abs(self.splats.means.numpy()).max())
            raise self._diverged(NothingVisibleError(nothing_visible_message(
                self.step_count, self._blind_steps, self.splats.num_splats, largest)))
        info = StepInfo(self.step_count, loss, self.splats.num_splats, state.num_visible, lrs["means"], lrs=dict(lrs))
        if self.refine_due(self.step_count):
            info.refine = self.refine()
            info.num_splats = self.splats.num_splats
        return info

    def _grad_buffers(self) -> SplatGrads:
        """The render's gradient buffers, allocated once and reused every step (again after refine changes N)."""
        n = self.splats.num_splats
        if self._grads is None or self._grads.means.shape[0] != n:
            self._grads = RenderBackward(ctx=self.ctx).allocate(n, self.splats.sh_coeffs.shape[1], n)
        return self._grads

    def _v_image(self, camera, channels: int | None = 4) -> GpuTensor:
        """A loss gradient buffer f32 [H,W,channels] ([H,W] for None: the depth's) for this image
        size (one per size and shape, reused every step)."""
        shape = (camera.height, camera.width) + ((channels,) if channels else ())
        v_image = self._v_images.get(shape)
        if v_image is None:
            v_image = self._v_images[shape] = GpuTensor.empty(shape, np.float32, "v_image" if channels else "v_depth")
        return v_image

    def _record_noise(self, rec: Recorder, visible: GpuTensor, lr_mean: float, step: int) -> None:
        c = self.config
        if c.strategy == "mcmc":  # covariance-shaped noise on every splat, gated by opacity (mcmc.py)
            mcmc.record_noise(rec, self.splats, lr_mean * c.mcmc_noise_lr, mcmc.noise_key(self.process.seed, step),
                              self.bounds.median_size)
            return
        n = self.splats.num_splats
        if n == 0 or c.mean_noise_weight <= 0:
            return
        key = stream_key(self.process.seed, step, _NOISE_STREAM)
        params = NOISE_PARAMS.pack(num_splats=n, key=key, scale=lr_mean * c.mean_noise_weight,
                                   clamp_to=self.bounds.median_size)
        with rec.stage("mean_noise"):
            rec.dispatch(self._noise_kernel, {"params": params, "raw_opacities": self.splats.raw_opacities,
                                              "visible": visible, "means": self.splats.means}, workgroups_for(n, 256))

    def refine(self) -> dict:
        """Run the refine pass now (prune, re-fill, split, grow, decay; with ``--strategy mcmc``
        relocate and add); returns its counts."""
        rec = Recorder(profiler=self.profiler)
        if self.config.strategy == "mcmc":
            return self._refine_mcmc(rec)
        result = refine(rec, self.splats, self.stats, self.adam, self._refine_config, self.step_count, self.bounds,
                        self.process.seed)
        rec.submit()
        self.splats = result.splats
        if self.filter3d is not None:
            self.filter3d.update(self.splats.means, rec=None)
        self.stats = result.stats
        self.bounds = result.bounds
        self.adam.scene_extent = self.bounds.median_size
        return {
            "num_splats": result.num_splats,
            "pruned": result.num_pruned,
            "refilled": result.num_refilled,
            "force_split": result.num_force_split,
            "grown": result.num_grown,
        }

    def _refine_mcmc(self, rec: Recorder) -> dict:
        """The MCMC refine (:func:`brushpy.train.mcmc.mcmc_refine`); adds splats while
        ``step < --growth-stop-iter``. The scene bounds (and the means' LR scale) stay as at the
        start, as gsplat's fixed scene scale."""
        result = mcmc.mcmc_refine(rec, self.splats, self.adam, self._refine_config, self.step_count,
                                  self.process.seed, add=self.step_count < self.config.growth_stop_iter)
        self.splats = result.splats
        if self.filter3d is not None:
            self.filter3d.update(self.splats.means, rec=None)
        self.stats = RefineStats(self.splats.num_splats)
        return {"num_splats": result.num_splats, "relocated": result.num_relocated, "added": result.num_added}

    # -- evaluation ------------------------------------------------------------------
    def evaluate(self, save_dir: str | Path | None = None, views=None, keep_images: int = 0, lpips=None) -> dict:
        """PSNR and SSIM of renders of the eval views (or ``views``) against their images.

        Renders use ``--background-color`` with no noise; images with alpha are
        composited over the same colour. Returns ``{"psnr", "ssim", "views": [...]}``
        (means over views; per-view dicts with name, psnr, ssim), or an empty
        dict when there is nothing to evaluate. Views with a depth map also get
        ``depth_abs_rel`` (:func:`brushpy.loss.depth_abs_rel` of the rendered expected
        depth), and the result its mean over those views. With ``--eval-exposure-fit``
        (:attr:`ProcessConfig.eval_exposure_fit`) every view and the result also get ``psnr_fit``,
        ``ssim_fit``, ``psnr_right`` and ``ssim_right``
        (:func:`brushpy.train.exposure.split_fit_metrics`: a colour transform fitted on the
        left half, scored on the right half with and without it). Renders are never
        compensated otherwise: held-out views have no learned transform (``--exposure``).

        Args:
            save_dir: write each render there as ``<view stem>.png``.
            views: the views to evaluate (default: the eval views).
            keep_images: return the first this many views' images as ``out["images"]``,
                a list of ``(name, render, gt)`` with ``render``/``gt`` float32 [H,W,3] in [0,1]
                (for the experiment logs).
            lpips: a callable ``(render, gt) -> float | None`` on such arrays
                (:meth:`brushpy.train.perceptual.LpipsMetric.score_or_none`): each view it scores
                and the result then get ``lpips``, the result the mean over them (lower is better).
        """
        views = self.scene.eval_views if views is None else views
        if not views:
            return {}
        bg = np.asarray(self.config.background_color, np.float32).reshape(3)
        metrics = ImageMetrics(capacity=len(views))
        depth_errors: dict[int, float] = {}
        lpips_values: dict[int, float] = {}
        split_fits: dict[int, dict] = {}  # --eval-exposure-fit
        images: list = []
        for i, view in enumerate(views):
            gt = self._eval_gt.get(id(view))
            if gt is None:
                img = view.image.astype(np.float32) / 255.0
                if img.shape[2] == 4:
                    img = img[..., :3] * img[..., 3:4] + (1.0 - img[..., 3:4]) * bg
                gt = GpuTensor.from_numpy(np.ascontiguousarray(img[..., :3]), label=f"eval gt {view.name}")
                self._eval_gt[id(view)] = gt
            rec = Recorder()
            gt_depth = view.depth  # AbsRel of the expected depth where the view has a depth map
            state = render_forward(self._render_splats(rec), view.camera, background=tuple(bg), sh_degree=self.sh_degree_now,
                                   rec=rec, render_mode=self.config.render_mode,
                                   outputs="RGB" if gt_depth is None else "RGB+ED")
            metrics.record(rec, state.image, gt)
            rec.submit()
            if gt_depth is not None:
                abs_rel, valid = depth_abs_rel(state.depth.numpy(), gt_depth)
                if valid:
                    depth_errors[i] = abs_rel
            if self.process.eval_exposure_fit:  # transform fitted on the left half, scored on the right
                fit = split_fit_metrics(state.image.numpy(), gt.numpy())
                split_fits[i] = {k: v for k, v in fit.items() if k != "transform"}
            if save_dir is not None or lpips is not None or i < keep_images:
                rgb = np.clip(state.image.numpy()[..., :3], 0.0, 1.0)  # read back now: nothing is held across views
                if save_dir is not None:
                    self._save_eval_png(Path(save_dir) / f"{Path(view.name).stem}.png", rgb)
                if lpips is not None or i < keep_images:
                    gt_rgb = np.clip(gt.numpy(), 0.0, 1.0)
                    value = lpips(rgb, gt_rgb) if lpips is not None else None
                    if value is not None:  # (None: the metric could not score this view)
                        lpips_values[i] = float(value)
                    if i < keep_images:
                        images.append((view.name, rgb, gt_rgb))
        per_view = metrics.read()
        out_views = [{"name": v.name, **m} for v, m in zip(views, per_view)]
        for i, abs_rel in depth_errors.items():
            out_views[i]["depth_abs_rel"] = abs_rel
        for i, value in lpips_values.items():
            out_views[i]["lpips"] = value
        for i, fit in split_fits.items():
            out_views[i].update(fit)
        finite = [m["psnr"] for m in per_view if math.isfinite(m["psnr"])]
        out = {
            "psnr": float(np.mean(finite)) if finite else float("inf"),
            "ssim": float(np.mean([m["ssim"] for m in per_view])),
            "views": out_views,
        }
        if depth_errors:
            out["depth_abs_rel"] = float(np.mean(list(depth_errors.values())))
        if lpips_values:
            out["lpips"] = float(np.mean(list(lpips_values.values())))
        for key in ("psnr_fit", "ssim_fit", "psnr_right", "ssim_right"):
            if split_fits:
                out[key] = float(np.mean([fit[key] for fit in split_fits.values()]))
        if keep_images:
            out["images"] = images
        return out

    @staticmethod
    def _save_eval_png(path: Path, rgb: np.ndarray) -> None:
        """Write an eval render (float [H,W,3] in [0,1]) as an 8-bit PNG, atomically."""
        from PIL import Image

        from ..io.atomic import atomic_write

        with atomic_write(path, option="--export-path") as f:
            Image.fromarray((rgb * 255.0 + 0.5).astype(np.uint8)).save(f, format="PNG")

    def display_splats(self) -> Splats:
        """The splats as training renders them (3D filter applied when it is on), for viewers.

        With the filter on, the result's ``log_scales`` and ``raw_opacities`` are buffers
        that the next training step rewrites; call this again after each step you show.
        """
        if self.filter3d is None:
            return self.splats
        rec = Recorder()
        out = self.filter3d.apply(rec, self.splats)
        rec.submit()
        return out

    def _render_splats(self, rec: Recorder) -> Splats:
        """The splats as rendered: with the 3D filter applied (recorded into ``rec``) when it is on."""
        return self.filter3d.apply(rec, self.splats) if self.filter3d is not None else self.splats

    # -- export and checkpoints ------------------------------------------------------
    def export_ply(self, path: str | Path) -> Path:
        """Write the current splats as an INRIA 3DGS PLY (binary): :meth:`export_splats` with ``"ply"``."""
        return self.export_splats(path, "ply")

    def export_splats(self, path: str | Path, format: str = "ply") -> Path:
        """Write the current splats to ``path`` as ``format`` (one of
        :data:`brushpy.io.formats.WRITE_FORMATS`, ``--export-format``), through
        :func:`brushpy.io.formats.write_splats`.

        The 3D filter, when on, is folded into the written scales and opacities (so the
        file renders as training did). The splats carry the run's render mode and the
        world's up axis (:attr:`vertical_axis`, from the training cameras) for the formats
        that store them; a PLY's header says ``SplatRenderMode: default|mip`` as Brush's
        exports do (a mip-trained file is meant for a renderer with the 0.1 2D filter and
        opacity compensation).

        Splats with a NaN or ±inf (inert: the renderer skips them) are left out, with a warning.

        Raises:
            NonFiniteSplatsError: training diverged (more than ``DIVERGED_FRACTION`` of the
                splats are non-finite); nothing is written.
            brushpy.io.atomic.WriteError: the file cannot be written.
        """
        from ..io.formats import write_splats
        from ..io.ply import SplatData

        self._check_writable()  # never write a diverged run's splats
        path = Path(path)
        data = self.filter3d.bake(self.splats) if self.filter3d is not None else SplatData.from_gpu(self.splats)
        report = count_non_finite(data)  # (huge but finite values can overflow when the filter is folded in)
        if report.diverged:
            raise self._diverged(NonFiniteSplatsError(report.message(self.step_count)))
        if not report.ok:  # a few inert non-finite splats: left out of the file
            keep = finite_rows(data)
            data = replace(data, **{name: getattr(data, name)[keep] for name in Splats.PARAM_NAMES})
            log.warning(f"{path.name}: left out {report.bad_splats:,} splats with non-finite parameters")
        data = replace(data, render_mode=self.config.render_mode, vertical_axis=self.vertical_axis)
        options = {"comments": [f"SplatRenderMode: {self.config.render_mode}"]} if format == "ply" else {}
        write_splats(path, data, format=format, option="--export-path", **options)
        return path

    def save_checkpoint(self, path: str | Path) -> Path:
        """Save the full state (parameters, Adam moments, refine statistics, step, random state) as ``.npz``.

        Written atomically: a failed save (e.g. a full disk) raises
        :class:`~brushpy.io.atomic.WriteError` and keeps the previous checkpoint.

        Raises:
            NonFiniteSplatsError: the splats hold NaN or ±inf (training diverged); nothing is written.
            brushpy.io.atomic.WriteError: the file cannot be written (the previous one is kept).
        """
        from ..io.atomic import atomic_write

        self._check_writable()
        path = Path(path)
        arrays = {f"param.{k}": v for k, v in self.splats.numpy().items()}
        arrays.update({f"adam.{k}": v for k, v in self.adam.state_dict().items()})
        arrays.update({f"stats.{k}": v for k, v in self.stats.state_dict().items()})
        if self.filter3d is not None:
            arrays["filter3d.min_scale"] = self.filter3d.min_scale.numpy()
        if self.exposure is not None:
            arrays.update({f"exposure.{k}": v for k, v in self.exposure.state_dict().items()})
        meta = {
            "format": "brushpy-checkpoint-1",
            "step": self.step_count,
            "config": asdict(self.config),
            "process": asdict(self.process),
            "noise_rng": self.noise_rng.bit_generator.state,
            "bounds": [self.bounds.center.tolist(), self.bounds.half_extent.tolist()],
            "dataset": self.scene.name,
            "train_views": self._views_digest(),
        }
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
        with atomic_write(path, option="--export-path") as f:  # the old checkpoint stays until this one is whole
            np.savez(f, **arrays)
        return path

    def _diverged(self, error: DivergedError) -> DivergedError:
        """Remember that training diverged (exports and checkpoints refuse from now on); returns ``error``."""
        self.divergence = error
        return error

    def _check_writable(self) -> None:
        """Raise the divergence again if training diverged, else count non-finite splats now."""
        if self.divergence is not None:
            raise type(self.divergence)(str(self.divergence))
        try:
            self.health.check(self.splats, self.step_count)
        except NonFiniteSplatsError as exc:
            raise self._diverged(exc)

    def _views_digest(self) -> dict:
        """Which training views this run uses: their count and a SHA-1 of their names in order
        (a checkpoint records it; resuming on other views is refused)."""
        names = "\n".join(v.name for v in self.scene.train_views)
        return {"count": len(self.scene.train_views), "sha1": hashlib.sha1(names.encode()).hexdigest()}

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore a :meth:`save_checkpoint` file; training continues from its step.

        Raises:
            CheckpointError: (a TrainingError) the file is not a brushpy checkpoint, or was
                saved by a run on another dataset (name or training views), or with another SH degree.
        """
        from .refine import SceneBounds

        path = Path(path)
        try:
            data = np.load(path)
            meta = json.loads(bytes(data["meta"]).decode())
        except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same message
            raise CheckpointError(f"--resume {path}: not a readable brushpy checkpoint ({exc})") from exc
        if meta.get("format") != "brushpy-checkpoint-1":
            raise CheckpointError(f"--resume {path}: not a brushpy checkpoint (format {meta.get('format')!r})")
        theirs = meta.get("train_views")
        if meta.get("dataset") != self.scene.name or (theirs is not None and theirs != self._views_digest()):
            raise CheckpointError(
                f"--resume {path}: saved by a run on dataset {meta.get('dataset')!r} "
                f"({(theirs or {}).get('count', '?')} training views), but this run trains {self.scene.name!r} "
                f"({len(self.scene.train_views)} training views); resume with the dataset (and split options) "
                "it was trained on")
        saved_strategy = (meta.get("config") or {}).get("strategy", "default")
        if saved_strategy != self.config.strategy:  # the splat budget and schedule belong to the strategy
            raise CheckpointError(f"--resume {path}: saved by a run with --strategy {saved_strategy} but this run has "
                                  f"--strategy {self.config.strategy}; resume with --strategy {saved_strategy}")
        p = {k: data[f"param.{k}"] for k in Splats.PARAM_NAMES}
        k = p["sh_coeffs"].shape[1]
        if k != (self.config.sh_degree + 1) ** 2:
            raise CheckpointError(f"--resume {path}: holds SH degree {int(round(math.sqrt(k))) - 1} but --sh-degree "
                                  f"is {self.config.sh_degree}; resume with the same --sh-degree")
        self.splats = Splats.from_numpy(*(p[name] for name in Splats.PARAM_NAMES))
        self.adam.load_state_dict({key[5:]: data[key] for key in data.files if key.startswith("adam.")})
        self.stats = RefineStats.from_state_dict({key[6:]: data[key] for key in data.files if key.startswith("stats.")})
        self.step_count = int(meta["step"])
        self.noise_rng.bit_generator.state = meta["noise_rng"]
        self.bounds = SceneBounds(np.array(meta["bounds"][0]), np.array(meta["bounds"][1]))
        self.adam.scene_extent = self.bounds.median_size
        if self.filter3d is not None:  # the floors of the saved run (recomputed only at refine)
            if "filter3d.min_scale" in data.files:
                self.filter3d.load(data["filter3d.min_scale"])
            else:
                self.filter3d.update(self.splats.means)
        self.order = ViewOrder(len(self.scene.train_views), seed=self.process.seed, start_step=self.step_count)
        saved = {key[9:]: data[key] for key in data.files if key.startswith("exposure.")}
        if self.exposure is not None and saved:
            self.exposure.load_state_dict(saved)
        elif self.exposure is not None:
            log.warning(f"--resume {path}: the checkpoint has no exposure transforms (trained without --exposure); "
                        "they start from the identity")


@dataclass
class RunSummary:
    """End-of-run figures (what ``brushpy train`` prints)."""

    steps: int
    elapsed_s: float
    num_splats: int
    psnr: float | None = None
    ssim: float | None = None
    export: str | None = None
    checkpoint: str | None = None
    interrupted: bool = False
    #: the signal that stopped the run (SIGINT 2, SIGTERM 15), None when it ran to the end
    stop_signal: int | None = None
    history: list = field(default_factory=list)
    #: peak bytes held by GPU tensor buffers during the run, MiB (``gpu_memory_stats``)
    peak_gpu_mib: float | None = None
    #: peak resident memory of the process, MiB (None where ``resource`` is missing)
    peak_rss_mib: float | None = None
