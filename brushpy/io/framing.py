"""Bounds of a splat scene and a camera that frames them (used by ``brushpy render``).

Default world orientation: the scene's own up when its file says it
(:attr:`SplatData.vertical_axis <brushpy.io.ply.SplatData>`, e.g. a PLY's ``Vertical axis``
comment, written by Brush and by brushpy's trainer; :func:`scene_up`), else world **-y**
(``DEFAULT_UP = (0, -1, 0)``), as in scenes reconstructed from COLMAP and in most
INRIA-layout PLY files (their axes follow the OpenCV camera: +y down, +z forward). Scenes
in a z-up or y-up (OpenGL/NeRF-synthetic) world without such a note need ``up=(0, 0, 1)``
/ ``(0, 1, 0)``.

Vertical axes are named ``"+x"``, ``"-x"``, ``"+y"``, ``"-y"``, ``"+z"``, ``"-z"``
(:data:`AXES`; :func:`axis_vector` reads one, :func:`nearest_axis` snaps a direction to one).

Default view direction (:func:`default_forward`): horizontal (perpendicular to ``up``),
along the direction in which the bulk of the splat centres is *thinnest*, so the
scene's broadest side faces the camera (for a flat object such as a guitar: its face).
Of the two opposite directions, the one pointing along the *reference direction* is used
(front and back cannot be told apart from geometry alone; pass a position to choose).
The reference is world +z made horizontal, or world +y when up is ±z (a z-up scene is then
seen from -y looking along +y: Blender's front view, as in NeRF-synthetic scenes).
When the horizontal spread is nearly round (minor/major variance > 0.9) the thinnest
direction is ill-defined and the reference direction is used instead.
"""

from __future__ import annotations

import numpy as np

from ..render.camera import Camera

#: World direction shown upwards by default (scenes with +y pointing down).
DEFAULT_UP = (0.0, -1.0, 0.0)
#: Default viewing direction (world), used when no camera position is given.
DEFAULT_FORWARD = (0.0, 0.0, 1.0)
#: Reference viewing direction when ``up`` is parallel to :data:`DEFAULT_FORWARD` (z-up scenes).
DEFAULT_FORWARD_Z_UP = (0.0, 1.0, 0.0)

#: Vertical-axis names (:attr:`brushpy.io.ply.SplatData.vertical_axis`) -> unit world direction.
AXES = {
    "+x": (1.0, 0.0, 0.0), "-x": (-1.0, 0.0, 0.0),
    "+y": (0.0, 1.0, 0.0), "-y": (0.0, -1.0, 0.0),
    "+z": (0.0, 0.0, 1.0), "-z": (0.0, 0.0, -1.0),
}


def axis_vector(axis) -> np.ndarray | None:
    """The unit world direction (float64 [3]) a vertical axis names, or None.

    Accepts the names of :data:`AXES` (``"+z"``; case and spaces ignored), three numbers
    (``"0 0 1"``, ``"0,0,1"``, or a sequence; normalised), or None. Anything else gives None
    (callers then use their default up): an unreadable string, a zero or non-finite vector, and
    a bare ``"y"``/``"z"``, whose sign is ambiguous (Brush reads ``Vertical axis: y`` as -y).
    """
    if axis is None:
        return None
    if isinstance(axis, str):
        text = axis.strip().lower().replace(" ", "")
        if text in AXES:
            return np.asarray(AXES[text], np.float64)
        parts = axis.replace(",", " ").replace("[", " ").replace("]", " ").split()
        try:
            values = [float(p) for p in parts]
        except ValueError:
            return None
    else:
        try:
            values = [float(v) for v in np.asarray(axis, np.float64).reshape(-1)]
        except (TypeError, ValueError):
            return None
    v = np.asarray(values, np.float64)
    if v.shape != (3,) or not np.isfinite(v).all() or not np.linalg.norm(v) > 0:
        return None
    return v / np.linalg.norm(v)


def nearest_axis(direction) -> str | None:
    """The name in :data:`AXES` (``"+z"``, ...) closest in angle to ``direction`` (a 3-vector),
    or None when it is zero or not finite."""
    d = np.asarray(direction, np.float64).reshape(-1)
    if d.shape != (3,) or not np.isfinite(d).all() or not np.linalg.norm(d) > 0:
        return None
    i = int(np.argmax(np.abs(d)))
    return ("+" if d[i] > 0 else "-") + "xyz"[i]


def scene_up(vertical_axis) -> tuple[float, float, float]:
    """The default camera's up for a scene: its vertical axis (:func:`axis_vector`) when it has
    a readable one, else :data:`DEFAULT_UP`."""
    v = axis_vector(vertical_axis)
    return DEFAULT_UP if v is None else tuple(float(c) for c in v)


def robust_bounds(means: np.ndarray, lo_percentile: float = 2.0, hi_percentile: float = 98.0):
    """Axis-aligned box holding the bulk of the splat centres.

    Per axis, the ``lo_percentile``..``hi_percentile`` range of the finite ``means``, so
    a few stray splats far away do not inflate it.

    Args:
        means: [N,3] splat centres.

    Returns:
        ``(lo [3], hi [3])`` float64. With no finite centre: the unit box around 0.
    """
    means = np.asarray(means, np.float64).reshape(-1, 3)
    finite = means[np.isfinite(means).all(axis=1)]
    if len(finite) == 0:
        return np.full(3, -1.0), np.full(3, 1.0)
    lo, hi = np.percentile(finite, [lo_percentile, hi_percentile], axis=0)
    return lo, hi


def default_forward(means: np.ndarray, up=DEFAULT_UP) -> np.ndarray:
    """Default viewing direction (unit float64 [3]); see the module docstring.

    Horizontal principal axis of least variance of the centres inside
    :func:`robust_bounds` (perpendicular to ``up``), oriented along the reference direction
    (world +z made horizontal; +y when up is ±z); the reference itself when the spread is
    nearly round.

    Raises:
        ValueError: ``up`` is the zero vector.
    """
    u = np.asarray(up, np.float64)
    if not np.linalg.norm(u) > 0:
        raise ValueError("the up vector must not be zero")
    u = u / np.linalg.norm(u)
    # orthonormal basis (e1, e2) of the plane perpendicular to up
    a = np.eye(3)[int(np.argmin(np.abs(u)))]
    e1 = np.cross(u, a)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(u, e1)
    ref = np.asarray(DEFAULT_FORWARD, np.float64)
    if np.linalg.norm(ref - ref.dot(u) * u) < 1e-6:  # up is ±z: look along +y
        ref = np.asarray(DEFAULT_FORWARD_Z_UP, np.float64)
    fallback = ref - ref.dot(u) * u
    fallback = fallback / np.linalg.norm(fallback) if np.linalg.norm(fallback) > 1e-6 else e1
    ref = fallback

    means = np.asarray(means, np.float64).reshape(-1, 3)
    means = means[np.isfinite(means).all(axis=1)]
    lo, hi = robust_bounds(means)
    inside = means[((means >= lo) & (means <= hi)).all(axis=1)]
    if len(inside) < 3:
        return fallback
    flat = np.stack([(inside - inside.mean(axis=0)) @ e1, (inside - inside.mean(axis=0)) @ e2], axis=1)
    var, vec = np.linalg.eigh(np.cov(flat.T))
    if not var[1] > 0 or var[0] / var[1] > 0.9:
        return fallback
    forward = vec[0, 0] * e1 + vec[1, 0] * e2
    forward /= np.linalg.norm(forward)
    if forward.dot(ref) < -1e-9 or (abs(forward.dot(ref)) <= 1e-9 and forward.dot(np.cross(u, ref)) < 0):
        forward = -forward
    return forward


def _fit_distance(lo, hi, target, forward, up, fov_y_deg, aspect) -> float:
    """Smallest distance back from ``target`` along ``-forward`` at which the 8 corners of
    the box ``lo..hi`` lie inside the view frustum (and in front of the camera)."""
    u = np.asarray(up, np.float64)
    right = np.cross(forward, u)
    if not np.linalg.norm(right) > 1e-9:
        raise ValueError("`up` is parallel to the viewing direction; choose another up vector")
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    tan_y = np.tan(0.5 * np.deg2rad(fov_y_deg))
    tan_x = tan_y * aspect
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    rel = corners - target
    depth = rel @ forward  # corner depth = distance + depth
    need = np.maximum(np.abs(rel @ right) / tan_x, np.abs(rel @ down) / tan_y) - depth
    extent = float(np.linalg.norm(hi - lo))
    distance = max(float(need.max()), float((-depth).max()) + 0.05 * extent)
    return distance if distance > 0 else max(extent, 1.0)


def framing_camera(
    means: np.ndarray,
    width: int,
    height: int,
    fov_y_deg: float = 50.0,
    position=None,
    look_at=None,
    up=DEFAULT_UP,
    margin: float = 1.1,
) -> Camera:
    """A pinhole camera that shows the scene's :func:`robust_bounds`.

    Without ``position``, the camera looks along :func:`default_forward` at the target
    from the smallest distance at which all 8 corners of the bounds box are inside the
    view (times ``margin``).

    Args:
        means: [N,3] splat centres.
        width, height: image size in pixels.
        fov_y_deg: vertical field of view in degrees (0 < fov < 180).
        position: camera centre; default: on the line through the target along
            :func:`default_forward`, at the distance that fits the box.
        look_at: target point; default: the centre of the bounds.
        up: world direction shown upwards (default :data:`DEFAULT_UP`, i.e. -y; a scene's own
            is :func:`scene_up` of its ``vertical_axis``).
        margin: multiplies the fitted distance (default 1.1: a small border).

    Raises:
        ValueError: bad size or field of view, ``position == look_at``, zero ``up``, or
            ``up`` parallel to the viewing direction (messages say what to change).
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size {width}x{height} must be positive")
    if not 0.0 < fov_y_deg < 180.0:
        raise ValueError(f"field of view {fov_y_deg} degrees must be in (0, 180)")
    lo, hi = robust_bounds(means)
    centre = 0.5 * (lo + hi)
    target = centre if look_at is None else np.asarray(look_at, np.float64)
    if position is None:
        forward = default_forward(means, up)
        position = target - margin * _fit_distance(lo, hi, target, forward, up, fov_y_deg, width / height) * forward
    position = np.asarray(position, np.float64)
    if np.linalg.norm(target - position) < 1e-12:
        raise ValueError("camera position and look-at point coincide; move one of them")
    return Camera.look_at(position, target, up, fov_y_deg, width, height)
