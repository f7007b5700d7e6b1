"""Training and process options with Brush's names and defaults, and :func:`resolve_configs`.

Each field's ``metadata["help"]`` is shown by ``brushpy train --help``; the CLI
flag is the field name in kebab case (``lr_mean`` -> ``--lr-mean``). The
defaults are Brush's except where ``docs/options.md`` (generated from these fields) says otherwise.
Every option has one default: the learning rates and ``total_steps`` take theirs from
:class:`brushpy.optim.AdamConfig`, the seed is :class:`ProcessConfig`'s, the random-init scene
scale :class:`TrainConfig`'s.

:func:`resolve_configs` is the one place the options of a run are chosen (defaults <
the dataset's ``args.txt`` < values the user gave); ``brushpy train`` and the viewer call it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping

from ..data import DatasetSource, LoadConfig, Scene, read_args_txt
from ..data.args_txt import ARGS_FILE
from ..data.config import convert_option
from ..errors import OptionError
from ..io.formats import WRITE_FORMATS
from ..optim import AdamConfig, exponential_schedule

#: ``--init`` values: the initial splats' source (``brushpy.train.init.scene_initial_splats``)
INIT_MODES = ("auto", "points", "random", "depth")
#: ``--strategy`` values: how splats are densified (``default``: brushpy.train.refine, ``mcmc``: brushpy.train.mcmc)
STRATEGIES = ("default", "mcmc")


def _opt(default, help: str, group: str | None = None, **kw):
    meta = {"help": help}
    if group:
        meta["group"] = group
    meta.update(kw)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Optimisation options (learning rates, refine schedule, loss weights)."""

    total_steps: int = _opt(AdamConfig.total_steps, "Steps to train.", min=1)
    render_mode: str = _opt("default", "`default` or `mip` (2D filter 0.1 with opacity compensation).", choices=("default", "mip"))
    min_scale_factor: float = _opt(0.1, "3D filter (Mip-Splatting): per-splat scale floor √factor · min over training views of "
                                        "depth / focal, rendered in training and folded into exports; 0 disables.",
                                    brush_flag=False, brush_default=0.1)
    # Learning rates: brushpy's defaults are AdamConfig's (its docstring says why four differ from Brush's).
    lr_mean: float = _opt(AdamConfig.lr_mean, "Start learning rate of the means, multiplied by the scene extent.",
                          brush_default=2e-5)
    lr_mean_end: float = _opt(AdamConfig.lr_mean_end, "End learning rate of the means (exponential decay over training).",
                              brush_default=2e-7)
    mean_noise_weight: float = _opt(50.0, "Noise on low-opacity splats: N(0,1)·(1−σ(o))^150·visible·lr_mean·weight.")
    lr_coeffs_dc: float = _opt(AdamConfig.lr_coeffs_dc, "Learning rate of SH band 0.", brush_default=2e-3)
    lr_coeffs_sh_scale: float = _opt(AdamConfig.lr_coeffs_sh_scale, "Higher SH bands use lr_coeffs_dc divided by this.")
    lr_opac: float = _opt(AdamConfig.lr_opac, "Learning rate of the opacity logits.", brush_default=0.012)
    lr_scale: float = _opt(AdamConfig.lr_scale, "Learning rate of the log scales.", brush_default=5e-3)
    lr_rotation: float = _opt(AdamConfig.lr_rotation, "Learning rate of the quaternions.")
    max_splats: int = _opt(10_000_000, "Upper bound on the number of splats.", min=1)
    refine_every: int = _opt(200, "Refine period in steps.", min=1)
    growth_grad_threshold: float = _opt(0.0025, "Growth threshold on the accumulated screen-space gradient statistic.")
    growth_select_fraction: float = _opt(0.25, "Fraction of growth candidates that grow.")
    growth_stop_iter: int = _opt(15000, "No growth after this step.")
    split_at_screen_size: float = _opt(0.5, "Force-split splats larger than this fraction of the image; 0 disables.")
    # --strategy mcmc (3DGS as MCMC, Kheradmand et al. 2024; defaults: gsplat's MCMCStrategy and simple_trainer's
    # mcmc config). brushpy/train/mcmc.py; docs/DEVELOPING.md "MCMC strategy" maps the refine options.
    strategy: str = _opt("default", "Densification: `default` (Brush's prune/split/grow) or `mcmc` (3DGS as MCMC: "
                                    "dead splats relocated onto live ones, --mcmc-cap-growth more per refine up to "
                                    "--max-splats, position noise, opacity/scale regularisers; refines every "
                                    "--refine-every steps after --mcmc-refine-start, adds until --growth-stop-iter).",
                         choices=STRATEGIES, brush_flag=False)
    mcmc_noise_lr: float = _opt(5e5, "`mcmc`: position noise N(0,Σ²)·σ(−100(o−0.005))·lr_mean·this per step "
                                     "(gsplat's noise_lr).", brush_flag=False)
    mcmc_opacity_reg: float = _opt(0.01, "`mcmc`: weight of the mean opacity added to the loss (gsplat's opacity_reg).",
                                   brush_flag=False)
    mcmc_scale_reg: float = _opt(0.01, "`mcmc`: weight of the mean scale added to the loss (gsplat's scale_reg).",
                                 brush_flag=False)
    mcmc_min_opacity: float = _opt(0.005, "`mcmc`: splats at or below this opacity are dead and relocated "
                                          "(gsplat's min_opacity).", brush_flag=False)
    mcmc_cap_growth: float = _opt(1.05, "`mcmc`: each refine grows the splat count to min(--max-splats, "
                                        "int(this·N)) (gsplat: 1.05).", brush_flag=False)
    mcmc_refine_start: int = _opt(500, "`mcmc`: first step that relocates and adds (gsplat's refine_start_iter).",
                                  min=0, brush_flag=False)
    ssim_weight: float = _opt(0.2, "Loss = (1−w)·L1 + w·(1−SSIM).", min=0.0, max=1.0)
    opac_decay: float = _opt(0.004, "Opacity decay per refine, fading to 0 at the end.")
    match_alpha_weight: float = _opt(0.1, "Weight of the L1 loss on alpha when the input has transparency.")
    depth_loss_weight: float = _opt(0.0, "Weight of the inverse-depth L1 loss against the dataset's depth maps "
                                         "(mean over pixels with a depth of |1/rendered − 1/sensor|); 0 disables.",
                                    brush_flag=False)
    depth_loss_weight_end: float | None = _opt(None, "End weight of the depth loss: decays exponentially from "
                                                     "--depth-loss-weight over training (like --lr-mean → "
                                                     "--lr-mean-end); unset keeps it constant.",
                                               brush_flag=False)
    background_color: tuple = _opt((0.0, 0.0, 0.0), "Training background colour R,G,B in [0,1].")
    background_noise_strength: float = _opt(0.1, "Uniform noise added to the background each step.")
    sh_degree: int = _opt(3, "Spherical-harmonic degree, 0..4 (all bands trained from step 0 unless "
                             "--sh-degree-interval is set).", min=0, max=4)
    sh_degree_interval: int = _opt(0, "SH degree schedule: train band 0 first and enable one more band every this "
                                      "many steps, up to --sh-degree (INRIA 3DGS and gsplat: 1000); 0 trains all "
                                      "bands from step 0.", min=0, brush_flag=False)
    exposure: bool = _opt(False, "Learn a per-training-image affine colour transform A·rgb + b (A 3x3 from the "
                                 "identity, b from 0) applied to the render before the loss, for captures whose "
                                 "exposure or white balance changes between images (INRIA 3DGS's exposure "
                                 "compensation). Held-out views are scored without it (see --eval-exposure-fit).",
                          brush_flag=False)
    lr_exposure: float = _opt(0.001, "Start learning rate of the exposure transforms (the rate INRIA 3DGS's README "
                                     "passes for exposure compensation; its code default 0.01 lost 2.9 dB on "
                                     "beer_colmap, docs/DEVELOPING.md).", brush_flag=False)
    lr_exposure_end: float = _opt(0.0001, "End learning rate of the exposure transforms (exponential decay over "
                                          "training; INRIA 3DGS's README: 0.0001).", brush_flag=False)
    exposure_reg_weight: float = _opt(0.0, "Weight λ of the L2 pull λ·‖[A|b] − [I|0]‖² of the rendered image's "
                                           "exposure transform towards the identity; 0 disables.", brush_flag=False)
    random_init_scene_scale: float | None = _opt(None, "Scene scale for random init (default: 3 × mean nearest-camera distance, min 1).")
    init: str = _opt("auto", "Initial splats: `auto` (the dataset's points, else random), `points`, `random`, or "
                             "`depth` (one splat per pixel of the training views' depth maps, merged per voxel).",
                     choices=INIT_MODES, brush_flag=False)
    init_stride: int = _opt(1, "`--init depth`: lift every N-th pixel in x and y.", min=1, brush_flag=False)

    def validate(self) -> None:
        """Check the options that depend on each other or have open bounds.

        Raises:
            OptionError: a value out of range (names the option).
        """
        checks = [
            (self.total_steps >= 1, "--total-steps must be ≥ 1"),
            (self.refine_every >= 1, "--refine-every must be ≥ 1"),
            (0 <= self.sh_degree <= 4, "--sh-degree must be in 0..4"),
            (self.sh_degree_interval >= 0, "--sh-degree-interval must be ≥ 0 (0 trains all bands from step 0)"),
            (0.0 <= self.ssim_weight <= 1.0, "--ssim-weight must be in [0, 1]"),
            (0.0 < self.growth_select_fraction <= 1.0, "--growth-select-fraction must be in (0, 1]"),
            (self.max_splats >= 1, "--max-splats must be ≥ 1"),
            (self.render_mode in ("default", "mip"), "--render-mode must be `default` or `mip`"),
            (self.min_scale_factor >= 0.0, "--min-scale-factor must be ≥ 0 (0 disables the 3D filter)"),
            (len(self.background_color) == 3, "--background-color takes three values R,G,B"),
            (self.random_init_scene_scale is None or self.random_init_scene_scale > 0,
             "--random-init-scene-scale must be > 0"),
            (self.depth_loss_weight >= 0.0, "--depth-loss-weight must be ≥ 0 (0 disables the depth loss)"),
            (self.depth_loss_weight_end is None or self.depth_loss_weight_end > 0,
             "--depth-loss-weight-end must be > 0 (an exponential decay cannot reach 0; leave it unset for a "
             "constant weight)"),
            (self.lr_exposure > 0 and self.lr_exposure_end > 0, "--lr-exposure and --lr-exposure-end must be > 0"),
            (self.exposure_reg_weight >= 0.0, "--exposure-reg-weight must be ≥ 0 (0 disables the pull)"),
            (self.init in INIT_MODES, f"--init must be one of {', '.join(INIT_MODES)}"),
            (self.init_stride >= 1, "--init-stride must be ≥ 1"),
            (self.strategy in STRATEGIES, f"--strategy must be one of {', '.join(STRATEGIES)}"),
            (0.0 < self.mcmc_min_opacity < 1.0, "--mcmc-min-opacity must be in (0, 1)"),
            (self.mcmc_cap_growth >= 1.0, "--mcmc-cap-growth must be ≥ 1 (1 keeps the splat count)"),
            (self.mcmc_noise_lr >= 0.0, "--mcmc-noise-lr must be ≥ 0 (0 turns the noise off)"),
            (self.mcmc_opacity_reg >= 0.0 and self.mcmc_scale_reg >= 0.0,
             "--mcmc-opacity-reg and --mcmc-scale-reg must be ≥ 0"),
            (self.mcmc_refine_start >= 0, "--mcmc-refine-start must be ≥ 0"),
        ]
        for ok, msg in checks:
            if not ok:
                raise OptionError(msg)

    def active_sh_degree(self, step: int) -> int:
        """The SH degree rendered and trained at training step ``step`` (0-based).

        ``min(step // --sh-degree-interval, --sh-degree)``: band 0 alone for the first interval,
        then one band more per interval (gsplat's ``simple_trainer``; INRIA 3DGS's
        ``oneupSHdegree`` every 1000 iterations). ``--sh-degree`` at every step when the interval
        is 0. The degree follows from the step alone, so a resumed run keeps the schedule.
        """
        if self.sh_degree_interval <= 0:
            return int(self.sh_degree)
        return min(max(int(step), 0) // int(self.sh_degree_interval), int(self.sh_degree))

    def depth_loss_weight_at(self, step: int) -> float:
        """The depth-loss weight at training step ``step`` (0-based).

        ``--depth-loss-weight`` when ``--depth-loss-weight-end`` is unset (or the weight is 0:
        the loss is off); else the exponential decay from one to the other over
        ``--total-steps``, the schedule of the means' learning rate
        (:func:`brushpy.optim.exponential_schedule`; INRIA 3DGS decays its depth weight the
        same way, 1 → 0.01).
        """
        if self.depth_loss_weight <= 0:
            return 0.0
        if self.depth_loss_weight_end is None:
            return float(self.depth_loss_weight)
        return exponential_schedule(step, self.total_steps, self.depth_loss_weight, self.depth_loss_weight_end)


@dataclass
class ProcessConfig:
    """Run options: seed, evaluation and export."""

    seed: int = _opt(42, "Random seed (initialisation, view order, refine, noise).")
    eval_every: int = _opt(1000, "Evaluate PSNR/SSIM on the eval split every this many steps.", min=0)
    eval_save_to_disk: bool = _opt(False, "Save evaluation renders as PNG.")
    eval_exposure_fit: bool = _opt(False, "Also score each eval view with INRIA's exposure protocol: an affine "
                                          "colour transform fitted (least squares) on the view's left half, PSNR/SSIM "
                                          "on its right half, reported beside the right half's without it.",
                                   brush_flag=False)
    export_every: int = _opt(5000, "Write an export every this many steps.", min=0)
    export_path: str = _opt("./{dataset}_exports/", "Folder for exports ({dataset} = dataset name).")
    export_name: str = _opt("export_{iter}.ply", "Export file name ({iter} = step); its extension follows "
                                                 "--export-format.")
    export_format: str = _opt("ply", "Export file format: `ply` (INRIA 3DGS), `compressed.ply` (PlayCanvas), `spz` "
                                     "(Niantic), `sog` (PlayCanvas), `splat` (antimatter15).",
                              choices=WRITE_FORMATS, brush_flag=False, brush_default="ply")
    # Experiment logs (brushpy.train.experiment_logs): TensorBoard event files, a Rerun recording, LPIPS.
    log_dir: str | None = _opt("{export_path}/logs", "Folder for TensorBoard event files (loss, PSNR/SSIM, splat count, "
                                                     "learning rates, step time, eval images; {export_path} = the "
                                                     "export folder, {dataset} = dataset name); `none` turns them off.",
                               brush_flag=False)
    log_every: int = _opt(50, "Write the training scalars to the logs every this many steps.", min=1,
                          brush_flag=False)
    rerun: str | None = _opt(None, "Also log to this Rerun recording (FILE.rrd; open with `rerun FILE.rrd`): the "
                                   "same scalars and images, and the splats as points at each evaluation. "
                                   "Needs pip install 'brushpy[rerun]'.", brush_flag=False)
    eval_lpips: bool = _opt(False, "Also compute LPIPS at each evaluation (the `lpips` package on torch; needs its "
                                   "backbone weights on this machine, see --lpips-weights). Needs pip install "
                                   "'brushpy[lpips]'.", brush_flag=False)
    lpips_net: str = _opt("alex", "LPIPS backbone: `alex` (AlexNet, the usual one for splatting papers) or `vgg`.",
                          choices=("alex", "vgg"), brush_flag=False)
    lpips_weights: str | None = _opt(None, "The backbone's torchvision ImageNet weights (.pth); default: torch's hub "
                                           "cache, $TORCH_HOME/hub/checkpoints/alexnet-owt-7be5be79.pth (vgg: "
                                           "vgg16-397923af.pth). Never downloaded by brushpy.", brush_flag=False)


def dataset_train_defaults(scene) -> dict:
    """Training options a dataset format implies, for options the user did not set.

    NeRF-synthetic scenes train and evaluate on a white background, the field's
    convention for them (published PSNRs are measured that way). Returns
    ``{option_name: value}`` (empty for other formats); ``scene`` is a
    :class:`brushpy.data.Scene`.
    """
    if getattr(scene, "kind", "") == "nerf-synthetic":
        return {"background_color": (1.0, 1.0, 1.0)}
    return {}


#: The option dataclasses of a training run, in the order ``brushpy train --help`` lists them.
CONFIG_CLASSES = (TrainConfig, LoadConfig, ProcessConfig)


def option_fields(cls) -> list:
    """The fields of ``cls`` that are command-line (and ``args.txt``) options: those with help text
    and without ``metadata["cli"] = False``."""
    return [f for f in fields(cls) if f.metadata.get("cli", True) and "help" in f.metadata]


@dataclass(frozen=True)
class RunConfigs:
    """The options of one training run, as :func:`resolve_configs` chose them.

    Attributes:
        load, train, process: the configs.
        user_set: names of the options the user gave or the dataset's ``args.txt`` set.
        implied: training options the dataset's format chose (:func:`dataset_train_defaults`,
            only for options not in ``user_set``), already in ``train``.
        unknown: option names in ``args.txt`` that no config has (ignored).
    """

    load: LoadConfig
    train: TrainConfig
    process: ProcessConfig
    user_set: frozenset = frozenset()
    implied: Mapping[str, Any] = field(default_factory=dict)
    unknown: tuple[str, ...] = ()


def resolve_configs(dataset: "Scene | str | os.PathLike | DatasetSource",
                    cli_values: Mapping[str, Any] | None = None) -> RunConfigs:
    """The options of a training run on ``dataset``: defaults < its ``args.txt`` < ``cli_values``.

    Args:
        dataset: a loaded :class:`brushpy.data.Scene` (its ``args.txt`` is read from its source,
            and the options its format implies, :func:`dataset_train_defaults`, fill those neither
            ``args.txt`` nor ``cli_values`` set), or a dataset folder, ``.zip`` or
            :class:`~brushpy.data.DatasetSource` before loading (to get the ``LoadConfig`` to load
            it with; nothing is implied then).
        cli_values: the options the user gave explicitly, ``{name: value}`` (snake- or kebab-case
            names of fields of :data:`CONFIG_CLASSES`; values typed or text, text read as the
            field's type by :func:`brushpy.data.config.convert_option`); ``None`` values are skipped.

    Returns:
        :class:`RunConfigs`. ``train`` is validated (:meth:`TrainConfig.validate`).

    Raises:
        OptionError: an unknown name in ``cli_values``; a value that cannot be read or is out of
            range (names the flag, and ``args.txt`` when it came from there); also a malformed
            ``args.txt``.
    """
    source = dataset.source if isinstance(dataset, Scene) else (
        dataset if isinstance(dataset, DatasetSource) else DatasetSource(dataset))
    from_file = read_args_txt(source) if source is not None else {}  # (a Scene built by hand has no source)
    where = source.display_path(source.resolve(ARGS_FILE) or ARGS_FILE) if from_file else ARGS_FILE
    given = {k.lstrip("-").replace("-", "_"): v for k, v in (cli_values or {}).items() if v is not None}
    all_names = {f.name for cls in CONFIG_CLASSES for f in fields(cls)}
    bad = sorted(set(given) - all_names)
    if bad:
        raise OptionError("not an option of brushpy train: " + ", ".join("--" + b.replace("_", "-") for b in bad))
    configs, user_set = {}, set()
    for cls in CONFIG_CLASSES:
        values = {}
        for f in option_fields(cls):
            if f.name in from_file and f.name not in given:
                try:
                    values[f.name] = convert_option(cls, f.name, from_file[f.name])
                except OptionError as exc:
                    raise OptionError(f"{where}: {exc}") from None
        names = {f.name for f in fields(cls)}
        values.update({k: convert_option(cls, k, v) for k, v in given.items() if k in names})
        user_set |= set(values)
        configs[cls] = replace(cls(), **values) if values else cls()
    train, load, process = configs[TrainConfig], configs[LoadConfig], configs[ProcessConfig]
    implied = {}
    if isinstance(dataset, Scene):
        implied = {k: v for k, v in dataset_train_defaults(dataset).items() if k not in user_set}
        train = replace(train, **implied)
    try:
        train.validate()
    except OptionError as exc:
        from_args = [n for n in from_file if n not in given and f"--{n.replace('_', '-')} " in f"{exc} "]
        if from_args:
            raise OptionError(f"{where}: {exc}") from None
        raise
    unknown = tuple(sorted(set(from_file) - {f.name for cls in CONFIG_CLASSES for f in option_fields(cls)}))
    return RunConfigs(load, train, process, frozenset(user_set), implied, unknown)
