"""Float64 NumPy reference of the image loss and metrics (brushpy.loss).

SSIM as in 3DGS/gsplat: 11-tap Gaussian window (σ 1.5), separable, zero padding
("same" size), per channel, C1 = 0.01², C2 = 0.03². The backward is written out
by hand (the adjoint of a zero-padded symmetric blur is the same blur) and is
itself checked against finite differences in tests/test_loss.py.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import correlate1d

C1 = 0.01**2
C2 = 0.03**2


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def blur(a: np.ndarray) -> np.ndarray:
    """Separable Gaussian blur over axes 0 and 1 of [H, W, ...], zero padding."""
    g = gaussian_window()
    a = correlate1d(np.asarray(a, np.float64), g, axis=0, mode="constant", cval=0.0)
    return correlate1d(a, g, axis=1, mode="constant", cval=0.0)


def ssim_map(x: np.ndarray, y: np.ndarray):
    """SSIM map [H, W, C] of two [H, W, C] images plus the intermediates for the backward."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    mx, my = blur(x), blur(y)
    exx, eyy, exy = blur(x * x), blur(y * y), blur(x * y)
    a = 2 * mx * my + C1
    b = 2 * (exy - mx * my) + C2
    c = mx * mx + my * my + C1
    d = (exx - mx * mx) + (eyy - my * my) + C2
    s = a * b / (c * d)
    return s, (mx, my, a, b, c, d)


def ssim_backward(x, y, v_s):
    """d/dx of sum(v_s * ssim_map(x, y)) for [H, W, C] images."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    s, (mx, my, a, b, c, d) = ssim_map(x, y)
    # quotient rule on s = a b / (c d), written with s/a = b/(c d) and s/b = a/(c d) so that
    # only c and d divide (b = 2 s_xy + C2 can be 0; shaders/loss_ssim.wgsl has the same form)
    d_mx = v_s * (2 * my * (b - a) / (c * d) + 2 * mx * s * (1 / d - 1 / c))
    d_exx = v_s * (-s / d)
    d_exy = v_s * (2 * a / (c * d))
    return blur(d_mx) + 2 * x * blur(d_exx) + y * blur(d_exy)


def ssim(x, y) -> float:
    """Mean SSIM over pixels and channels."""
    return float(ssim_map(x, y)[0].mean())


def psnr(x, y) -> float:
    """PSNR in dB for images in [0, 1]: -10 log10(mean squared error over pixels and channels)."""
    mse = np.mean((np.asarray(x, np.float64) - np.asarray(y, np.float64)) ** 2)
    return float("inf") if mse == 0 else float(-10 * np.log10(mse))


def unpack_rgba8(packed: np.ndarray) -> np.ndarray:
    """u32 [H, W] (r in the low byte) -> float64 [H, W, 4] in [0, 1]."""
    return np.ascontiguousarray(packed, np.uint32).view(np.uint8).reshape(packed.shape + (4,)) / 255.0


def target(gt, background, alpha_mode: str, premultiplied: bool = False) -> np.ndarray:
    """Ground truth [H, W, 4] as the loss sees it (rgb composited in transparent mode)."""
    gt = np.asarray(gt, np.float64)
    if gt.shape[2] == 3:
        gt = np.concatenate([gt, np.ones(gt.shape[:2] + (1,))], axis=2)
    out = gt.copy()
    if alpha_mode == "transparent":
        a = gt[..., 3:4]
        rgb = gt[..., :3] if premultiplied else gt[..., :3] * a
        out[..., :3] = rgb + (1 - a) * np.asarray(background, np.float64)
    return out


def image_loss(image, gt, *, ssim_weight=0.2, match_alpha_weight=0.1, background=(0, 0, 0),
               alpha_mode="opaque", mask=None, premultiplied=False):
    """(loss, v_image) of brushpy.loss.ImageLoss in float64.

    image: [H, W, 4] render; gt: [H, W, 3|4] float in [0, 1] (straight alpha unless premultiplied).
    """
    x = np.asarray(image, np.float64)
    t = target(gt, background, alpha_mode, premultiplied)
    h, w = x.shape[:2]
    w_s = ssim_weight
    if alpha_mode == "masked":
        m = (np.asarray(mask, np.float64) if mask is not None else t[..., 3]).reshape(h, w, 1)
    else:
        m = np.ones((h, w, 1))
    xr, yr = x[..., :3], t[..., :3]
    s, _ = ssim_map(xr, yr)
    n = 3.0 * h * w
    e = (1 - w_s) * np.abs(xr - yr) + w_s * (1 - s)
    loss = float((m * e).sum() / n)
    v = np.zeros_like(x)
    v[..., :3] = (1 - w_s) * m * np.sign(xr - yr) / n + ssim_backward(xr, yr, -w_s * m / n * np.ones_like(xr))
    if alpha_mode == "transparent":
        da = x[..., 3] - t[..., 3]
        loss += match_alpha_weight * float(np.abs(da).mean())
        v[..., 3] = match_alpha_weight * np.sign(da) / (h * w)
    return loss, v
