"""The viewer session without a window: loads, scene changes and the close prompt through a stub host."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import REPO


class StubHost:
    """Records what a ViewerSession asks of its window."""

    def __init__(self):
        self.calls = []

    def request_draw(self):
        self.calls.append("draw")

    def wake(self):
        self.calls.append("wake")

    def scene_changed(self, scene, frame_view):
        self.calls.append(("scene", scene, frame_view))

    def training_started(self, training):
        self.calls.append(("training", training))

    def view_camera(self, camera):
        self.calls.append(("camera", camera))

    def close(self):
        self.calls.append("close")


def test_session_imports_without_imgui():
    code = ("import sys; sys.modules['imgui_bundle'] = None; sys.modules['rendercanvas'] = None; "
            "import brushpy.viewer.session as s; print(s.ViewerSession.__name__)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(REPO), "PATH": ""})
    assert proc.returncode == 0 and proc.stdout.strip() == "ViewerSession", proc.stderr


def _write_ply(path, n, seed):
    from brushpy.io.ply import SplatData, write_ply

    rng = np.random.default_rng(seed)
    write_ply(path, SplatData(means=rng.normal(size=(n, 3)).astype(np.float32),
                              rotations=rng.normal(size=(n, 4)).astype(np.float32),
                              log_scales=np.full((n, 3), -3.0, np.float32),
                              sh_coeffs=rng.normal(size=(n, 1, 3)).astype(np.float32),
                              raw_opacities=np.zeros(n, np.float32)))


def test_session_loads_and_reports_through_its_host(gpu, tmp_path):
    from brushpy.viewer.scene import SplatScene
    from brushpy.viewer.session import LoadJob, ViewerSession

    _write_ply(tmp_path / "a.ply", 50, 0)
    _write_ply(tmp_path / "b.ply", 70, 1)
    host = StubHost()
    session = ViewerSession(host)
    assert session.open(tmp_path / "a.ply", wait=True)
    kind, scene, frame_view = host.calls[-1]
    assert kind == "scene" and scene is session.scene and frame_view
    assert isinstance(scene, SplatScene) and scene.num_splats == 50 and session.error is None
    assert session.path_input == str(tmp_path / "a.ply") and not session.loading

    # a folder on a worker thread: the job is typed, the host is woken, the frame finishes it
    assert session.open(tmp_path)
    assert session.loading and isinstance(session._loading, LoadJob)  # until a frame finishes it
    deadline = time.time() + 60
    while not session.finish_load() and time.time() < deadline:
        time.sleep(0.01)
    assert "wake" in host.calls and [s.name for s in session.scene.sources] == ["a.ply", "b.ply"]
    assert session.show_frame(1, wait=True) and session.scene.num_splats == 70
    assert host.calls[-1][2] is False  # another frame of the same path keeps the camera

    # a failure keeps the scene and lands in error
    shown = session.scene
    assert not session.open(tmp_path / "missing.ply") and "no such file" in session.error
    assert session.scene is shown
    with pytest.raises(TypeError):
        session.set_scene("not a scene")

    # without training, closing closes at once; answers are checked
    session.request_close()
    assert host.calls[-1] == "close" and not session.close_prompt_open
    with pytest.raises(ValueError):
        session.answer_close_prompt("maybe")
    assert session.guarded(lambda: 1 / 0) is None and "failed" in session.error
