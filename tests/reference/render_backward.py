"""Float64 NumPy reference of the renderer's vector-Jacobian product (VJP).

Given ``v_image [H,W,4]``, computes the gradients of ``sum(image * v_image)``
with respect to every splat parameter, where ``image`` is the output of
:func:`tests.reference.render.render` (same conventions, same cull, same
1/255 skip, 0.999 clamp and transmittance stop). It is the oracle the GPU
backward kernels are compared with, and it is itself checked against central
finite differences of the reference forward (``tests/test_render_backward.py``).

The chain, splat by splat (gsplat "classic" conventions, DESIGN.md):

* blend: ``out_rgb = Σ_i α_i T_i c_i + T_N bg``, ``out_a = 1 - T_N``,
  ``T_{i+1} = T_i (1 - α_i)``, ``α = min(0.999, o exp(-σ))``,
  ``σ = ½(a dx² + c dy²) + b dx dy`` with ``(dx, dy) = xy - pixel centre``.
  When ``o exp(-σ) > 0.999`` the clamp is active and ``α`` does not depend on
  ``o``, ``xy`` or the conic.
* conic = inverse of the 2D covariance ``Σ2 = T Σ Tᵀ + 0.3 I`` with
  ``T = J R_cam``: ``∂L/∂Σ2 = -P G P`` (P the conic matrix, G the symmetric
  gradient of P: ``[[v_a, v_b/2], [v_b/2, v_c]]``).
* J uses ``tx = z clamp(x/z, lim)``: unclamped, ``∂J02/∂x = -fx/z²`` and
  ``∂J02/∂z = 2 fx x / z³``; clamped, ``J02 = -fx lim / z`` so
  ``∂J02/∂z = fx tx / z³`` and nothing flows to ``x`` (same for y).
* ``Σ = M Mᵀ`` with ``M = R(q/|q|) diag(exp(log_scales))``.
* colour ``max(SH(dir)·coeffs + 0.5, 0)`` with ``dir = normalize(mean - cam)``:
  the gradient passes where the argument is ``>= 0`` (torch's clamp rule);
  ``∂/∂dir`` of the SH basis is taken exactly by complex-step
  differentiation of the polynomial basis, then projected by
  ``(I - d dᵀ)/|mean - cam|``. With ``view_dir_const`` that term is dropped
  (gsplat's tiny_case gradients were made that way).
* opacity ``o = sigmoid(raw)``: ``∂o/∂raw = o (1 - o)``.
* mip mode (``mip=True``): the filter is ``0.1 I`` and the projected opacity is
  ``o·comp`` with ``comp = sqrt(det Σ / det Σb)``, ``Σb = Σ + 0.1 I``. From
  ``∂ det A / ∂A = adj(A)ᵀ`` and ``adj(Σ) = adj(Σb) - 0.1 I`` (2x2):
  ``∂comp/∂Σ = ((1 - comp²) Σb⁻¹ - 0.1 I / det Σb) / (2 comp)``, the formula
  of gsplat's ``add_blur_vjp`` (which adds 1e-6 to the ``2 comp`` denominator;
  here it is exact, and ``comp >= 1/255`` for every visible splat).
* depth (``depth_mode="D"`` / ``"ED"``): as gsplat, the camera z is a 4th colour
  channel (background 0), so ``D = Σ_i α_i T_i z_i`` shares the colour VJP and
  ``∂L/∂z_i`` is that channel's colour gradient, added to the camera-space z of
  the mean. ``ED = D / max(A, 1e-10)`` (A the output alpha) is differentiated as a
  ratio: ``v_D = v_ED / max(A, 1e-10)`` and ``v_A -= v_ED · ED / A`` where A > 1e-10.
"""

from __future__ import annotations

import numpy as np

from .render import (
    LOW_PASS,
    LOW_PASS_MIP,
    ED_MIN_ALPHA,
    MAX_ALPHA,
    blend_step,
    clamped_jacobian,
    covariance_3d,
    project,
    rasterize_projected,
    sh_basis,
    sh_degree_from_coeffs,
    splat_inputs,
    with_depth_channel,
)


def rasterize_projected_vjp(xy, conic, color, opacity, depth, visible, width, height, v_image, background=(0.0, 0.0, 0.0)):
    """VJP of :func:`tests.reference.render.rasterize_projected`.

    Args:
        xy [N,2], conic [N,3], color [N,C] (clamped colour; C = 4 with the depth
        channel), opacity [N], depth [N], visible [N] bool: projected splats (float64).
        v_image [H,W,C+1]: gradient of the loss w.r.t. the image (channels + alpha).

    Returns:
        dict with ``v_xy [N,2]``, ``v_conic [N,3]``, ``v_color [N,3]``,
        ``v_opacity [N]`` (zero for invisible splats), ``refine_abs [N]``
        (Brush's densification statistic: ``max(W, H) Σ_pixels (|∂L/∂x_p| +
        |∂L/∂y_p|) / max(α_p, 0.001)`` with the per-pixel 2D-mean gradient
        taken as if the 0.999 clamp were off), ``image [H,W,4]`` and ``order``
        (depth order of the visible splats).
    """
    n = xy.shape[0]
    nc = color.shape[1]
    v_image = np.asarray(v_image, np.float64).reshape(height, width, nc + 1)
    bg = np.asarray(background, np.float64)
    ids = np.nonzero(visible)[0]
    order = ids[np.argsort(depth[ids], kind="stable")]
    py, px = np.mgrid[0:height, 0:width]
    px = px.astype(np.float64) + 0.5
    py = py.astype(np.float64) + 0.5

    # forward, keeping what the backward needs per splat
    T = np.ones((height, width))
    done = np.zeros((height, width), bool)
    rgb = np.zeros((height, width, nc))
    saved = []
    for g in order:
        st = blend_step(xy[g], conic[g], opacity[g], px, py, T, done)
        alpha, use, next_T = st["alpha"], st["use"], st["next_T"]
        done |= st["stop"]
        saved.append((g, st["dx"], st["dy"], st["g_val"], st["raw_alpha"], alpha, use, T.copy()))
        rgb += np.where(use, alpha * T, 0.0)[..., None] * color[g][None, None, :]
        T = np.where(use, next_T, T)
    T_final = T
    image = np.concatenate([rgb + T_final[..., None] * bg, (1.0 - T_final)[..., None]], -1)

    v_rgb = v_image[..., :nc]
    # d/dα_i of (T_N·(v_rgb·bg) + v_a·(1 - T_N)) = -T_N/(1-α_i)·(v_rgb·bg - v_a)
    v_T_final = (v_rgb * bg).sum(-1) - v_image[..., nc]
    v_xy = np.zeros((n, 2))
    v_conic = np.zeros((n, 3))
    v_color = np.zeros((n, nc))
    v_opacity = np.zeros(n)
    refine_abs = np.zeros(n)
    refine_scale = max(width, height) / np.maximum(1.0 - T_final, 0.001)
    behind = np.zeros((height, width, nc))  # Σ_{j>i} α_j T_j c_j
    for g, dx, dy, g_val, raw_alpha, alpha, use, T_i in reversed(saved):
        w = np.where(use, alpha * T_i, 0.0)
        v_color[g] = (w[..., None] * v_rgb).sum((0, 1))
        ra = 1.0 / (1.0 - alpha)
        v_alpha = (v_rgb * (T_i[..., None] * color[g] - behind * ra[..., None])).sum(-1) - v_T_final * T_final * ra
        v_alpha = np.where(use, v_alpha, 0.0)
        behind += w[..., None] * color[g]
        free = use & (raw_alpha <= MAX_ALPHA)  # clamp inactive: α depends on o, σ
        v_opacity[g] = np.where(free, g_val * v_alpha, 0.0).sum()
        v_sigma = np.where(free, -raw_alpha * v_alpha, 0.0)
        a, b, c = conic[g]
        v_conic[g] = [(0.5 * v_sigma * dx * dx).sum(), (v_sigma * dx * dy).sum(), (0.5 * v_sigma * dy * dy).sum()]
        v_xy[g] = [(v_sigma * (a * dx + b * dy)).sum(), (v_sigma * (b * dx + c * dy)).sum()]
        v_sigma_any = np.where(use, -alpha * v_alpha, 0.0)  # clamp ignored (Brush's statistic)
        refine_abs[g] = ((np.abs(v_sigma_any * (a * dx + b * dy)) + np.abs(v_sigma_any * (b * dx + c * dy))) * refine_scale).sum()
    return {
        "v_xy": v_xy,
        "v_conic": v_conic,
        "v_color": v_color,
        "v_opacity": v_opacity,
        "refine_abs": refine_abs,
        "image": image,
        "order": order,
    }


def sh_basis_jacobian(dirs: np.ndarray, degree: int) -> np.ndarray:
    """Exact ∂basis/∂dir of :func:`sh_basis` as a polynomial in (x, y, z): [N,K,3].

    Complex-step differentiation (``Im f(x + ih) / h``) is exact to rounding
    for a polynomial; no subtraction, so no cancellation.
    """
    h = 1e-30
    out = []
    for axis in range(3):
        d = dirs.astype(np.complex128)
        d[:, axis] += 1j * h
        out.append(sh_basis(d, degree).imag / h)
    return np.stack(out, -1)


def project_vjp(
    means,
    rotations,
    log_scales,
    sh_coeffs,
    raw_opacities,
    world_to_camera,
    intrinsics,
    width,
    height,
    v_xy,
    v_conic,
    v_color,
    v_opacity,
    visible,
    view_dir_const: bool = False,
    mip: bool = False,
    v_depth=None,
):
    """VJP of :func:`tests.reference.render.project` for the visible splats.

    ``v_depth`` [N] (optional): gradient w.r.t. the camera-space depth z of each mean.

    ``v_opacity`` is the gradient w.r.t. the projected opacity (``sigmoid(raw)``,
    times the compensation when ``mip``).

    ``v_color`` is the gradient w.r.t. the *clamped* colour. Returns a dict of
    float64 gradients ``means [N,3]``, ``rotations [N,4]``, ``log_scales [N,3]``,
    ``sh_coeffs [N,K,3]``, ``raw_opacities [N]`` (exactly zero where not visible).
    """
    means, quats, log_scales, sh, raw_op, R, t = splat_inputs(
        means, rotations, log_scales, sh_coeffs, raw_opacities, world_to_camera
    )
    n = means.shape[0]
    fx, fy, cx, cy = (float(v) for v in intrinsics)
    degree = sh_degree_from_coeffs(sh.shape[1])
    vis = np.asarray(visible, bool)
    out = {
        "means": np.zeros((n, 3)),
        "rotations": np.zeros((n, 4)),
        "log_scales": np.zeros((n, 3)),
        "sh_coeffs": np.zeros_like(sh),
        "raw_opacities": np.zeros(n),
    }
    idx = np.nonzero(vis)[0]
    if idx.size == 0:
        return out
    m, q, ls, shv, ro = means[idx], quats[idx], log_scales[idx], sh[idx], raw_op[idx]
    vxy, vcon, vcol, vop = v_xy[idx], v_conic[idx], v_color[idx], v_opacity[idx]
    k = idx.size

    # opacity (the compensation's share is added below, once the 2D covariance is known)
    o = 1.0 / (1.0 + np.exp(-ro))

    # colour -> SH coefficients (and -> means through the view direction)
    cam = -R.T @ t
    d = m - cam
    dlen = np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-12)
    dirs = d / dlen
    basis = sh_basis(dirs, degree)  # [k,K]
    raw_color = np.einsum("nk,nkc->nc", basis, shv) + 0.5
    vraw = np.where(raw_color >= 0.0, vcol, 0.0)
    out["sh_coeffs"][idx] = basis[:, :, None] * vraw[:, None, :]
    v_mean = np.zeros((k, 3))
    if not view_dir_const and degree > 0:
        jac = sh_basis_jacobian(dirs, degree)  # [k,K,3]
        v_dir = np.einsum("nkd,nk->nd", jac, np.einsum("nkc,nc->nk", shv, vraw))
        v_mean += (v_dir - dirs * (dirs * v_dir).sum(-1, keepdims=True)) / dlen

    # 2D mean
    p = m @ R.T + t
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    v_p = np.zeros((k, 3))
    v_p[:, 0] += fx / z * vxy[:, 0]
    v_p[:, 1] += fy / z * vxy[:, 1]
    v_p[:, 2] += -(fx * x * vxy[:, 0] + fy * y * vxy[:, 1]) / (z * z)
    if v_depth is not None:
        v_p[:, 2] += np.asarray(v_depth, np.float64)[idx]

    # conic -> 2D covariance
    rot, s, M, cov3d = covariance_3d(q, ls)
    J, tx, ty, clip_x, clip_y = clamped_jacobian(p, (fx, fy, cx, cy), width, height)
    Tm = J @ R[None]
    cov = Tm @ cov3d @ np.transpose(Tm, (0, 2, 1))
    low_pass = LOW_PASS_MIP if mip else LOW_PASS
    det_raw = cov[:, 0, 0] * cov[:, 1, 1] - cov[:, 0, 1] * cov[:, 1, 0]
    cov[:, 0, 0] += low_pass
    cov[:, 1, 1] += low_pass
    P = np.linalg.inv(cov)
    G = np.zeros((k, 2, 2))
    G[:, 0, 0] = vcon[:, 0]
    G[:, 0, 1] = G[:, 1, 0] = 0.5 * vcon[:, 1]
    G[:, 1, 1] = vcon[:, 2]
    v_cov2 = -P @ G @ P  # symmetric
    if mip:
        det_b = cov[:, 0, 0] * cov[:, 1, 1] - cov[:, 0, 1] * cov[:, 1, 0]
        comp = np.sqrt(np.maximum(det_raw, 0.0) / det_b)
        out["raw_opacities"][idx] = vop * comp * o * (1.0 - o)
        v_comp = vop * o
        d_comp = ((1.0 - comp * comp)[:, None, None] * P - (low_pass / det_b)[:, None, None] * np.eye(2)[None]) / (2.0 * comp)[:, None, None]
        v_cov2 = v_cov2 + v_comp[:, None, None] * d_comp
    else:
        out["raw_opacities"][idx] = vop * o * (1.0 - o)

    # 2D covariance -> camera-space 3D covariance and J
    v_T = 2.0 * v_cov2 @ Tm @ cov3d  # [k,2,3]
    v_J = v_T @ R.T[None]
    v_cov3d = np.transpose(Tm, (0, 2, 1)) @ v_cov2 @ Tm  # world frame (T includes R)
    z2, z3 = z * z, z * z * z
    v_p[:, 2] += -fx / z2 * v_J[:, 0, 0] - fy / z2 * v_J[:, 1, 1]
    # J02 = -fx tx / z²
    v_p[:, 0] += np.where(clip_x, 0.0, -fx / z2 * v_J[:, 0, 2])
    v_p[:, 2] += np.where(clip_x, fx * tx / z3, 2.0 * fx * tx / z3) * v_J[:, 0, 2]
    v_p[:, 1] += np.where(clip_y, 0.0, -fy / z2 * v_J[:, 1, 2])
    v_p[:, 2] += np.where(clip_y, fy * ty / z3, 2.0 * fy * ty / z3) * v_J[:, 1, 2]
    v_mean += v_p @ R
    out["means"][idx] = v_mean

    # 3D covariance -> scales and quaternion
    v_M = 2.0 * v_cov3d @ M
    v_s = np.einsum("nji,nji->ni", rot, v_M)
    out["log_scales"][idx] = v_s * s
    v_rot = v_M * s[:, None, :]
    out["rotations"][idx] = _quat_vjp(q, v_rot)
    return out


def _quat_vjp(q: np.ndarray, v_rot: np.ndarray) -> np.ndarray:
    """Gradient w.r.t. the raw quaternion of ``<v_rot, quat_to_rotmat(q)>``, through the normalisation."""
    qlen = np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-12)
    qn = q / qlen
    w, x, y, z = qn[:, 0], qn[:, 1], qn[:, 2], qn[:, 3]
    g = v_rot
    v_w = 2 * (x * (g[:, 2, 1] - g[:, 1, 2]) + y * (g[:, 0, 2] - g[:, 2, 0]) + z * (g[:, 1, 0] - g[:, 0, 1]))
    v_x = 2 * (
        -2 * x * (g[:, 1, 1] + g[:, 2, 2]) + y * (g[:, 0, 1] + g[:, 1, 0]) + z * (g[:, 0, 2] + g[:, 2, 0]) + w * (g[:, 2, 1] - g[:, 1, 2])
    )
    v_y = 2 * (
        x * (g[:, 0, 1] + g[:, 1, 0]) - 2 * y * (g[:, 0, 0] + g[:, 2, 2]) + z * (g[:, 1, 2] + g[:, 2, 1]) + w * (g[:, 0, 2] - g[:, 2, 0])
    )
    v_z = 2 * (
        x * (g[:, 0, 2] + g[:, 2, 0]) + y * (g[:, 1, 2] + g[:, 2, 1]) - 2 * z * (g[:, 0, 0] + g[:, 1, 1]) + w * (g[:, 1, 0] - g[:, 0, 1])
    )
    v_qn = np.stack([v_w, v_x, v_y, v_z], -1)
    return (v_qn - qn * (qn * v_qn).sum(-1, keepdims=True)) / qlen


def render_vjp(
    means,
    rotations,
    log_scales,
    sh_coeffs,
    raw_opacities,
    world_to_camera,
    intrinsics,
    width: int,
    height: int,
    v_image,
    background=(0.0, 0.0, 0.0),
    view_dir_const: bool = False,
    mip: bool = False,
    v_depth=None,
    depth_mode: str | None = None,
) -> dict:
    """Gradients of ``sum(render(...) * v_image) + sum(depth * v_depth)`` w.r.t. all splat parameters (float64).

    ``mip``: the mip render mode (see :func:`project_vjp`). ``depth_mode``: ``"D"`` or
    ``"ED"``, the depth ``v_depth`` [H,W] is the cotangent of (see the module docstring);
    ``v_image`` may be None (zero) then. ``g["depth"]`` is that depth (float64 [H,W]).

    Returns the parameter gradients (``means``, ``rotations``, ``log_scales``,
    ``sh_coeffs``, ``raw_opacities``), the intermediate ``v_xy``, ``v_conic``,
    ``v_color``, ``v_opacity`` [N,...], ``visible`` [N] and ``image``.
    """
    n = np.asarray(means).reshape(-1, 3).shape[0]
    p = project(means, rotations, log_scales, sh_coeffs, raw_opacities, world_to_camera, intrinsics, width, height, mip=mip)
    v_image = np.zeros((height, width, 4)) if v_image is None else np.asarray(v_image, np.float64).reshape(height, width, 4)
    if depth_mode is None:
        r = rasterize_projected_vjp(
            p["xy"], p["conic"], p["color"], p["opacity"], p["depth"], p["visible"], width, height, v_image, background
        )
        v_z = None
    else:
        assert depth_mode in ("D", "ED"), depth_mode
        color, bg = with_depth_channel(p["color"], p["depth"], background)
        v_d = np.asarray(v_depth, np.float64).reshape(height, width)
        # the accumulated depth and alpha, for the ratio of ED
        img, _ = rasterize_projected(p["xy"], p["conic"], color, p["opacity"], p["depth"], p["visible"], width, height, bg)
        alpha, acc = img[..., 4], img[..., 3]
        v_a = v_image[..., 3].copy()
        if depth_mode == "ED":
            safe = np.maximum(alpha, ED_MIN_ALPHA)
            v_a -= np.where(alpha > ED_MIN_ALPHA, v_d * acc / safe / safe, 0.0)
            v_d = v_d / safe
        v5 = np.concatenate([v_image[..., :3], v_d[..., None], v_a[..., None]], -1)
        r = rasterize_projected_vjp(p["xy"], p["conic"], color, p["opacity"], p["depth"], p["visible"], width, height, v5, bg)
        v_z = r["v_color"][:, 3]
        r["v_color"] = r["v_color"][:, :3]
        r["depth"] = acc if depth_mode == "D" else acc / np.maximum(alpha, ED_MIN_ALPHA)
        r["v_depth"] = v_z
        r["image"] = r["image"][..., [0, 1, 2, 4]]
    g = project_vjp(
        means, rotations, log_scales, sh_coeffs, raw_opacities, world_to_camera, intrinsics, width, height,
        r["v_xy"], r["v_conic"], r["v_color"], r["v_opacity"], p["visible"], view_dir_const, mip, v_z,
    )
    g.update({k: r[k] for k in ("v_xy", "v_conic", "v_color", "v_opacity", "refine_abs", "image", "order", "depth", "v_depth") if k in r})
    g["visible"] = p["visible"]
    g["projection"] = p
    assert g["means"].shape[0] == n
    return g


def forward_buffers(
    means,
    rotations,
    log_scales,
    sh_coeffs,
    raw_opacities,
    world_to_camera,
    intrinsics,
    width: int,
    height: int,
    background=(0.0, 0.0, 0.0),
    tile_size: int = 16,
    mip: bool = False,
) -> dict:
    """The buffers of a ``ForwardState`` built from the float64 reference (numpy).

    Same contract as the GPU forward (``brushpy/render/state.py``): ``projected``
    [V,9] float32 in depth order, ``global_from_compact`` [V], per-tile
    intersection lists ``compact_from_isect`` [I] sorted by tile then depth
    (a splat is listed in every tile its 1/255 extent box, grown by one pixel,
    overlaps), ``tile_ranges`` [T,2], ``final_index`` [H,W] (one past the last
    intersection the pixel processed before the transmittance stop) and
    ``image`` [H,W,4]. Lets the backward kernels be tested without the GPU forward.
    """
    p = project(means, rotations, log_scales, sh_coeffs, raw_opacities, world_to_camera, intrinsics, width, height, mip=mip)
    vis = p["visible"]
    ids = np.nonzero(vis)[0]
    order = ids[np.argsort(p["depth"][ids], kind="stable")]
    projected = np.concatenate(
        [p["xy"][order], p["conic"][order], p["color"][order], p["opacity"][order, None]], -1
    ).astype(np.float32)
    tiles_x = -(-width // tile_size)
    tiles_y = -(-height // tile_size)
    lists = [[] for _ in range(tiles_x * tiles_y)]
    for c, g in enumerate(order):
        (x, y), (ex, ey) = p["xy"][g], p["extent"][g] + 1.0
        x0 = max(int(np.floor((x - ex) / tile_size)), 0)
        x1 = min(int(np.floor((x + ex) / tile_size)), tiles_x - 1)
        y0 = max(int(np.floor((y - ey) / tile_size)), 0)
        y1 = min(int(np.floor((y + ey) / tile_size)), tiles_y - 1)
        for ty in range(y0, y1 + 1):
            for tx in range(x0, x1 + 1):
                lists[ty * tiles_x + tx].append(c)
    counts = np.array([len(lst) for lst in lists], np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    tile_ranges = np.stack([starts, starts + counts], -1).astype(np.uint32)
    compact_from_isect = np.array([c for lst in lists for c in lst], np.uint32)

    # blend in float64 from the float32 values the GPU sees, recording where each pixel stops
    pr = projected.astype(np.float64)
    bg = np.asarray(background, np.float64)
    image = np.zeros((height, width, 4))
    final_index = np.zeros((height, width), np.uint32)
    for ty in range(tiles_y):
        for tx in range(tiles_x):
            t = ty * tiles_x + tx
            s, e = int(tile_ranges[t, 0]), int(tile_ranges[t, 1])
            py, px = np.mgrid[ty * tile_size : min((ty + 1) * tile_size, height), tx * tile_size : min((tx + 1) * tile_size, width)]
            T = np.ones(px.shape)
            rgb = np.zeros(px.shape + (3,))
            fin = np.full(px.shape, e, np.int64)
            done = np.zeros(px.shape, bool)
            for i in range(s, e):
                c = compact_from_isect[i]
                st = blend_step(pr[c, 0:2], pr[c, 2:5], pr[c, 8], px + 0.5, py + 0.5, T, done)
                alpha, use, next_T = st["alpha"], st["use"], st["next_T"]
                fin[st["stop"]] = i
                done |= st["stop"]
                rgb += np.where(use, alpha * T, 0.0)[..., None] * pr[c, 5:8]
                T = np.where(use, next_T, T)
            image[py, px, :3] = rgb + T[..., None] * bg
            image[py, px, 3] = 1 - T
            final_index[py, px] = fin
    return {
        "projected": projected.reshape(-1, 9),
        "global_from_compact": order.astype(np.uint32),
        "compact_from_isect": compact_from_isect,
        "tile_ranges": tile_ranges,
        "final_index": final_index,
        "image": image.astype(np.float32),
        "tiles_x": tiles_x,
        "tiles_y": tiles_y,
    }
