"""Orbit / look / pan / fly camera controller for the viewer (pure maths, no window).

The controller holds a pose (camera centre and camera-to-world rotation in the
OpenCV convention: columns are the camera's right, down and forward axes in
world coordinates), a focus distance (the focus point is ``focus_distance``
in front of the camera) and a vertical field of view. It turns user input
into pose changes:

* :meth:`orbit` (left drag): turn around the focus point; yaw about the world
  up axis, pitch about the camera's right axis, elevation clamped to
  ``±max_pitch_deg`` so the view never flips over the pole.
* :meth:`look` (right drag): rotate in place; the focus point moves with the view.
* :meth:`pan` (middle drag, Ctrl + left drag): slide the camera and the focus
  point in the image plane. The focus plane follows the pointer exactly: one
  pixel moves it ``focus_distance / fy`` world units.
* :meth:`zoom` (scroll): dolly toward / away from the focus point; each wheel
  step multiplies the focus distance by ``zoom_step``.
* :meth:`set_key` (W/A/S/D/Q/E, Shift): fly along the camera axes; the velocity
  ramps up and decays exponentially (``fly_ramp``, ``fly_decay`` in 1/s).

Damping: drags and zooms are not applied at once; each :meth:`update` applies
the fraction ``1 - exp(-damping * dt)`` of what is still pending, so the motion
eases out and the total is exactly the input (``damping = 0`` applies it at
once). The damped approach follows Brush's camera controls (exponential
interpolation toward the target with a rate per second).

World up defaults to ``-y`` (COLMAP / INRIA scenes are y-down). Angles are in
radians per logical pixel of pointer motion unless stated otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..io.camera_path import vertical_fov_deg
from ..render.bounds import FRAMING_PERCENTILE, scene_bounds
from ..render.camera import Camera

#: Keys that fly the camera, and the camera-axis direction each one pushes
#: (x right, y down, z forward; OpenCV).
FLY_KEYS = {
    "w": (0.0, 0.0, 1.0),
    "s": (0.0, 0.0, -1.0),
    "a": (-1.0, 0.0, 0.0),
    "d": (1.0, 0.0, 0.0),
    "q": (0.0, 1.0, 0.0),  # down
    "e": (0.0, -1.0, 0.0),  # up
}

_EPS_ANGLE = 1e-7


def _rotation_about(axis: np.ndarray, angle: float) -> np.ndarray:
    """3x3 rotation by ``angle`` radians about the unit ``axis`` (right-handed, Rodrigues)."""
    x, y, z = axis
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + math.sin(angle) * k + (1.0 - math.cos(angle)) * (k @ k)


def _orthonormalize(r: np.ndarray) -> np.ndarray:
    """Nearest rotation to ``r`` (removes drift from repeated products)."""
    u, _, vt = np.linalg.svd(r)
    out = u @ vt
    if np.linalg.det(out) < 0:
        u[:, -1] *= -1
        out = u @ vt
    return out


def framing_bounds(means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Robust axis-aligned bounds of splat centres, for framing the camera.

    :func:`brushpy.render.bounds.scene_bounds` with :data:`~brushpy.render.bounds.FRAMING_PERCENTILE`:
    trained scenes carry far-away floaters, so the box keeps the central 98% of the
    splats per axis (non-finite coordinates ignored).

    Args:
        means: float [N,3] world positions.

    Returns:
        ``(lo, hi)`` float64 [3] each.

    Raises:
        ValueError: when ``means`` is empty or some axis has no finite value.
    """
    b = scene_bounds(means, FRAMING_PERCENTILE, require_finite=True)
    return b.lo, b.hi


@dataclass
class ControllerSettings:
    """Speeds and damping of :class:`CameraController` (all positive floats).

    Attributes:
        orbit_speed: radians per pixel of left drag.
        look_speed: radians per pixel of right drag.
        zoom_step: focus-distance factor per wheel step toward the focus (< 1).
        fly_speed: world units per second of WASD flight (``frame`` sets it
            from the scene size).
        fast_multiplier: flight speed factor while Shift is held.
        damping: rate (1/s) at which pending drags and zooms are applied;
            0 applies them at once.
        fly_ramp: rate (1/s) at which the flight velocity reaches its target
            while a key is held.
        fly_decay: rate (1/s) at which the flight velocity dies after release.
        max_pitch_deg: largest elevation of the view direction above or
            below the horizon reachable by orbiting / looking.
        min_distance: smallest focus distance reachable by zooming.
    """

    orbit_speed: float = 0.006
    look_speed: float = 0.003
    zoom_step: float = 0.85
    fly_speed: float = 1.0
    fast_multiplier: float = 4.0
    damping: float = 18.0
    fly_ramp: float = 10.0
    fly_decay: float = 8.0
    max_pitch_deg: float = 85.0
    min_distance: float = 1e-3


class CameraController:
    """Pose of the viewer's camera and the input that moves it.

    Args:
        position: camera centre in world coordinates.
        rotation: camera-to-world 3x3 rotation (columns: right, down, forward),
            default identity (looking along +z with -y up).
        focus_distance: distance from the camera to the focus point (> 0).
        fov_y_deg: vertical field of view in degrees (0 < fov < 180).
        up: world up direction (normalised internally).
        settings: :class:`ControllerSettings`.

    Raises:
        ValueError: for a non-positive focus distance, a field of view outside
            (0, 180) degrees or a zero ``up`` vector.
    """

    def __init__(
        self,
        position=(0.0, 0.0, -5.0),
        rotation=None,
        focus_distance: float = 5.0,
        fov_y_deg: float = 50.0,
        up=(0.0, -1.0, 0.0),
        settings: ControllerSettings | None = None,
    ):
        self.settings = settings or ControllerSettings()
        self.position = np.asarray(position, np.float64).reshape(3).copy()
        self.rotation = np.eye(3) if rotation is None else _orthonormalize(np.asarray(rotation, np.float64).reshape(3, 3))
        if not focus_distance > 0:
            raise ValueError(f"focus_distance must be > 0, got {focus_distance}")
        self.focus_distance = float(focus_distance)
        self.fov_y_deg = fov_y_deg
        self.up = up
        self.keys: set[str] = set()
        self.fast = False
        self.fly_velocity = np.zeros(3)  # camera axes, world units / s
        self._pending_orbit = np.zeros(2)  # yaw, pitch (radians)
        self._pending_look = np.zeros(2)
        self._pending_pan = np.zeros(3)  # world units
        self._pending_zoom = 0.0  # log of the focus-distance factor
        self.version = 0  # bumps whenever the pose or field of view changes

    # -- properties -----------------------------------------------------------
    @property
    def fov_y_deg(self) -> float:
        return self._fov_y_deg

    @fov_y_deg.setter
    def fov_y_deg(self, value: float):
        value = float(value)
        if not 0.0 < value < 180.0:
            raise ValueError(f"field of view must be in (0, 180) degrees, got {value}")
        self._fov_y_deg = value
        self.version = getattr(self, "version", 0) + 1

    @property
    def up(self) -> np.ndarray:
        return self._up

    @up.setter
    def up(self, value):
        u = np.asarray(value, np.float64).reshape(3)
        n = np.linalg.norm(u)
        if not n > 0:
            raise ValueError("up must be a non-zero 3-vector")
        self._up = u / n

    @property
    def right(self) -> np.ndarray:
        return self.rotation[:, 0]

    @property
    def down(self) -> np.ndarray:
        return self.rotation[:, 1]

    @property
    def forward(self) -> np.ndarray:
        return self.rotation[:, 2]

    @property
    def focus(self) -> np.ndarray:
        """The point the camera orbits around: ``position + forward * focus_distance``."""
        return self.position + self.forward * self.focus_distance

    def focal_length(self, height: int) -> float:
        """Focal length in pixels for an image ``height`` pixels tall at this field of view."""
        return 0.5 * height / math.tan(0.5 * math.radians(self._fov_y_deg))

    # -- output ---------------------------------------------------------------
    def camera(self, width: int, height: int) -> Camera:
        """The current view as an OpenCV :class:`~brushpy.render.camera.Camera`.

        Square pixels, principal point at the image centre, ``fy`` from the
        vertical field of view.
        """
        width, height = int(width), int(height)
        if width <= 0 or height <= 0:
            raise ValueError(f"viewport must be at least 1x1 pixels, got {width}x{height}")
        f = self.focal_length(height)
        w2c = np.eye(4)
        w2c[:3, :3] = self.rotation.T
        w2c[:3, 3] = -self.rotation.T @ self.position
        return Camera(w2c, f, f, width / 2.0, height / 2.0, width, height)

    # -- direct placement -----------------------------------------------------
    def stop(self):
        """Drop pending drags, zooms and flight velocity (the pose stays)."""
        self._pending_orbit[:] = 0.0
        self._pending_look[:] = 0.0
        self._pending_pan[:] = 0.0
        self._pending_zoom = 0.0
        self.fly_velocity[:] = 0.0

    def set_pose(self, position, rotation, focus_distance: float | None = None):
        """Place the camera (world centre, camera-to-world rotation); stops any motion."""
        self.stop()
        self.position = np.asarray(position, np.float64).reshape(3).copy()
        self.rotation = _orthonormalize(np.asarray(rotation, np.float64).reshape(3, 3))
        if focus_distance is not None:
            if not focus_distance > 0:
                raise ValueError(f"focus_distance must be > 0, got {focus_distance}")
            self.focus_distance = float(focus_distance)
        self.version += 1

    def orient(self, up, forward=None):
        """Make ``up`` the world up and look horizontally (stops any motion; the position stays).

        The new view direction is ``forward`` (default: the current one) made perpendicular to
        ``up``; when that is (nearly) parallel to ``up``, some horizontal direction. The camera's
        down axis becomes ``-up`` (no roll, no pitch).

        Raises:
            ValueError: a zero ``up``.
        """
        self.up = up
        u = self.up
        f = self.forward if forward is None else np.asarray(forward, np.float64).reshape(3)
        f = f - (f @ u) * u
        if not np.linalg.norm(f) > 1e-6:
            a = np.eye(3)[int(np.argmin(np.abs(u)))]
            f = a - (a @ u) * u
        f = f / np.linalg.norm(f)
        down = -u
        self.stop()
        self.rotation = np.stack([np.cross(down, f), down, f], axis=1)
        self.version += 1

    def jump_to(self, camera: Camera, focus_distance: float | None = None, match_fov: bool = True):
        """Take the pose (and, with ``match_fov``, the vertical field of view) of ``camera``.

        The focus point is placed ``focus_distance`` ahead (default: the
        current focus distance) so orbiting turns around what the camera looks at.
        """
        c2w = camera.camera_to_world
        self.set_pose(c2w[:3, 3], c2w[:3, :3], focus_distance)
        if match_fov:
            self.fov_y_deg = vertical_fov_deg(camera)

    def frame(self, lo, hi, aspect: float = 1.0, margin: float = 1.1):
        """Fit the box ``[lo, hi]`` in view, keeping the viewing direction.

        The focus point moves to the box centre and the camera backs off until
        the box's bounding sphere fits the narrower of the vertical and
        horizontal fields of view (times ``margin``). Sets the flight speed to
        half the sphere's radius per second and the minimum zoom distance to
        a thousandth of it.

        Raises:
            ValueError: when the bounds are not finite.
        """
        lo = np.asarray(lo, np.float64).reshape(3)
        hi = np.asarray(hi, np.float64).reshape(3)
        if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
            raise ValueError("frame: scene bounds are not finite")
        center = 0.5 * (lo + hi)
        radius = max(0.5 * float(np.linalg.norm(hi - lo)), 1e-6)
        half_v = 0.5 * math.radians(self._fov_y_deg)
        half_h = math.atan(math.tan(half_v) * max(aspect, 1e-6))
        distance = margin * radius / math.sin(min(half_v, half_h))
        self.stop()
        self.focus_distance = distance
        self.position = center - self.forward * distance
        self.settings.fly_speed = 0.5 * radius
        self.settings.min_distance = 1e-3 * radius
        self.version += 1

    # -- input ------------------------------------------------------------------
    def orbit(self, dx: float, dy: float):
        """Left drag by ``(dx, dy)`` pixels: the scene turns with the pointer around the focus point."""
        s = self.settings.orbit_speed
        self._pending_orbit += (-dx * s, -dy * s)

    def look(self, dx: float, dy: float):
        """Right drag: turn the view in place toward the pointer motion (drag right looks right)."""
        s = self.settings.look_speed
        self._pending_look += (-dx * s, -dy * s)

    def pan(self, dx: float, dy: float, viewport_height: float):
        """Middle drag: move the focus plane with the pointer (the camera slides the other way)."""
        if viewport_height <= 0:
            return
        per_pixel = self.focus_distance / self.focal_length(viewport_height)
        self._pending_pan += (-dx * self.right - dy * self.down) * per_pixel

    def zoom(self, steps: float):
        """Scroll ``steps`` wheel notches (positive: toward the focus point)."""
        self._pending_zoom += steps * math.log(self.settings.zoom_step)

    def set_key(self, key: str, down: bool):
        """Press or release a flight key (``w a s d q e``, case-insensitive; others are ignored)."""
        k = key.lower()
        if k in FLY_KEYS:
            if down:
                self.keys.add(k)
            else:
                self.keys.discard(k)

    def release_all(self):
        """Forget held keys (e.g. when the window loses focus)."""
        self.keys.clear()
        self.fast = False

    @property
    def is_moving(self) -> bool:
        """True while input is still being applied (keep drawing frames)."""
        return bool(
            self.keys
            or np.any(self._pending_orbit)
            or np.any(self._pending_look)
            or np.any(self._pending_pan)
            or self._pending_zoom
            or np.any(self.fly_velocity)
        )

    # -- integration ----------------------------------------------------------
    def _take(self, pending, a: float):
        """Split ``pending`` into the part applied now and the rest (snaps tiny remainders)."""
        step = pending * a
        rest = pending - step
        if np.max(np.abs(rest)) < _EPS_ANGLE:
            step, rest = pending, pending * 0.0
        return step, rest

    def _clamp_pitch(self, pitch: float) -> float:
        elevation = math.asin(max(-1.0, min(1.0, float(self.forward @ self.up))))
        limit = math.radians(self.settings.max_pitch_deg)
        return max(-limit - elevation, min(limit - elevation, pitch))

    def _turn(self, yaw: float, pitch: float):
        """Yaw about world up, then pitch about the camera's right axis (clamped)."""
        pitch = self._clamp_pitch(pitch)
        r = _rotation_about(self.up, yaw)
        rotated = r @ self.rotation
        p = _rotation_about(rotated[:, 0], pitch)
        self.rotation = _orthonormalize(p @ rotated)

    def update(self, dt: float) -> bool:
        """Advance by ``dt`` seconds; returns True when the pose changed."""
        dt = max(0.0, float(dt))
        st = self.settings
        a = 1.0 if st.damping <= 0 else 1.0 - math.exp(-st.damping * dt)
        changed = False

        if np.any(self._pending_orbit):
            (yaw, pitch), self._pending_orbit = self._take(self._pending_orbit, a)
            focus = self.focus
            self._turn(yaw, pitch)
            self.position = focus - self.forward * self.focus_distance
            changed = True
        if np.any(self._pending_look):
            (yaw, pitch), self._pending_look = self._take(self._pending_look, a)
            self._turn(yaw, pitch)
            changed = True
        if np.any(self._pending_pan):
            step, self._pending_pan = self._take(self._pending_pan, a)
            self.position = self.position + step
            changed = True
        if self._pending_zoom:
            step, rest = self._take(np.array([self._pending_zoom]), a)
            self._pending_zoom = float(rest[0])
            focus = self.focus
            self.focus_distance = max(st.min_distance, self.focus_distance * math.exp(float(step[0])))
            self.position = focus - self.forward * self.focus_distance
            changed = True

        # Flight: velocity (camera axes) eases toward the held keys' direction.
        target = np.zeros(3)
        for k in self.keys:
            target += FLY_KEYS[k]
        n = np.linalg.norm(target)
        if n > 0:
            speed = st.fly_speed * (st.fast_multiplier if self.fast else 1.0)
            target = target / n * speed
            rate = st.fly_ramp
        else:
            rate = st.fly_decay
        if n > 0 or np.any(self.fly_velocity):
            b = 1.0 - math.exp(-rate * dt)
            self.fly_velocity = self.fly_velocity + (target - self.fly_velocity) * b
            if n == 0 and np.linalg.norm(self.fly_velocity) < 1e-4 * max(st.fly_speed, 1e-12):
                self.fly_velocity = np.zeros(3)
            move = self.rotation @ self.fly_velocity * dt
            if np.any(move):
                self.position = self.position + move
                changed = True

        if changed:
            self.version += 1
        return changed
