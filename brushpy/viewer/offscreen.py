"""The viewer without a window: frames rendered to images (tests, scripted shots).

:class:`OffscreenViewer` runs the very same :class:`~brushpy.viewer.app.ViewerApp`
(render, blit, optional imgui panels) on rendercanvas' offscreen canvas and
returns each frame as an RGBA ``uint8`` array. :func:`render_camera_path`
writes one PNG per camera of a path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from ..render.camera import Camera
from ..render.splats import Splats
from .view import RenderSettings


class OffscreenViewer:
    """A :class:`~brushpy.viewer.app.ViewerApp` drawing into an offscreen canvas.

    Args:
        splats: a splat set on the GPU, or a path (``.ply``, folder, ``.zip``) to open.
        size: initial image size (width, height) in pixels.
        show_panels: draw the imgui panels over the splats.
        settings: :class:`~brushpy.viewer.view.RenderSettings`.

    Raises:
        SceneLoadError: when ``splats`` is a path that cannot be opened.
    """

    def __init__(self, splats, size: tuple[int, int] = (640, 480), show_panels: bool = False, settings: RenderSettings | None = None):
        from rendercanvas.offscreen import OffscreenRenderCanvas

        from .app import ViewerApp
        from .scene import SceneLoadError

        self.canvas = OffscreenRenderCanvas(size=tuple(int(v) for v in size), pixel_ratio=1.0)
        if isinstance(splats, Splats):
            self.app = ViewerApp(splats=splats, canvas=self.canvas, show_panels=show_panels, settings=settings)
        else:
            self.app = ViewerApp(canvas=self.canvas, show_panels=show_panels, settings=settings)
            if not self.app.open(splats, wait=True):
                raise SceneLoadError(self.app.error or f"{splats}: could not be opened")

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.canvas.get_physical_size())

    def resize(self, width: int, height: int):
        """Set the image size in pixels."""
        if (int(width), int(height)) != self.size:
            self.canvas.set_physical_size(int(width), int(height))

    def render(self, camera: Camera | None = None) -> np.ndarray:
        """Draw one frame; returns RGBA uint8 [H,W,4].

        With ``camera``, the image takes its size and the frame is rendered
        with exactly its pose and intrinsics; without, the controller's
        current view is drawn.
        """
        if camera is not None:
            self.resize(camera.width, camera.height)
            self.app.view_camera(camera, exact=True)
        if self.app.show_panels and self.app.frame_count == 0:
            # imgui lays out auto-sized windows on their first frame without drawing
            # them; draw that one first (the splat image is cached for the second)
            self.canvas.draw()
        image = self.canvas.draw()
        return np.asarray(image, np.uint8).reshape(self.size[1], self.size[0], -1)

    def close(self):
        self.canvas.close()


def render_camera_path(
    splats,
    cameras: Iterable[Camera],
    out_dir,
    *,
    background=(0.0, 0.0, 0.0),
    sh_degree: int | None = None,
    splat_scale: float = 1.0,
    show_panels: bool = False,
    name_format: str = "frame_{:05d}.png",
) -> list[Path]:
    """Render ``splats`` from each camera and write the frames as RGB PNGs.

    Args:
        splats: a GPU splat set or a path to open (``.ply``, folder, ``.zip``).
        cameras: the path; each camera sets its frame's size and intrinsics.
        out_dir: created if missing.
        background, sh_degree, splat_scale: render settings.
        show_panels: draw the viewer's panels into the frames too.
        name_format: file name of frame i (``str.format`` with i).

    Returns:
        The written paths, in camera order.
    """
    from PIL import Image

    from ..io.atomic import atomic_write

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cameras = list(cameras)
    if not cameras:
        raise ValueError("render_camera_path: no cameras given")
    settings = RenderSettings(sh_degree=sh_degree, splat_scale=splat_scale, background=tuple(background))
    first = cameras[0]
    viewer = OffscreenViewer(splats, size=(first.width, first.height), show_panels=show_panels, settings=settings)
    written = []
    try:
        for i, cam in enumerate(cameras):
            rgba = viewer.render(cam)
            if viewer.app.error:
                raise RuntimeError(viewer.app.error)
            path = out / name_format.format(i)
            with atomic_write(path) as f:
                Image.fromarray(np.ascontiguousarray(rgba[..., :3])).save(f, format="PNG")
            written.append(path)
    finally:
        viewer.close()
    return written


def orbit_path(center, radius: float, num_frames: int, width: int, height: int, fov_y_deg: float = 50.0,
               elevation_deg: float = 15.0, up=(0.0, -1.0, 0.0)) -> list[Camera]:
    """Cameras circling ``center`` at ``radius`` (a turntable shot), looking at it, ``elevation_deg``
    above the horizontal plane (:func:`brushpy.io.camera_path.orbit_cameras` from a start point).

    ``up`` is the world up direction (default ``-y``, as COLMAP / INRIA scenes).
    """
    from ..io.camera_path import orbit_cameras

    up = np.asarray(up, np.float64)
    up = up / np.linalg.norm(up)
    # a unit vector in the horizontal plane: where the orbit starts
    helper = np.array([1.0, 0.0, 0.0]) if abs(up[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
    a = np.cross(up, helper)
    a /= np.linalg.norm(a)
    el = np.deg2rad(elevation_deg)
    center = np.asarray(center, np.float64)
    start = center + radius * (np.cos(el) * a + np.sin(el) * up)
    return orbit_cameras(start, center, up, num_frames, fov_y_deg, width, height)
