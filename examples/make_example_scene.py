"""Build the bundled example splat scene ``assets/example_scene.ply`` procedurally.

A rainbow-striped torus, leaning back 40 degrees, around a checkered sphere: about 4,600
flat Gaussians lying in the surfaces (thin along the normal), SH degree 1 with a soft
view-dependent sheen (brighter where the surface faces the viewer). Written in the
INRIA 3DGS layout with brushpy's own writer, in brushpy's default world orientation
(up = -y), so ``brushpy render assets/example_scene.ply -o example.png`` frames it.

Everything is computed from closed-form formulas (no randomness, no third-party data),
so the output is the same on every run. Usage::

    python examples/make_example_scene.py [OUTPUT.ply]
"""

from __future__ import annotations

import colorsys
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from brushpy.io.ply import SH_C0, SplatData, write_ply  # noqa: E402

SH_C1 = 0.4886025119029199  # band-1 constant of the real SH basis
SHEEN = 0.12  # strength of the view-dependent term (colour units)
THICKNESS = 0.006  # std-dev along the surface normal
OPACITY = 0.9


def quaternion_from_frames(frames: np.ndarray) -> np.ndarray:
    """Rotation matrices [N,3,3] (columns = local axes in world) -> quaternions [N,4] (w,x,y,z).

    Shepperd's method: pick the largest of w, x, y, z to divide by.
    """
    m = frames
    tr = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    cands = np.stack([tr, m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]], axis=1)
    pick = np.argmax(cands, axis=1)
    q = np.empty((len(m), 4))
    for i in range(len(m)):
        r = m[i]
        if pick[i] == 0:
            s = 2.0 * np.sqrt(1.0 + tr[i])
            q[i] = (0.25 * s, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s)
        elif pick[i] == 1:
            s = 2.0 * np.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2])
            q[i] = ((r[2, 1] - r[1, 2]) / s, 0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s)
        elif pick[i] == 2:
            s = 2.0 * np.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2])
            q[i] = ((r[0, 2] - r[2, 0]) / s, (r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s)
        else:
            s = 2.0 * np.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1])
            q[i] = ((r[1, 0] - r[0, 1]) / s, (r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s)
    return q


def surface_splats(points, tangent_u, normals, sigma_u, sigma_v, colors):
    """Flat splats in a surface: local axes (u, v, n), std-devs (sigma_u, sigma_v, THICKNESS)."""
    n = len(points)
    t1 = tangent_u / np.linalg.norm(tangent_u, axis=1, keepdims=True)
    nn = normals / np.linalg.norm(normals, axis=1, keepdims=True)
    t2 = np.cross(nn, t1)  # right-handed frame (t1, t2, n)
    frames = np.stack([t1, t2, nn], axis=2)
    sh = np.zeros((n, 4, 3))
    sh[:, 0, :] = (colors - 0.5) / SH_C0  # band 1 (the sheen) is set in build(), after posing
    scales = np.stack([np.broadcast_to(sigma_u, (n,)), np.broadcast_to(sigma_v, (n,)), np.full(n, THICKNESS)], axis=1)
    return dict(means=points, rotations=quaternion_from_frames(frames), log_scales=np.log(scales),
                sh_coeffs=sh, raw_opacities=np.full(n, np.log(OPACITY / (1 - OPACITY))), normals=nn)


def torus(major=1.0, minor=0.33, nu=104, nv=30):
    u = (np.arange(nu) + 0.5) / nu * 2 * np.pi
    v = (np.arange(nv) + 0.5) / nv * 2 * np.pi
    uu, vv = (a.ravel() for a in np.meshgrid(u, v, indexing="ij"))
    # ring in the x-y plane (vertical: world up is -y), axis along z
    ring = np.stack([np.cos(uu), np.sin(uu), np.zeros_like(uu)], axis=1)
    normal = np.cos(vv)[:, None] * ring + np.sin(vv)[:, None] * np.array([0.0, 0.0, 1.0])
    points = major * ring + minor * normal
    tangent_u = np.stack([-np.sin(uu), np.cos(uu), np.zeros_like(uu)], axis=1)
    # the ring of radius (major + minor cos v) is sampled nu times around, the tube nv times
    sigma_u = 0.7 * 2 * np.pi * (major + minor * np.cos(vv)) / nu
    sigma_v = 0.7 * 2 * np.pi * minor / nv
    colors = np.array([colorsys.hsv_to_rgb(h, 0.85, 0.95) for h in uu / (2 * np.pi)])
    stripes = (np.floor(vv / (2 * np.pi) * 6) % 2 == 0)[:, None]
    colors = np.where(stripes, colors, 0.45 * colors)
    return surface_splats(points, tangent_u, normal, sigma_u, sigma_v, colors)


def sphere(radius=0.42, n=1500):
    # Fibonacci sphere: evenly spread points
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    phi = np.pi * (3 - np.sqrt(5)) * i
    r = np.sqrt(1 - z * z)
    normal = np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)
    helper = np.where(np.abs(normal[:, 1:2]) < 0.9, np.array([[0.0, 1.0, 0.0]]), np.array([[1.0, 0.0, 0.0]]))
    tangent = np.cross(helper, normal)
    sigma = 0.7 * np.sqrt(4 * np.pi * radius**2 / n)
    lat = np.arcsin(np.clip(-normal[:, 1], -1, 1))  # latitude w.r.t. up = -y
    lon = np.arctan2(normal[:, 2], normal[:, 0])
    checker = ((np.floor(lat / (np.pi / 4)) + np.floor(lon / (np.pi / 4))) % 2 == 0)[:, None]
    colors = np.where(checker, np.array([[0.95, 0.95, 0.92]]), np.array([[0.10, 0.15, 0.45]]))
    return surface_splats(radius * normal, tangent, normal, sigma, sigma, colors)


def build() -> SplatData:
    parts = [torus(), sphere()]
    merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    # lean the torus + sphere back by 40 degrees: rotate about the x axis
    a = np.deg2rad(40.0)
    rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    merged["means"] = merged["means"] @ rot.T
    merged["normals"] = merged["normals"] @ rot.T
    # compose the rotation with each splat's quaternion: q' = q_rot * q
    half = a / 2
    qr = np.array([np.cos(half), np.sin(half), 0.0, 0.0])
    q = merged["rotations"]
    w1, x1, y1, z1 = qr
    w2, x2, y2, z2 = q.T
    merged["rotations"] = np.stack([
        w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
        w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
        w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
        w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
    ], axis=1)
    # view-dependent sheen: SH evaluates at d = unit(mean - camera); SHEEN * dot(d, -n) in the
    # band-1 basis (-C1 y, C1 z, -C1 x) of the (rotated) normal n
    nn = merged["normals"]
    sh = merged["sh_coeffs"]
    sh[:, 1, :] = (SHEEN * nn[:, 1] / SH_C1)[:, None]
    sh[:, 2, :] = (-SHEEN * nn[:, 2] / SH_C1)[:, None]
    sh[:, 3, :] = (SHEEN * nn[:, 0] / SH_C1)[:, None]
    return SplatData(**merged)


def main(argv: list[str]) -> None:
    out = Path(argv[0]) if argv else REPO / "assets" / "example_scene.ply"
    data = build()
    out.parent.mkdir(parents=True, exist_ok=True)
    write_ply(out, data)
    print(f"wrote {out}: {data.num_splats} splats, SH degree {data.sh_degree}, {out.stat().st_size} bytes")


if __name__ == "__main__":
    main(sys.argv[1:])
