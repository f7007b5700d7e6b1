"""Float64 NumPy reference of brushpy.optim.Adam (same rules, see its module docstring)."""

from __future__ import annotations

import numpy as np


def mean_lr(step, total_steps, lr_start, lr_end, extent):
    s = min(max(step, 0), total_steps)
    return extent * lr_start * np.exp(np.log(lr_end / lr_start) * s / total_steps)


def group_lrs(name, shape, lrs):
    """Per-element learning rates [shape] for a parameter group."""
    lr = np.full(shape, lrs[name], np.float64)
    if name == "sh_coeffs":
        lr[:, 1:, :] = lrs["sh_coeffs_rest"]
    return lr


class AdamRef:
    def __init__(self, beta1=0.9, beta2=0.999, eps=1e-15, shared_sh=False):
        self.b1, self.b2, self.eps, self.shared_sh = beta1, beta2, eps, shared_sh
        self.t = 0
        self.m: dict[str, np.ndarray] = {}
        self.v: dict[str, np.ndarray] = {}

    def step(self, params: dict, grads: dict, lrs: dict) -> None:
        """Update float64 ``params`` in place."""
        self.t += 1
        bc1 = 1 - self.b1**self.t
        bc2 = 1 - self.b2**self.t
        for name, p in params.items():
            g = np.asarray(grads[name], np.float64)
            shared = self.shared_sh and name == "sh_coeffs"
            m = self.m.get(name, np.zeros_like(p))
            m = self.b1 * m + (1 - self.b1) * g
            if shared:
                v = self.v.get(name, np.zeros(p.shape[0]))
                v = self.b2 * v + (1 - self.b2) * (g * g).reshape(p.shape[0], -1).mean(axis=1)
                v_b = v.reshape((-1,) + (1,) * (p.ndim - 1))
            else:
                v = self.v.get(name, np.zeros_like(p))
                v = self.b2 * v + (1 - self.b2) * g * g
                v_b = v
            self.m[name], self.v[name] = m, v
            p -= group_lrs(name, p.shape, lrs) * (m / bc1) / (np.sqrt(v_b / bc2) + self.eps)
