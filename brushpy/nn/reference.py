"""Plain float64 NumPy references of the network layers: forward and vector-Jacobian products.

Each GPU op of :mod:`brushpy.nn` has its reference here, written for clarity rather than speed;
the tests compare the WGSL kernels with them and check every VJP here against central finite
differences. Conventions (shared with the kernels):

* Tensors are NCHW (``[B, C, H, W]``), row-major; conv weights ``[C_out, C_in, K, K]``
  (PyTorch's ``nn.Conv2d`` layout), zero padding ``K // 2``.
* ``*_vjp(..., g)`` return the gradients of ``sum(g * forward(...))`` with respect to the inputs.
"""

from __future__ import annotations

import math

import numpy as np

#: GELU's tanh form constant sqrt(2 / pi) (Hendrycks & Gimpel 2016, eq. in section 2)
GELU_C = math.sqrt(2.0 / math.pi)
#: the cubic coefficient of GELU's tanh form
GELU_A = 0.044715
#: GroupNorm's default epsilon (PyTorch ``nn.GroupNorm``)
GROUP_NORM_EPS = 1e-5
#: smallest source-camera depth a plane-sweep sample may have (nearer or behind: invalid)
WARP_Z_MIN = 1e-6


def _f64(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


# -- conv2d ------------------------------------------------------------------------------

def conv_out_size(n: int, k: int, stride: int) -> int:
    """Output length of a conv with zero padding ``k // 2`` (PyTorch's floor rule)."""
    p = k // 2
    return (n + 2 * p - k) // stride + 1


def _conv_patches(xp, k, stride, ho, wo):
    """``{(ky, kx): xp[:, :, ky + s·oy, kx + s·ox]}`` [B, C, Ho, Wo] slices of a padded input."""
    out = {}
    for ky in range(k):
        for kx in range(k):
            out[ky, kx] = xp[:, :, ky:ky + stride * (ho - 1) + 1:stride, kx:kx + stride * (wo - 1) + 1:stride]
    return out


def conv2d(x, weight, bias, stride: int = 1) -> np.ndarray:
    """``y[b,o,i,j] = bias[o] + Σ_{c,ky,kx} w[o,c,ky,kx] · x_pad[b, c, s·i + ky, s·j + kx]``.

    Args:
        x: [B, C_in, H, W]; weight: [C_out, C_in, K, K] (K odd); bias: [C_out]; stride: s.

    Returns:
        [B, C_out, Ho, Wo] with ``Ho = (H + 2·(K//2) - K) // s + 1``.
    """
    x, w, b = _f64(x), _f64(weight), _f64(bias)
    k = w.shape[2]
    p = k // 2
    ho, wo = conv_out_size(x.shape[2], k, stride), conv_out_size(x.shape[3], k, stride)
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    y = np.zeros((x.shape[0], w.shape[0], ho, wo))
    for (ky, kx), patch in _conv_patches(xp, k, stride, ho, wo).items():
        y += np.einsum("bchw,oc->bohw", patch, w[:, :, ky, kx])
    return y + b[None, :, None, None]


def conv2d_vjp(x, weight, stride: int, g) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients ``(dx, dweight, dbias)`` of ``sum(g · conv2d(x, weight, bias, stride))``."""
    x, w, g = _f64(x), _f64(weight), _f64(g)
    k = w.shape[2]
    p = k // 2
    ho, wo = g.shape[2], g.shape[3]
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    gxp = np.zeros_like(xp)
    gw = np.zeros_like(w)
    for (ky, kx), patch in _conv_patches(xp, k, stride, ho, wo).items():
        gw[:, :, ky, kx] = np.einsum("bohw,bchw->oc", g, patch)
        gxp[:, :, ky:ky + stride * (ho - 1) + 1:stride, kx:kx + stride * (wo - 1) + 1:stride] += \
            np.einsum("bohw,oc->bchw", g, w[:, :, ky, kx])
    gx = gxp[:, :, p:p + x.shape[2], p:p + x.shape[3]]
    return gx, gw, g.sum(axis=(0, 2, 3))


# -- activations ---------------------------------------------------------------------------

def relu(x) -> np.ndarray:
    return np.maximum(_f64(x), 0.0)


def relu_vjp(x, g) -> np.ndarray:
    """``g · [x > 0]`` (derivative 0 at 0, as PyTorch)."""
    return _f64(g) * (_f64(x) > 0)


def gelu(x) -> np.ndarray:
    """GELU, tanh form: ``0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`` (Hendrycks & Gimpel 2016;
    PyTorch's ``gelu(approximate="tanh")``)."""
    x = _f64(x)
    return 0.5 * x * (1.0 + np.tanh(GELU_C * (x + GELU_A * x**3)))


def gelu_vjp(x, g) -> np.ndarray:
    x = _f64(x)
    t = np.tanh(GELU_C * (x + GELU_A * x**3))
    d = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * GELU_A * x * x)
    return _f64(g) * d


# -- bilinear up-sampling -------------------------------------------------------------------

def upsample_matrix(n: int, factor: int) -> np.ndarray:
    """[n·factor, n] bilinear interpolation along one axis, ``align_corners=False`` (PyTorch):
    output ``o`` samples ``src = max((o + 0.5) / factor - 0.5, 0)`` between ``floor(src)`` and
    ``min(floor(src) + 1, n - 1)``."""
    a = np.zeros((n * factor, n))
    for o in range(n * factor):
        src = max((o + 0.5) / factor - 0.5, 0.0)
        i0 = int(math.floor(src))
        i1 = min(i0 + 1, n - 1)
        lam = src - i0
        a[o, i0] += 1.0 - lam
        a[o, i1] += lam
    return a


def upsample_bilinear(x, factor: int) -> np.ndarray:
    """[B, C, H, W] -> [B, C, H·f, W·f] (``F.interpolate(mode="bilinear", align_corners=False)``)."""
    x = _f64(x)
    ay, ax = upsample_matrix(x.shape[2], factor), upsample_matrix(x.shape[3], factor)
    return np.einsum("oh,bchw,pw->bcop", ay, x, ax)


def upsample_bilinear_vjp(shape, factor: int, g) -> np.ndarray:
    ay, ax = upsample_matrix(shape[2], factor), upsample_matrix(shape[3], factor)
    return np.einsum("oh,bcop,pw->bchw", ay, _f64(g), ax)


# -- concat ---------------------------------------------------------------------------------

def concat_channels(xs) -> np.ndarray:
    return np.concatenate([_f64(x) for x in xs], axis=1)


def concat_channels_vjp(channels, g) -> list[np.ndarray]:
    """Splits ``g`` [B, ΣC, H, W] back into the inputs' channel counts."""
    g = _f64(g)
    return np.split(g, np.cumsum(channels)[:-1], axis=1)


# -- group normalisation --------------------------------------------------------------------

def group_norm(x, groups: int, gamma, beta, eps: float = GROUP_NORM_EPS) -> np.ndarray:
    """Group normalisation (Wu & He 2018; PyTorch ``nn.GroupNorm``): per sample and group of
    ``C / groups`` channels, ``(x - mean) / sqrt(var + eps)`` with the biased variance over the
    group's channels and pixels, then ``γ[c]·x̂ + β[c]``."""
    x = _f64(x)
    b, c, h, w = x.shape
    xg = x.reshape(b, groups, -1)
    mean = xg.mean(-1, keepdims=True)
    var = ((xg - mean) ** 2).mean(-1, keepdims=True)
    xhat = ((xg - mean) / np.sqrt(var + eps)).reshape(x.shape)
    return xhat * _f64(gamma)[None, :, None, None] + _f64(beta)[None, :, None, None]


def group_norm_vjp(x, groups: int, gamma, g, eps: float = GROUP_NORM_EPS):
    """``(dx, dgamma, dbeta)``: with ``d = g·γ`` per group,
    ``dx = rstd·(d - mean(d) - x̂·mean(d·x̂))``, ``dγ = Σ g·x̂``, ``dβ = Σ g``."""
    x, g = _f64(x), _f64(g)
    b, c, h, w = x.shape
    xg = x.reshape(b, groups, -1)
    mean = xg.mean(-1, keepdims=True)
    rstd = 1.0 / np.sqrt(((xg - mean) ** 2).mean(-1, keepdims=True) + eps)
    xhat = (xg - mean) * rstd
    d = (g * _f64(gamma)[None, :, None, None]).reshape(b, groups, -1)
    dx = rstd * (d - d.mean(-1, keepdims=True) - xhat * (d * xhat).mean(-1, keepdims=True))
    xhat = xhat.reshape(x.shape)
    return dx.reshape(x.shape), (g * xhat).sum(axis=(0, 2, 3)), g.sum(axis=(0, 2, 3))


# -- softmax over depth candidates ------------------------------------------------------------

def softmax_depth(x) -> np.ndarray:
    """Softmax over axis 1 of [B, D, H, W] (the depth candidates of each pixel)."""
    x = _f64(x)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_depth_vjp(y, g) -> np.ndarray:
    """``y · (g - Σ_d g·y)`` from the softmax output ``y``."""
    y, g = _f64(y), _f64(g)
    return y * (g - (g * y).sum(axis=1, keepdims=True))


# -- MSE ---------------------------------------------------------------------------------------

def mse(x, target) -> tuple[float, np.ndarray]:
    """``(mean((x - t)²), d/dx = 2·(x - t) / N)``."""
    d = _f64(x) - _f64(target)
    return float((d * d).mean()), 2.0 * d / d.size


# -- plane-sweep warp ----------------------------------------------------------------------------

def plane_sweep_samples(ref_size, k_ref, w2c_ref, k_src, w2c_src, depths):
    """Where each reference pixel at each depth plane lands in the source view.

    A reference pixel ``(x, y)`` (centre ``(x + 0.5, y + 0.5)``, OpenCV axes) at plane depth
    ``d`` (camera-space z of the reference camera) is the point ``d·K_ref⁻¹·[x+.5, y+.5, 1]``;
    it is moved to the source camera by ``w2c_src · w2c_ref⁻¹`` and projected with ``K_src``.

    Args:
        ref_size: (H, W) of the reference feature map; k_ref, k_src: 3x3 intrinsics at the
            feature resolution (pixels); w2c_ref, w2c_src: 4x4 world-to-camera; depths: [D] > 0.

    Returns:
        ``(u, v, z)``, each [D, H, W]: the source pixel coordinates (continuous, pixel centres
        at +0.5) and the source-camera depth.
    """
    h, w = ref_size
    depths = _f64(depths)
    rel = _f64(w2c_src) @ np.linalg.inv(_f64(w2c_ref))
    m = rel[:3, :3] @ np.linalg.inv(_f64(k_ref))
    t = rel[:3, 3]
    ys, xs = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
    pix = np.stack([xs, ys, np.ones_like(xs)], axis=-1)  # [H, W, 3]
    ray = pix @ m.T  # [H, W, 3]
    p = depths[:, None, None, None] * ray[None] + t  # [D, H, W, 3]
    k = _f64(k_src)
    z = p[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = k[0, 0] * p[..., 0] / z + k[0, 2]
        v = k[1, 1] * p[..., 1] / z + k[1, 2]
    return u, v, z


def plane_sweep_warp(feat, k_ref, w2c_ref, k_src, w2c_src, depths, ref_size=None):
    """Source features sampled at every reference pixel and depth plane.

    Bilinear sampling at ``(u - 0.5, v - 0.5)`` in index space with zero padding (a tap outside
    the source contributes 0, as ``grid_sample(padding_mode="zeros", align_corners=False)``).
    A sample is valid when ``z > WARP_Z_MIN`` and ``0 ≤ u ≤ w_src``, ``0 ≤ v ≤ h_src`` (the
    point projects inside the source image); invalid samples are 0.

    Args:
        feat: [C, h_src, w_src] source features; ref_size: (H, W), default the source's.

    Returns:
        ``(warped [C, D, H, W], mask [D, H, W])`` (mask 1.0 valid, 0.0 invalid).
    """
    feat = _f64(feat)
    c, hs, ws = feat.shape
    ref_size = ref_size or (hs, ws)
    u, v, z = plane_sweep_samples(ref_size, k_ref, w2c_ref, k_src, w2c_src, depths)
    taps, mask = _bilinear_taps(u, v, z, hs, ws)
    out = np.zeros((c,) + u.shape)
    for yi, xi, wt in taps:
        inside = (yi >= 0) & (yi < hs) & (xi >= 0) & (xi < ws) & (mask > 0)
        val = feat[:, np.clip(yi, 0, hs - 1), np.clip(xi, 0, ws - 1)]
        out += np.where(inside, wt, 0.0) * val
    return out, mask


def plane_sweep_warp_vjp(feat_shape, k_ref, w2c_ref, k_src, w2c_src, depths, g, ref_size=None):
    """Gradient of ``sum(g · warped)`` with respect to the source features [C, h_src, w_src]."""
    c, hs, ws = feat_shape
    ref_size = ref_size or (hs, ws)
    g = _f64(g)
    u, v, z = plane_sweep_samples(ref_size, k_ref, w2c_ref, k_src, w2c_src, depths)
    taps, mask = _bilinear_taps(u, v, z, hs, ws)
    out = np.zeros((c, hs * ws))
    for yi, xi, wt in taps:
        inside = (yi >= 0) & (yi < hs) & (xi >= 0) & (xi < ws) & (mask > 0)
        idx = (yi * ws + xi)[inside]
        contrib = (g * wt)[:, inside]
        for ch in range(c):
            np.add.at(out[ch], idx, contrib[ch])
    return out.reshape(c, hs, ws)


def _bilinear_taps(u, v, z, hs, ws):
    ok = np.isfinite(u) & np.isfinite(v) & (z > WARP_Z_MIN)
    mask = ok & (u >= 0) & (u <= ws) & (v >= 0) & (v <= hs)
    sx = np.where(mask, u - 0.5, 0.0)
    sy = np.where(mask, v - 0.5, 0.0)
    x0, y0 = np.floor(sx), np.floor(sy)
    fx, fy = sx - x0, sy - y0
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    taps = [(y0, x0, (1 - fy) * (1 - fx)), (y0, x0 + 1, (1 - fy) * fx),
            (y0 + 1, x0, fy * (1 - fx)), (y0 + 1, x0 + 1, fy * fx)]
    return taps, mask.astype(np.float64)


# -- correlation cost volume -----------------------------------------------------------------

def correlation(ref, warped) -> np.ndarray:
    """``[D, H, W]``: ``Σ_c ref[c] · warped[c, d] / C`` (ref [C, H, W], warped [C, D, H, W])."""
    ref, warped = _f64(ref), _f64(warped)
    return np.einsum("chw,cdhw->dhw", ref, warped) / ref.shape[0]


def correlation_vjp(ref, warped, g) -> tuple[np.ndarray, np.ndarray]:
    """Gradients (of ref, of warped) of ``sum(g · correlation(ref, warped))``."""
    ref, warped, g = _f64(ref), _f64(warped), _f64(g)
    c = ref.shape[0]
    return np.einsum("dhw,cdhw->chw", g, warped) / c, np.einsum("dhw,chw->cdhw", g, ref) / c
