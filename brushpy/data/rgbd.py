"""RGB-D frame folders in the Microsoft 7-Scenes layout (``Scene.kind = "rgbd"``).

Files: ``frame-N.color.png`` (or ``.jpg``), ``frame-N.depth.png`` (16-bit, millimetres, 0 and
65535 invalid), ``frame-N.pose.txt`` (4x4 camera-to-world, metres) in any folder, and one
``camera-intrinsics.txt`` (3x3 K) in the dataset (the shallowest is used). A frame is a colour
image with a pose file beside it; its depth map is optional.

Conventions: the poses use OpenCV camera axes (+x right, +y down, +z forward), checked by
reprojecting one frame's depth into another (median relative depth error 0.5% between frames
150 and 160 of the shared 7-Scenes sample; 16% with OpenGL axes). K is OpenCV's (pixel centres
at integers), so brushpy's principal point is K's + 0.5. There are no initial points.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .images import find_mask, mask_index
from .scene import LoadReport, View, camera_problem, make_view, natural_key, select_frames

INTRINSICS_FILE = "camera-intrinsics.txt"
_COLOR_SUFFIXES = (".color.png", ".color.jpg")


class RgbdFormatError(InputError):
    """A 7-Scenes pose or intrinsics file that cannot be used (the message names it)."""


def find_frames(source) -> list[tuple[str, str, str | None]]:
    """``[(color, pose, depth or None)]`` of every colour image with a ``.pose.txt`` beside it."""
    out = []
    for f in source.files:
        low = f.lower()
        for suffix in _COLOR_SUFFIXES:
            if low.endswith(suffix):
                stem = f[: -len(suffix)]
                pose = source.resolve(stem + ".pose.txt")
                if pose is not None:
                    out.append((f, pose, source.resolve(stem + ".depth.png")))
    return out


def find_intrinsics(source) -> str | None:
    """The shallowest ``camera-intrinsics.txt`` in the dataset, or None."""
    hits = [f for f in source.files if f.rsplit("/", 1)[-1].lower() == INTRINSICS_FILE]
    return min(hits, key=lambda f: (f.count("/"), f)) if hits else None


def _matrix(source, rel: str, what: str) -> np.ndarray:
    try:
        m = np.loadtxt(source.read_bytes(rel).decode("utf-8").splitlines(), dtype=np.float64)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RgbdFormatError(f"{source.display_path(rel)}: cannot read the {what} ({exc}); "
                              "give the matrix as rows of numbers") from None
    return m


def read_intrinsics(source, rel: str) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) in brushpy's pixel convention from a 3x3 K (OpenCV convention).

    Raises:
        RgbdFormatError: not a 3x3 matrix, or a bad focal length or principal point (names the file).
    """
    K = _matrix(source, rel, "3x3 camera matrix K")
    if K.shape != (3, 3):
        raise RgbdFormatError(f"{source.display_path(rel)}: expected a 3x3 camera matrix K, got shape {K.shape}")
    intr = (K[0, 0], K[1, 1], K[0, 2] + 0.5, K[1, 2] + 0.5)
    problem = camera_problem(intr, None)
    if problem:
        raise RgbdFormatError(f"{source.display_path(rel)}: {problem}")
    return tuple(float(v) for v in intr)


def read_pose(source, rel: str) -> np.ndarray | None:
    """world_to_camera (OpenCV axes) from a 4x4 camera-to-world pose file; None when the pose is
    not finite or not invertible (7-Scenes marks lost tracking with infinite poses).

    Raises:
        RgbdFormatError: not a 4x4 matrix of numbers (names the file).
    """
    c2w = _matrix(source, rel, "4x4 camera-to-world pose")
    if c2w.shape == (3, 4):
        c2w = np.vstack([c2w, [0.0, 0.0, 0.0, 1.0]])
    if c2w.shape != (4, 4):
        raise RgbdFormatError(f"{source.display_path(rel)}: expected a 4x4 camera-to-world matrix, got shape {c2w.shape}")
    if not np.all(np.isfinite(c2w)) or abs(np.linalg.det(c2w[:3, :3])) < 1e-9:
        return None
    return np.linalg.inv(c2w)


def load_rgbd_views(source, config, alpha_mode: str, report: LoadReport) -> list[View] | None:
    """Views of a 7-Scenes frame folder (sorted by name, frame options applied), each with its
    depth map; None when the dataset has no such frames.

    Raises:
        RgbdFormatError: frames but no ``camera-intrinsics.txt``, or a bad K or pose file (names it).
        depth.DepthMapError: an unreadable depth map or one of another aspect than its image.
    """
    frames = find_frames(source)
    if not frames:
        return None
    k_rel = find_intrinsics(source)
    if k_rel is None:
        raise RgbdFormatError(f"{source.path}: {len(frames)} RGB-D frame(s) (frame-N.color.png + frame-N.pose.txt) "
                              f"but no {INTRINSICS_FILE} (the 3x3 camera matrix K); add it")
    intr = read_intrinsics(source, k_rel)
    frames.sort(key=lambda fr: natural_key(fr[0]))
    masks = mask_index(source)
    views, lost = [], []
    for color, pose, depth in select_frames(frames, config):
        w2c = read_pose(source, pose)
        if w2c is None:
            lost.append(pose)
            continue
        views.append(make_view(source, color, w2c, intr, None, None, "PINHOLE", config, alpha_mode,
                               find_mask(source, color, masks), report, depth_path=depth))
    if lost:
        report.warn(f"{source.path}: skipped {len(lost)} frame(s) whose pose is infinite or not invertible "
                    f"(tracking lost): {', '.join(lost[:5])}{', ...' if len(lost) > 5 else ''}")
    return views
