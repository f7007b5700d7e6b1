"""The real viewer window (glfw) under Xvfb: it opens, shows the splats, and moves with input.

The window session runs in a child process (``drive``) on a private Xvfb
display that the test starts itself, so the X server and glfw never outlive
the test. The child saves its screenshots (read back from the window's own
surface texture) and measurements; the test checks them here. Set
``BRUSHPY_VIEWER_SHOTS=/some/dir`` to keep the PNGs for a look.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SHARED
from tests.viewer_driver import run_drive

pytestmark = pytest.mark.gui
pytest.importorskip("brushpy.render.forward", reason="the rasterizer (brushpy.render.forward) is not in this checkout yet")

GUITAR = SHARED / "splats" / "guitar_inria_sh0.ply"
SIZE = (320, 240)


def _free_display() -> int:
    for n in range(90, 400):
        if not Path(f"/tmp/.X{n}-lock").exists() and not Path(f"/tmp/.X11-unix/X{n}").exists():
            return n
    raise RuntimeError("no free X display number in :90..:399")


@pytest.fixture(scope="module")
def xvfb():
    exe = shutil.which("Xvfb")
    if exe is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    for _ in range(5):
        n = _free_display()
        proc = subprocess.Popen([exe, f":{n}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 15
        while time.time() < deadline and proc.poll() is None and not Path(f"/tmp/.X11-unix/X{n}").exists():
            time.sleep(0.05)
        if proc.poll() is None and Path(f"/tmp/.X11-unix/X{n}").exists():
            break
        proc.kill()
        proc.wait()
    else:
        pytest.skip("Xvfb did not start")
    try:
        yield f":{n}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _scene_arg() -> str:
    """The guitar when it and the real PLY reader are there, else a synthetic ball."""
    if GUITAR.exists():
        try:
            import brushpy.io.ply  # noqa: F401

            return str(GUITAR)
        except ImportError:
            pass
    return "synthetic"


# --------------------------------------------------------------------------------------------
# child process


def drive(out_dir: str, scene: str):
    """Open the window, script input, save captures and numbers to ``out_dir`` (runs in the child)."""
    import asyncio

    from PIL import Image

    from brushpy.render.forward import render_forward
    from brushpy.viewer.app import ViewerApp

    out = Path(out_dir)
    if scene == "synthetic":
        from tests.test_viewer_offscreen import synthetic_splats

        app = ViewerApp(splats=synthetic_splats(3000), name="synthetic", size=SIZE, show_panels=False)
    else:
        app = ViewerApp(scene, size=SIZE, show_panels=False)
    result: dict = {"scene": scene}
    pointer = {"x": 0.0, "y": 0.0}

    def submit(kind, **kw):
        ev = {"event_type": kind, "modifiers": kw.pop("modifiers", ())}
        if kind.startswith("pointer"):
            ev.update(x=pointer["x"], y=pointer["y"], button=0, buttons=(), ntouches=0, touches={})
        ev.update(kw)
        app.canvas.submit_event(ev)

    from tests.viewer_driver import WindowDriver

    driver = WindowDriver(app, out, timeout=90.0)
    wait_until, frames, capture = driver.wait_until, driver.frames, driver.capture

    async def settle():
        await wait_until(lambda: not app.controller.is_moving, "the camera to settle")
        await frames(2)


    async def drag(button, x0, y0, dx, dy, steps=6, modifiers=()):
        pointer.update(x=x0, y=y0)
        submit("pointer_move", modifiers=modifiers)
        await frames(1)
        submit("pointer_down", button=button, buttons=(button,), modifiers=modifiers)
        await frames(1)
        for i in range(1, steps + 1):
            pointer.update(x=x0 + dx * i / steps, y=y0 + dy * i / steps)
            submit("pointer_move", buttons=(button,), modifiers=modifiers)
            await frames(1)
        submit("pointer_up", button=button, buttons=(), modifiers=modifiers)
        await frames(1)

    def pose():
        c = app.controller
        return {"position": c.position.tolist(), "focus": c.focus.tolist(), "forward": c.forward.tolist()}

    async def script():
        await frames(2)
        result["adapter"] = app.gpu.adapter.info.get("device", "")
        result["surface_format"] = app.target_format
        result["window_size"] = list(app.canvas.get_physical_size())
        await capture("initial")
        cam = app.current_camera()
        ref = render_forward(app.scene.splats, cam, background=tuple(app.settings.background)).image.numpy()
        np.save(out / "offline.npy", ref)
        Image.fromarray((np.clip(ref[..., :3], 0, 1) * 255).round().astype(np.uint8)).save(out / "offline.png")

        # nothing changes -> no new splat render, and no frames drawn on their own
        renders = app.view.renders
        await frames(2)
        result["renders_while_idle"] = app.view.renders - renders
        for _ in range(20):  # let frames already requested finish (slow under load)
            n = app.frame_count
            await asyncio.sleep(0.3)
            if app.frame_count == n:
                break
        n = app.frame_count
        await asyncio.sleep(0.6)
        result["frames_drawn_while_idle"] = app.frame_count - n

        # left drag orbits
        result["pose0"] = pose()
        await drag(1, 160.0, 120.0, 60.0, 0.0)
        await settle()
        result["pose_orbit"] = pose()
        await capture("orbit")

        # W flies forward
        submit("key_down", key="w")
        await asyncio.sleep(0.5)
        await frames(2)
        submit("key_up", key="w")
        await settle()
        result["pose_fly"] = pose()
        await capture("fly")

        # losing the window focus forgets held keys (their key-up would never come)
        submit("key_down", key="d")
        await frames(1)
        held = sorted(app.controller.keys)
        app._glfw_callbacks[1](None, False)
        result["keys_held_then_after_focus_loss"] = [held, sorted(app.controller.keys)]
        await settle()

        # the wheel zooms toward the focus point; Home frames the scene again
        d0 = app.controller.focus_distance
        pointer.update(x=160.0, y=120.0)
        submit("wheel", dx=0.0, dy=-200.0, x=160.0, y=120.0, buttons=())
        await settle()
        result["zoom_ratio"] = app.controller.focus_distance / d0
        submit("key_down", key="Home")
        submit("key_up", key="Home")
        await settle()
        lo, hi = app.scene.bounds
        result["focus_after_home"] = app.controller.focus.tolist()
        result["bounds_center"] = (0.5 * (lo + hi)).tolist()

        # H shows the panels; a drag that starts on a panel does not move the camera
        submit("key_down", key="h")
        submit("key_up", key="h")
        await frames(3)
        await capture("panels")
        before = pose()
        await drag(1, 40.0, 60.0, 80.0, 30.0)
        await settle()
        result["pose_before_panel_drag"], result["pose_after_panel_drag"] = before, pose()

        # a path that fails to load shows an error and keeps the scene
        scene_obj = app.scene
        app.open("/nonexistent/missing.ply")
        await frames(3)
        result["error_text"] = app.error
        result["scene_kept"] = app.scene is scene_obj
        await capture("error")

        # the panel drag above focused the path field, so keys now go to imgui: F types an "f"
        typed_before = app.path_input
        submit("key_down", key="f")
        submit("char", data="f", char_str="f")
        submit("key_up", key="f")
        await frames(3)
        # (the drag selected part of the path; the "f" replaced it)
        result["f_typed_into_field"] = app.path_input != typed_before and "f" in app.path_input and not app.is_fullscreen
        # with the panels hidden, F toggles fullscreen (the Xvfb screen is 1280x800) and back
        app.show_panels = False
        submit("key_down", key="f")
        submit("key_up", key="f")
        await frames(3)
        await wait_until(lambda: tuple(app.canvas.get_physical_size()) != SIZE, "the fullscreen size", 20)
        result["fullscreen"] = [app.is_fullscreen, list(app.canvas.get_physical_size())]
        submit("key_down", key="f")
        submit("key_up", key="f")
        await frames(3)
        await wait_until(lambda: tuple(app.canvas.get_physical_size()) == SIZE, "the windowed size", 20)
        result["windowed"] = [app.is_fullscreen, list(app.canvas.get_physical_size())]

    driver.run(script, result)


# --------------------------------------------------------------------------------------------
# the test


@pytest.fixture(scope="module")
def session(xvfb, tmp_path_factory):
    pytest.importorskip("imgui_bundle", reason="viewer extras (imgui-bundle) not installed")
    pytest.importorskip("glfw", reason="viewer extras (glfw) not installed")
    out = tmp_path_factory.mktemp("viewer_gui")
    result, _proc = run_drive("test_viewer_gui", xvfb, out, _scene_arg(), timeout=300)
    return out, result


def _load(out, name) -> np.ndarray:
    return np.load(out / f"{name}.npy").astype(np.int32)


def test_window_shows_the_splats(session):
    out, result = session
    shot = _load(out, "initial")
    assert shot.shape == (SIZE[1], SIZE[0], 4) and result["window_size"] == list(SIZE)
    ref = np.round(np.clip(np.load(out / "offline.npy")[..., :3], 0, 1) * 255).astype(np.int32)
    background = np.zeros(3)
    obj = np.abs(ref - background).sum(-1) > 30  # where the offline render has the object
    assert obj.mean() > 0.01, "the offline render shows nothing; the test scene is not in view"
    # the window shows the object there, and the background elsewhere
    assert (np.abs(shot[..., :3] - background).sum(-1)[obj] > 30).mean() > 0.95
    assert (np.abs(shot[..., :3] - background).sum(-1)[~obj] <= 30).mean() > 0.95
    # in fact it is the rasterizer's image itself (8-bit surface)
    assert np.abs(shot[..., :3] - ref).max() <= 1


def test_window_redraws_only_on_change(session):
    _, result = session
    assert result["renders_while_idle"] == 0
    assert result["frames_drawn_while_idle"] == 0


def test_mouse_drag_orbits_the_view(session):
    out, result = session
    p0, p1 = result["pose0"], result["pose_orbit"]
    np.testing.assert_allclose(p1["focus"], p0["focus"], atol=1e-6)  # orbit keeps the focus point
    assert np.linalg.norm(np.subtract(p1["position"], p0["position"])) > 1e-3
    a, b = _load(out, "initial"), _load(out, "orbit")
    assert np.abs(a - b).mean() > 1.0


def test_keyboard_flight_moves_the_camera(session):
    out, result = session
    p0, p1 = result["pose_orbit"], result["pose_fly"]
    step = np.subtract(p1["position"], p0["position"])
    assert step @ np.asarray(p0["forward"]) > 1e-3  # moved forward
    np.testing.assert_allclose(p1["forward"], p0["forward"], atol=1e-9)  # without turning
    assert np.abs(_load(out, "orbit") - _load(out, "fly")).mean() > 0.5


def test_panels_capture_their_input(session):
    out, result = session
    fly, panels = _load(out, "fly"), _load(out, "panels")
    assert np.abs(fly[:40, :120] - panels[:40, :120]).mean() > 10  # the panel is drawn at the top left
    np.testing.assert_allclose(result["pose_after_panel_drag"]["position"], result["pose_before_panel_drag"]["position"])


def test_load_error_is_shown_and_scene_kept(session):
    out, result = session
    assert "no such file" in result["error_text"]
    assert result["scene_kept"]
    assert np.abs(_load(out, "panels") - _load(out, "error")).mean() > 0.2  # the error text appears


def test_focus_loss_releases_keys(session):
    _, result = session
    assert result["keys_held_then_after_focus_loss"] == [["d"], []]


def test_wheel_zoom_and_home(session):
    _, result = session
    assert result["zoom_ratio"] < 0.9  # two notches toward the focus point
    np.testing.assert_allclose(result["focus_after_home"], result["bounds_center"], atol=1e-6)


def test_f_toggles_fullscreen(session):
    _, result = session
    assert result["f_typed_into_field"]  # imgui had the keyboard
    assert result["fullscreen"] == [True, [1280, 800]]
    assert result["windowed"] == [False, list(SIZE)]
