"""Training loss (fused L1 + SSIM, forward and backward) and image metrics on the GPU."""

from .image_loss import (
    ALPHA_MODES,
    ImageLoss,
    ImageLossOp,
    gaussian_window,
    l1_ssim_loss,
    noisy_background,
    pack_rgba8,
)
from .metrics import ImageMetrics, evaluate, psnr, ssim

__all__ = [
    "ALPHA_MODES",
    "ImageLoss",
    "ImageLossOp",
    "ImageMetrics",
    "evaluate",
    "gaussian_window",
    "l1_ssim_loss",
    "noisy_background",
    "pack_rgba8",
    "psnr",
    "ssim",
]
