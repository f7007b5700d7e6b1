"""Training losses (fused L1 + SSIM; inverse-depth L1), forward and backward, and image metrics on the GPU."""

from .depth_loss import DEPTH_EPS, DepthLoss, DepthLossOp, DepthTargets, gt_depth_tensor, sanitize_depth
from .image_loss import (
    ALPHA_MODES,
    ImageLoss,
    ImageLossOp,
    gaussian_window,
    l1_ssim_loss,
    noisy_background,
    pack_rgba8,
)
from .metrics import ImageMetrics, depth_abs_rel, evaluate, psnr, ssim

__all__ = [
    "ALPHA_MODES",
    "DEPTH_EPS",
    "DepthLoss",
    "DepthLossOp",
    "DepthTargets",
    "depth_abs_rel",
    "ImageLoss",
    "ImageLossOp",
    "ImageMetrics",
    "evaluate",
    "gaussian_window",
    "gt_depth_tensor",
    "l1_ssim_loss",
    "noisy_background",
    "pack_rgba8",
    "psnr",
    "sanitize_depth",
    "ssim",
]
