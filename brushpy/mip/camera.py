"""Cameras for MIP mode: orthographic (default) or perspective views of the volume's box.

Coordinates (the one convention shared by the renderer and the ground truth):

- **Box coordinates** ``u = (x, y, z)`` in [0, 1]^3. For a volume array of shape
  ``(Z, Y, X)``, ``x`` runs along X (the last axis, columns), ``y`` along Y (rows)
  and ``z`` along Z (slices). Voxel ``[k, j, i]`` has its centre at
  ``((i+0.5)/X, (j+0.5)/Y, (k+0.5)/Z)``.
- **Physical coordinates** ``p = u ⊙ E`` with ``E = (X·sx, Y·sy, Z·sz) / max(...)``
  (voxel size ``(sz, sy, sx)``; the longest side has length 1).
- **Camera coordinates** (OpenCV axes: +x right, +y down, +z forward)
  ``c = R(θ)·(p - E/2)`` (+ a distance along +z for perspective), i.e.
  ``c = M u + t`` with ``M = R(θ)·diag(E)``. Rotations about the chosen axis,
  angle θ in degrees, all equal to the identity at θ = 0:

  - ``axis="y"``: ``c = (cosθ·px - sinθ·pz, py, sinθ·px + cosθ·pz)``
  - ``axis="x"``: ``c = (px, cosθ·py - sinθ·pz, sinθ·py + cosθ·pz)``
  - ``axis="z"``: ``c = (cosθ·px - sinθ·py, sinθ·px + cosθ·py, pz)``

  At θ = 0 the camera looks down the stack (+Z): image columns follow X and
  rows follow Y, so the true MIP is ``volume.max(axis=0)`` displayed as is.
  Orthographic MIPs at θ and θ + 180° are mirror images; spread views over [0, 180).
- **Pixels**: orthographic ``(fx·c_x + cx, fy·c_y + cy)``, perspective
  ``(fx·c_x/c_z + cx, fy·c_y/c_z + cy)``; pixel (col j, row i) has its centre at
  ``(j + 0.5, i + 0.5)``; ``cx = W/2``, ``cy = H/2``.
- Orthographic field of view: a square of side ``F`` (physical units) centred on
  the box, ``F`` = the largest extent of the box seen from any angle about the
  axis (the axis' own extent, or the diagonal of the two others); square
  pixels of size ``F / min(W, H)``.
- Perspective: vertical/horizontal field of view ``fov_deg`` over ``min(W, H)``
  pixels, camera at the distance where the box's bounding sphere just fits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

AXES = ("x", "y", "z")

VIEW_DTYPE = np.dtype(
    [
        ("m0", "<f4", 4),   # row 0 of M, t.x
        ("m1", "<f4", 4),
        ("m2", "<f4", 4),
        ("intr", "<f4", 4),  # fx, fy, cx, cy
        ("width", "<u4"),
        ("height", "<u4"),
        ("tiles_x", "<u4"),
        ("tiles_y", "<u4"),
        ("num_gaussians", "<u4"),
        ("orthographic", "<u4"),
        ("capacity", "<u4"),
        ("_pad0", "<u4"),
        ("power", "<f4"),
        ("blur", "<f4"),
        ("_pad1", "<f4"),
        ("_pad2", "<f4"),
    ]
)


def axis_rotation(axis: str, angle_deg: float) -> np.ndarray:
    """The 3x3 rotation ``R(θ)`` of the convention above (float64)."""
    if axis not in AXES:
        raise ValueError(f"rotation axis (--axis) must be one of {AXES}, got {axis!r}")
    t = math.radians(float(angle_deg))
    c, s = math.cos(t), math.sin(t)
    if axis == "y":
        return np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])
    if axis == "x":
        return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass
class MipCamera:
    """One view: ``c = M u + t`` (box -> camera), intrinsics in pixels, image size.

    Attributes:
        M: float64 [3,3]; t: float64 [3]; fx, fy, cx, cy: pixels (orthographic:
        pixels per physical unit); width, height: pixels; orthographic: bool;
        angle: the orbit angle in degrees (informational).
    """

    M: np.ndarray
    t: np.ndarray
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    orthographic: bool = True
    angle: float = 0.0

    def as_dict(self) -> dict:
        """The form ``tests/reference/mip.py`` takes."""
        return dict(M=self.M, t=self.t, fx=self.fx, fy=self.fy, cx=self.cx, cy=self.cy, orthographic=self.orthographic)

    def project(self, u) -> np.ndarray:
        """Pixel coordinates [N,2] (float64) of box points ``u`` [N,3]."""
        c = np.asarray(u, np.float64).reshape(-1, 3) @ self.M.T + self.t
        if self.orthographic:
            return np.stack([self.fx * c[:, 0] + self.cx, self.fy * c[:, 1] + self.cy], -1)
        return np.stack([self.fx * c[:, 0] / c[:, 2] + self.cx, self.fy * c[:, 1] / c[:, 2] + self.cy], -1)

    def pack(self, num_gaussians: int, capacity: int, power: float, blur: float = 0.3, tile: int = 16) -> np.ndarray:
        """The kernels' view record (``VIEW_DTYPE``) as uint32 words."""
        v = np.zeros((), VIEW_DTYPE)
        for r in range(3):
            v[f"m{r}"] = [self.M[r, 0], self.M[r, 1], self.M[r, 2], self.t[r]]
        v["intr"] = [self.fx, self.fy, self.cx, self.cy]
        v["width"], v["height"] = self.width, self.height
        v["tiles_x"], v["tiles_y"] = -(-self.width // tile), -(-self.height // tile)
        v["num_gaussians"], v["orthographic"], v["capacity"] = num_gaussians, int(self.orthographic), capacity
        v["power"], v["blur"] = power, blur
        return np.frombuffer(v.tobytes(), np.uint32).copy()


def box_extents(shape_zyx, voxel_size_zyx=(1.0, 1.0, 1.0)) -> np.ndarray:
    """``E`` = physical (x, y, z) extents of a (Z, Y, X) volume, longest side 1 (float64 [3])."""
    z, y, x = (int(s) for s in shape_zyx)
    sz, sy, sx = (float(s) for s in voxel_size_zyx)
    if min(sz, sy, sx) <= 0:
        raise ValueError(f"voxel size (--voxel-size Z Y X) must be positive, got {voxel_size_zyx}")
    e = np.array([x * sx, y * sy, z * sz], np.float64)
    return e / e.max()


def orbit_cameras(extents, angles_deg, resolution=(256, 256), axis: str = "y", perspective: bool = False,
                  fov_deg: float = 30.0) -> list[MipCamera]:
    """Cameras around the box at ``angles_deg`` about ``axis`` (see the module docstring).

    Args:
        extents: ``E`` from :func:`box_extents`.
        angles_deg: iterable of angles in degrees.
        resolution: (H, W) in pixels.
        axis: "x", "y" or "z".
        perspective: perspective instead of orthographic projection.
        fov_deg: perspective field of view over min(H, W) pixels.
    """
    E = np.asarray(extents, np.float64)
    h, w = (int(v) for v in resolution)
    if h < 1 or w < 1:
        raise ValueError(f"--resolution must be positive (H W), got {resolution}")
    ai = AXES.index(axis) if axis in AXES else None
    if ai is None:
        raise ValueError(f"rotation axis (--axis) must be one of {AXES}, got {axis!r}")
    others = [E[i] for i in range(3) if i != ai]
    F = max(E[ai], math.hypot(*others)) if axis != "z" else math.hypot(E[0], E[1])
    centre = E / 2
    cams = []
    for a in angles_deg:
        R = axis_rotation(axis, a)
        M = R @ np.diag(E)
        t = -R @ centre
        if perspective:
            half = math.radians(fov_deg) / 2
            radius = float(np.linalg.norm(E)) / 2
            dist = radius / math.sin(half)
            f = (min(w, h) / 2) / math.tan(half)
            cams.append(MipCamera(M, t + np.array([0.0, 0.0, dist]), f, f, w / 2, h / 2, w, h, False, float(a)))
        else:
            f = min(w, h) / F
            cams.append(MipCamera(M, t, f, f, w / 2, h / 2, w, h, True, float(a)))
    return cams
