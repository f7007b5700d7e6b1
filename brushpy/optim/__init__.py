"""GPU-resident Adam with Brush's per-group learning rates and refine/checkpoint support."""

from .adam import Adam, AdamConfig, exponential_schedule, mean_lr

__all__ = ["Adam", "AdamConfig", "exponential_schedule", "mean_lr"]
