"""Driving a real :class:`brushpy.viewer.app.ViewerApp` window from a GUI test's child process.

The GUI tests run the window in a child process on a private Xvfb display; the
child's script awaits frames and captures through one :class:`WindowDriver`.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
from PIL import Image


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
