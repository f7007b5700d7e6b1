"""Make docs/images/web_viewer.png: the web viewer during a training run of the embedded scene.

Usage::

    python scripts/web_viewer_screenshot.py [--steps 300] [-o docs/images/web_viewer.png]

Trains the embedded lego scene (``brushpy train``'s embedded schedule, an evaluation every 100
steps) with the web viewer attached, pauses at ``--steps``, points the browser's camera at the
scene from behind a training camera and takes a screenshot with headless Chromium
(Debian's ``chromium`` driven by Playwright; SwiftShader WebGL). Needs ``pip install
'brushpy[web]' playwright`` and ``apt-get install chromium``.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from brushpy.cli.train import EMBEDDED_DEFAULTS, default_dataset  # noqa: E402
from brushpy.data import LoadConfig, load_dataset  # noqa: E402
from brushpy.train.config import ProcessConfig, TrainConfig  # noqa: E402
from brushpy.train.run import StopSignals, run_training  # noqa: E402
from brushpy.io.framing import robust_bounds, scene_up  # noqa: E402
from brushpy.viewer.web import WebViewer, vertical_fov  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--view", type=int, default=7, help="the training camera to look from behind")
    ap.add_argument("--back", type=float, default=1.6, help="distance from the scene's centre, in that camera's")
    ap.add_argument("-o", "--out", default="docs/images/web_viewer.png")
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright

    scene = load_dataset(default_dataset(), LoadConfig(progress=False))
    config = replace(TrainConfig(), **EMBEDDED_DEFAULTS, background_color=(1.0, 1.0, 1.0))  # as `brushpy train`
    out_dir = tempfile.mkdtemp(prefix="web_shot_")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    viewer = WebViewer(port, "127.0.0.1", push_interval_s=2.0, verbose=False)
    stops = StopSignals()
    thread = threading.Thread(target=run_training, daemon=True, kwargs=dict(
        scene=scene, config=config, process=ProcessConfig(eval_every=100, export_every=0, export_path=out_dir),
        progress=False, stop_signals=stops, watchers=[viewer]))
    thread.start()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--use-angle=swiftshader", "--enable-unsafe-swiftshader"])
        page = browser.new_page(viewport={"width": 1000, "height": 620})
        page.goto(viewer.url)
        while viewer.trainer is None or viewer.trainer.step_count < a.steps:
            time.sleep(0.5)
        viewer.set_paused(True)
        viewer.show_splats(viewer.trainer.display_splats().numpy())
        # behind training camera --view, looking at the scene's centre, so its frustum and its
        # neighbours show around the splats
        cam = scene.train_views[a.view].camera
        lo, hi = robust_bounds(viewer.trainer.splats.means.numpy())
        target = 0.5 * (lo + hi)
        for client in viewer.server.get_clients().values():
            with client.atomic():
                client.camera.up_direction = scene_up(viewer.trainer.vertical_axis)
                client.camera.position = target + a.back * (cam.position - target)
                client.camera.look_at = target
                client.camera.fov = vertical_fov(cam)
        close = page.locator("button.mantine-Notification-closeButton, .mantine-Notification-root button")
        if close.count():
            close.first.click()
        time.sleep(8.0)  # the splats arrive and SwiftShader draws them
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=a.out)
        browser.close()
    stops.signum = int(signal.SIGINT)
    viewer.set_paused(False)
    thread.join(timeout=300)
    viewer.close()
    shutil.rmtree(out_dir, ignore_errors=True)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
