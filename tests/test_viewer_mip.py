"""MIP models in the viewer (issue 8, item 5): camera mapping, offscreen frames against
:class:`brushpy.mip.MipRenderer`, the display settings, and a real window under Xvfb."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from brushpy.render.camera import Camera
from tests.viewer_driver import run_drive
from tests.test_viewer_gui import xvfb  # noqa: F401  (the private Xvfb display fixture)

pytest.importorskip("imgui_bundle", reason="viewer extras (imgui-bundle) not installed")
pytest.importorskip("rendercanvas", reason="viewer extras (rendercanvas) not installed")

EXTENTS = np.array([1.0, 0.8, 0.5])
# a bright Gaussian in the box centre, four dimmer ones around it, one faint one deep in z
MEANS = np.array([[0.5, 0.5, 0.5], [0.2, 0.3, 0.5], [0.8, 0.7, 0.4], [0.3, 0.8, 0.6], [0.7, 0.2, 0.5],
                  [0.5, 0.5, 0.95]], np.float32)
AMPS = np.array([0.9, 0.6, 0.8, 0.5, 0.7, 0.3], np.float32)


def model_arrays() -> dict:
    k = len(MEANS)
    ls = np.full((k, 3), np.log(0.06), np.float32)
    ls[:, 2] = np.log(0.15)
    rot = np.tile(np.array([1.0, 0.0, 0.0, 0.0], np.float32), (k, 1))
    rot[2] = [0.9, 0.0, 0.0, 0.4]  # one tilted
    return dict(means=MEANS, log_scales=ls, rotations=rot, log_amplitudes=np.log(AMPS))


def write_model(path, **extra) -> Path:
    from brushpy.mip import MipGaussians

    meta = dict(extents=EXTENTS, temperature=np.array(0.1))
    meta.update(extra)
    return MipGaussians.from_numpy(**model_arrays()).save(path, **meta)


def front_camera(width=96, height=64) -> Camera:
    """Looking at the box centre from the front (-z side), slightly off-axis, fx != fy, off-centre."""
    c = Camera.look_at([0.65, 0.3, -1.6], EXTENTS / 2, [0.0, -1.0, 0.0], 45.0, width, height)
    return Camera(c.world_to_camera, c.fx * 1.1, c.fy, width / 2 + 4.0, height / 2 - 3.0, width, height)


def to_u8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) * 255).astype(np.int32)


# -- camera mapping (no GPU) ------------------------------------------------------------------


def test_viewer_camera_maps_to_the_mip_camera():
    from brushpy.viewer.mip_view import mip_camera_from_viewer

    cam = front_camera()
    mc = mip_camera_from_viewer(cam, EXTENTS)
    assert not mc.orthographic and (mc.width, mc.height) == (cam.width, cam.height)
    u = np.random.default_rng(0).uniform(0, 1, (50, 3))
    p = u * EXTENTS  # the viewer's world: physical box coordinates
    c = p @ cam.world_to_camera[:3, :3].T + cam.world_to_camera[:3, 3]
    px = np.stack([cam.fx * c[:, 0] / c[:, 2] + cam.cx, cam.fy * c[:, 1] / c[:, 2] + cam.cy], -1)
    np.testing.assert_allclose(mc.project(u), px, rtol=0, atol=1e-9)


def test_is_mip_model(tmp_path):
    from brushpy.viewer.mip_view import is_mip_model

    good = write_model(tmp_path / "model.npz")
    np.savez(tmp_path / "other.npz", means=np.zeros((2, 3)))
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    assert is_mip_model(good) and is_mip_model(str(good))
    assert not is_mip_model(tmp_path / "other.npz")
    assert not is_mip_model(tmp_path / "broken.npz")
    assert not is_mip_model(tmp_path / "missing.npz")
    assert not is_mip_model(tmp_path)


def test_colormap_numpy_ends():
    from brushpy.viewer.mip_view import COLORMAPS, colormap_numpy

    for name, knots in COLORMAPS.items():
        out = colormap_numpy(np.array([1e-9, 1.0, 5.0, 0.0]), 1.0, name, background=(0.2, 0.3, 0.4))
        np.testing.assert_allclose(out[0], knots[0], atol=1e-6)
        np.testing.assert_allclose(out[1], knots[-1], atol=1e-12)
        np.testing.assert_allclose(out[2], knots[-1], atol=1e-12)  # clamped
        np.testing.assert_allclose(out[3], (0.2, 0.3, 0.4))  # nothing there: background


# -- offscreen ----------------------------------------------------------------------------------


def test_offscreen_mip_frame_equals_the_mip_renderer(gpu, tmp_path):
    from brushpy.mip import MipGaussians, MipRenderer
    from brushpy.viewer.mip_view import MipScene, mip_camera_from_viewer
    from brushpy.viewer.offscreen import OffscreenViewer

    path = write_model(tmp_path / "model.npz")
    viewer = OffscreenViewer(path, size=(64, 48))
    try:
        scene = viewer.app.scene
        assert isinstance(scene, MipScene) and scene.num_splats == len(MEANS) and viewer.app.error is None
        np.testing.assert_allclose(scene.extents, EXTENTS)
        np.testing.assert_allclose(scene.bounds[1], EXTENTS)
        assert scene.display.temperature == pytest.approx(0.1)  # taken from the file

        cam = front_camera()
        img = viewer.render(cam)
        assert img.shape == (64, 96, 4)
        model, _ = MipGaussians.load(path)
        ref = MipRenderer(model.num_gaussians, cam.height, cam.width, 0.1).render(model, mip_camera_from_viewer(cam, EXTENTS))
        for ch in range(3):  # grey: r = g = b = the MIP value
            assert np.abs(img[..., ch].astype(np.int32) - to_u8(ref)).max() <= 1
        # the bright centre Gaussian is where the camera projects the box centre, and bright
        c = cam.world_to_camera[:3, :3] @ (MEANS[0] * EXTENTS) + cam.world_to_camera[:3, 3]
        x, y = cam.fx * c[0] / c[2] + cam.cx, cam.fy * c[1] / c[2] + cam.cy
        assert img[int(y), int(x), 0] >= 0.8 * 255
        assert 0.03 < (img[..., 0] > 30).mean() < 0.6  # blobs, not an empty or a full frame
        assert img[0, 0, :3].tolist() == [0, 0, 0] and img[-1, -1, :3].tolist() == [0, 0, 0]

        # the default view (no exact camera) frames the whole box
        viewer.app.frame_scene()
        viewer.app.controller.settings.damping = 0.0
        framed = viewer.render()
        fc = viewer.app.current_camera()
        corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], np.float64)
        pix = mip_camera_from_viewer(fc, EXTENTS).project(corners)
        assert (pix >= 0).all() and (pix[:, 0] <= fc.width).all() and (pix[:, 1] <= fc.height).all()
        assert (framed[..., 0] > 30).mean() > 0.01
        # orbiting changes the picture
        viewer.app.controller.orbit(200.0, 0.0)
        moved = viewer.render()
        assert np.abs(moved[..., 0].astype(int) - framed[..., 0]).mean() > 1.5
    finally:
        viewer.close()


def test_mip_temperature_gain_and_colormap_settings(gpu, tmp_path):
    from brushpy.mip import MipGaussians, MipRenderer
    from brushpy.viewer.mip_view import colormap_numpy, mip_camera_from_viewer
    from brushpy.viewer.offscreen import OffscreenViewer
    from brushpy.viewer.view import RenderSettings

    path = write_model(tmp_path / "model.npz")
    bg = (0.1, 0.2, 0.3)
    viewer = OffscreenViewer(path, size=(64, 48), settings=RenderSettings(background=bg))
    try:
        cam = front_camera(80, 56)
        model, _ = MipGaussians.load(path)
        mc = mip_camera_from_viewer(cam, EXTENTS)
        d = viewer.app.scene.display
        d.temperature, d.gain, d.colormap = 0.5, 2.0, "inferno"
        img = viewer.render(cam)
        ref = MipRenderer(model.num_gaussians, cam.height, cam.width, 0.5).render(model, mc)
        want = to_u8(colormap_numpy(ref, 2.0, "inferno", bg))
        assert np.abs(img[..., :3].astype(np.int32) - want).max() <= 1
        assert (ref == 0).any() and (ref > 0).mean() > 0.05  # both background and model pixels were compared
        # a lower temperature is a sharper maximum: a different picture, still the renderer's
        d.temperature, d.gain, d.colormap = 0.02, 1.0, "grey"
        img2 = viewer.render(cam)
        ref2 = MipRenderer(model.num_gaussians, cam.height, cam.width, 0.02).render(model, mc)
        assert np.abs(img2[..., 0].astype(np.int32) - to_u8(colormap_numpy(ref2, 1.0, "grey", bg)[..., 0])).max() <= 1
        assert np.abs(ref2 - ref).max() > 0.05
        d.temperature = -1.0  # a bad setting shows an error in the window instead of crashing
        viewer.render(cam)
        assert "temperature" in (viewer.app.error or "")
    finally:
        viewer.close()


def test_bad_mip_model_shows_an_error_and_keeps_the_scene(gpu, tmp_path):
    from brushpy.viewer.mip_view import MipScene
    from brushpy.viewer.offscreen import OffscreenViewer

    good = write_model(tmp_path / "model.npz")
    arrays = model_arrays()
    arrays["means"] = arrays["means"].copy()
    arrays["means"][1, 0] = np.nan
    np.savez(tmp_path / "nan.npz", **arrays)
    viewer = OffscreenViewer(good, size=(32, 24))
    try:
        scene = viewer.app.scene
        assert not viewer.app.open(tmp_path / "nan.npz")
        assert "nan.npz" in viewer.app.error and "NaN" in viewer.app.error
        assert viewer.app.scene is scene
        write_model(tmp_path / "bad_extents.npz", extents=np.array([1.0, -1.0, 1.0]))
        assert not viewer.app.open(tmp_path / "bad_extents.npz")
        assert "extents" in viewer.app.error
        assert viewer.app.open(good) and isinstance(viewer.app.scene, MipScene) and viewer.app.error is None
    finally:
        viewer.close()


def test_offscreen_panels_show_the_mip_controls(gpu, tmp_path):
    from brushpy.viewer.offscreen import OffscreenViewer

    path = write_model(tmp_path / "model.npz")
    viewer = OffscreenViewer(path, size=(360, 640), show_panels=True)
    try:
        viewer.app.settings.background = (0.0, 0.0, 0.0)
        img = viewer.render()
        assert viewer.app.error is None
        assert img[:, :300, :3].std() > 10  # the panel is drawn over the model
    finally:
        viewer.close()


# -- the real window (Xvfb) -------------------------------------------------------------------------

SIZE = (200, 150)


def drive(out_dir: str, model_path: str):
    """Child process: open the window on nothing, open the MIP model through the path field's
    ``open``, capture; orbit with a mouse drag, capture again."""
    from brushpy.viewer.app import ViewerApp

    out = Path(out_dir)
    app = ViewerApp(size=SIZE, show_panels=False)
    result: dict = {}

    from tests.viewer_driver import WindowDriver

    driver = WindowDriver(app, out, timeout=90.0)
    frames, capture = driver.frames, driver.capture


    def submit(kind, x, y, **kw):
        ev = {"event_type": kind, "modifiers": (), "x": x, "y": y, "button": 0, "buttons": (), "ntouches": 0, "touches": {}}
        ev.update(kw)
        app.canvas.submit_event(ev)

    async def script():
        await frames(2)
        await capture("empty")
        app.path_input = model_path  # what the Open button does with the path field
        result["opened"] = app.open(app.path_input.strip())
        result["scene"] = type(app.scene).__name__ if app.scene is not None else None
        result["error"] = app.error
        await frames(2)
        await capture("model")
        app.controller.settings.damping = 0.0
        submit("pointer_move", 100.0, 75.0)
        submit("pointer_down", 100.0, 75.0, button=1, buttons=(1,))
        await frames(1)
        for i in range(1, 5):
            submit("pointer_move", 100.0 + 15 * i, 75.0, buttons=(1,))
            await frames(1)
        submit("pointer_up", 160.0, 75.0, button=1)
        await frames(3)
        await capture("orbit")

    driver.run(script, result)


@pytest.mark.gui
def test_window_shows_a_mip_model(xvfb, tmp_path):
    pytest.importorskip("glfw", reason="viewer extras (glfw) not installed")
    model = write_model(tmp_path / "model.npz")
    out = tmp_path / "shots"
    out.mkdir()
    result, _proc = run_drive("test_viewer_mip", xvfb, out, model, timeout=240)
    assert result["opened"] and result["scene"] == "MipScene" and result["error"] is None
    empty, shot, orbit = (np.load(out / f"{n}.npy").astype(np.int32) for n in ("empty", "model", "orbit"))
    assert shot.shape == (SIZE[1], SIZE[0], 4)
    assert np.abs(empty[..., :3]).max() == 0  # black background before the model
    lit = shot[..., :3].max(-1) > 40
    assert 0.01 < lit.mean() < 0.7, "the model is not in the window"
    # the bright centre Gaussian sits at the window centre (the box is framed, looking down +z)
    h, w = SIZE[1], SIZE[0]
    assert shot[h // 2 - 3:h // 2 + 4, w // 2 - 3:w // 2 + 4, 0].max() > 150
    assert np.abs(shot[..., :3] - orbit[..., :3]).mean() > 0.5  # the drag orbited the view

