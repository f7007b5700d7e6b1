"""Screenshot of the desktop viewer window (the README's docs/images/desktop_viewer.png).

Opens the real viewer window (glfw, imgui panels) on a splat file, waits until the scene is
drawn and the panels are laid out, reads the window's own surface back
(:meth:`ViewerApp.request_capture <brushpy.viewer.app.ViewerApp.request_capture>`: exactly
what the window shows, panels included) and writes it as a PNG. Needs a display; headless::

    xvfb-run -a -s "-screen 0 1280x800x24" python3 scripts/viewer_screenshot.py \\
        ../shared/splats/guitar_inria_sh0.ply -o docs/images/desktop_viewer.png

Options: ``--size WxH`` (window size, default 960x600), ``--orbit DX`` (turn the view as a
left-drag of DX pixels would before the shot, default 0).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scene", type=Path, help="splat file or folder to open")
    parser.add_argument("-o", "--output", type=Path, required=True, help="PNG to write")
    parser.add_argument("--size", default="960x600", help="window size WxH in pixels")
    parser.add_argument("--orbit", type=float, default=0.0, help="orbit drag in pixels before the shot")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds before giving up")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))

    from rendercanvas.glfw import loop

    from brushpy.io.atomic import atomic_write
    from brushpy.viewer.app import ViewerApp

    app = ViewerApp(args.scene, size=(width, height), show_panels=True, max_fps=30)
    app.controller.settings.damping = 0.0
    failure: list[str] = []

    async def wait_until(cond, what):
        deadline = time.time() + args.timeout
        while not cond():
            if time.time() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            await asyncio.sleep(0.02)

    async def frames(n):
        for _ in range(n):
            target = app.frame_count + 1
            app.request_draw()
            await wait_until(lambda: app.frame_count >= target, "a frame")

    async def shoot():
        try:
            await wait_until(lambda: app.scene is not None and not app.loading, "the scene")
            if args.orbit:
                app.controller.orbit(args.orbit, 0.0)
            await wait_until(lambda: not app.controller.is_moving, "the camera to settle")
            await frames(4)  # imgui lays out its auto-sized windows over the first frames
            count = app.capture_count
            app.request_capture()
            await wait_until(lambda: app.capture_count > count, "the capture")
            shot = np.ascontiguousarray(app.last_capture[..., :3])
            with atomic_write(args.output) as f:
                Image.fromarray(shot).save(f, format="PNG", optimize=True)
            print(f"wrote {args.output} ({shot.shape[1]}x{shot.shape[0]}, {app.render_ms:.0f} ms per splat render)")
        except BaseException as exc:  # report, then close the window
            failure.append(repr(exc))
        finally:
            app.close()

    loop.add_task(shoot)
    app.run()
    if failure:
        print(f"screenshot failed: {failure[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
