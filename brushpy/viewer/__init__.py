"""The desktop viewer: an imgui window (wgpu + rendercanvas/glfw) that shows splats.

``run_viewer(path)`` opens a window; :mod:`brushpy.viewer.offscreen` renders
the same frames without one. The window needs the viewer extras
(``imgui-bundle``, ``rendercanvas``, ``glfw``); importing this package does not.
"""

from __future__ import annotations


def run_viewer(path=None, *, size: tuple[int, int] = (1280, 720)) -> None:
    """Open the viewer window on ``path`` (a splat ``.ply``, a folder or ``.zip`` of them, or None)
    and run it until the window is closed.

    A path that fails to load shows its error in the window.

    Raises:
        NoDisplayError: when no window can be opened (no display server).
    """
    from .app import ViewerApp

    app = ViewerApp(size=size)
    if path is not None:
        app.open(path)
    app.run()


__all__ = ["run_viewer"]
