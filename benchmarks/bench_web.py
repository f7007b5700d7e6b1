"""Benchmark: training speed with the web viewer attached, as a ratio to headless (prints JSON).

Usage::

    python benchmarks/bench_web.py [--steps 150] [--warmup 10] [--browser] [--out FILE]

Trains the embedded scene (``assets/lego_small``, its ``brushpy train`` schedule: refine every
100 steps) from the same seed for ``--warmup`` + ``--steps`` steps in each mode, through
:func:`brushpy.train.run.run_training` (no evaluations or exports in the window), and times
the ``--steps`` steps after the warm-up:

* ``headless``: no watcher (``brushpy train``);
* ``web``: a :class:`brushpy.viewer.web.WebViewer` watching, no browser connected;
* ``web_browser`` (``--browser``): the same with headless Chromium (Playwright, SwiftShader
  WebGL) showing the page on this machine: the worst case, since the browser's software
  WebGL competes for the same cores as training (a real browser on another machine costs
  the training machine only the splat sends).

Modes run in the order headless, web, [web_browser], headless again; the headless
figure is the mean of its two runs, so a drift of the machine's load shows as their spread.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _report import emit, machine  # noqa: E402
from brushpy.cli.train import EMBEDDED_DEFAULTS, default_dataset  # noqa: E402
from brushpy.data import LoadConfig, load_dataset  # noqa: E402
from brushpy.train.config import ProcessConfig, TrainConfig  # noqa: E402
from brushpy.train.run import run_training  # noqa: E402
from brushpy.train.stream import StepEvent  # noqa: E402


class StepClock:
    """A watcher that notes the wall time of each step."""

    def __init__(self):
        self.times: list[float] = []

    def start(self, trainer, outputs, stops):
        pass

    def on_event(self, event):
        if isinstance(event, StepEvent):
            self.times.append(time.perf_counter())

    def end(self):
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(mode: str, scene, steps: int, warmup: int) -> float:
    """Steps per second over the ``steps`` steps after ``warmup`` in ``mode``."""
    from brushpy.viewer.web import WebViewer

    config = replace(TrainConfig(), **{**EMBEDDED_DEFAULTS, "total_steps": warmup + steps + 1})
    clock, watchers, viewer, browser = StepClock(), [], None, None
    out = tempfile.mkdtemp(prefix="bench_web_")
    process = ProcessConfig(eval_every=0, export_every=0, export_path=out, seed=42)
    if mode != "headless":
        viewer = WebViewer(_free_port(), "127.0.0.1", verbose=False)
        watchers.append(viewer)
    watchers.append(clock)
    if mode == "web_browser":
        browser = _Browser(viewer)
    try:
        run_training(scene, config, process, progress=False, log=lambda _: None, watchers=watchers)
    finally:
        if browser is not None:
            browser.stop()
        if viewer is not None:
            viewer.close()
        shutil.rmtree(out, ignore_errors=True)
    t = clock.times
    return steps / (t[warmup + steps - 1] - t[warmup - 1])


class _Browser:
    """Headless Chromium showing the viewer's page in a thread until :meth:`stop`."""

    def __init__(self, viewer):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(viewer,), daemon=True)
        self._thread.start()

    def _run(self, viewer):
        from playwright.sync_api import sync_playwright

        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=chromium,
                                  args=["--use-angle=swiftshader", "--enable-unsafe-swiftshader"])
            page = b.new_page(viewport={"width": 800, "height": 600})
            page.goto(viewer.url)
            while not self._stop.wait(0.5):
                pass
            b.close()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--browser", action="store_true", help="also with headless Chromium showing the page")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    scene = load_dataset(default_dataset(), LoadConfig(progress=False))
    modes = ["headless", "web"] + (["web_browser"] if a.browser else []) + ["headless"]
    rates: dict[str, list[float]] = {}
    for mode in modes:
        rates.setdefault(mode, []).append(run(mode, scene, a.steps, a.warmup))
        print(f"{mode}: {rates[mode][-1]:.3f} steps/s", file=sys.stderr)
    headless = sum(rates["headless"]) / len(rates["headless"])
    out = {
        "benchmark": "web_viewer_training_speed",
        "scene": "assets/lego_small (embedded), brushpy train's embedded schedule",
        "steps": a.steps, "warmup": a.warmup,
        "steps_per_s": {k: [round(v, 3) for v in vs] for k, vs in rates.items()},
        "ratio_to_headless": {k: round(sum(vs) / len(vs) / headless, 3) for k, vs in rates.items() if k != "headless"},
        **machine(),
    }
    emit(out, a.out)


if __name__ == "__main__":
    main()
