"""Random splat scenes for the backward tests (numpy, float64).

Each seed varies the SH degree (seed % 4), the camera (rotated, fx != fy,
off-centre principal point) and adds special splats: one just past the near
plane, near-degenerate (flat) scales, an opaque stack that drives some pixels
to the transmittance early stop (one of them past the 0.999 alpha clamp), and
one whose x/z lies beyond the clamp of the projection Jacobian.
"""

from __future__ import annotations

import numpy as np


def _random_rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


def make_scene(seed: int, n: int = 6, width: int = 24, height: int = 20, degree: int | None = None) -> dict:
    """Splats + camera for one test scene; keys match the ``render`` arguments.

    ``degree`` overrides the SH degree (default ``seed % 4``).
    """
    rng = np.random.default_rng(seed)
    degree = seed % 4 if degree is None else degree
    k = (degree + 1) ** 2
    # camera looking at the origin from a random direction, with a random roll
    cam_dir = rng.normal(size=3)
    cam_dir /= np.linalg.norm(cam_dir)
    position = 4.0 * cam_dir
    forward = -cam_dir
    up = rng.normal(size=3)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    R = np.stack([right, down, forward])
    w2c = np.eye(4)
    w2c[:3, :3] = R
    w2c[:3, 3] = -R @ position
    fx = width * rng.uniform(0.9, 1.4)
    fy = fx * rng.uniform(0.8, 1.25)
    cx = width * rng.uniform(0.35, 0.65)
    cy = height * rng.uniform(0.35, 0.65)

    means = rng.normal(size=(n, 3)) * 0.6
    log_scales = rng.uniform(-2.6, -1.2, size=(n, 3))
    quats = rng.normal(size=(n, 4))
    sh = rng.normal(size=(n, k, 3)) * 0.25
    sh[:, 0] = rng.normal(size=(n, 3)) * 0.8
    raw_op = rng.normal(size=n) * 1.5

    extra_means, extra_scales, extra_quats, extra_op = [], [], [], []

    def add(cam_point, log_scale, raw):
        extra_means.append(R.T @ (np.asarray(cam_point, float) - w2c[:3, 3]))
        extra_scales.append(log_scale)
        extra_quats.append(rng.normal(size=4))
        extra_op.append(raw)

    variant = seed % 5
    if variant == 0:  # just past the near plane (z = 0.05)
        add([0.004 * rng.normal(), 0.004 * rng.normal(), 0.05], [-5.5, -5.2, -5.8], 0.5)
    if variant == 1:  # near-degenerate: flat along one axis
        add([0.1, -0.1, 4.0], [-1.4, -1.6, -11.0], 1.0)
    if variant in (2, 4):  # opaque stack in front of the rest: transmittance early stop, 0.999 clamp
        # the front one is centred on a pixel centre with o > 0.999: alpha is clamped there
        u, v, z = np.floor(cx) + 2.5, np.floor(cy) - 1.5, 2.0
        add([(u - cx) * z / fx, (v - cy) * z / fy, z], [-1.2, -1.3, -1.25], 8.0)
        for i, raw in enumerate((5.0, 5.5)):
            add([0.05 * i, -0.04 * i, 2.1 + 0.1 * i], [-1.0, -1.1, -1.05], raw)
    if variant == 3:  # beyond the J clamp (x/z > (1.15 W - cx)/fx) but large enough to be seen
        z = 3.0
        add([z * ((1.15 * width - cx) / fx + 0.25), 0.0, z], [-0.3, -0.4, -0.35], 2.0)
    if extra_means:
        m = len(extra_means)
        means = np.concatenate([means, np.array(extra_means)])
        log_scales = np.concatenate([log_scales, np.array(extra_scales)])
        quats = np.concatenate([quats, np.array(extra_quats)])
        extra_sh = rng.normal(size=(m, k, 3)) * 0.25
        extra_sh[:, 0] = rng.normal(size=(m, 3)) * 0.8 + 0.5
        sh = np.concatenate([sh, extra_sh])
        raw_op = np.concatenate([raw_op, np.array(extra_op)])
    background = rng.uniform(0, 1, size=3) if seed % 2 else np.zeros(3)
    return {
        "means": means,
        "rotations": quats,
        "log_scales": log_scales,
        "sh_coeffs": sh,
        "raw_opacities": raw_op,
        "world_to_camera": w2c,
        "intrinsics": (fx, fy, cx, cy),
        "width": width,
        "height": height,
        "background": background,
    }


PARAMS = ("means", "rotations", "log_scales", "sh_coeffs", "raw_opacities")


def scene_args(s: dict) -> list:
    """The positional arguments of the reference ``render``/``render_vjp`` for scene ``s``
    (the five parameter arrays, world_to_camera, intrinsics, width, height)."""
    return [s[k] for k in PARAMS] + [s["world_to_camera"], s["intrinsics"], s["width"], s["height"]]


def check_vjp_by_finite_differences(loss, s: dict, grads: dict, rng, sh_samples: int) -> None:
    """Assert ``grads`` (the VJP of ``loss``) against central finite differences.

    ``loss(params) -> float`` takes a dict of the five parameter arrays (float64). Every
    element of each parameter is checked, except ``sh_samples`` random SH entries. Two step
    sizes are used: where they disagree a threshold (1/255 skip, clamp, early stop) lies
    inside the step, the function is not differentiable there and the element is skipped;
    at most max(2, checked/50) elements may be skipped.
    """
    checked = skipped = 0
    for name in PARAMS:
        base = {k: np.array(s[k], np.float64, copy=True) for k in PARAMS}
        flat = base[name].reshape(-1)
        ids = np.arange(flat.size)
        if name == "sh_coeffs":
            ids = rng.choice(flat.size, size=min(flat.size, sh_samples), replace=False)
        scale = np.abs(grads[name]).max() + 1e-12
        for i in ids:
            fds = []
            for eps in (1e-6, 3e-7):
                x0 = flat[i]
                flat[i] = x0 + eps
                lp = loss(base)
                flat[i] = x0 - eps
                lm = loss(base)
                flat[i] = x0
                fds.append((lp - lm) / (2 * eps))
            if abs(fds[0] - fds[1]) > 1e-6 * scale + 1e-4 * abs(fds[0]):
                skipped += 1
                continue
            checked += 1
            a = grads[name].reshape(-1)[i]
            assert abs(a - fds[0]) <= 2e-6 * scale + 1e-5 * abs(fds[0]), (name, i, a, fds[0], scale)
    assert skipped <= max(2, checked // 50), (checked, skipped)
