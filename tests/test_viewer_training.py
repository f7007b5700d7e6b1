"""Live training in the viewer: the budget policy, a headless run to the end, and a real window under Xvfb.

The window session runs in a child process on a private Xvfb display (as in
``test_viewer_gui``): it opens the tiny lego dataset in the window (which
starts training), watches the loss plot fill, pauses, exports, jumps to a
dataset view, and closes through the "export first?" prompt. Set
``BRUSHPY_VIEWER_SHOTS=/some/dir`` to keep the screenshots.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO
from tests.viewer_driver import run_drive
from tests.test_viewer_gui import xvfb  # noqa: F401  (fixture)

pytest.importorskip("brushpy.train.trainer", reason="the trainer is not in this checkout yet")

LEGO = REPO / "assets" / "lego_small"
SIZE = (800, 600)


def tiny_scene():
    from brushpy.data import load_dataset

    return load_dataset(LEGO, tiny_load_config())


def tiny_load_config():
    from brushpy.data import LoadConfig

    return LoadConfig(max_frames=6, max_resolution=32, progress=False)


def tiny_configs(export_path, total_steps=2000, eval_every=0):
    from brushpy.train.config import ProcessConfig, TrainConfig

    tc = TrainConfig(total_steps=total_steps, background_color=(1.0, 1.0, 1.0), refine_every=20,
                     growth_stop_iter=200, sh_degree=1)
    pc = ProcessConfig(export_path=str(export_path), eval_every=eval_every, export_every=100000)
    return tc, pc


# ------------------------------------------------------------------------------------------
# without a window


def test_budget_policy():
    from brushpy.viewer.training import TrainingBudget

    b = TrainingBudget(interactive_fps=20.0, train_share=0.9, max_budget_s=0.5, refresh_hz=4.0)
    # a fast device: training fills the rest of a 50 ms frame, interacting or not
    assert b.budget_s(0.002, True) == pytest.approx(0.048)
    assert b.budget_s(0.002, False) == pytest.approx(0.048)
    # a slow device: interacting leaves nothing to training; idle, training gets 90% of the time
    assert b.budget_s(0.08, True) == 0.0
    assert b.budget_s(0.02, False) == pytest.approx(0.18)
    assert b.budget_s(0.2, False) == 0.5  # capped
    # splat re-renders: at most 4 Hz, and at most 10% of the time
    assert b.refresh_interval_s(0.01) == pytest.approx(0.25)
    assert b.refresh_interval_s(0.3) == pytest.approx(3.0)


def test_live_training_runs_to_the_end_and_exports(gpu, tmp_path):
    from brushpy.viewer.training import LiveTraining

    tc, pc = tiny_configs(tmp_path / "out", total_steps=4, eval_every=2)
    tr = LiveTraining(tiny_scene(), tc, pc)
    assert tr.run_for(1e-6) == 1  # a positive budget runs at least one step
    assert tr.run_for(0.0) == 0
    tr.set_paused(True)
    assert tr.run_for(10.0) == 0
    tr.set_paused(False)
    while not tr.finished:
        tr.run_for(10.0)
    assert tr.step == 4 and tr.error is None and not tr.active
    assert tr.loss_steps == [1, 2, 3, 4] and np.isfinite(tr.loss_values).all()
    # the scheduled eval at step 2 and the final one, as in run_training
    lines = [json.loads(x) for x in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [2, 4] and tr.psnr_steps == [2, 4]
    assert (tmp_path / "out" / "export_4.ply").is_file() and (tmp_path / "out" / "checkpoint.npz").is_file()
    assert tr.last_export == tmp_path / "out" / "export_4.ply"
    assert tr.outputs.summary.steps == 4 and "trained 4 steps" in tr.outputs.summary_text()


def test_looks_like_dataset(tmp_path):
    pytest.importorskip("imgui_bundle", reason="viewer extras not installed")
    from brushpy.viewer.app import looks_like_dataset

    assert looks_like_dataset(LEGO)
    (tmp_path / "a.ply").write_bytes(b"")
    assert not looks_like_dataset(tmp_path)
    assert not looks_like_dataset(tmp_path / "a.ply")


# ------------------------------------------------------------------------------------------
# the window (child process)


def drive(out_dir: str):
    import asyncio

    from brushpy.viewer.app import ViewerApp

    out = Path(out_dir)
    exports = out / "exports"
    tc, pc = tiny_configs(exports)
    app = ViewerApp(size=SIZE)
    app.dataset_configs = (tiny_load_config(), tc, pc)
    result: dict = {}

    from tests.viewer_driver import WindowDriver

    driver = WindowDriver(app, out, timeout=120.0)
    wait_until, frames, capture = driver.wait_until, driver.frames, driver.capture


    async def script():
        # opening a dataset in the window starts live training
        app.open(str(LEGO))
        await wait_until(lambda: app.training is not None, "training to start")
        tr = app.training
        result["dataset"] = [len(app.dataset.train_views), len(app.dataset.eval_views)]
        await wait_until(lambda: tr.step >= 4, "4 training steps")
        result["frames_while_training"] = app.frame_count
        result["loss_points"] = len(tr.loss_values)
        result["scene_is_trainer_splats"] = app.scene.splats is tr.trainer.splats or tr.step > app.session.shown_step
        tr.evaluate_now()
        await frames(3)
        await capture("training")

        # pause: no more steps while frames go on
        app.pause_training(True)
        await frames(1)
        s0 = tr.step
        await frames(3)
        await asyncio.sleep(0.5)
        result["paused_steps"] = [s0, tr.step]
        app.pause_training(False)
        await wait_until(lambda: tr.step > s0, "steps after resuming")
        result["resumed"] = True

        # export now writes a PLY into the export folder
        path = tr.export_now()
        result["export_now"] = str(path)

        # the dataset panel: jump to eval view 1 (the camera becomes that view's)
        app.jump_to_view("eval", 1)
        await frames(3)
        cam = app.current_camera()
        ref = app.dataset.eval_views[1].camera
        result["jump_w2c_err"] = float(np.abs(cam.world_to_camera - ref.world_to_camera).max())
        result["jump_aspect"] = [cam.width / cam.height, ref.width / ref.height]
        result["gt_texture"] = app.panels.gt_texture is not None and app.panels.gt_texture[4]
        await capture("dataset_view")

        # closing while training asks first (the window's close button)
        steps_before_close = tr.step
        app._glfw_callbacks[2](app.canvas._window)
        await frames(2)
        result["prompt_open"] = app.close_prompt_open
        result["still_open"] = not app.canvas.get_closed()
        await capture("close_prompt")
        result["exports_before_close"] = sorted(p.name for p in exports.glob("*.ply"))
        result["step_at_close"] = tr.step
        result["steps_before_close"] = steps_before_close
        driver.save(result)
        app.answer_close_prompt("export")

    driver.run(script, result, close=False)
    result["closed_with"] = app.closed_with
    result["exports_after_close"] = sorted(p.name for p in exports.glob("*.ply"))
    result["final_step"] = app.training.step if app.training else None
    driver.save(result)


@pytest.fixture(scope="module")
def session(xvfb, tmp_path_factory):  # noqa: F811
    pytest.importorskip("imgui_bundle", reason="viewer extras (imgui-bundle) not installed")
    pytest.importorskip("glfw", reason="viewer extras (glfw) not installed")
    out = tmp_path_factory.mktemp("viewer_training")
    result, proc = run_drive("test_viewer_training", xvfb, out, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, result


@pytest.mark.gui
def test_window_trains_and_plots_loss(session):
    out, result = session
    assert result["dataset"] == [6, 6]
    assert result["loss_points"] >= 4
    assert result["frames_while_training"] >= 2  # the window kept drawing
    shot = np.load(out / "training.npy").astype(np.int32)
    assert shot.shape == (SIZE[1], SIZE[0], 4)
    assert shot[..., :3].std() > 10  # panels and splats, not a blank frame


@pytest.mark.gui
def test_pause_stops_steps(session):
    _, result = session
    s0, s1 = result["paused_steps"]
    assert s0 == s1
    assert result["resumed"]


@pytest.mark.gui
def test_export_now_writes_ply(session):
    _, result = session
    path = Path(result["export_now"])
    assert path.name in result["exports_before_close"] and path.suffix == ".ply"


@pytest.mark.gui
def test_dataset_panel_jumps_to_the_view(session):
    _, result = session
    assert result["jump_w2c_err"] < 1e-9
    assert result["gt_texture"] and result["gt_texture"][0] > 0


@pytest.mark.gui
def test_close_during_training_asks_then_exports(session):
    _, result = session
    assert result["prompt_open"] and result["still_open"]
    assert result["closed_with"] == "export"
    assert f"export_{result['final_step']}.ply" in result["exports_after_close"]
    assert result["final_step"] < 2000


def test_train_viewer_without_display_says_so(monkeypatch, tmp_path):
    pytest.importorskip("imgui_bundle", reason="viewer extras not installed")
    pytest.importorskip("glfw", reason="viewer extras not installed")
    from click.testing import CliRunner

    from brushpy.cli.train import train

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    res = CliRunner().invoke(train, [str(LEGO), "--viewer", "--max-frames", "2", "--max-resolution", "16",
                                     "--total-steps", "5", "--export-path", str(tmp_path), "-q"])
    assert res.exit_code != 0
    assert "cannot open a window" in res.output and "without --viewer" in res.output


def drive_run_training_viewer(out_dir: str):
    """``run_training_viewer`` to the last step: the final export and evaluation, then the window closes."""
    from rendercanvas.glfw import loop

    from brushpy.viewer import app as app_module
    from brushpy.viewer import run_training_viewer

    out = Path(out_dir)
    apps = []
    original = app_module.ViewerApp.start_training

    def start_training(self, *a, **kw):
        apps.append(self)
        return original(self, *a, **kw)

    app_module.ViewerApp.start_training = start_training

    async def close_when_done():
        import asyncio

        deadline = time.time() + 120
        while not (apps and apps[0].training.finished) and time.time() < deadline:
            await asyncio.sleep(0.02)
        apps[0].request_close()  # finished: no prompt

    loop.add_task(close_when_done)
    tc, pc = tiny_configs(out / "exports", total_steps=3)
    summary = run_training_viewer(tiny_scene(), tc, pc, size=(320, 240))
    (out / "summary.json").write_text(json.dumps({"steps": summary.steps, "export": summary.export,
                                                   "psnr": summary.psnr, "interrupted": summary.interrupted,
                                                   "closed_with": apps[0].closed_with}))


@pytest.mark.gui
def test_run_training_viewer_finishes_like_run_training(xvfb, tmp_path):  # noqa: F811
    pytest.importorskip("imgui_bundle", reason="viewer extras (imgui-bundle) not installed")
    pytest.importorskip("glfw", reason="viewer extras (glfw) not installed")
    env = dict(os.environ, DISPLAY=xvfb, PYTHONPATH=str(REPO))
    code = "import sys; from tests.test_viewer_training import drive_run_training_viewer as d; d(sys.argv[1])"
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"] == 3 and not summary["interrupted"] and summary["closed_with"] is None
    assert summary["export"].endswith("export_3.ply") and Path(summary["export"]).is_file()
    lines = (tmp_path / "exports" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [3] and summary["psnr"] is not None
    assert "trained 3 steps" in proc.stdout
