"""Float64 NumPy reference of the per-image affine colour transform (brushpy/train/exposure.py).

``out.rgb = A · rgb + b``, ``out.alpha = alpha``; ``P = [A | b]`` as a row of 12 (3x4 row-major).
The loss it is checked with is ``sum(out · v_out) + λ ‖P − [I | 0]‖²``.
"""

from __future__ import annotations

import numpy as np

IDENTITY = np.array([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0], np.float64)


def forward(image: np.ndarray, p: np.ndarray) -> np.ndarray:
    """[H, W, 4] image, P [12] -> [H, W, 4]."""
    m = np.asarray(p, np.float64).reshape(3, 4)
    x = np.asarray(image, np.float64)
    out = x.copy()
    out[..., :3] = x[..., :3] @ m[:, :3].T + m[:, 3]
    return out


def backward(image: np.ndarray, p: np.ndarray, v_out: np.ndarray, reg_weight: float = 0.0):
    """(v_image [H, W, 4], v_p [12]) of ``sum(forward(image, p) · v_out) + λ ‖P − [I|0]‖²``."""
    m = np.asarray(p, np.float64).reshape(3, 4)
    x = np.asarray(image, np.float64).reshape(-1, 4)
    v = np.asarray(v_out, np.float64).reshape(-1, 4)
    v_image = v.copy()
    v_image[:, :3] = v[:, :3] @ m[:, :3]
    v_p = np.zeros((3, 4))
    v_p[:, :3] = v[:, :3].T @ x[:, :3]
    v_p[:, 3] = v[:, :3].sum(axis=0)
    v_p = v_p.reshape(12) + 2.0 * reg_weight * (np.asarray(p, np.float64) - IDENTITY)
    return v_image.reshape(np.shape(image)), v_p
