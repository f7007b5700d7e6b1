"""Camera paths for videos: an orbit, a smooth path through given cameras, nerfstudio camera-path JSON.

A path is a list of :class:`~brushpy.render.camera.Camera` (OpenCV axes: +x right, +y down,
+z forward; ``world_to_camera`` 4x4), one per video frame, plus a frame rate
(:class:`CameraPath`). ``brushpy render SCENE --path orbit|dataset|FILE.json -o out.mp4``
renders one (see :mod:`brushpy.io.video` for the encoder); the desktop viewer records one
with :class:`PathRecorder`.

* :func:`orbit_cameras`: a circle about the ``up`` axis through a target point, starting at
  a given camera position (``brushpy render`` starts at its default framing camera, so frame 0
  of an orbit is the picture ``brushpy render`` writes as a PNG).
* :func:`smooth_path`: cameras (e.g. a dataset's, in name order) as keyframes at given
  times, resampled: positions on a cubic spline (``scipy.interpolate.CubicSpline``),
  orientations by quaternion slerp between neighbouring keyframes
  (``scipy.spatial.transform.Slerp``), the vertical field of view linearly.
* nerfstudio camera-path JSON (:func:`read_camera_path`, :func:`write_camera_path`), the
  format ``ns-render camera-path`` plays and nerfstudio's viewer exports::

      {"camera_type": "perspective", "render_width": W, "render_height": H, "fps": 30, "seconds": 4,
       "camera_path": [{"camera_to_world": [16 numbers, row-major 4x4], "fov": 50.0, "aspect": W/H}, ...]}

  ``camera_to_world`` is in nerfstudio's (OpenGL) camera axes: +x right, +y up, +z back;
  brushpy's (OpenCV) camera is that with y and z negated (:data:`GL_FROM_CV`). ``fov`` is
  the vertical field of view in degrees; pixels are square and the principal point is the
  image centre, as nerfstudio renders them. One ``camera_path`` entry is one video frame.
  The world is the splat file's own: a path exported from nerfstudio's viewer refers to
  nerfstudio's (re-centred, re-scaled) world and fits a splat file in that world only.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..render.camera import Camera

__all__ = [
    "GL_FROM_CV", "CameraPath", "CameraPathError", "PathRecorder", "camera_path_json", "cameras_from_json",
    "interpolate_poses", "orbit_cameras", "read_camera_path", "smooth_path", "vertical_fov_deg",
    "write_camera_path",
]

#: Right-multiplying a camera-to-world matrix by this swaps OpenCV camera axes (x right, y down,
#: z forward) for OpenGL/nerfstudio ones (x right, y up, z back), and back (it is its own inverse).
GL_FROM_CV = np.diag([1.0, -1.0, -1.0, 1.0])


class CameraPathError(InputError):
    """A camera-path file that cannot be used; the message names the file and what is wrong."""


@dataclass
class CameraPath:
    """Cameras to render, one per video frame.

    Attributes:
        cameras: the frames' cameras (all of one size).
        fps: frames per second of the video.
    """

    cameras: list[Camera]
    fps: float

    @property
    def seconds(self) -> float:
        """Duration of the video in seconds (``len(cameras) / fps``)."""
        return len(self.cameras) / self.fps


def vertical_fov_deg(camera: Camera) -> float:
    """Vertical field of view of ``camera`` in degrees (from ``fy`` and the height)."""
    return math.degrees(2.0 * math.atan(0.5 * camera.height / camera.fy))


def _centred_camera(world_to_camera, fov_y_deg: float, width: int, height: int) -> Camera:
    """A square-pixel camera with its principal point at the image centre."""
    f = 0.5 * height / math.tan(0.5 * math.radians(fov_y_deg))
    return Camera(world_to_camera, f, f, 0.5 * width, 0.5 * height, width, height)


def _rotation_about(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotation matrix [3,3] by ``angle`` radians about the unit ``axis`` (right-handed)."""
    k = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    return np.eye(3) + math.sin(angle) * k + (1.0 - math.cos(angle)) * (k @ k)


def orbit_cameras(position, target, up, num_frames: int, fov_y_deg: float, width: int, height: int,
                  turns: float = 1.0) -> list[Camera]:
    """Cameras circling the ``up`` axis through ``target``, each looking at ``target``.

    Frame ``i`` is ``position`` turned by ``360° · turns · i / num_frames`` about that axis
    (right-handed about ``up``), so frame 0 is the camera at ``position`` and a full turn loops
    without a repeated frame. Height above the target and distance from the axis stay those of
    ``position``.

    Args:
        position: start camera centre (world, [3]).
        target: the point looked at (world, [3]).
        up: world direction shown upwards and the orbit's axis ([3], any length).
        num_frames: number of cameras (>= 1).
        fov_y_deg: vertical field of view in degrees.
        width, height: image size in pixels.
        turns: turns over the path (negative: the other way round).

    Raises:
        ValueError: ``num_frames < 1``, zero ``up``, ``position`` on the axis's line of sight
            (looking straight along ``up``), or ``position == target``.
    """
    if int(num_frames) < 1:
        raise ValueError(f"an orbit needs at least 1 frame, not {num_frames}")
    u = np.asarray(up, np.float64)
    if not np.linalg.norm(u) > 0:
        raise ValueError("the up vector must not be zero")
    u = u / np.linalg.norm(u)
    p = np.asarray(position, np.float64)
    c = np.asarray(target, np.float64)
    if np.linalg.norm(p - c) < 1e-12:
        raise ValueError("camera position and look-at point coincide; move one of them")
    cams = []
    for i in range(int(num_frames)):
        angle = 2.0 * math.pi * turns * i / int(num_frames)
        cams.append(Camera.look_at(c + _rotation_about(u, angle) @ (p - c), c, u, fov_y_deg, width, height))
    return cams


def interpolate_poses(camera_to_world, times, out_times) -> np.ndarray:
    """Resample rigid poses at ``out_times``: positions on a cubic spline, rotations by slerp.

    Args:
        camera_to_world: float [K,4,4] (or [K,3,4]) keyframe poses, rotation part orthonormal.
            The camera-axis convention is kept (OpenCV in, OpenCV out).
        times: float [K] strictly increasing keyframe times.
        out_times: float [M] times to sample, clamped to ``[times[0], times[-1]]``.

    Returns:
        float64 [M,4,4] camera-to-world matrices. Positions follow
        ``scipy.interpolate.CubicSpline`` (not-a-knot ends; straight lines for 2 keyframes);
        rotations go along the shortest arc between neighbouring keyframes (``Slerp``). One
        keyframe gives M copies of it.

    Raises:
        ValueError: shapes disagree, or ``times`` do not increase.
    """
    from scipy.interpolate import CubicSpline
    from scipy.spatial.transform import Rotation, Slerp

    poses = np.asarray(camera_to_world, np.float64)
    t = np.asarray(times, np.float64).reshape(-1)
    q = np.clip(np.asarray(out_times, np.float64).reshape(-1), t[0], t[-1]) if len(t) else np.zeros(0)
    if poses.ndim != 3 or poses.shape[1:] not in ((4, 4), (3, 4)) or len(poses) != len(t) or len(t) == 0:
        raise ValueError(f"camera_to_world has shape {poses.shape}; expected (K, 4, 4) with K = len(times) = {len(t)} > 0")
    if len(t) > 1 and not np.all(np.diff(t) > 0):
        raise ValueError("keyframe times must increase strictly")
    out = np.tile(np.eye(4), (len(q), 1, 1))
    if len(t) == 1:
        out[:, :3, :] = poses[0, :3, :]
        return out
    out[:, :3, 3] = CubicSpline(t, poses[:, :3, 3], axis=0)(q)
    out[:, :3, :3] = Slerp(t, Rotation.from_matrix(poses[:, :3, :3]))(q).as_matrix()
    return out


def smooth_path(cameras, num_frames: int, width: int | None = None, height: int | None = None,
                times=None) -> list[Camera]:
    """``num_frames`` cameras along a smooth path through ``cameras`` (keyframes, in order).

    Positions and rotations follow :func:`interpolate_poses` at evenly spaced times from the
    first keyframe to the last (both included); the vertical field of view is interpolated
    linearly. The frames are centred square-pixel pinholes of ``width`` x ``height`` (default:
    the first keyframe's size).

    Args:
        cameras: keyframe :class:`~brushpy.render.camera.Camera` list (>= 1).
        num_frames: number of cameras to make (>= 1).
        width, height: frame size in pixels.
        times: keyframe times (strictly increasing); default ``0, 1, ..., K-1``.

    Raises:
        ValueError: no keyframes, ``num_frames < 1``, or bad ``times``.
    """
    cameras = list(cameras)
    if not cameras:
        raise ValueError("a smooth path needs at least one keyframe camera")
    if int(num_frames) < 1:
        raise ValueError(f"a path needs at least 1 frame, not {num_frames}")
    t = np.arange(len(cameras), dtype=np.float64) if times is None else np.asarray(times, np.float64)
    return _resample(cameras, t, np.linspace(t[0], t[-1], int(num_frames)), width, height)


def _resample(cameras: list[Camera], times: np.ndarray, out_times: np.ndarray, width, height) -> list[Camera]:
    """Centred pinholes at ``out_times`` along the keyframes ``cameras`` at ``times``."""
    width = int(width or cameras[0].width)
    height = int(height or cameras[0].height)
    c2w = interpolate_poses(np.stack([c.camera_to_world for c in cameras]), times, out_times)
    fovs = np.interp(out_times, times, [vertical_fov_deg(c) for c in cameras])
    return [_centred_camera(np.linalg.inv(m), f, width, height) for m, f in zip(c2w, fovs)]


# --------------------------------------------------------------------------- nerfstudio JSON


def camera_path_json(cameras, fps: float) -> dict:
    """The nerfstudio camera-path dict of ``cameras`` (one ``camera_path`` entry per camera).

    Each entry holds ``camera_to_world`` (OpenGL axes, 16 numbers row-major), the vertical
    ``fov`` in degrees and ``aspect`` (width / height); ``render_width``/``render_height`` are
    the first camera's size, ``seconds = len(cameras) / fps``. Principal points off the
    centre and fx != fy are not representable and are dropped.
    """
    cameras = list(cameras)
    if not cameras:
        raise ValueError("a camera path needs at least one camera")
    w, h = cameras[0].width, cameras[0].height
    entries = []
    for cam in cameras:
        c2w = cam.camera_to_world @ GL_FROM_CV
        entries.append({
            "camera_to_world": [float(v) for v in c2w.reshape(-1)],
            "fov": vertical_fov_deg(cam),
            "aspect": cam.width / cam.height,
        })
    return {
        "camera_type": "perspective",
        "render_width": int(w),
        "render_height": int(h),
        "fps": float(fps),
        "seconds": len(cameras) / float(fps),
        "camera_path": entries,
    }


def _positive(data: dict, key: str, where: str, kind=float, required: bool = True):
    if key not in data:
        if required:
            raise CameraPathError(f"{where}: no {key!r} field (a nerfstudio camera path has render_width, "
                                  f"render_height, fps and a camera_path list)")
        return None
    value = data[key]
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if ok and kind is int and value != int(value):
        ok = False
    if not ok:
        raise CameraPathError(f"{where}: {key!r} is {value!r}; expected a positive {'integer' if kind is int else 'number'}")
    return kind(value)


def cameras_from_json(data, where: str = "camera path", width: int | None = None,
                      height: int | None = None) -> CameraPath:
    """The cameras of a nerfstudio camera-path dict (see the module docstring).

    Args:
        data: the parsed JSON.
        where: the file's name, for error messages.
        width, height: render size instead of the file's ``render_width``/``render_height``
            (each frame keeps its vertical field of view).

    Returns:
        A :class:`CameraPath`; ``fps`` is the file's ``fps``, else ``len(camera_path) / seconds``,
        else 30.

    Raises:
        CameraPathError: a missing or bad field (the message names ``where``, the field and
            the entry), or a ``camera_type`` other than ``perspective``.
    """
    if not isinstance(data, dict):
        raise CameraPathError(f"{where}: expected a JSON object with a 'camera_path' list, found {type(data).__name__}")
    kind = data.get("camera_type", "perspective")
    if kind != "perspective":
        raise CameraPathError(f"{where}: camera_type {kind!r} is not supported; brushpy renders 'perspective' paths")
    entries = data.get("camera_path")
    if not isinstance(entries, list) or not entries:
        found = "no 'camera_path' field" if entries is None else f"'camera_path' is {type(entries).__name__} of length {len(entries) if hasattr(entries, '__len__') else '?'}"
        raise CameraPathError(f"{where}: {found}; expected a non-empty list of frames "
                              "({'camera_to_world': 16 numbers, 'fov': degrees})")
    w = int(width) if width else _positive(data, "render_width", where, int)
    h = int(height) if height else _positive(data, "render_height", where, int)
    fps = _positive(data, "fps", where, float, required=False)
    if fps is None:
        seconds = _positive(data, "seconds", where, float, required=False)
        fps = len(entries) / seconds if seconds else 30.0
    cameras = []
    for i, entry in enumerate(entries):
        at = f"{where}: camera_path[{i}]"
        if not isinstance(entry, dict):
            raise CameraPathError(f"{at} is {type(entry).__name__}; expected an object with camera_to_world and fov")
        if "camera_to_world" not in entry:
            raise CameraPathError(f"{at} has no 'camera_to_world' (16 numbers, a row-major 4x4 matrix)")
        try:
            m = np.asarray(entry["camera_to_world"], np.float64)
        except (TypeError, ValueError):
            m = np.zeros(0)
        if m.size == 12:
            m = np.vstack([m.reshape(3, 4), [0.0, 0.0, 0.0, 1.0]])
        if m.size != 16 or not np.isfinite(m).all():
            raise CameraPathError(f"{at}: camera_to_world must be 16 finite numbers (a row-major 4x4 matrix), "
                                  f"found {entry['camera_to_world']!r:.80}")
        m = m.reshape(4, 4)
        r = m[:3, :3]
        if not np.allclose(m[3], [0.0, 0.0, 0.0, 1.0], atol=1e-6) or not np.allclose(r.T @ r, np.eye(3), atol=1e-3) \
                or np.linalg.det(r) < 0:
            raise CameraPathError(f"{at}: camera_to_world is not a rigid transform (its 3x3 part must be a rotation, "
                                  "its last row 0 0 0 1)")
        fov = entry.get("fov")
        if not isinstance(fov, (int, float)) or isinstance(fov, bool) or not 0.0 < fov < 180.0:
            what = "no 'fov'" if fov is None else f"fov {fov!r}"
            raise CameraPathError(f"{at} has {what}; expected the vertical field of view in degrees, in (0, 180)")
        c2w_cv = m @ GL_FROM_CV
        cameras.append(_centred_camera(np.linalg.inv(c2w_cv), float(fov), w, h))
    return CameraPath(cameras, fps)


def read_camera_path(path, width: int | None = None, height: int | None = None) -> CameraPath:
    """Read a nerfstudio camera-path JSON file (:func:`cameras_from_json`).

    Raises:
        CameraPathError: the file is missing, unreadable, not JSON, or lacks a field (the
            message names the file and what is wrong).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise CameraPathError(f"{path}: no such camera-path file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise CameraPathError(f"{path}: cannot read the camera-path file ({exc})") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CameraPathError(f"{path}: not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg}); "
                              "expected a nerfstudio camera path") from exc
    return cameras_from_json(data, str(path), width, height)


def write_camera_path(path, cameras, fps: float) -> Path:
    """Write ``cameras`` as a nerfstudio camera-path JSON (:func:`camera_path_json`), atomically.

    Raises:
        WriteError: the file cannot be written (names it and the cause).
    """
    from .atomic import atomic_write

    path = Path(path)
    data = camera_path_json(cameras, fps)
    with atomic_write(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    return path


# --------------------------------------------------------------------------- recording


class PathRecorder:
    """Collects a moving camera (the desktop viewer's) and turns it into a fixed-rate path.

    Call :meth:`add` with each drawn frame's camera and a clock time; :meth:`path` resamples
    the samples at ``fps`` (:func:`smooth_path` with the sample times as keyframe times), so
    an uneven frame rate while recording plays back at the speed it was recorded.

    Args:
        fps: frame rate of the written path.

    Attributes:
        samples: ``(time_s, camera)`` pairs since :meth:`start`, times strictly increasing.
        recording: whether :meth:`add` keeps samples.
    """

    def __init__(self, fps: float = 30.0):
        if not fps > 0:
            raise ValueError(f"fps {fps} must be positive")
        self.fps = float(fps)
        self.samples: list[tuple[float, Camera]] = []
        self.recording = False

    def start(self) -> None:
        """Forget earlier samples and record from now."""
        self.samples = []
        self.recording = True

    def stop(self) -> None:
        """Stop recording (the samples stay for :meth:`path` / :meth:`save`)."""
        self.recording = False

    def add(self, time_s: float, camera: Camera) -> None:
        """Record ``camera`` at clock time ``time_s`` (seconds; ignored unless recording, and
        when not later than the previous sample)."""
        if self.recording and (not self.samples or time_s > self.samples[-1][0]):
            self.samples.append((float(time_s), camera))

    @property
    def duration_s(self) -> float:
        """Seconds from the first sample to the last."""
        return self.samples[-1][0] - self.samples[0][0] if self.samples else 0.0

    def path(self, width: int | None = None, height: int | None = None) -> CameraPath:
        """The recording resampled at :attr:`fps`: ``floor(duration · fps) + 1`` frames of
        ``width`` x ``height`` (default: the first sample's size).

        Raises:
            ValueError: nothing recorded.
        """
        if not self.samples:
            raise ValueError("nothing recorded: start recording and move the camera first")
        times = np.array([t for t, _ in self.samples])
        n = int(math.floor(self.duration_s * self.fps + 1e-9)) + 1
        out_times = times[0] + np.arange(n) / self.fps
        return CameraPath(_resample([c for _, c in self.samples], times, out_times, width, height), self.fps)

    def save(self, path, width: int | None = None, height: int | None = None) -> CameraPath:
        """Write :meth:`path` to ``path`` as nerfstudio camera-path JSON (atomically); returns it."""
        result = self.path(width, height)
        write_camera_path(path, result.cameras, result.fps)
        return result
