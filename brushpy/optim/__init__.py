"""GPU-resident Adam with Brush's per-group learning rates and refine/checkpoint support."""

from .adam import PARAM_GROUPS, Adam, AdamConfig, mean_lr

__all__ = ["PARAM_GROUPS", "Adam", "AdamConfig", "mean_lr"]
