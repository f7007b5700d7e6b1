"""Float64 NumPy reference of the inverse-depth L1 loss (brushpy.loss.depth_loss).

    valid = gt > 0 (and alpha >= alpha_min when alpha is given)
    L     = w / N · Σ_valid |1/max(d, eps) − 1/gt|,   N = #valid (L = 0 when N = 0)
    dL/dd = w / N · sign(1/d − 1/gt) · (−1/d²) where d > eps, else 0
"""

from __future__ import annotations

import numpy as np


def depth_loss(depth, gt, *, weight=1.0, eps=1e-3, alpha=None, alpha_min=0.5):
    """(loss, dL/d depth [H, W], valid count) in float64."""
    d = np.asarray(depth, np.float64)
    g = np.asarray(gt, np.float64)
    valid = np.isfinite(g) & (g > 0)
    if alpha is not None:
        valid &= np.asarray(alpha, np.float64) >= alpha_min
    n = int(valid.sum())
    grad = np.zeros_like(d)
    if n == 0:
        return 0.0, grad, 0
    above = d > eps
    inv_d = np.where(above, 1.0 / np.where(above, d, 1.0), 1.0 / eps)
    inv_g = 1.0 / np.where(valid, g, 1.0)
    diff = inv_d - inv_g
    loss = weight / n * np.abs(diff)[valid].sum()
    dinv = np.where(above, -1.0 / np.where(above, d, 1.0) ** 2, 0.0)
    grad[valid] = (weight / n * np.sign(diff) * dinv)[valid]
    return float(loss), grad, n
