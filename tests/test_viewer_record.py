"""The desktop viewer records its camera path (R key / "Camera path" panel) to nerfstudio camera-path JSON,
which ``brushpy render --path FILE.json`` plays back: offscreen (no window), with a fake clock."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

from brushpy.io.camera_path import read_camera_path
from tests.conftest import REPO

pytest.importorskip("imgui_bundle", reason="viewer extras (imgui-bundle) not installed")
pytest.importorskip("rendercanvas", reason="viewer extras (rendercanvas) not installed")
pytest.importorskip("brushpy.render.forward", reason="the rasterizer (brushpy.render.forward) is not in this checkout")

EXAMPLE = REPO / "assets" / "example_scene.ply"


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def viewer(gpu, tmp_path, monkeypatch):
    from brushpy.viewer.offscreen import OffscreenViewer

    monkeypatch.chdir(tmp_path)  # the default record path is in the working folder
    v = OffscreenViewer(EXAMPLE, size=(96, 64))
    v.app.controller.settings.damping = 0.0  # a drag moves the camera at once
    yield v
    v.close()


def test_recording_round_trip(viewer, tmp_path):
    app = viewer.app
    clock = app.clock = FakeClock()
    assert app.record_path == tmp_path / "camera_path.json"
    first = viewer.render()
    app.input.handle({"event_type": "key_down", "key": "r", "modifiers": ()})  # R starts recording
    viewer.render()
    assert app.recorder.recording and "recording to" in app.record_message
    recorded = []
    for _ in range(6):
        clock.t += 0.1
        viewer.render()
        recorded.append(app.current_camera())
        app.controller.orbit(25.0, 0.0)
    assert len(app.recorder.samples) >= 6
    app.input.handle({"event_type": "key_down", "key": "r", "modifiers": ()})  # R stops and saves
    viewer.render()
    assert not app.recorder.recording
    saved = tmp_path / "camera_path.json"
    assert saved.exists() and "saved" in app.record_message and str(saved) in app.record_message
    assert app.record_path == tmp_path / "camera_path_1.json"  # the next recording gets a new name
    path = read_camera_path(saved)
    assert path.fps == 30.0
    span = app.recorder.duration_s
    assert len(path.cameras) == int(np.floor(span * 30 + 1e-9)) + 1
    assert (path.cameras[0].width, path.cameras[0].height) == (96, 64)
    # the samples are the cameras drawn: the path passes through them at their times
    t0 = app.recorder.samples[0][0]
    for cam in recorded:
        times = [t for t, c in app.recorder.samples if np.allclose(c.world_to_camera, cam.world_to_camera)]
        assert times, "a drawn camera is missing from the recording"
        k = (times[0] - t0) * 30
        if abs(k - round(k)) < 1e-6:
            np.testing.assert_allclose(path.cameras[round(k)].world_to_camera, cam.world_to_camera, atol=1e-6)
    np.testing.assert_allclose(path.cameras[0].world_to_camera, app.recorder.samples[0][1].world_to_camera, atol=1e-9)
    assert first.shape == (64, 96, 4)


def test_recorded_path_plays_back_as_the_viewer_showed_it(viewer, tmp_path):
    if importlib.util.find_spec("av") is None:
        pytest.skip("PyAV not installed (pip install 'brushpy[video]')")
    from click.testing import CliRunner

    from brushpy import cli

    app = viewer.app
    clock = app.clock = FakeClock()
    shown = viewer.render()
    app.start_recording()
    for _ in range(3):
        viewer.render()
        clock.t += 1 / 30
        app.controller.orbit(10.0, 0.0)
    out = app.stop_recording()
    assert out == tmp_path / "camera_path.json"
    video = tmp_path / "play.mp4"
    res = CliRunner().invoke(cli.main, ["render", str(EXAMPLE), "--path", str(out), "--crf", "10", "-o", str(video)])
    assert res.exit_code == 0, res.output
    import av

    with av.open(str(video)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 3 and frames[0].shape == (64, 96, 3)
    # the file's first camera renders exactly the picture the viewer showed ...
    from brushpy.render.forward import render_forward

    cam = read_camera_path(out).cameras[0]
    exact = render_forward(app.scene.splats, cam).image.numpy()
    assert np.abs(np.round(np.clip(exact[..., :3], 0, 1) * 255) - shown[..., :3]).max() <= 1
    # ... and the video shows it up to H.264's loss (this busy 96x64 scene loses more than a smooth one)
    def psnr(a):
        return 10 * np.log10(255 ** 2 / np.mean((a.astype(float) - shown[..., :3]) ** 2))

    assert psnr(frames[0]) > 30.0 and psnr(frames[0]) > psnr(frames[2]) + 5.0


def test_recording_errors_keep_the_viewer(viewer, tmp_path):
    app = viewer.app
    assert app.stop_recording() is None  # not recording: nothing to save
    app.start_recording()
    viewer.render()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    app.record_path = blocker / "path.json"  # a folder on the path is a file
    assert app.stop_recording() is None
    assert "camera path not saved" in app.record_message and str(blocker) in app.record_message
    assert app.error == app.record_message
    assert not os.path.exists(blocker / "path.json")
    viewer.render()  # still drawing
