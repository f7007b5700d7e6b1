"""The web viewer (brushpy.viewer.web, viser): splat -> viser conversion, cameras, bad input, a failing
viewer that must not lose training, and a real browser (Debian's Chromium driven by Playwright).

The browser test needs viser (``pip install 'brushpy[web]'``), Playwright's Python package and a
system Chromium (``apt-get install chromium``; never ``playwright install``); it skips naming the
missing piece, unless ``BRUSHPY_REQUIRE_WEB=1`` (set by ``.ci/run``), where a missing piece fails.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import sys
import threading
import time

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from brushpy.render.camera import Camera
from brushpy.render.rotations import quaternions_to_matrices
from brushpy.viewer import web

REQUIRE_WEB = os.environ.get("BRUSHPY_REQUIRE_WEB", "") not in ("", "0")


def _need(ok: bool, reason: str):
    if not ok:
        if REQUIRE_WEB:
            pytest.fail(f"{reason} (BRUSHPY_REQUIRE_WEB is set: CI must install it; see scripts/setup.sh --test)")
        pytest.skip(reason)


def _need_viser():
    _need(importlib.util.find_spec("viser") is not None, "viser is not installed (pip install 'brushpy[web]')")


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


# --------------------------------------------------------------------------- conversions


def _random_splats(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "means": rng.normal(size=(n, 3)).astype(np.float32),
        "rotations": rng.normal(size=(n, 4)).astype(np.float32) * rng.uniform(0.2, 3.0, size=(n, 1)).astype(np.float32),
        "log_scales": rng.uniform(-4, 0.5, size=(n, 3)).astype(np.float32),
        "sh_coeffs": rng.normal(size=(n, 4, 3)).astype(np.float32),
        "raw_opacities": rng.normal(scale=3, size=n).astype(np.float32),
    }


def test_covariances_match_numpy_reference():
    from scipy.spatial.transform import Rotation

    s = _random_splats()
    q = s["rotations"].astype(np.float64)
    r = Rotation.from_quat(q[:, [1, 2, 3, 0]]).as_matrix()  # scipy wants x, y, z, w (and normalises)
    scales = np.exp(s["log_scales"].astype(np.float64))
    expected = np.stack([ri @ np.diag(si**2) @ ri.T for ri, si in zip(r, scales)])
    got = web.covariances(s["log_scales"], s["rotations"])
    assert got.dtype == np.float32 and got.shape == (64, 3, 3)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(quaternions_to_matrices(q), r, atol=1e-12)
    # a zero quaternion is the identity, not NaN
    np.testing.assert_allclose(quaternions_to_matrices(np.zeros((1, 4)))[0], np.eye(3))


def test_splats_for_viser_colours_opacities_and_non_finite():
    s = _random_splats(n=10)
    s["means"][3, 1] = np.nan
    out = web.splats_for_viser(s)
    keep = np.ones(10, bool)
    keep[3] = False
    assert out["centers"].shape == (9, 3) and out["covariances"].shape == (9, 3, 3)
    assert out["rgbs"].shape == (9, 3) and out["opacities"].shape == (9, 1)
    rgb = np.clip(0.28209479177387814 * s["sh_coeffs"][keep, 0, :].astype(np.float64) + 0.5, 0, 1)
    np.testing.assert_allclose(out["rgbs"], rgb, atol=1e-6)
    np.testing.assert_allclose(out["opacities"][:, 0], 1 / (1 + np.exp(-s["raw_opacities"][keep].astype(np.float64))),
                               atol=1e-6)
    np.testing.assert_array_equal(out["centers"], s["means"][keep])


def test_browser_camera_is_the_training_camera():
    """A training camera's viser pose (the frustum) read back as a browser camera gives the same view."""
    cam = Camera.look_at([1.0, -2.0, 3.0], [0.1, 0.2, -0.3], [0.0, -1.0, 0.0], 40.0, 160, 120)
    wxyz, position = web.camera_pose(cam)
    assert wxyz[0] >= 0 and abs(np.linalg.norm(wxyz) - 1) < 1e-12
    np.testing.assert_allclose(position, [1.0, -2.0, 3.0], atol=1e-12)
    back = web.browser_camera(wxyz, position, web.vertical_fov(cam), 160, 120)
    np.testing.assert_allclose(back.world_to_camera, cam.world_to_camera, atol=1e-9)
    np.testing.assert_allclose(back.intrinsics, cam.intrinsics, atol=1e-9)
    small = web.browser_camera(wxyz, position, web.vertical_fov(cam), 1600, 1200, max_side=400)
    assert (small.width, small.height) == (400, 300)
    assert abs(web.vertical_fov(small) - np.deg2rad(40.0)) < 1e-9


def test_frustum_click_moves_the_browser_camera():
    class FakeCamera:
        pass

    class FakeClient:
        camera = FakeCamera()

        def atomic(self):
            import contextlib

            return contextlib.nullcontext()

    class Event:
        client = FakeClient()

    web.WebViewer._jump_to(np.array([1.0, 0, 0, 0]), np.array([1.0, 2, 3]), 0.7)(Event())
    cam = Event.client.camera
    assert cam.fov == 0.7 and list(cam.position) == [1, 2, 3] and list(cam.wxyz) == [1, 0, 0, 0]


def test_thumbnail_composites_alpha():
    img = np.zeros((96, 128, 4), np.uint8)
    img[..., 0] = 255
    img[:, :64, 3] = 255  # left half opaque red, right half transparent
    t = web.thumbnail(img, background=(1.0, 1.0, 1.0), height=48)
    assert t.shape == (48, 64, 3) and t.dtype == np.uint8
    assert tuple(t[24, 5]) == (255, 0, 0) and tuple(t[24, 60]) == (255, 255, 255)


# --------------------------------------------------------------------------- bad input


def _listening_socket():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s


def test_port_in_use_is_a_clear_error():
    with _listening_socket() as s:
        port = s.getsockname()[1]
        with pytest.raises(web.PortInUseError) as info:
            web.check_port_free("127.0.0.1", port)
    msg = str(info.value)
    assert f"port {port} is already in use" in msg and "--port" in msg


@pytest.mark.parametrize("command", ["train", "view"])
def test_cli_port_in_use_fails_before_any_work(tmp_path, command):
    _need_viser()
    from brushpy.cli import main

    with _listening_socket() as s:
        port = s.getsockname()[1]
        args = ["train", "--web", "--web-host", "127.0.0.1", "--port", str(port), "--export-path", str(tmp_path / "out")]
        if command == "view":
            args = ["view", "--web", "--web-host", "127.0.0.1", "--port", str(port), str(tmp_path / "missing.ply")]
        res = CliRunner().invoke(main, args)
    assert res.exit_code == 2, res.output
    assert f"port {port} is already in use" in res.output and "--port" in res.output
    assert not (tmp_path / "out").exists()  # nothing was trained or written


@pytest.mark.parametrize("command", ["train", "view"])
def test_cli_viser_missing_says_how_to_install(monkeypatch, tmp_path, command):
    from brushpy.cli import main

    monkeypatch.setitem(sys.modules, "viser", None)  # import viser now raises ModuleNotFoundError
    args = ["train", "--web", "--export-path", str(tmp_path / "out")] if command == "train" else \
        ["view", "--web", str(tmp_path / "x.ply")]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2, res.output
    assert "pip install 'brushpy[web]'" in res.output
    with pytest.raises(web.WebViewerNotInstalled):
        web.import_viser()


def test_cli_web_and_viewer_are_exclusive():
    from brushpy.cli import main

    res = CliRunner().invoke(main, ["train", "--web", "--viewer"])
    assert res.exit_code == 2 and "--viewer" in res.output and "--web" in res.output


# --------------------------------------------------------------------------- training is never lost


class _Broken:
    """A watcher that fails at its third event."""

    def __init__(self):
        self.events = 0
        self.closed = False

    def start(self, trainer, outputs, stops):
        pass

    def on_event(self, event):
        self.events += 1
        if self.events == 3:
            raise RuntimeError("the browser went away")

    def end(self):
        raise AssertionError("a dropped watcher is not told the end")

    def close(self):
        self.closed = True


def test_a_failing_watcher_does_not_lose_training(gpu, tmp_path):
    from brushpy.train.config import ProcessConfig
    from brushpy.train.run import run_training
    from tests.test_train import tiny_config, tiny_scene

    scene = tiny_scene(max_frames=3, resolution=16)
    broken, lines = _Broken(), []
    summary = run_training(scene, tiny_config(total_steps=6), ProcessConfig(eval_every=0, export_path=str(tmp_path)),
                           progress=False, log=lines.append, watchers=[broken])
    assert summary.steps == 6 and not summary.interrupted and (tmp_path / "export_6.ply").is_file()
    warnings = [x for x in lines if x.startswith("warning:")]
    assert len(warnings) == 1 and "_Broken failed" in warnings[0] and "the browser went away" in warnings[0]
    assert broken.events == 3 and broken.closed


# --------------------------------------------------------------------------- a real browser

#: WebGL in headless Chromium without a GPU: SwiftShader through ANGLE.
CHROMIUM_ARGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _canvas_rgb(page) -> np.ndarray:
    """The scene canvas' region of the page as float32 [H,W,3] 0..255."""
    from io import BytesIO

    png = page.locator("canvas").first.screenshot()
    return np.asarray(Image.open(BytesIO(png)).convert("RGB"), np.float32)


def _canvas_std(page) -> float:
    """Standard deviation of the scene canvas' pixels (0 for a blank, uniform canvas)."""
    return float(_canvas_rgb(page).std())


def _wait(cond, timeout_s: float, what: str):
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout_s:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.2)


def test_browser_shows_the_scene_and_pause_stops_training(gpu, tmp_path):
    _need_viser()
    _need(importlib.util.find_spec("playwright") is not None, "Playwright is not installed (pip install playwright)")
    chromium = _chromium()
    _need(chromium is not None, "no system Chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    from brushpy.train.config import ProcessConfig
    from brushpy.train.run import StopSignals, run_training
    from brushpy.train.stream import read_metrics
    from tests.test_train import tiny_config, tiny_scene

    scene = tiny_scene(max_frames=4, resolution=48)
    viewer = web.WebViewer(_free_port(), "127.0.0.1", push_interval_s=1.0, verbose=False)
    stops = StopSignals()  # not entered (not the main thread): the test sets .signum to stop the run
    result: dict = {}

    def train():
        try:
            result["summary"] = run_training(
                scene, tiny_config(total_steps=300), ProcessConfig(eval_every=0, export_every=0, export_path=str(tmp_path)),
                progress=False, log=lambda line: result.setdefault("log", []).append(line), stop_signals=stops,
                watchers=[viewer])
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            result["error"] = exc

    thread = threading.Thread(target=train, daemon=True)
    thread.start()
    shot = os.environ.get("BRUSHPY_WEB_SCREENSHOT") or str(tmp_path / "web_viewer.png")
    try:
        _wait(lambda: viewer.trainer is not None and viewer.pushes > 0 or "error" in result, 120, "training to start")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 800, "height": 600})
            page.goto(viewer.url)
            page.get_by_role("button", name="Pause").wait_for(timeout=60_000)
            # the browser's own splats (WebGL): the canvas is not blank
            _wait(lambda: _canvas_std(page) > 8.0, 90, "the splats to appear in the canvas")
            page.screenshot(path=shot)

            # pause: the trainer's step stops (the step running when the click lands may finish)
            page.get_by_role("button", name="Pause").click()
            _wait(lambda: viewer.paused, 30, "the pause to reach the server")
            page.get_by_role("button", name="Resume").wait_for(timeout=30_000)
            time.sleep(1.0)
            paused_at = viewer.trainer.step_count
            time.sleep(2.0)
            assert viewer.trainer.step_count == paused_at, "the step counter moved while paused"
            assert thread.is_alive()

            # export now / evaluate now while paused (served between the paused steps)
            page.get_by_role("button", name="Export now").click()
            _wait(lambda: (tmp_path / f"export_{paused_at}.ply").is_file(), 60, "the export asked for")
            if scene.eval_views:
                page.get_by_role("button", name="Evaluate now").click()
                metrics = tmp_path / "metrics.jsonl"
                _wait(lambda: metrics.is_file() and any(x["step"] == paused_at for x in read_metrics(metrics)), 60,
                      "the evaluation asked for")
            assert viewer.trainer.step_count == paused_at

            # brushpy render (server side) while paused: the canvas shows brushpy's rasterizer output
            # (on black here, so it cannot be mistaken for the browser's splats on its white page)
            viewer.background = (0.0, 0.0, 0.0)
            page.get_by_text("training cameras").click()  # no frustums over the comparison
            page.get_by_text("brushpy render").click()
            _wait(lambda: viewer.renders > 0, 60, "a brushpy render for the browser's camera")
            time.sleep(1.0)
            page.screenshot(path=shot[:-4] + "_brushpy_render.png")
            canvas = _canvas_rgb(page)
            h, w = canvas.shape[:2]
            sent = np.asarray(Image.fromarray(viewer.last_render).resize((w, h), Image.BILINEAR), np.float32)
            region = (slice(h // 3, h - 20), slice(20, w // 2))  # left of the panel, below the notice
            assert np.abs(canvas[region] - sent[region]).mean() < 12.0, "the canvas is not the brushpy render"
            assert (canvas[region].mean(axis=2) < 30).mean() > 0.1  # the black background shows
            page.get_by_text("brushpy render").click()
            page.get_by_text("brushpy render").click()

            page.get_by_role("button", name="Resume").click()
            _wait(lambda: viewer.trainer.step_count > paused_at, 60, "training to resume")
            browser.close()
    finally:
        stops.signum = int(signal.SIGINT)  # stop the run after its current step (saves an export)
        viewer.paused = False
        thread.join(timeout=120)
        viewer.close()
    assert "error" not in result, result.get("error")
    summary = result["summary"]
    assert summary.interrupted and summary.steps > paused_at
    assert not [x for x in result.get("log", []) if x.startswith("warning:")], result["log"]


def test_train_with_web_trains_and_serves(gpu, tmp_path):
    """The CLI's wrapper: a short run with the viewer attached writes what a headless run writes,
    and the page was served while it ran."""
    _need_viser()
    import urllib.request

    from brushpy.train.config import ProcessConfig
    from tests.test_train import tiny_config, tiny_scene

    scene = tiny_scene(max_frames=3, resolution=16)
    port, lines, pages = _free_port(), [], []

    def log(line):
        lines.append(line)
        if line.startswith("web viewer: http://"):
            pages.append(urllib.request.urlopen(line.split(": ", 1)[1], timeout=30).read())

    summary = web.train_with_web(("127.0.0.1", port), scene, tiny_config(total_steps=5),
                                 ProcessConfig(eval_every=0, export_path=str(tmp_path)), progress=False, log=log,
                                 keep_serving=False, verbose=False)
    assert summary.steps == 5 and (tmp_path / "export_5.ply").is_file()
    assert pages and b"<html" in pages[0].lower()
    assert not [x for x in lines if x.startswith("warning:")], lines
    web.check_port_free("127.0.0.1", port)  # the server let go of its port


def test_cli_view_web_serves_a_splat_file_until_ctrl_c(tmp_path):
    """``brushpy view --web FILE``: the page is served, Ctrl-C ends it cleanly and frees the port."""
    _need_viser()
    import subprocess
    import urllib.request

    from brushpy.io.ply import SplatData, write_ply

    s = _random_splats(n=200)
    path = tmp_path / "s.ply"
    write_ply(path, SplatData(means=s["means"], rotations=s["rotations"], log_scales=s["log_scales"],
                              sh_coeffs=s["sh_coeffs"], raw_opacities=s["raw_opacities"]))
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "brushpy", "view", "--web", str(path), "--port", str(port),
                             "--web-host", "127.0.0.1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=tmp_path,
                            env=dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    out = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            out.append(line)
            if line.startswith("web viewer: http://"):
                break
        assert any(x.startswith("web viewer: http://") for x in out), "".join(out)
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30).read()
        assert b"<html" in page.lower()
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in rest, rest
    web.check_port_free("127.0.0.1", port)
