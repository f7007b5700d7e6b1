"""Float64 NumPy reference of the forward splat renderer.

Plain and slow on purpose: every WGSL kernel's output is compared against
this. Conventions are those of ``shared/DESIGN.md`` (gsplat "classic"):

* quaternions ``(w, x, y, z)``, normalised as ``q / max(|q|, 1e-12)``
  (a zero quaternion gives the identity rotation, as gsplat's F.normalize);
* camera: OpenCV axes (+x right, +y down, +z forward), ``world_to_camera``
  4x4, pixel ``(i, j)`` has its centre at ``(i + 0.5, j + 0.5)``;
* 2D covariance ``J W Σ Wᵀ Jᵀ + 0.3 I`` with the x/z and y/z used in ``J``
  clamped to ``[(-0.15 W - cx)/fx, (1.15 W - cx)/fx]`` (likewise y);
* ``mip=True`` (``--render-mode mip``; Mip-Splatting's 2D filter, gsplat's
  ``rasterize_mode="antialiased"``, Brush's ``MIP_SPLATTING``): ``+ 0.1 I``
  instead, and the opacity is multiplied by the compensation
  ``sqrt(max(det Σ2D, 0) / det(Σ2D + 0.1 I))`` (``Σ2D`` before the filter);
  the cull and the 1/255 extent use that compensated opacity;
* colour ``max(SH(dir) + 0.5, 0)`` with ``dir = normalize(mean - camera centre)``;
* cull: ``z < 0.01``, non-finite values, opacity ``< 1/255``, non-positive
  2D determinant, or a 1/255 extent box entirely off screen;
* blend front to back by depth (stable), ``alpha = min(0.999, o exp(-σ))``,
  skip ``σ < 0`` or ``alpha < 1/255``, stop before the splat that takes the
  transmittance to ``<= 1e-4``; output ``rgb + T·background``, alpha ``1 - T``.
"""

from __future__ import annotations

import numpy as np

NEAR_PLANE = 0.01
ALPHA_THRESHOLD = 1.0 / 255.0
MAX_ALPHA = 0.999
TRANSMITTANCE_STOP = 1e-4
LOW_PASS = 0.3
#: the 2D filter of the mip render mode (Mip-Splatting, Yu et al. 2024, eq. 13)
LOW_PASS_MIP = 0.1

SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)


def sh_degree_from_coeffs(num_coeffs: int) -> int:
    degree = int(round(np.sqrt(num_coeffs))) - 1
    if (degree + 1) ** 2 != num_coeffs or not 0 <= degree <= 4:
        raise ValueError(f"sh_coeffs has {num_coeffs} coefficients per channel; expected (d+1)^2 for d in 0..4")
    return degree


def sh_basis(dirs: np.ndarray, degree: int) -> np.ndarray:
    """Real SH basis (Sloan / gsplat sign convention). dirs [N,3] unit -> [N,(degree+1)^2]."""
    x, y, z = dirs[:, 0], dirs[:, 1], dirs[:, 2]
    out = [np.full_like(x, SH_C0)]
    if degree >= 1:
        out += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree >= 2:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        out += [
            SH_C2[0] * xy,
            SH_C2[1] * yz,
            SH_C2[2] * (2 * zz - xx - yy),
            SH_C2[3] * xz,
            SH_C2[4] * (xx - yy),
        ]
    if degree >= 3:
        out += [
            SH_C3[0] * y * (3 * xx - yy),
            SH_C3[1] * xy * z,
            SH_C3[2] * y * (4 * zz - xx - yy),
            SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy),
            SH_C3[4] * x * (4 * zz - xx - yy),
            SH_C3[5] * z * (xx - yy),
            SH_C3[6] * x * (xx - 3 * yy),
        ]
    if degree >= 4:
        out += [
            2.5033429417967046 * xy * (xx - yy),
            -1.7701307697799304 * yz * (3 * xx - yy),
            0.9461746957575601 * xy * (7 * zz - 1),
            -0.6690465435572892 * yz * (7 * zz - 3),
            0.10578554691520431 * (zz * (35 * zz - 30) + 3),
            -0.6690465435572892 * xz * (7 * zz - 3),
            0.47308734787878004 * (xx - yy) * (7 * zz - 1),
            -1.7701307697799304 * xz * (xx - 3 * yy),
            0.6258357354491761 * (xx * (xx - 3 * yy) - yy * (3 * xx - yy)),
        ]
    return np.stack(out, axis=-1)


def quat_to_rotmat(q: np.ndarray) -> np.ndarray:
    """[N,4] (w,x,y,z), any norm -> [N,3,3]."""
    q = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-12)
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=-2,
    )


def splat_inputs(means, rotations, log_scales, sh_coeffs, raw_opacities, world_to_camera):
    """The splat parameters as float64 arrays of their shapes, and the camera's rotation and translation.

    Returns ``(means [N,3], rotations [N,4], log_scales [N,3], sh [N,K,3],
    raw_opacities [N], R [3,3], t [3])`` with ``p_cam = R @ p_world + t``.
    """
    means = np.asarray(means, np.float64)
    n = means.shape[0]
    rotations = np.asarray(rotations, np.float64).reshape(n, 4)
    log_scales = np.asarray(log_scales, np.float64).reshape(n, 3)
    sh = np.asarray(sh_coeffs, np.float64).reshape(n, -1, 3)
    raw_op = np.asarray(raw_opacities, np.float64).reshape(n)
    w2c = np.asarray(world_to_camera, np.float64)
    return means, rotations, log_scales, sh, raw_op, w2c[:3, :3], w2c[:3, 3]


def covariance_3d(rotations: np.ndarray, log_scales: np.ndarray):
    """``Σ = M Mᵀ`` with ``M = R(q/|q|) diag(exp(log_scales))``.

    Returns ``(rot [N,3,3], s [N,3], M [N,3,3], cov3d [N,3,3])`` (the backward needs the parts).
    """
    rot = quat_to_rotmat(rotations)
    s = np.exp(log_scales)
    M = rot * s[:, None, :]
    return rot, s, M, M @ np.transpose(M, (0, 2, 1))


def clamped_jacobian(p_cam: np.ndarray, intrinsics, width: int, height: int):
    """The projection's Jacobian ``J [N,2,3]`` at camera-space points ``p_cam [N,3]``.

    ``x/z`` and ``y/z`` are clamped to ``[(-0.15 W - cx)/fx, (1.15 W - cx)/fx]``
    (likewise y) first: ``J = [[fx/z, 0, -fx tx/z²], [0, fy/z, -fy ty/z²]]`` with
    ``tx = z clamp(x/z)``, ``ty = z clamp(y/z)``.

    Returns ``(J, tx, ty, clip_x, clip_y)``; ``clip_x``/``clip_y`` [N] bool are
    where the clamp is active.
    """
    fx, fy, cx, cy = intrinsics
    z = p_cam[:, 2]
    lim_x_pos = (1.15 * width - cx) / fx
    lim_x_neg = (-0.15 * width - cx) / fx
    lim_y_pos = (1.15 * height - cy) / fy
    lim_y_neg = (-0.15 * height - cy) / fy
    ux, uy = p_cam[:, 0] / z, p_cam[:, 1] / z
    clip_x = (ux < lim_x_neg) | (ux > lim_x_pos)
    clip_y = (uy < lim_y_neg) | (uy > lim_y_pos)
    tx = z * np.clip(ux, lim_x_neg, lim_x_pos)
    ty = z * np.clip(uy, lim_y_neg, lim_y_pos)
    J = np.zeros((p_cam.shape[0], 2, 3))
    J[:, 0, 0] = fx / z
    J[:, 0, 2] = -fx * tx / (z * z)
    J[:, 1, 1] = fy / z
    J[:, 1, 2] = -fy * ty / (z * z)
    return J, tx, ty, clip_x, clip_y


def project(
    means,  # [N,3]
    rotations,  # [N,4] (w,x,y,z)
    log_scales,  # [N,3]
    sh_coeffs,  # [N,K,3]
    raw_opacities,  # [N]
    world_to_camera,  # [4,4]
    intrinsics,  # (fx, fy, cx, cy)
    width: int,
    height: int,
    view_dir_const: np.ndarray | None = None,
    mip: bool = False,
) -> dict:
    """Per-splat projection (``mip``: the 0.1 filter with opacity compensation). Returns float64 arrays (culled splats have ``visible == False``).

    Keys: ``xy [N,2]`` (pixels), ``conic [N,3]`` (inverse 2D covariance a, b, c),
    ``cov2d [N,3]``, ``color [N,3]``, ``opacity [N]``, ``depth [N]``, ``visible [N] bool``,
    ``extent [N,2]`` (half-size in pixels of the 1/255 box).
    """
    means, rotations, log_scales, sh, raw_op, R, t = splat_inputs(
        means, rotations, log_scales, sh_coeffs, raw_opacities, world_to_camera
    )
    n = means.shape[0]
    fx, fy, cx, cy = (float(v) for v in intrinsics)

    with np.errstate(all="ignore"):
        p_cam = means @ R.T + t
        z = p_cam[:, 2]
        _, _, _, cov3d = covariance_3d(rotations, log_scales)
        J, _, _, _, _ = clamped_jacobian(p_cam, (fx, fy, cx, cy), width, height)
        T = J @ R[None]
        cov = T @ cov3d @ np.transpose(T, (0, 2, 1))
        low_pass = LOW_PASS_MIP if mip else LOW_PASS
        c11 = cov[:, 0, 0] + low_pass
        c12 = cov[:, 0, 1]
        c22 = cov[:, 1, 1] + low_pass
        det = c11 * c22 - c12 * c12
        if mip:
            det_raw = cov[:, 0, 0] * cov[:, 1, 1] - c12 * c12
            compensation = np.sqrt(np.maximum(det_raw, 0.0) / det)
        else:
            compensation = np.ones(n)
        conic = np.stack([c22 / det, -c12 / det, c11 / det], -1)
        xy = np.stack([fx * p_cam[:, 0] / z + cx, fy * p_cam[:, 1] / z + cy], -1)
        opacity = compensation / (1.0 + np.exp(-raw_op))

        degree = sh_degree_from_coeffs(sh.shape[1])
        if view_dir_const is not None:
            dirs = np.asarray(view_dir_const, np.float64)
        else:
            cam_pos = -R.T @ t
            dirs = means - cam_pos
        dirs = dirs / np.maximum(np.linalg.norm(dirs, axis=-1, keepdims=True), 1e-12)
        basis = sh_basis(dirs, degree)
        color = np.maximum(np.einsum("nk,nkc->nc", basis, sh) + 0.5, 0.0)

        power = 2.0 * np.log(np.maximum(255.0 * opacity, 1e-30))
        ext = np.sqrt(np.maximum(power, 0.0)[:, None] * np.stack([c11, c22], -1))

        finite = (
            np.isfinite(means).all(-1)
            & np.isfinite(rotations).all(-1)
            & np.isfinite(log_scales).all(-1)
            & np.isfinite(raw_op)
            & np.isfinite(sh).all((-1, -2))
        )
        visible = finite & (z >= NEAR_PLANE) & (opacity >= ALPHA_THRESHOLD) & (det > 0)
        visible &= np.isfinite(xy).all(-1) & np.isfinite(conic).all(-1) & np.isfinite(color).all(-1)
        on_screen = (
            (xy[:, 0] + ext[:, 0] > 0)
            & (xy[:, 0] - ext[:, 0] < width)
            & (xy[:, 1] + ext[:, 1] > 0)
            & (xy[:, 1] - ext[:, 1] < height)
        )
        visible &= on_screen
    return {
        "xy": xy,
        "conic": conic,
        "cov2d": np.stack([c11, c12, c22], -1),
        "color": color,
        "opacity": opacity,
        "compensation": compensation,
        "depth": z,
        "visible": visible,
        "extent": ext,
    }


def blend_step(xy, conic, opacity, px, py, T, done) -> dict:
    """One splat's front-to-back blend test at the pixel centres ``(px, py)``.

    ``xy`` [2], ``conic`` (a, b, c), ``opacity``: the projected splat; ``T`` the
    transmittance so far and ``done`` where the pixels have stopped (arrays of
    the pixels' shape). Returns a dict of arrays of that shape: ``dx``, ``dy``
    (splat centre minus pixel centre), ``g_val = exp(-σ)``, ``raw_alpha = o g_val``,
    ``alpha = min(0.999, raw_alpha)``, ``use`` (the splat is blended: not done,
    ``σ >= 0``, ``alpha >= 1/255`` and not stopping), ``stop`` (the splat would
    take the transmittance to ``<= 1e-4``: the pixel stops before it) and
    ``next_T = T (1 - alpha)``.
    """
    dx = xy[0] - px
    dy = xy[1] - py
    a, b, c = conic
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    with np.errstate(over="ignore"):
        g_val = np.exp(-sigma)
    raw_alpha = opacity * g_val
    alpha = np.minimum(MAX_ALPHA, raw_alpha)
    use = (~done) & (sigma >= 0) & (alpha >= ALPHA_THRESHOLD)
    next_T = T * (1.0 - alpha)
    stop = use & (next_T <= TRANSMITTANCE_STOP)
    return {"dx": dx, "dy": dy, "g_val": g_val, "raw_alpha": raw_alpha, "alpha": alpha, "use": use & ~stop,
            "stop": stop, "next_T": next_T}


def rasterize_projected(xy, conic, color, opacity, depth, visible, width, height, background=(0.0, 0.0, 0.0)):
    """Blend projected splats per pixel. Returns (image [H,W,C+1] float64, info dict).

    ``color`` [N,C] (C = 3, or 4 with the depth as an extra channel, as gsplat renders
    depth), ``background`` C values. ``info["order"]`` is the depth order of visible
    splats; ``info["num_contrib"] [H,W]`` counts the splats blended per pixel;
    ``info["median_depth"] [H,W]`` is the depth of the splat whose blend takes the
    transmittance from ``>= 0.5`` to ``< 0.5`` (0 where it never does).
    """
    ids = np.nonzero(visible)[0]
    order = ids[np.argsort(depth[ids], kind="stable")]
    bg = np.asarray(background, np.float64)
    py, px = np.mgrid[0:height, 0:width]
    px = px.astype(np.float64) + 0.5
    py = py.astype(np.float64) + 0.5
    T = np.ones((height, width))
    rgb = np.zeros((height, width, color.shape[1]))
    done = np.zeros((height, width), bool)
    count = np.zeros((height, width), np.int64)
    median = np.zeros((height, width))
    for g in order:
        step = blend_step(xy[g], conic[g], opacity[g], px, py, T, done)
        alpha, use, next_T = step["alpha"], step["use"], step["next_T"]
        done |= step["stop"]
        w = np.where(use, alpha * T, 0.0)
        rgb += w[..., None] * color[g][None, None, :]
        median = np.where(use & (T >= 0.5) & (next_T < 0.5), depth[g], median)
        T = np.where(use, next_T, T)
        count += use
    img = np.concatenate([rgb + T[..., None] * bg, (1.0 - T)[..., None]], -1)
    return img, {"order": order, "num_contrib": count, "median_depth": median}


#: gsplat's ED divides the accumulated depth by ``alpha.clamp(min=1e-10)``
ED_MIN_ALPHA = 1e-10


def with_depth_channel(color, depth, background):
    """Colour [N,3] and background with the camera z appended as a 4th channel (background 0),
    the way gsplat renders depth."""
    return np.concatenate([color, depth[:, None]], -1), tuple(np.asarray(background, np.float64)) + (0.0,)


def render_depth(means, rotations, log_scales, sh_coeffs, raw_opacities, world_to_camera, intrinsics, width: int,
                 height: int, background=(0.0, 0.0, 0.0), mip: bool = False) -> dict:
    """Reference render of every output: ``image`` [H,W,4] (RGB + alpha), ``D`` [H,W]
    (``Σ wᵢ zᵢ``, depth rendered as a 4th colour channel with background 0), ``ED`` [H,W]
    (``D / max(alpha, 1e-10)``) and ``MD`` [H,W] (median depth), float64."""
    p = project(means, rotations, log_scales, sh_coeffs, raw_opacities, world_to_camera, intrinsics, width, height, mip=mip)
    color, bg = with_depth_channel(p["color"], p["depth"], background)
    img, info = rasterize_projected(p["xy"], p["conic"], color, p["opacity"], p["depth"], p["visible"], width, height, bg)
    alpha = img[..., 4]
    return {
        "image": img[..., [0, 1, 2, 4]],
        "D": img[..., 3],
        "ED": img[..., 3] / np.maximum(alpha, ED_MIN_ALPHA),
        "MD": info["median_depth"],
        "alpha": alpha,
    }


def render(
    means,  # [N,3]
    rotations,  # [N,4] (w,x,y,z)
    log_scales,  # [N,3]
    sh_coeffs,  # [N,K,3]
    raw_opacities,  # [N]
    world_to_camera,  # [4,4]
    intrinsics,  # (fx, fy, cx, cy)
    width: int,
    height: int,
    background=(0.0, 0.0, 0.0),
    view_dir_const=None,
    mip: bool = False,
):
    """Reference render: float64 image [H,W,4] (RGB + alpha); ``mip``: the mip render mode."""
    p = project(means, rotations, log_scales, sh_coeffs, raw_opacities, world_to_camera, intrinsics, width, height, view_dir_const, mip)
    img, _ = rasterize_projected(p["xy"], p["conic"], p["color"], p["opacity"], p["depth"], p["visible"], width, height, background)
    return img
