"""Training and process options with Brush's names and defaults.

Each field's ``metadata["help"]`` is shown by ``brushpy train --help``; the CLI
flag is the field name in kebab case (``lr_mean`` -> ``--lr-mean``). The
defaults are Brush's except where ``docs/options.md`` (generated from these fields) says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def _opt(default, help: str, group: str | None = None, **kw):
    meta = {"help": help}
    if group:
        meta["group"] = group
    meta.update(kw)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Optimisation options (learning rates, refine schedule, loss weights)."""

    total_steps: int = _opt(30000, "Steps to train.")
    render_mode: str = _opt("default", "`default` or `mip` (2D filter 0.1 with opacity compensation).", choices=("default", "mip"))
    min_scale_factor: float = _opt(0.1, "3D filter (Mip-Splatting): per-splat scale floor √factor · min over training views of "
                                        "depth / focal, rendered in training and folded into exports; 0 disables.",
                                    brush_flag=False, brush_default=0.1)
    # Learning rates: measured on the 100x100 lego subset (300 steps, focus-box init, same seed),
    # Brush's 2e-5 / 2e-3 / 0.012 / 5e-3 (means / SH band 0 / opacity / scales) reached 19.2 dB eval
    # PSNR; 2e-4 / 5e-3 / 0.05 / 1e-2 reached 22.9 dB (opacity + colour alone: 21.8 dB). Brush trains
    # 30k steps from SfM points; at 7k steps from a random init its rates leave opacities and colours
    # far from converged (an opacity logit moves ~0.012 per step: ~500 steps from 0.1 to 0.99).
    # The new values are INRIA 3DGS's order of magnitude (opacity 0.05, means 1.6e-4 x a ~2x larger
    # extent, scales 5e-3, colour 2.5e-3).
    lr_mean: float = _opt(2e-4, "Start learning rate of the means, multiplied by the scene extent.", brush_default=2e-5)
    lr_mean_end: float = _opt(2e-6, "End learning rate of the means (exponential decay over training).", brush_default=2e-7)
    mean_noise_weight: float = _opt(50.0, "Noise on low-opacity splats: N(0,1)·(1−σ(o))^150·visible·lr_mean·weight.")
    lr_coeffs_dc: float = _opt(5e-3, "Learning rate of SH band 0.", brush_default=2e-3)
    lr_coeffs_sh_scale: float = _opt(10.0, "Higher SH bands use lr_coeffs_dc divided by this.")
    lr_opac: float = _opt(0.05, "Learning rate of the opacity logits.", brush_default=0.012)
    lr_scale: float = _opt(1e-2, "Learning rate of the log scales.", brush_default=5e-3)
    lr_rotation: float = _opt(2e-3, "Learning rate of the quaternions.")
    max_splats: int = _opt(10_000_000, "Upper bound on the number of splats.")
    refine_every: int = _opt(200, "Refine period in steps.")
    growth_grad_threshold: float = _opt(0.0025, "Growth threshold on the accumulated screen-space gradient statistic.")
    growth_select_fraction: float = _opt(0.25, "Fraction of growth candidates that grow.")
    growth_stop_iter: int = _opt(15000, "No growth after this step.")
    split_at_screen_size: float = _opt(0.5, "Force-split splats larger than this fraction of the image; 0 disables.")
    ssim_weight: float = _opt(0.2, "Loss = (1−w)·L1 + w·(1−SSIM).")
    opac_decay: float = _opt(0.004, "Opacity decay per refine, fading to 0 at the end.")
    match_alpha_weight: float = _opt(0.1, "Weight of the L1 loss on alpha when the input has transparency.")
    background_color: tuple = _opt((0.0, 0.0, 0.0), "Training background colour R,G,B in [0,1].")
    background_noise_strength: float = _opt(0.1, "Uniform noise added to the background each step.")
    sh_degree: int = _opt(3, "Spherical-harmonic degree, 0..4 (all bands trained from step 0).")
    random_init_scene_scale: float | None = _opt(None, "Scene scale for random init (default: 3 × mean nearest-camera distance, min 1).")

    def validate(self) -> None:
        """Raise ``ValueError`` naming the option when a value is out of range."""
        checks = [
            (self.total_steps >= 1, "--total-steps must be ≥ 1"),
            (self.refine_every >= 1, "--refine-every must be ≥ 1"),
            (0 <= self.sh_degree <= 4, "--sh-degree must be in 0..4"),
            (0.0 <= self.ssim_weight <= 1.0, "--ssim-weight must be in [0, 1]"),
            (0.0 < self.growth_select_fraction <= 1.0, "--growth-select-fraction must be in (0, 1]"),
            (self.max_splats >= 1, "--max-splats must be ≥ 1"),
            (self.render_mode in ("default", "mip"), "--render-mode must be `default` or `mip`"),
            (self.min_scale_factor >= 0.0, "--min-scale-factor must be ≥ 0 (0 disables the 3D filter)"),
            (len(self.background_color) == 3, "--background-color takes three values R,G,B"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)


@dataclass
class ProcessConfig:
    """Run options: seed, evaluation and export."""

    seed: int = _opt(42, "Random seed.")
    eval_every: int = _opt(1000, "Evaluate PSNR/SSIM on the eval split every this many steps.")
    eval_save_to_disk: bool = _opt(False, "Save evaluation renders as PNG.")
    export_every: int = _opt(5000, "Write a PLY every this many steps.")
    export_path: str = _opt("./{dataset}_exports/", "Folder for exports ({dataset} = dataset name).")
    export_name: str = _opt("export_{iter}.ply", "Export file name ({iter} = step).")


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
