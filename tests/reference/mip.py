"""Float64 NumPy reference of the soft-MIP renderer (forward and VJP).

Model (see :mod:`brushpy.mip.render` for the full convention):

- Gaussian k: mean ``u_k`` in the volume's normalised box [0,1]^3, covariance
  ``Σ_k = R(q_k) diag(exp(2·log_scales_k)) R(q_k)ᵀ`` (box units), amplitude
  ``a_k = exp(log_amplitudes_k)``.
- Camera: box -> camera coordinates ``c = M u + t``; orthographic pixels
  ``(fx·c_x + cx, fy·c_y + cy)`` or perspective ``(fx·c_x/c_z + cx, fy·c_y/c_z + cy)``.
- 2D covariance ``J M Σ Mᵀ Jᵀ + 0.3·I`` (pixels²), conic ``Q`` = its inverse.
- Contribution at pixel centre ``x`` (pixel j,i has centre j+0.5, i+0.5):
  ``c_k = a_k·exp(-σ_k)``, ``σ_k = ½ dᵀ Q d``, ``d = mean2d - x``; dropped when
  ``c_k < 1/255`` (``σ_k > log(255·a_k)``).
- Soft maximum: the p-norm ``out = (Σ_k c_k^p)^(1/p)``, ``p = 1/temperature``,
  evaluated as ``exp(M + log(Σ exp(p·(l_k - M)))/p)`` with ``l_k = log c_k`` and
  ``M = max l_k``; 0 where no Gaussian contributes. ``p -> ∞`` gives the hard max.
"""

from __future__ import annotations

import numpy as np

BLUR = 0.3
LOG255 = float(np.log(255.0))


def quat_to_rotmat(q):
    """Rotation matrices [K,3,3] of (w,x,y,z) quaternions [K,4] (normalised first)."""
    q = np.asarray(q, np.float64)
    n = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = n[..., 0], n[..., 1], n[..., 2], n[..., 3]
    r = np.empty(q.shape[:-1] + (3, 3))
    r[..., 0, 0] = 1 - 2 * (y * y + z * z)
    r[..., 0, 1] = 2 * (x * y - w * z)
    r[..., 0, 2] = 2 * (x * z + w * y)
    r[..., 1, 0] = 2 * (x * y + w * z)
    r[..., 1, 1] = 1 - 2 * (x * x + z * z)
    r[..., 1, 2] = 2 * (y * z - w * x)
    r[..., 2, 0] = 2 * (x * z - w * y)
    r[..., 2, 1] = 2 * (y * z + w * x)
    r[..., 2, 2] = 1 - 2 * (x * x + y * y)
    return r


def project(means, log_scales, rotations, log_amplitudes, cam):
    """Per Gaussian: (mean2d [K,2], conic [K,3] (A,B,C), log_a [K], valid [K] bool, aux dict).

    ``cam``: dict with ``M`` [3,3], ``t`` [3], ``fx, fy, cx, cy``, ``orthographic``.
    """
    u = np.asarray(means, np.float64)
    M = np.asarray(cam["M"], np.float64)
    t = np.asarray(cam["t"], np.float64)
    fx, fy, cx, cy = (float(cam[k]) for k in ("fx", "fy", "cx", "cy"))
    c = u @ M.T + t
    K = len(u)
    J = np.zeros((K, 2, 3))
    if cam["orthographic"]:
        z = np.ones(K)
        J[:, 0, 0], J[:, 1, 1] = fx, fy
        mean2d = np.stack([fx * c[:, 0] + cx, fy * c[:, 1] + cy], -1)
    else:
        z = c[:, 2]
        zs = np.where(np.abs(z) < 1e-12, 1e-12, z)
        J[:, 0, 0] = fx / zs
        J[:, 0, 2] = -fx * c[:, 0] / zs**2
        J[:, 1, 1] = fy / zs
        J[:, 1, 2] = -fy * c[:, 1] / zs**2
        mean2d = np.stack([fx * c[:, 0] / zs + cx, fy * c[:, 1] / zs + cy], -1)
    R = quat_to_rotmat(rotations)
    s = np.exp(np.asarray(log_scales, np.float64))
    L = R * s[:, None, :]
    sigma3 = L @ np.swapaxes(L, 1, 2)
    sig_c = M @ sigma3 @ M.T
    sig2 = J @ sig_c @ np.swapaxes(J, 1, 2) + BLUR * np.eye(2)
    det = sig2[:, 0, 0] * sig2[:, 1, 1] - sig2[:, 0, 1] ** 2
    la = np.asarray(log_amplitudes, np.float64)
    valid = (det > 0) & (la + LOG255 > 0) & (z >= 0.01 if not cam["orthographic"] else True)
    dets = np.where(det > 0, det, 1.0)
    conic = np.stack([sig2[:, 1, 1] / dets, -sig2[:, 0, 1] / dets, sig2[:, 0, 0] / dets], -1)
    aux = dict(c=c, J=J, R=R, s=s, L=L, sig_c=sig_c, sig2=sig2, z=z)
    return mean2d, conic, la, valid, aux


def _pixel_terms(mean2d, conic, la, valid, width, height):
    jj, ii = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    dx = mean2d[:, 0, None, None] - jj[None]
    dy = mean2d[:, 1, None, None] - ii[None]
    A, B, C = conic[:, 0, None, None], conic[:, 1, None, None], conic[:, 2, None, None]
    sig = 0.5 * A * dx * dx + B * dx * dy + 0.5 * C * dy * dy
    use = valid[:, None, None] & (sig >= 0) & (sig <= la[:, None, None] + LOG255)
    l = la[:, None, None] - sig
    return dx, dy, sig, use, l


def rasterize(mean2d, conic, la, valid, width, height, power):
    """Soft-MIP image [H,W] (float64) and the per-pixel (M, log S) of the log-sum-exp."""
    _, _, _, use, l = _pixel_terms(mean2d, conic, la, valid, width, height)
    lm = np.where(use, l, -np.inf)
    M = lm.max(axis=0) if len(lm) else np.full((height, width), -np.inf)
    any_ = np.isfinite(M)
    Ms = np.where(any_, M, 0.0)
    S = np.where(use, np.exp(power * np.where(use, l - Ms[None], 0.0)), 0.0).sum(axis=0) if len(lm) else np.zeros((height, width))
    logS = np.log(np.where(any_, S, 1.0))
    out = np.where(any_, np.exp(Ms + logS / power), 0.0)
    return out, Ms, logS


def render(means, log_scales, rotations, log_amplitudes, cam, width, height, power):
    """Soft-MIP render [H,W] float64 of one view."""
    m2, con, la, valid, _ = project(means, log_scales, rotations, log_amplitudes, cam)
    return rasterize(m2, con, la, valid, width, height, power)[0]


def hard_mip(means, log_scales, rotations, log_amplitudes, cam, width, height):
    """The hard maximum of the contributions (the p -> ∞ limit), [H,W] float64."""
    m2, con, la, valid, _ = project(means, log_scales, rotations, log_amplitudes, cam)
    _, _, _, use, l = _pixel_terms(m2, con, la, valid, width, height)
    c = np.where(use, np.exp(l), 0.0)
    return c.max(axis=0) if len(c) else np.zeros((height, width))


def rasterize_vjp(mean2d, conic, la, valid, width, height, power, v_out):
    """Gradients (v_mean2d [K,2], v_conic [K,3] (A,B,C), v_log_a [K]) of ``Σ v_out·out``."""
    out, M, logS = rasterize(mean2d, conic, la, valid, width, height, power)
    dx, dy, sig, use, l = _pixel_terms(mean2d, conic, la, valid, width, height)
    w = np.where(use, np.exp(np.where(use, power * (l - M[None]) - logS[None], 0.0)), 0.0)
    g = w * (v_out * out)[None]  # dL/dl_k per pixel
    v_la = g.sum(axis=(1, 2))
    vs = -g
    v_m2 = np.stack([(vs * (conic[:, 0, None, None] * dx + conic[:, 1, None, None] * dy)).sum(axis=(1, 2)),
                     (vs * (conic[:, 1, None, None] * dx + conic[:, 2, None, None] * dy)).sum(axis=(1, 2))], -1)
    v_con = np.stack([(vs * 0.5 * dx * dx).sum(axis=(1, 2)), (vs * dx * dy).sum(axis=(1, 2)),
                      (vs * 0.5 * dy * dy).sum(axis=(1, 2))], -1)
    return v_m2, v_con, v_la


def project_vjp(means, log_scales, rotations, log_amplitudes, cam, v_mean2d, v_conic, v_la):
    """Gradients of the Gaussian parameters from those of (mean2d, conic, log_a).

    Returns (v_means [K,3], v_log_scales [K,3], v_rotations [K,4], v_log_amplitudes [K]);
    culled Gaussians get zeros.
    """
    m2, con, la, valid, aux = project(means, log_scales, rotations, log_amplitudes, cam)
    M = np.asarray(cam["M"], np.float64)
    fx, fy = float(cam["fx"]), float(cam["fy"])
    K = len(m2)
    # conic -> 2D covariance: Q = Σ2⁻¹, dL/dΣ2 = -Q G Q with G the symmetric gradient of Q
    G = np.zeros((K, 2, 2))
    G[:, 0, 0], G[:, 1, 1] = v_conic[:, 0], v_conic[:, 2]
    G[:, 0, 1] = G[:, 1, 0] = 0.5 * v_conic[:, 1]
    Q = np.zeros((K, 2, 2))
    Q[:, 0, 0], Q[:, 1, 1] = con[:, 0], con[:, 2]
    Q[:, 0, 1] = Q[:, 1, 0] = con[:, 1]
    v_sig2 = -Q @ G @ Q
    J, sig_c = aux["J"], aux["sig_c"]
    v_sigc = np.swapaxes(J, 1, 2) @ v_sig2 @ J
    v_c = np.zeros((K, 3))
    if cam["orthographic"]:
        v_c[:, 0] = fx * v_mean2d[:, 0]
        v_c[:, 1] = fy * v_mean2d[:, 1]
    else:
        c = aux["c"]
        z = aux["z"]
        v_J = 2.0 * v_sig2 @ J @ sig_c
        x, y = c[:, 0], c[:, 1]
        v_c[:, 0] = v_mean2d[:, 0] * fx / z - v_J[:, 0, 2] * fx / z**2
        v_c[:, 1] = v_mean2d[:, 1] * fy / z - v_J[:, 1, 2] * fy / z**2
        v_c[:, 2] = (-v_mean2d[:, 0] * fx * x / z**2 - v_mean2d[:, 1] * fy * y / z**2
                     - v_J[:, 0, 0] * fx / z**2 + v_J[:, 0, 2] * 2 * fx * x / z**3
                     - v_J[:, 1, 1] * fy / z**2 + v_J[:, 1, 2] * 2 * fy * y / z**3)
    v_means = v_c @ M
    v_sig3 = M.T @ v_sigc @ M
    R, s, L = aux["R"], aux["s"], aux["L"]
    v_L = 2.0 * v_sig3 @ L
    v_R = v_L * s[:, None, :]
    v_s = (v_L * R).sum(axis=1)
    v_log_scales = v_s * s
    q = np.asarray(rotations, np.float64)
    qn = np.linalg.norm(q, axis=-1, keepdims=True)
    n = q / qn
    w, x, y, z = n[:, 0], n[:, 1], n[:, 2], n[:, 3]
    g = v_R
    v_n = 2.0 * np.stack([
        -z * g[:, 0, 1] + y * g[:, 0, 2] + z * g[:, 1, 0] - x * g[:, 1, 2] - y * g[:, 2, 0] + x * g[:, 2, 1],
        y * g[:, 0, 1] + z * g[:, 0, 2] + y * g[:, 1, 0] - 2 * x * g[:, 1, 1] - w * g[:, 1, 2] + z * g[:, 2, 0]
        + w * g[:, 2, 1] - 2 * x * g[:, 2, 2],
        -2 * y * g[:, 0, 0] + x * g[:, 0, 1] + w * g[:, 0, 2] + x * g[:, 1, 0] + z * g[:, 1, 2] - w * g[:, 2, 0]
        + z * g[:, 2, 1] - 2 * y * g[:, 2, 2],
        -2 * z * g[:, 0, 0] - w * g[:, 0, 1] + x * g[:, 0, 2] + w * g[:, 1, 0] - 2 * z * g[:, 1, 1] + y * g[:, 1, 2]
        + x * g[:, 2, 0] + y * g[:, 2, 1],
    ], -1)
    v_rot = (v_n - n * (n * v_n).sum(-1, keepdims=True)) / qn
    keep = valid[:, None]
    return (np.where(keep, v_means, 0.0), np.where(keep, v_log_scales, 0.0), np.where(keep, v_rot, 0.0),
            np.where(valid, v_la, 0.0))


def render_vjp(means, log_scales, rotations, log_amplitudes, cam, width, height, power, v_out):
    """VJP of :func:`render`: gradients of ``Σ v_out·render(...)`` w.r.t. the four parameter arrays."""
    m2, con, la, valid, _ = project(means, log_scales, rotations, log_amplitudes, cam)
    v_m2, v_con, v_la = rasterize_vjp(m2, con, la, valid, width, height, power, v_out)
    return project_vjp(means, log_scales, rotations, log_amplitudes, cam, v_m2, v_con, v_la)
