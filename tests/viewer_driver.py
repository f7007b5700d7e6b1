"""Driving a real :class:`brushpy.viewer.app.ViewerApp` window from a GUI test's child process.

The GUI tests run the window in a child process on a private Xvfb display; the
child's script awaits frames and captures through one :class:`WindowDriver`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
from PIL import Image


REPO = Path(__file__).resolve().parent.parent


def run_drive(module: str, display: str, out: Path, *args, timeout: float):
    """Run ``tests.<module>.drive(out, *args)`` in a child process on X ``display``.

    The child writes ``out/result.json`` (and its captures); with
    ``BRUSHPY_VIEWER_SHOTS=/some/dir`` the PNGs are copied there for a look.
    Returns ``(result, proc)``; fails the test, with the child's output, when no
    result was written or the script raised.
    """
    env = dict(os.environ, DISPLAY=display, PYTHONPATH=str(REPO))
    code = f"import sys; from tests.{module} import drive; drive(*sys.argv[1:])"
    proc = subprocess.run([sys.executable, "-c", code, str(out), *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    keep = os.environ.get("BRUSHPY_VIEWER_SHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for f in Path(out).glob("*.png"):
            shutil.copy(f, Path(keep) / f.name)
    rfile = Path(out) / "result.json"
    assert rfile.exists(), f"viewer child failed (rc={proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    result = json.loads(rfile.read_text())
    assert "exception" not in result, result["exception"]
    return result, proc


class WindowDriver:
    """Awaitable helpers over a running ``ViewerApp``.

    Args:
        app: the window's app.
        out_dir: where :meth:`capture` writes ``<name>.npy`` and ``<name>.png``.
        timeout: default seconds before a wait raises ``TimeoutError``.
    """

    def __init__(self, app, out_dir, timeout: float = 90.0):
        self.app = app
        self.out = Path(out_dir)
        self.timeout = timeout

    async def wait_until(self, cond, what: str, timeout: float | None = None) -> None:
        """Poll ``cond()`` between frames until it is true; ``TimeoutError`` names ``what``."""
        deadline = time.time() + (self.timeout if timeout is None else timeout)
        while not cond():
            if time.time() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            await asyncio.sleep(0.01)

    async def frames(self, n: int = 1) -> None:
        """Request and wait for ``n`` drawn frames."""
        for _ in range(n):
            target = self.app.frame_count + 1
            self.app.request_draw()
            await self.wait_until(lambda: self.app.frame_count >= target, "a frame")

    async def capture(self, name: str) -> np.ndarray:
        """Read the next frame back from the window; save it as ``name``.npy/.png and return it (RGBA uint8)."""
        count = self.app.capture_count
        self.app.request_capture()
        await self.wait_until(lambda: self.app.capture_count > count, f"capture {name}")
        np.save(self.out / f"{name}.npy", self.app.last_capture)
        Image.fromarray(self.app.last_capture).save(self.out / f"{name}.png")
        return self.app.last_capture

    def save(self, result: dict) -> None:
        """Write ``result`` to ``out_dir/result.json``, what :func:`run_drive` reads back."""
        (self.out / "result.json").write_text(json.dumps(result, indent=1))

    def run(self, script, result: dict, close: bool = True) -> None:
        """Run the coroutine function ``script`` in the window's event loop until the window closes.

        When ``script`` ends, ``result`` is saved (:meth:`save`), with the traceback
        under ``"exception"`` if it raised; the window is then closed, or, with
        ``close=False`` (the script closes it its own way), only if it raised.
        """
        from rendercanvas.glfw import loop

        async def scripted():
            failed = False
            try:
                await script()
            except BaseException:
                result["exception"] = traceback.format_exc()
                failed = True
            finally:
                self.save(result)
                if close or failed:
                    self.app.close()

        loop.add_task(scripted)
        self.app.run()
