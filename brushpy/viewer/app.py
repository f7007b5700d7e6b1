"""The viewer window: splats drawn by brushpy's rasterizer behind imgui panels.

:class:`ViewerApp` owns a rendercanvas canvas (a glfw window by default, or
any rendercanvas canvas such as the offscreen one), an imgui renderer on the
same wgpu device as brushpy's compute kernels and the camera controller. What
it shows and does besides drawing is a
:class:`~brushpy.viewer.session.ViewerSession` (scene, background loads, live
training, the close prompt); the panels are
:class:`~brushpy.viewer.panels.ViewerPanels`. Each frame:

1. a finished background load is shown, live training runs its share of the
   frame, and the controller integrates the input (damped drags, WASD flight);
2. if the camera, a render setting, the window size or the scene changed,
   the splats are rendered again with
   :func:`brushpy.render.forward.render_forward` into a GPU tensor;
3. one render pass clears to the background and draws that tensor over the
   whole window (:class:`~brushpy.viewer.view.Blitter`; no CPU round trip),
   then imgui draws the panels on top.

The window is drawn on demand: input, a changed setting, a finished load or
a camera still easing out request the next frame; nothing is drawn while
nothing changes.

Keys: left drag orbit, right drag look around, middle drag / Ctrl + left drag
pan, wheel zoom, W/A/S/D/Q/E fly (Shift: faster), F fullscreen, Home frame
the scene, H hide / show the panels, V colour / depth view, R start / stop
recording the camera path. A path dropped on the window opens it.

Camera path recording (R, or the "Camera path" panel): while recording, every
frame is drawn and its camera kept with its time (:attr:`ViewerApp.recorder`, a
:class:`~brushpy.io.camera_path.PathRecorder`); stopping resamples the path at
30 fps and writes it atomically as a nerfstudio camera-path JSON
(:attr:`ViewerApp.record_path`), which ``brushpy render SCENE --path FILE.json
-o out.mp4`` plays back at the window's size.

Live training: opening a dataset (or :meth:`ViewerApp.start_training`, used
by ``brushpy train --viewer``) trains in this process between frames (see
:mod:`brushpy.viewer.training` for the time-budget policy); the training
panel plots loss and PSNR, and the dataset panel browses the views with
their ground-truth images. Closing the window while training asks whether
to export first.
"""

from __future__ import annotations

import functools
import re
import time
from pathlib import Path

import numpy as np
import wgpu

from ..gpu import get_context
from ..io.camera_path import PathRecorder
from ..io.framing import scene_up
from ..render.camera import Camera
from ..render.splats import Splats
from .camera import CameraController
from .input import InputMapper
from .panels import ViewerPanels
from .scene import SplatScene, ViewerScene
from .session import ViewerSession, looks_like_dataset
from .training import LiveTraining
from .view import Blitter, RenderSettings, SplatView


class NoDisplayError(RuntimeError):
    """A window could not be opened (no display server)."""


def _window_canvas(size, title, max_fps):
    try:
        from rendercanvas.glfw import RenderCanvas
    except Exception as exc:  # glfw library missing
        raise NoDisplayError(
            f"cannot open a window: the glfw backend of rendercanvas is unavailable ({exc}). "
            "Install the viewer extras (`pip install brushpy[viewer]`) and a glfw library."
        ) from exc
    import warnings

    import glfw

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ok = glfw.init()
    if not ok:
        reason = "; ".join(str(w.message) for w in caught) or "glfw.init() failed"
        raise NoDisplayError(
            f"cannot open a window: {reason}. Run inside a desktop session, or under a virtual display "
            "(e.g. `xvfb-run brushpy view ...`); for pictures without a window use brushpy.viewer.offscreen."
        )
    try:
        return RenderCanvas(size=size, title=title, update_mode="ondemand", max_fps=max_fps, vsync=False)
    except Exception as exc:
        raise NoDisplayError(
            f"cannot open a window ({exc}). Run inside a desktop session, or under a virtual display "
            "(e.g. `xvfb-run brushpy view ...`); for pictures without a window use brushpy.viewer.offscreen."
        ) from exc



def _session_attribute(name: str, doc: str) -> property:
    """A :class:`ViewerApp` attribute that is the session's attribute ``name`` (read and write)."""
    return property(lambda app: getattr(app.session, name), lambda app, value: setattr(app.session, name, value), doc=doc)


def _session_method(name: str):
    """A :class:`ViewerApp` method that calls the session's method ``name`` (same signature and docstring)."""
    method = getattr(ViewerSession, name)

    @functools.wraps(method)
    def call(app, *args, **kwargs):
        return getattr(app.session, name)(*args, **kwargs)

    return call


class ViewerApp:
    """The interactive splat viewer.

    The window (canvas, surface, input, drawing) lives here; the scene, loads,
    live training and closing logic live in :attr:`session`, the imgui panels
    in :attr:`panels`. The session's state and actions are reachable from the
    app too (``app.scene`` is ``app.session.scene``, ``app.open`` is
    ``app.session.open``...).

    Args:
        path: a splat ``.ply``, a folder or a ``.zip`` of them to open (optional).
        splats: a :class:`~brushpy.render.splats.Splats` to show instead of a path.
        name: the scene name shown for ``splats``.
        size: window size in logical pixels (width, height).
        title: window title.
        canvas: a rendercanvas canvas to draw into (default: a new glfw window).
        show_panels: start with the imgui panels visible.
        settings: initial :class:`~brushpy.viewer.view.RenderSettings`.
        max_fps: frame-rate cap of the on-demand drawing.

    Attributes:
        session: the :class:`~brushpy.viewer.session.ViewerSession` (scene, loads, training, closing).
        panels: the :class:`~brushpy.viewer.panels.ViewerPanels` drawn over the splats.
        controller: the :class:`~brushpy.viewer.camera.CameraController`.
        settings: the render settings (edit, then :meth:`request_draw`).
        scene: the current :class:`~brushpy.viewer.scene.SplatScene` or None.
        error: the last loading / rendering error shown in the window, or None.
        frame_count: frames drawn so far.
        last_capture: RGBA uint8 [H,W,4] of the frame captured after
            :meth:`request_capture` (the window's content, panels included).
        recorder: the :class:`~brushpy.io.camera_path.PathRecorder` of the camera path.
        record_path: where :meth:`stop_recording` writes the path (default ``camera_path.json``
            in the working folder; a free ``camera_path_N.json`` when that exists).
        record_message: the last recording line shown in the panel ("saved ...", an error).
        clock: the recorder's clock (seconds; ``time.perf_counter``; tests set their own).

    Raises:
        NoDisplayError: when no window can be opened.
    """

    scene = _session_attribute("scene", "The :class:`~brushpy.viewer.scene.ViewerScene` shown, or None.")
    error = _session_attribute("error", "The last loading / rendering / training error shown, or None.")
    status = _session_attribute("status", "The progress line (\"Loading ...\"), or \"\".")
    path_input = _session_attribute("path_input", "The path field's text.")
    training = _session_attribute("training", "The :class:`~brushpy.viewer.training.LiveTraining` run, or None.")
    dataset = _session_attribute("dataset", "The ``brushpy.data.Scene`` being trained on, or None.")
    budget = _session_attribute("budget", "The :class:`~brushpy.viewer.training.TrainingBudget`.")
    dataset_configs = _session_attribute(
        "dataset_configs", "``(LoadConfig | None, TrainConfig | None, ProcessConfig | None)`` for datasets opened here.")
    selected_view = _session_attribute("selected_view", "``(\"train\" | \"eval\", index)`` of the view jumped to, or None.")
    close_prompt_open = _session_attribute("close_prompt_open", "The \"export before closing?\" prompt is shown.")
    closed_with = _session_attribute("closed_with", "How a training window closed: \"export\", \"discard\", or None.")

    set_scene = _session_method("set_scene")
    set_splats = _session_method("set_splats")
    open = _session_method("open")
    show_frame = _session_method("show_frame")
    open_dataset = _session_method("open_dataset")
    start_training = _session_method("start_training")
    dataset_views = _session_method("dataset_views")
    pause_training = _session_method("pause_training")
    request_close = _session_method("request_close")
    answer_close_prompt = _session_method("answer_close_prompt")

    def __init__(
        self,
        path=None,
        *,
        splats: Splats | None = None,
        name: str = "splats",
        size: tuple[int, int] = (1280, 720),
        title: str = "brushpy viewer",
        canvas=None,
        show_panels: bool = True,
        settings: RenderSettings | None = None,
        max_fps: float = 60.0,
    ):
        from imgui_bundle import imgui
        from wgpu.utils.imgui import ImguiRenderer

        self.gpu = get_context()
        self.device = self.gpu.device
        self.canvas = canvas if canvas is not None else _window_canvas(size, title, max_fps)
        self.context = self.canvas.get_wgpu_context()
        self.target_format, self.can_capture = self._configure_surface()
        self.blitter = Blitter(self.target_format, self.device)
        self.view = SplatView()
        if settings is None:
            settings = RenderSettings()
            if self.gpu.is_cpu:
                settings.moving_render_scale = 0.5  # software rasterizers: stay responsive while moving
        self.settings = settings
        self.controller = CameraController(fov_y_deg=self.settings.fov_y_deg)
        self.show_panels = show_panels
        self.session = ViewerSession(self, path_input=str(path) if path is not None else "")
        self.panels = ViewerPanels(self)

        self.imgui_renderer = ImguiRenderer(self.device, self.canvas, self.target_format)
        self.imgui_renderer.set_gui(self.panels.draw)
        self._io = imgui.get_io()
        self._io.set_ini_filename(None)  # no imgui.ini in the user's folder
        self.input = InputMapper(
            self.controller,
            viewport_height=lambda: float(self.canvas.get_logical_size()[1]),
            gui_wants_mouse=lambda: self.show_panels and self._io.want_capture_mouse,
            gui_wants_keyboard=lambda: self.show_panels and self._io.want_capture_keyboard,
        )
        # before imgui's handlers (order -99): we check imgui's capture flags ourselves so
        # that releases always reach the controller.
        self.canvas.add_event_handler(
            self._on_input, "pointer_down", "pointer_move", "pointer_up", "wheel", "key_down", "key_up", order=-100
        )
        self.canvas.add_event_handler(self._on_any_event, "*", order=100)
        self._install_glfw_hooks()

        self._windowed_geometry = None
        self._exact_camera = None
        self._overhead_s = 0.0  # mean non-training cost of a frame
        self._train_s = 0.0  # training time of the last frame

        self.frame_count = 0
        self.fps = 0.0
        self.frame_ms = 0.0
        self.render_ms = 0.0
        self._last_time = None
        self._extra_frames = 2
        self._capture_requested = False
        self.last_capture: np.ndarray | None = None
        self.capture_count = 0
        self._render_key_failed = None
        self.recorder = PathRecorder(fps=30.0)
        self.record_path = _free_name(Path.cwd() / "camera_path.json")
        self.record_message = ""
        self.clock = time.perf_counter

        if splats is not None:
            self.set_scene(SplatScene.from_splats(splats, name=name))
        elif path is not None:
            self.open(path, wait=True)
        self.canvas.request_draw(self._draw)

    # -- setup -------------------------------------------------------------------
    def _configure_surface(self) -> tuple[str, bool]:
        """Configure the canvas on brushpy's device; prefer a non-sRGB format and readable frames."""
        preferred = self.context.get_preferred_format(self.device.adapter)
        candidates = [preferred[: -len("-srgb")], preferred] if preferred.endswith("-srgb") else [preferred]
        usage_rw = wgpu.TextureUsage.RENDER_ATTACHMENT | wgpu.TextureUsage.COPY_SRC
        last = None
        for fmt in candidates:
            for usage, capture in ((usage_rw, True), (wgpu.TextureUsage.RENDER_ATTACHMENT, False)):
                try:
                    self.context.configure(device=self.device, format=fmt, usage=usage)
                    return fmt, capture
                except Exception as exc:  # unsupported format / usage on this surface
                    last = exc
        raise RuntimeError(f"cannot configure the window surface on brushpy's device: {last}")

    def _install_glfw_hooks(self):
        """Open dropped files; forget held keys and drags when the window loses focus."""
        window = getattr(self.canvas, "_window", None)  # glfw window of rendercanvas' glfw backend
        if window is None:
            return
        import glfw

        def on_drop(_window, paths):
            if paths:
                self.open(paths[0])

        def on_focus(_window, focused):
            if not focused:
                self.input.release_all()  # the key-up events will not come
            self.request_draw()

        def on_close(_window):
            # the close button: while training, keep the window and ask about exporting
            if self.session.training_active:
                glfw.set_window_should_close(_window, False)
                self.request_close()

        self._glfw_callbacks = (on_drop, on_focus, on_close)  # keep references alive
        glfw.set_drop_callback(window, on_drop)
        glfw.set_window_focus_callback(window, on_focus)
        glfw.set_window_close_callback(window, on_close)

    # -- the session's host (brushpy.viewer.session.SessionHost) --------------------------
    def scene_changed(self, scene: ViewerScene, frame_view: bool) -> None:
        """The session shows ``scene``: forget cached renders, keep the SH degree within the
        scene's, frame the view on it if ``frame_view``."""
        self._render_key_failed = None
        sd = scene.sh_degree
        if self.settings.sh_degree is not None and self.settings.sh_degree > sd:
            self.settings.sh_degree = sd
        if frame_view:
            self._orient_for(scene)
            self.frame_scene()
        self.view.invalidate()
        self.request_draw()

    def _orient_for(self, scene: ViewerScene) -> None:
        """Before framing a newly opened scene: a scene that names its vertical axis is seen with
        that axis up, horizontally at its broadest side (as ``brushpy render``'s default camera);
        one that does not keeps the current view, with -y up (:data:`brushpy.io.framing.DEFAULT_UP`)."""
        axis = getattr(scene, "vertical_axis", None)
        up = np.asarray(scene_up(axis), np.float64)
        if axis is not None:
            self.controller.orient(up, getattr(scene, "forward", None))
        elif not np.allclose(self.controller.up, up):
            self.controller.orient(up)

    def training_started(self, training: LiveTraining) -> None:
        """Live training began: draw over its background (white for NeRF-synthetic scenes), drop
        the previous dataset's ground-truth thumbnail, and orbit about the dataset's up axis (from
        its cameras, :attr:`Trainer.vertical_axis <brushpy.train.trainer.Trainer>`; -y when they do not say)."""
        self.panels.release_gt_texture()
        self.settings.background = tuple(float(c) for c in training.config.background_color)
        self.controller.up = scene_up(getattr(training.trainer, "vertical_axis", None))

    def wake(self) -> None:
        """Ask for a frame from any thread (a finished background load)."""
        self.canvas.request_draw()

    def jump_to_view(self, split: str, index: int):
        """Select a dataset view and move the camera to it (its exact intrinsics); the
        dataset panel opens on it."""
        self.session.jump_to_view(split, index)
        self.panels.expand_dataset = True

    @property
    def loading(self) -> bool:
        """A file or dataset is being read."""
        return self.session.loading

    # -- camera ----------------------------------------------------------------------
    def frame_scene(self):
        """Fit the scene's bounds in view (keeps the viewing direction)."""
        if self.scene is None:
            return
        w, h = self.canvas.get_logical_size()
        self.controller.frame(*self.scene.bounds, aspect=max(w, 1) / max(h, 1))
        self.request_draw()

    def view_camera(self, camera: Camera, focus_distance: float | None = None, exact: bool = True):
        """Jump to ``camera``'s pose and vertical field of view.

        With ``exact``, frames use ``camera``'s own intrinsics (principal point,
        fx != fy; scaled to the render size) until the view is moved; otherwise
        the controller's centred pinhole of the same vertical field of view.
        The focus point is put at the depth of the scene centre when it lies
        in front of the camera.
        """
        if focus_distance is None and self.scene is not None:
            center = 0.5 * (self.scene.bounds[0] + self.scene.bounds[1])
            depth = float((camera.world_to_camera[:3, :3] @ center + camera.world_to_camera[:3, 3])[2])
            focus_distance = depth if depth > 0 else None
        self.controller.jump_to(camera, focus_distance)
        self.settings.fov_y_deg = self.controller.fov_y_deg
        self._exact_camera = (camera, self.controller.version) if exact else None
        self.request_draw()

    def toggle_fullscreen(self):
        """Switch the glfw window between windowed and fullscreen on the primary monitor."""
        window = getattr(self.canvas, "_window", None)
        if window is None:
            return
        import glfw

        if glfw.get_window_monitor(window):
            x, y, w, h = self._windowed_geometry or (100, 100, 1280, 720)
            glfw.set_window_monitor(window, None, x, y, w, h, 0)
        else:
            monitor = glfw.get_primary_monitor()
            if not monitor:
                return
            x, y = glfw.get_window_pos(window)
            w, h = glfw.get_window_size(window)
            self._windowed_geometry = (x, y, w, h)
            mode = glfw.get_video_mode(monitor)
            glfw.set_window_monitor(window, monitor, 0, 0, mode.size.width, mode.size.height, mode.refresh_rate)
        self.request_draw()

    @property
    def is_fullscreen(self) -> bool:
        window = getattr(self.canvas, "_window", None)
        if window is None:
            return False
        import glfw

        return bool(glfw.get_window_monitor(window))

    # -- events ------------------------------------------------------------------------
    def _on_input(self, event):
        if self.input.handle(event):
            self.request_draw()

    def _on_any_event(self, event):
        if event.get("event_type") in ("before_draw", "animate"):
            return
        # imgui reacts to input on the next frames (hover, clicks, auto-sized windows)
        self._extra_frames = max(self._extra_frames, 2)
        self.canvas.request_draw()

    def request_draw(self):
        """Ask for a new frame (settings changed from code, for instance)."""
        self._extra_frames = max(self._extra_frames, 1)
        self.canvas.request_draw()

    def request_capture(self):
        """Read back the next frame into :attr:`last_capture` (needs a readable surface)."""
        if not self.can_capture:
            raise RuntimeError("this window surface cannot be read back (no COPY_SRC usage)")
        self._capture_requested = True
        self.request_draw()

    def _run_actions(self):
        actions, self.input.actions = self.input.actions, []
        for action in actions:
            if action == "toggle_fullscreen":
                self.toggle_fullscreen()
            elif action == "frame_scene":
                self.frame_scene()
            elif action == "toggle_panels":
                self.show_panels = not self.show_panels
            elif action == "toggle_view_mode":  # colour <-> depth
                self.settings.view_mode = "depth" if self.settings.view_mode == "color" else "color"
                self.request_draw()
            elif action == "toggle_recording":
                self.toggle_recording()

    # -- camera path recording ---------------------------------------------------------------
    def start_recording(self) -> None:
        """Record the camera of every frame from now on (frames are drawn continuously meanwhile)."""
        self.recorder.start()
        self.record_message = f"recording to {self.record_path}"
        self.request_draw()

    def stop_recording(self, save: bool = True) -> Path | None:
        """Stop recording and, with ``save``, write the path to :attr:`record_path` (nerfstudio
        camera-path JSON at 30 fps, the window's size rounded down to even numbers, atomically).

        Returns the file written, or None (not saved, nothing recorded, or a write error, which
        is shown in the panel and in :attr:`record_message`; the viewer goes on).
        """
        rec = self.recorder
        was = rec.recording
        rec.stop()
        self.request_draw()
        if not (save and was):
            return None
        if not rec.samples:
            self.record_message = "nothing recorded (no frame was drawn)"
            return None
        w, h = self.canvas.get_physical_size()
        target = Path(self.record_path)
        try:
            path = rec.save(target, width=max(2, w - w % 2), height=max(2, h - h % 2))
        except Exception as exc:  # a full disk or a bad folder must not close the viewer
            self.record_message = f"camera path not saved: {exc}"
            self.error = self.record_message
            return None
        self.record_message = (f"saved {len(path.cameras)} frames ({path.seconds:.1f} s) to {target}; "
                               f"play: brushpy render SCENE --path {target} -o out.mp4")
        self.record_path = _free_name(target)
        return target

    def toggle_recording(self) -> Path | None:
        """Start recording, or stop and save (:meth:`stop_recording`)."""
        if self.recorder.recording:
            return self.stop_recording()
        self.start_recording()
        return None

    # -- drawing -----------------------------------------------------------------------------
    def _view_moving(self) -> bool:
        """The camera eases or a drag is held (renders use the moving resolution)."""
        return self.controller.is_moving or self.input.drag_mode is not None

    def retry_render(self) -> None:
        """Render again even where the last render with the same camera and settings failed
        (a scene's own setting changed, e.g. a MIP scene's temperature)."""
        self._render_key_failed = None

    def render_size(self) -> tuple[int, int]:
        """Splat image size: the framebuffer size times the render scale (the moving one while the camera moves)."""
        w, h = self.canvas.get_physical_size()
        s = self.settings.render_scale
        if self._view_moving():
            s = min(s, self.settings.moving_render_scale)
        return max(1, int(round(w * s))), max(1, int(round(h * s)))

    def current_camera(self) -> Camera:
        """The camera of the next frame at the current render size.

        The exact camera given to :meth:`view_camera` while the view has not
        moved since, else the controller's camera.
        """
        w, h = self.render_size()
        exact = self._exact_camera
        if exact is not None:
            if exact[1] == self.controller.version:
                cam = exact[0]
                return cam if (cam.width, cam.height) == (w, h) else cam.scaled(w, h)
            self._exact_camera = None
        return self.controller.camera(w, h)

    def _render_splats(self):
        """This frame's splat image (a GPU tensor), or None without a scene or when rendering failed."""
        if self.scene is None:
            return None
        if self.controller.fov_y_deg != self.settings.fov_y_deg:
            self.controller.fov_y_deg = self.settings.fov_y_deg
        camera = self.current_camera()
        key = (id(self.scene), self.view._camera_key(camera), self.settings.key())
        if key == self._render_key_failed:
            return None
        t0 = time.perf_counter()
        view = self.scene.view_for(self.view)  # a MIP scene brings its own view
        try:
            image = self.scene.render(self.view, camera, self.settings)
        except Exception as exc:  # keep the window alive; say what went wrong
            self._render_key_failed = key
            self.error = f"render failed: {exc}"
            return None
        if not view.last_was_cached:
            # wait for the GPU (a 16-byte read) so the stat is the real render time
            self.device.queue.read_buffer(image.buffer, 0, 16)
            self.render_ms = 1000.0 * (time.perf_counter() - t0)
        return image

    def _draw(self):
        t0 = time.perf_counter()
        dt = 0.0 if self._last_time is None else min(t0 - self._last_time, 0.25)
        if self._last_time is not None and t0 > self._last_time:
            period = t0 - self._last_time
            inst = 1.0 / period
            self.fps = inst if self.fps == 0 else 0.8 * self.fps + 0.2 * inst
            # what a frame costs besides training (render, blit, panels, event loop)
            overhead = max(period - self._train_s, 0.0)
            self._overhead_s = overhead if self._overhead_s == 0 else 0.8 * self._overhead_s + 0.2 * overhead
        self._last_time = t0

        session = self.session
        session.finish_load()
        self._run_actions()
        moving = self._view_moving()
        self._train_s = session.train_between_frames(self._overhead_s, moving or self.panels.gui_active)
        if session.refresh_training_splats(moving, self.render_ms / 1000.0):
            self.view.invalidate()
        self.controller.update(dt)
        image = self._render_splats()
        if self.recorder.recording and self.scene is not None:
            self.recorder.add(self.clock(), self.current_camera())

        texture = self.context.get_current_texture()
        w, h = texture.size[0], texture.size[1]
        encoder = self.device.create_command_encoder(label="viewer_frame")
        rp = encoder.begin_render_pass(
            color_attachments=[
                {
                    "view": texture.create_view(),
                    "clear_value": self.blitter.clear_value(self.settings.background),
                    "load_op": wgpu.LoadOp.clear,
                    "store_op": wgpu.StoreOp.store,
                }
            ]
        )
        if image is not None:
            self.blitter.draw(rp, image, (w, h))
        rp.end()
        self.device.queue.submit([encoder.finish()])
        self.imgui_renderer.render()  # panels on top (loads the target)

        if self._capture_requested:
            self._capture_requested = False
            self.last_capture = self._read_texture(texture)
            self.capture_count += 1

        self.frame_count += 1
        self.frame_ms = 1000.0 * (time.perf_counter() - t0)
        if self._extra_frames > 0:
            self._extra_frames -= 1
        if (self.controller.is_moving or session.loading or self._extra_frames > 0 or session.training_running
                or self.recorder.recording):
            self.canvas.request_draw()

    def _read_texture(self, texture) -> np.ndarray:
        w, h = texture.size[0], texture.size[1]
        data = self.device.queue.read_texture(
            {"texture": texture, "origin": (0, 0, 0), "mip_level": 0},
            {"offset": 0, "bytes_per_row": 4 * w, "rows_per_image": h},
            (w, h, 1),
        )
        img = np.frombuffer(data, np.uint8).reshape(h, w, 4).copy()
        if self.target_format.startswith("bgra"):
            img = img[..., [2, 1, 0, 3]]
        return img

    # -- running -------------------------------------------------------------------------------------
    def run(self):
        """Enter the window's event loop until the window closes."""
        from rendercanvas.glfw import loop

        loop.run()

    def close(self):
        """Close the window."""
        self.canvas.close()


def _free_name(path: Path) -> Path:
    """``path``, or ``<stem>_N<suffix>`` beside it with the smallest N >= 1 that does not exist."""
    path = Path(path)
    stem = re.sub(r"_\d+$", "", path.stem)  # camera_path_2 -> camera_path_3, not camera_path_2_1
    n = 0
    candidate = path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{stem}_{n}{path.suffix}")
    return candidate


__all__ = ["NoDisplayError", "ViewerApp", "looks_like_dataset"]
