"""Viewer camera controller and input mapping (pure maths, no window, no GPU)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from brushpy.render.camera import Camera
from brushpy.viewer.camera import CameraController, ControllerSettings, framing_bounds
from brushpy.viewer.input import InputMapper


def project(cam: Camera, p) -> np.ndarray:
    pc = cam.world_to_camera[:3, :3] @ np.asarray(p, np.float64) + cam.world_to_camera[:3, 3]
    return np.array([cam.fx * pc[0] / pc[2] + cam.cx, cam.fy * pc[1] / pc[2] + cam.cy, pc[2]])


def settle(ctl: CameraController, seconds: float = 3.0, dt: float = 1 / 60):
    for _ in range(int(seconds / dt)):
        ctl.update(dt)


def immediate() -> CameraController:
    """A controller off the identity pose with damping disabled (input applies at once)."""
    ctl = CameraController(position=(0.3, -0.2, -4.0), focus_distance=4.0, settings=ControllerSettings(damping=0.0))
    return ctl


def test_camera_output_is_opencv_pinhole():
    ctl = CameraController(position=(1.0, 2.0, 3.0), fov_y_deg=60.0)
    cam = ctl.camera(320, 240)
    assert (cam.width, cam.height) == (320, 240)
    assert cam.fx == pytest.approx(120.0 / math.tan(math.radians(30.0)))
    assert (cam.cx, cam.cy) == (160.0, 120.0)
    np.testing.assert_allclose(cam.position, [1.0, 2.0, 3.0])
    # a point straight ahead of the camera lands on the principal point
    np.testing.assert_allclose(project(cam, ctl.focus)[:2], [160.0, 120.0], atol=1e-9)
    with pytest.raises(ValueError, match="viewport"):
        ctl.camera(0, 10)


def test_jump_to_round_trips_a_camera():
    cam = Camera.look_at([2.0, -1.0, -3.0], [0.1, 0.2, 0.3], [0.0, -1.0, 0.0], 40.0, 200, 100)
    ctl = CameraController()
    ctl.jump_to(cam, focus_distance=2.5)
    out = ctl.camera(200, 100)
    np.testing.assert_allclose(out.world_to_camera, cam.world_to_camera, atol=1e-9)
    assert out.fy == pytest.approx(cam.fy)
    assert ctl.focus_distance == 2.5


def test_orbit_turns_around_the_focus_point():
    ctl = immediate()
    focus, dist, right = ctl.focus.copy(), ctl.focus_distance, ctl.right.copy()
    pos0, fwd0 = ctl.position.copy(), ctl.forward.copy()
    ctl.orbit(50.0, 0.0)
    assert ctl.update(1 / 60)
    np.testing.assert_allclose(ctl.focus, focus, atol=1e-9)
    assert np.linalg.norm(ctl.position - focus) == pytest.approx(dist)
    # dragging right carries the scene right: the camera swings to its left
    assert (ctl.position - pos0) @ right < 0
    # by exactly orbit_speed radians per pixel about the world up axis
    angle = math.acos(np.clip(fwd0 @ ctl.forward, -1, 1))
    assert angle == pytest.approx(50.0 * ctl.settings.orbit_speed, rel=1e-6)
    assert abs(ctl.forward @ ctl.up - fwd0 @ ctl.up) < 1e-9  # yaw keeps the elevation


def test_orbit_pitch_is_clamped_below_the_pole():
    ctl = immediate()
    ctl.orbit(0.0, -1e5)  # drag far up: the camera goes down, looking up
    ctl.update(1 / 60)
    elevation = math.degrees(math.asin(ctl.forward @ ctl.up))
    assert elevation == pytest.approx(ctl.settings.max_pitch_deg, abs=1e-6)
    ctl.orbit(0.0, 1e5)
    ctl.update(1 / 60)
    assert math.degrees(math.asin(ctl.forward @ ctl.up)) == pytest.approx(-ctl.settings.max_pitch_deg, abs=1e-6)
    # dragging down lifts the camera above the focus point
    ctl = immediate()
    ctl.orbit(0.0, 40.0)
    ctl.update(1 / 60)
    assert (ctl.position - ctl.focus) @ ctl.up > 0


def test_look_rotates_in_place():
    ctl = immediate()
    pos, right = ctl.position.copy(), ctl.right.copy()
    ctl.look(30.0, 0.0)
    ctl.update(1 / 60)
    np.testing.assert_allclose(ctl.position, pos)
    assert ctl.forward @ right > 0  # drag right looks right
    ctl.look(0.0, 30.0)
    ctl.update(1 / 60)
    assert ctl.forward @ ctl.up < 0  # drag down looks down


def test_pan_moves_the_focus_plane_with_the_pointer():
    ctl = immediate()
    cam0 = ctl.camera(320, 240)
    anchor = ctl.focus.copy()
    ctl.pan(25.0, -10.0, 240)
    ctl.update(1 / 60)
    cam1 = ctl.camera(320, 240)
    np.testing.assert_allclose(project(cam0, anchor)[:2], [160.0, 120.0], atol=1e-9)
    np.testing.assert_allclose(project(cam1, anchor)[:2], [185.0, 110.0], atol=1e-6)
    np.testing.assert_allclose(ctl.rotation, cam0.camera_to_world[:3, :3], atol=1e-12)


def test_zoom_dollies_toward_the_focus_point():
    ctl = immediate()
    focus, dist = ctl.focus.copy(), ctl.focus_distance
    ctl.zoom(2.0)
    ctl.update(1 / 60)
    assert ctl.focus_distance == pytest.approx(dist * ctl.settings.zoom_step**2)
    np.testing.assert_allclose(ctl.focus, focus, atol=1e-9)
    ctl.zoom(-1000.0)  # far out is allowed, far in stops at min_distance
    ctl.update(1 / 60)
    ctl.zoom(1e6)
    ctl.update(1 / 60)
    assert ctl.focus_distance == pytest.approx(ctl.settings.min_distance)


def test_damping_eases_out_and_reaches_the_exact_target():
    ref = immediate()
    ref.orbit(40.0, 15.0)
    ref.pan(5.0, 3.0, 240)
    ref.zoom(1.0)
    ref.update(1 / 60)

    ctl = CameraController(position=(0.3, -0.2, -4.0), focus_distance=4.0)  # default damping
    ctl.orbit(40.0, 15.0)
    ctl.pan(5.0, 3.0, 240)
    ctl.zoom(1.0)
    start = ctl.position.copy()
    ctl.update(1 / 60)
    first = np.linalg.norm(ctl.position - start)
    assert 0 < first < np.linalg.norm(ref.position - start)  # only part of it in the first frame
    assert ctl.is_moving
    settle(ctl)
    assert not ctl.is_moving
    assert not ctl.update(1 / 60)  # nothing left to do: no redraw needed
    np.testing.assert_allclose(ctl.position, ref.position, atol=1e-6)
    np.testing.assert_allclose(ctl.rotation, ref.rotation, atol=1e-6)


def test_wasd_flight_ramps_with_shift_and_stops():
    ctl = CameraController(position=(0.0, 0.0, 0.0))
    ctl.settings.fly_speed = 2.0
    ctl.set_key("W", True)
    settle(ctl, 1.0)
    slow = ctl.position @ ctl.forward
    assert 1.0 < slow < 2.0  # ramping toward 2 units/s
    ctl.position[:] = 0.0
    ctl.fly_velocity[:] = 0.0
    ctl.fast = True
    settle(ctl, 1.0)
    assert ctl.position @ ctl.forward == pytest.approx(4.0 * slow, rel=1e-6)
    ctl.set_key("w", False)
    ctl.fast = False
    assert ctl.is_moving  # still gliding
    settle(ctl, 5.0)
    assert not ctl.is_moving
    # each key's direction in camera axes
    for key, axis, sign in [("a", 0, -1), ("d", 0, 1), ("s", 2, -1), ("q", 1, 1), ("e", 1, -1)]:
        c = CameraController(position=(0.0, 0.0, 0.0))
        c.set_key(key, True)
        settle(c, 0.5)
        moved = c.rotation.T @ c.position
        assert sign * moved[axis] > 0 and np.abs(np.delete(moved, axis)).max() < 1e-12, key


def test_frame_fits_the_bounds():
    rng = np.random.default_rng(0)
    means = rng.normal(size=(2000, 3)) * [2.0, 0.5, 1.0] + [10.0, -3.0, 4.0]
    means[:5] = 1e4  # floaters are ignored by the robust bounds
    lo, hi = framing_bounds(means)
    assert hi.max() < 100
    ctl = CameraController()
    ctl.look(80.0, 20.0)
    ctl.update(1.0)
    ctl.frame(lo, hi, aspect=320 / 240)
    cam = ctl.camera(320, 240)
    np.testing.assert_allclose(ctl.focus, 0.5 * (lo + hi))
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    px = np.array([project(cam, c) for c in corners])
    assert (px[:, 2] > 0).all()
    assert (px[:, 0] > 0).all() and (px[:, 0] < 320).all() and (px[:, 1] > 0).all() and (px[:, 1] < 240).all()
    # a tall narrow window fits by the horizontal field of view
    ctl.frame(lo, hi, aspect=0.25)
    cam = ctl.camera(60, 240)
    px = np.array([project(cam, c) for c in corners])
    assert (px[:, 0] > 0).all() and (px[:, 0] < 60).all()
    with pytest.raises(ValueError, match="finite"):
        ctl.frame([0, 0, np.nan], [1, 1, 1])
    with pytest.raises(ValueError, match="no finite"):
        framing_bounds(np.full((3, 3), np.nan))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="field of view"):
        CameraController(fov_y_deg=180.0)
    with pytest.raises(ValueError, match="focus_distance"):
        CameraController(focus_distance=0.0)
    with pytest.raises(ValueError, match="up"):
        CameraController(up=(0, 0, 0))


# -- input mapping ---------------------------------------------------------------


def pointer(kind, x, y, button=0, modifiers=()):
    return {"event_type": kind, "x": x, "y": y, "button": button, "buttons": (), "modifiers": modifiers}


def drag(mapper, button, modifiers=(), dx=20.0, dy=0.0):
    mapper.handle(pointer("pointer_down", 100.0, 100.0, button, modifiers))
    mapper.handle(pointer("pointer_move", 100.0 + dx, 100.0 + dy, 0, modifiers))
    mapper.handle(pointer("pointer_up", 100.0 + dx, 100.0 + dy, button, modifiers))


@pytest.mark.parametrize(
    "button,modifiers,expected",
    [(1, (), "orbit"), (1, ("Control",), "pan"), (2, (), "look"), (3, (), "pan")],
)
def test_buttons_map_to_drag_modes(button, modifiers, expected):
    ctl = immediate()
    calls = []
    for name in ("orbit", "look", "pan"):
        orig = getattr(ctl, name)
        setattr(ctl, name, lambda *a, _n=name, _o=orig: (calls.append(_n), _o(*a)))
    m = InputMapper(ctl, lambda: 240.0)
    drag(m, button, modifiers)
    assert calls == [expected]
    assert m.drag_mode is None


def test_gui_capture_blocks_presses_but_not_releases():
    ctl = immediate()
    wants = {"mouse": True, "kbd": True}
    m = InputMapper(ctl, lambda: 240.0, lambda: wants["mouse"], lambda: wants["kbd"])
    drag(m, 1)
    m.handle({"event_type": "wheel", "dx": 0.0, "dy": -100.0, "x": 0, "y": 0})
    m.handle({"event_type": "key_down", "key": "w", "modifiers": ()})
    assert not ctl.is_moving
    # a key pressed while the GUI did not want it is released even if the GUI wants it now
    wants["kbd"] = False
    assert m.handle({"event_type": "key_down", "key": "w", "modifiers": ()})
    wants["kbd"] = True
    assert m.handle({"event_type": "key_up", "key": "w", "modifiers": ()})
    assert not ctl.keys
    # a drag that started on the scene keeps going over a panel
    wants["mouse"] = False
    m.handle(pointer("pointer_down", 10.0, 10.0, 1))
    wants["mouse"] = True
    assert m.handle(pointer("pointer_move", 30.0, 10.0))
    assert m.handle(pointer("pointer_up", 30.0, 10.0, 1))


def test_wheel_keys_and_actions():
    ctl = immediate()
    m = InputMapper(ctl, lambda: 240.0)
    d = ctl.focus_distance
    assert m.handle({"event_type": "wheel", "dx": 0.0, "dy": -100.0, "x": 0, "y": 0})  # wheel up
    ctl.update(0.1)
    assert ctl.focus_distance == pytest.approx(d * ctl.settings.zoom_step)
    # Shift + W arrives as "W" with the Shift modifier
    m.handle({"event_type": "key_down", "key": "Shift", "modifiers": ("Shift",)})
    m.handle({"event_type": "key_down", "key": "W", "modifiers": ("Shift",)})
    assert ctl.keys == {"w"} and ctl.fast
    m.handle({"event_type": "key_up", "key": "Shift", "modifiers": ()})
    m.handle({"event_type": "key_up", "key": "w", "modifiers": ()})
    assert not ctl.keys and not ctl.fast
    m.handle({"event_type": "key_down", "key": "f", "modifiers": ()})
    m.handle({"event_type": "key_down", "key": "Home", "modifiers": ()})
    assert m.actions == ["toggle_fullscreen", "frame_scene"]
