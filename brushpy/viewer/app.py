"""The viewer window: splats drawn by brushpy's rasterizer behind imgui panels.

:class:`ViewerApp` owns a rendercanvas canvas (a glfw window by default, or
any rendercanvas canvas such as the offscreen one), an imgui renderer on the
same wgpu device as brushpy's compute kernels, the camera controller and the
scene. Each frame:

1. the controller integrates the input (damped drags, WASD flight);
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
the scene, H hide / show the panels. A path dropped on the window opens it.

Live training: opening a dataset (or :meth:`ViewerApp.start_training`, used
by ``brushpy train --viewer``) trains in this process between frames (see
:mod:`brushpy.viewer.training` for the time-budget policy); the training
panel plots loss and PSNR, and the dataset panel browses the views with
their ground-truth images. Closing the window while training asks whether
to export first.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import wgpu

from ..gpu import get_context
from ..render.camera import Camera
from ..render.splats import Splats
from .camera import CameraController
from .input import InputMapper
from .scene import SceneLoadError, SplatScene, SplatSource, ViewerScene, list_splat_files, read_splat_file
from .training import LiveTraining, TrainingBudget
from .view import Blitter, RenderSettings, SplatView

DATASET_MARKERS = ("transforms.json", "transforms_train.json", "sparse", "cameras.bin", "cameras.txt")


def looks_like_dataset(path) -> bool:
    """Whether ``path`` is a dataset folder / zip (COLMAP or transforms files at its top)."""
    import zipfile

    p = Path(str(path)).expanduser()
    if p.is_dir():
        return any((p / m).exists() for m in DATASET_MARKERS)
    if p.is_file() and p.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(p) as zf:
                names = zf.namelist()
        except zipfile.BadZipFile:
            return False
        return any(Path(n).name in DATASET_MARKERS or "/sparse/" in f"/{n}" for n in names)
    return False

HELP_TEXT = (
    "Left drag: orbit    Right drag: look around\n"
    "Middle drag / Ctrl+left drag: pan    Wheel: zoom\n"
    "W/A/S/D fly, Q/E down/up, Shift faster\n"
    "Home: frame scene    F: fullscreen    H: hide panels"
)


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


class ViewerApp:
    """The interactive splat viewer.

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
        controller: the :class:`~brushpy.viewer.camera.CameraController`.
        settings: the render settings (edit, then :meth:`request_draw`).
        scene: the current :class:`~brushpy.viewer.scene.SplatScene` or None.
        error: the last loading / rendering error shown in the window, or None.
        frame_count: frames drawn so far.
        last_capture: RGBA uint8 [H,W,4] of the frame captured after
            :meth:`request_capture` (the window's content, panels included).

    Raises:
        NoDisplayError: when no window can be opened.
    """

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

        self.imgui_renderer = ImguiRenderer(self.device, self.canvas, self.target_format)
        self.imgui_renderer.set_gui(self._gui)
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

        self.scene: ViewerScene | None = None
        self.error: str | None = None
        self.status: str = ""
        self.path_input = str(path) if path is not None else ""
        self._loading: dict | None = None
        self._load_lock = threading.Lock()
        self._windowed_geometry = None
        self._exact_camera = None

        # live training (see brushpy.viewer.training)
        self.training: LiveTraining | None = None
        self.dataset = None  # the brushpy.data.Scene being trained on
        self.budget = TrainingBudget()
        #: configs for datasets opened in the window: (LoadConfig | None, TrainConfig | None, ProcessConfig | None)
        self.dataset_configs: tuple = (None, None, None)
        self._overhead_s = 0.0  # mean non-training cost of a frame
        self._train_s = 0.0  # training time of the last frame
        self._shown_step = -1
        self._shown_source = None  # trainer.splats object last shown (a refine replaces it)
        self._last_refresh = 0.0
        self._gui_active = False
        self.close_prompt_open = False
        self.closed_with: str | None = None  # "export" / "discard" / "finished": how a training window closed
        self.selected_view: tuple[str, int] | None = None  # ("train" | "eval", index)
        self._gt_texture = None  # (key, texture, view, imgui ref, size)
        self._implot_ready = False
        self._open_dataset_panel = False

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
            if self.training is not None and self.training.active:
                glfw.set_window_should_close(_window, False)
                self.request_close()

        self._glfw_callbacks = (on_drop, on_focus, on_close)  # keep references alive
        glfw.set_drop_callback(window, on_drop)
        glfw.set_window_focus_callback(window, on_focus)
        glfw.set_window_close_callback(window, on_close)

    # -- scene ---------------------------------------------------------------------
    def set_scene(self, scene: ViewerScene, frame_view: bool = True):
        """Show ``scene`` (and frame the view on it unless ``frame_view`` is False).

        Raises:
            TypeError: ``scene`` is not a :class:`~brushpy.viewer.scene.ViewerScene`.
        """
        if not isinstance(scene, ViewerScene):
            raise TypeError(f"the viewer shows a ViewerScene (SplatScene, MipScene), got {type(scene).__name__}")
        self.scene = scene
        self._render_key_failed = None
        sd = scene.sh_degree
        if self.settings.sh_degree is not None and self.settings.sh_degree > sd:
            self.settings.sh_degree = sd
        if frame_view:
            self.frame_scene()
        self.view.invalidate()
        self.request_draw()

    def set_splats(self, splats: Splats, name: str = "splats", frame_view: bool = True):
        """Show a splat set already on the GPU."""
        self.set_scene(SplatScene.from_splats(splats, name=name), frame_view)

    def open(self, path, frame: int = 0, wait: bool = False) -> bool:
        """Open a splat ``.ply``, a folder or a ``.zip`` of them, a MIP model ``.npz``
        (``brushpy mip train`` output, drawn with the MIP blend), or a dataset (starts
        live training, see :meth:`open_dataset`).

        Reading runs on a worker thread unless ``wait``; a failure shows in the
        window (:attr:`error`) and the current scene stays. Returns False when
        the path was rejected at once (``wait``: when loading failed).
        """
        from .mip_view import is_mip_model, open_mip_model

        if is_mip_model(path):  # a MIP model .npz: drawn with the soft-MIP blend (mip_view.py)
            return open_mip_model(self, path)
        if looks_like_dataset(path):
            return self.open_dataset(path, wait=wait)
        try:
            sources = list_splat_files(path)
        except SceneLoadError as exc:
            self.error = str(exc)
            self.request_draw()
            return False
        self.path_input = str(path)
        return self._load(sources, max(0, min(frame, len(sources) - 1)), new_path=True, wait=wait)

    def show_frame(self, index: int, wait: bool = False) -> bool:
        """Switch to another file of the opened folder / zip (keeps the camera)."""
        if self.scene is None or not self.scene.sources:
            return False
        index = max(0, min(int(index), len(self.scene.sources) - 1))
        return self._load(self.scene.sources, index, new_path=False, wait=wait)

    def _load(self, sources: list, index: int, new_path: bool, wait: bool) -> bool:
        source: SplatSource = sources[index]
        job = {"sources": sources, "index": index, "new_path": new_path, "result": None, "done": False}

        def work():
            try:
                job["result"] = read_splat_file(source)
            except BaseException as exc:  # shown in the window
                job["result"] = exc
            job["done"] = True
            self.canvas.request_draw()

        with self._load_lock:
            self._loading = job
        self.status = f"Loading {source.name}..."
        if wait:
            work()
            return self._finish_load()
        threading.Thread(target=work, name="brushpy-load", daemon=True).start()
        self.request_draw()
        return True

    def _finish_load(self) -> bool:
        """Upload a finished load (on the window's thread); returns True on success."""
        with self._load_lock:
            job = self._loading
            if job is None or not job["done"]:
                return False
            self._loading = None
        self.status = ""
        if job.get("dataset"):
            return self._finish_dataset_load(job)
        result, source = job["result"], job["sources"][job["index"]]
        if isinstance(result, BaseException):
            self.error = str(result) if isinstance(result, SceneLoadError) else f"{source}: {result}"
            return False
        try:
            splats = result.to_gpu()
            means = getattr(result, "means", None)
            scene = SplatScene.from_splats(splats, name=source.name, means=means, source=source, sources=job["sources"],
                                      frame=job["index"], render_mode=getattr(result, "render_mode", "default"))
        except Exception as exc:  # e.g. too large for this device's buffers
            self.error = f"{source}: {exc}"
            return False
        self.error = None
        self.set_scene(scene, frame_view=job["new_path"] or self.scene is None)
        return True

    def _finish_dataset_load(self, job) -> bool:
        result = job["result"]
        if isinstance(result, BaseException):
            self.error = f"{self.path_input}: {result}"
            return False
        try:
            config, process = job["configs"]
            if config is None or process is None:  # the dataset's args.txt and format, as `brushpy train`
                from ..train.config import resolve_configs

                resolved = resolve_configs(result)
                config, process = config or resolved.train, process or resolved.process
            self.start_training(result, config, process)
        except Exception as exc:  # e.g. TrainingError: too large for this device
            self.error = f"{self.path_input}: {exc}"
            return False
        self.error = None
        return True

    @property
    def loading(self) -> bool:
        return self._loading is not None

    # -- datasets and live training ---------------------------------------------------
    def open_dataset(self, path, load_config=None, train_config=None, process_config=None, wait: bool = False) -> bool:
        """Load a dataset (on a worker thread unless ``wait``) and train on it live.

        Configs default to :attr:`dataset_configs`, then to the dataset's
        ``args.txt`` over Brush's defaults (NeRF-synthetic scenes train on a
        white background, as ``brushpy train`` does). A running training is
        replaced. Errors show in the window; returns False when loading
        failed (``wait``) .
        """
        from dataclasses import replace

        from ..data import load_dataset, resolve_load_config

        d_load, d_train, d_process = self.dataset_configs
        load_config = load_config or d_load
        train_config = train_config or d_train
        process_config = process_config or d_process
        self.path_input = str(path)
        job = {"result": None, "done": False, "dataset": True}

        def work():
            try:
                cfg = load_config if load_config is not None else resolve_load_config(path)
                job["result"] = load_dataset(path, replace(cfg, progress=False) if hasattr(cfg, "progress") else cfg)
            except BaseException as exc:  # shown in the window
                job["result"] = exc
            job["done"] = True
            self.canvas.request_draw()

        job["configs"] = (train_config, process_config)  # None: defaults for the loaded scene
        with self._load_lock:
            self._loading = job
        self.status = f"Loading dataset {Path(str(path)).name}..."
        if wait:
            work()
            return self._finish_load()
        threading.Thread(target=work, name="brushpy-load-dataset", daemon=True).start()
        self.request_draw()
        return True

    def start_training(self, dataset, config=None, process=None, resume=None, trainer=None) -> LiveTraining:
        """Train on ``dataset`` (a :class:`brushpy.data.Scene`) in this window, between frames.

        The view jumps to the first training camera; the splats on screen are
        the trainer's. Raises :class:`~brushpy.train.trainer.TrainingError` when
        the scene does not fit the device.
        """
        training = LiveTraining(dataset, config, process, resume=resume, trainer=trainer)
        self.training = training
        self.dataset = dataset
        self.selected_view = None
        self._release_gt_texture()
        # draw over the training background (white for NeRF-synthetic scenes)
        self.settings.background = tuple(float(c) for c in training.config.background_color)
        # the 3D-filtered splats, as training renders them
        self.set_scene(SplatScene.from_splats(training.trainer.display_splats(), name=f"{dataset.name} (training)",
                                         render_mode=training.config.render_mode),
                       frame_view=False)
        self._shown_step = training.step
        self._shown_source = training.trainer.splats
        if dataset.train_views:
            self.view_camera(dataset.train_views[0].camera)
        self.request_draw()
        return training

    def dataset_views(self, split: str) -> list:
        """The ``"train"`` or ``"eval"`` views of the dataset being trained on."""
        if self.dataset is None:
            return []
        return list(self.dataset.train_views if split == "train" else self.dataset.eval_views)

    def jump_to_view(self, split: str, index: int):
        """Select a dataset view and move the camera to it (its exact intrinsics)."""
        views = self.dataset_views(split)
        if not 0 <= index < len(views):
            raise IndexError(f"no {split} view {index} (the dataset has {len(views)})")
        self.selected_view = (split, int(index))
        self.view_camera(views[index].camera)
        self._open_dataset_panel = True

    def _refresh_training_splats(self, force: bool = False):
        """Show the trainer's current splats (at most budget.refresh_hz times a second unless forced)."""
        tr = self.training
        if tr is None or self.scene is None:
            return
        if tr.step == self._shown_step and self._shown_source is tr.trainer.splats:
            return
        now = time.perf_counter()
        moving = self.controller.is_moving or self.input.drag_mode is not None
        if not (force or moving or now - self._last_refresh >= self.budget.refresh_interval_s(self.render_ms / 1000.0)):
            return
        # trainer.splats is a new object after a refine, else updated in place
        self.scene.splats = tr.trainer.display_splats()
        self._shown_source = tr.trainer.splats
        self.view.invalidate()
        self._shown_step = tr.step
        self._last_refresh = now

    def _train_between_frames(self):
        tr = self.training
        self._train_s = 0.0
        if tr is None or not tr.running:
            return
        interacting = self.controller.is_moving or self.input.drag_mode is not None or self._gui_active
        budget = self.budget.budget_s(self._overhead_s, interacting)
        t0 = time.perf_counter()
        tr.run_for(budget)
        self._train_s = time.perf_counter() - t0
        if tr.error:
            self.error = f"training stopped: {tr.error}"
        if not tr.running:
            self._refresh_training_splats(force=True)

    def pause_training(self, paused: bool = True):
        """Pause or resume the live training (the Pause / Resume button)."""
        if self.training is not None:
            self.training.set_paused(paused)
            self.request_draw()

    # -- closing -------------------------------------------------------------------------
    def request_close(self):
        """Close as the window's close button does: while training, first ask whether to export."""
        if self.training is not None and self.training.active:
            self.close_prompt_open = True
            self.request_draw()
        else:
            self.close()

    def answer_close_prompt(self, answer: str):
        """Answer the close prompt: ``"export"`` (export, then close), ``"discard"`` (close) or ``"cancel"``."""
        if answer not in ("export", "discard", "cancel"):
            raise ValueError(f"answer must be 'export', 'discard' or 'cancel', got {answer!r}")
        self.close_prompt_open = False
        if answer == "cancel":
            self.request_draw()
            return
        if answer == "export" and self.training is not None:
            self.training.export_now()
        if self.training is not None:
            self.training.set_paused(True)
        self.closed_with = answer
        self.close()

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

    # -- drawing -----------------------------------------------------------------------------
    def render_size(self) -> tuple[int, int]:
        """Splat image size: the framebuffer size times the render scale (the moving one while the camera moves)."""
        w, h = self.canvas.get_physical_size()
        s = self.settings.render_scale
        if self.controller.is_moving or self.input.drag_mode is not None:
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

        if self._loading is not None and self._loading["done"]:
            self._finish_load()
        self._run_actions()
        self._train_between_frames()
        self._refresh_training_splats()
        self.controller.update(dt)
        image = self._render_splats()

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
        training = self.training is not None and self.training.running
        if self.controller.is_moving or self.loading or self._extra_frames > 0 or training:
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

    # -- panels ----------------------------------------------------------------------------------
    def _gui(self):
        from imgui_bundle import imgui

        if not self.show_panels:
            return
        imgui.set_next_window_pos((8, 8), imgui.Cond_.first_use_ever)
        w, h = self.canvas.get_logical_size()
        width = min(330, max(160, w - 16))
        # fixed width; the height follows the open sections, up to the window's
        imgui.set_next_window_size_constraints((width, 0), (width, max(60, h - 16)))
        imgui.set_next_window_bg_alpha(0.85)
        expanded, _ = imgui.begin("brushpy", None, imgui.WindowFlags_.always_auto_resize)
        if expanded:
            if self.error:
                imgui.push_text_wrap_pos(320)
                imgui.text_colored((1.0, 0.35, 0.3, 1.0), self.error)
                imgui.pop_text_wrap_pos()
                if imgui.small_button("Dismiss"):
                    self.error = None
            if self.status:
                imgui.text(self.status)
            if imgui.collapsing_header("Scene", imgui.TreeNodeFlags_.default_open):
                self._scene_panel(imgui)
            if imgui.collapsing_header("Render settings", imgui.TreeNodeFlags_.default_open):
                self._settings_panel(imgui)
            if imgui.collapsing_header("Stats", imgui.TreeNodeFlags_.default_open):
                self._stats_panel(imgui)
            if imgui.collapsing_header("Controls"):
                imgui.text(HELP_TEXT)
        self._gui_active = imgui.is_any_item_active()
        imgui.end()
        if self.training is not None:
            # a second window at the top right: training, then the dataset views
            imgui.set_next_window_pos((max(8, w - width - 8), 8), imgui.Cond_.first_use_ever)
            imgui.set_next_window_size_constraints((width, 0), (width, max(60, h - 16)))
            imgui.set_next_window_bg_alpha(0.85)
            expanded, _ = imgui.begin("Training", None, imgui.WindowFlags_.always_auto_resize)
            if expanded:
                self._training_panel(imgui)
                if self._open_dataset_panel:
                    imgui.set_next_item_open(True)
                    self._open_dataset_panel = False
                if self.dataset is not None and imgui.collapsing_header("Dataset"):
                    self._dataset_panel(imgui)
            self._gui_active = self._gui_active or imgui.is_any_item_active()
            imgui.end()
        self._close_prompt(imgui)

    def _scene_panel(self, imgui):
        changed, self.path_input = imgui.input_text("##path", self.path_input)
        imgui.same_line()
        if imgui.button("Open") and self.path_input.strip():
            self.open(self.path_input.strip())
        sc = self.scene
        if sc is None:
            imgui.text("No scene: open a .ply, a folder or a .zip of them")
            imgui.text("(or drop one on the window)")
            return
        imgui.text(f"File: {sc.name}")
        if sc.source is not None:
            imgui.text_disabled(str(sc.source.path.parent))
        for line in sc.info_lines():
            imgui.text(line)
        if len(sc.sources) > 1:
            changed, idx = imgui.slider_int("Frame", sc.frame, 0, len(sc.sources) - 1)
            if changed and not self.loading:
                self.show_frame(idx)
        if imgui.button("Frame scene (Home)"):
            self.frame_scene()

    def _training_panel(self, imgui):
        from imgui_bundle import implot

        tr = self.training
        if not self._implot_ready:
            implot.create_context()
            self._implot_ready = True
        state = "finished" if tr.finished else ("stopped" if tr.error else ("paused" if tr.paused else "training"))
        imgui.text(f"{state}: step {tr.step:,} / {tr.total_steps:,}")
        imgui.progress_bar(tr.step / max(tr.total_steps, 1), (-1, 0))
        eta = tr.eta_s
        eta_text = "-" if eta is None else (f"{eta / 60:.1f} min" if eta >= 90 else f"{eta:.0f} s")
        imgui.text(f"{tr.steps_per_s:.2f} it/s   ETA {eta_text}")
        loss = f"{tr.loss_values[-1]:.4f}" if tr.loss_values else "-"
        imgui.text(f"Splats: {tr.trainer.splats.num_splats:,}   loss {loss}")
        if tr.psnr_values:
            imgui.text(f"Eval PSNR: {tr.psnr_values[-1]:.2f} dB (step {tr.psnr_steps[-1]:,})")
        if tr.active:
            if imgui.button("Resume" if tr.paused else "Pause"):
                self.pause_training(not tr.paused)
            imgui.same_line()
        if imgui.button("Export now"):
            self._guarded(tr.export_now)
        imgui.same_line()
        if imgui.button("Evaluate"):
            self._guarded(tr.evaluate_now)
        if tr.active:
            imgui.same_line()
            if imgui.button("Finish now"):
                self._guarded(tr.finish)
        changed, v = imgui.input_int("Eval every", tr.process.eval_every, 100)
        if changed:
            tr.process.eval_every = max(0, v)
        changed, v = imgui.input_int("Export every", tr.process.export_every, 500)
        if changed:
            tr.process.export_every = max(0, v)
        if tr.message:
            imgui.push_text_wrap_pos(320)
            imgui.text_disabled(tr.message)
            imgui.pop_text_wrap_pos()
        imgui.push_text_wrap_pos(320)
        imgui.text_disabled(f"exports: {tr.outputs.out_dir}")
        imgui.pop_text_wrap_pos()
        xs, ys = tr.loss_curve()
        if implot.begin_plot("Loss", (-1, 110), implot.Flags_.no_legend):
            implot.setup_axes("step", "", implot.AxisFlags_.auto_fit, implot.AxisFlags_.auto_fit)
            if len(xs):
                implot.plot_line("loss", xs, ys)
            implot.end_plot()
        px, py = tr.psnr_curve()
        if len(px) and implot.begin_plot("Eval PSNR (dB)", (-1, 90), implot.Flags_.no_legend):
            implot.setup_axes("step", "", implot.AxisFlags_.auto_fit, implot.AxisFlags_.auto_fit)
            implot.plot_line("psnr", px, py)
            implot.plot_scatter("##psnr_points", px, py)
            implot.end_plot()

    def _guarded(self, fn):
        try:
            return fn()
        except Exception as exc:  # e.g. a full disk while exporting: show it, keep training
            self.error = f"{getattr(fn, '__name__', 'action')} failed: {exc}"
            return None

    def _dataset_panel(self, imgui):
        ds = self.dataset
        imgui.text(f"{ds.name}: {len(ds.train_views)} train, {len(ds.eval_views)} eval views")
        sel = self.selected_view
        if sel is None:
            imgui.text_disabled("Click a view to see it from its camera")
        else:
            view = self.dataset_views(sel[0])[sel[1]]
            imgui.text(f"{sel[0]} {sel[1]}: {view.name}")
            imgui.same_line()
            if imgui.small_button("Jump again"):
                self.jump_to_view(*sel)
            ref, (w, h) = self._gt_image(sel, view)
            if ref is not None:
                imgui.image(ref, (w, h))
                imgui.same_line()
                imgui.text_disabled("ground truth;\nthe view behind\nshows the render\nfrom its camera")
        for split in ("train", "eval"):
            views = self.dataset_views(split)
            if not views:
                continue
            imgui.text(f"{split.capitalize()} views")
            if imgui.begin_list_box(f"##{split}_views", (-1, 60)):
                for i, v in enumerate(views):
                    selected = self.selected_view == (split, i)
                    clicked, _ = imgui.selectable(f"{i}: {v.name}##{split}{i}", selected)
                    if clicked:
                        self.jump_to_view(split, i)
                imgui.end_list_box()

    def _gt_image(self, key, view, max_width: int = 160):
        """The ground-truth image of ``view`` as an imgui texture (cached for the selected view)."""
        cached = self._gt_texture
        if cached is not None and cached[0] == key:
            return cached[3], cached[4]
        self._release_gt_texture()
        from PIL import Image

        img = np.asarray(view.image)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        if img.shape[2] == 4:  # over the training background, as the renders are
            bg = np.asarray(self.training.config.background_color if self.training else (0, 0, 0), np.float32) * 255.0
            a = img[..., 3:4].astype(np.float32) / 255.0
            img = (img[..., :3] * a + bg * (1.0 - a) + 0.5).astype(np.uint8)
        h, w = img.shape[:2]
        scale = max_width / max(w, h, 1)  # small training images are enlarged too
        tw, th = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
        pil = Image.fromarray(np.ascontiguousarray(img[..., :3]))
        if (tw, th) != (w, h):
            pil = pil.resize((tw, th), Image.BILINEAR)
        rgba = np.ascontiguousarray(np.asarray(pil.convert("RGBA")))
        tex = self.device.create_texture(size=(tw, th, 1), format=wgpu.TextureFormat.rgba8unorm,
                                         usage=wgpu.TextureUsage.TEXTURE_BINDING | wgpu.TextureUsage.COPY_DST,
                                         label="viewer_gt")
        self.device.queue.write_texture({"texture": tex}, rgba, {"bytes_per_row": 4 * tw, "rows_per_image": th}, (tw, th, 1))
        tview = tex.create_view()
        ref = self.imgui_renderer.backend.register_texture(tview)
        self._gt_texture = (key, tex, tview, ref, (tw, th))
        return ref, (tw, th)

    def _release_gt_texture(self):
        if self._gt_texture is not None:
            self.imgui_renderer.backend.unregister_texture(self._gt_texture[3])
            self._gt_texture = None

    def _close_prompt(self, imgui):
        if not self.close_prompt_open:
            if imgui.is_popup_open("Close while training?"):  # answered from code: close it
                if imgui.begin_popup_modal("Close while training?", None, imgui.WindowFlags_.always_auto_resize)[0]:
                    imgui.close_current_popup()
                    imgui.end_popup()
            return
        if not imgui.is_popup_open("Close while training?"):
            imgui.open_popup("Close while training?")
        w, h = self.canvas.get_logical_size()
        imgui.set_next_window_pos((w / 2, h / 2), imgui.Cond_.always, (0.5, 0.5))
        if imgui.begin_popup_modal("Close while training?", None, imgui.WindowFlags_.always_auto_resize)[0]:
            tr = self.training
            imgui.text(f"Training is at step {tr.step:,} of {tr.total_steps:,}.")
            imgui.text("Export the splats before closing?")
            answer = None
            if imgui.button("Export and close"):
                answer = "export"
            imgui.same_line()
            if imgui.button("Close without exporting"):
                answer = "discard"
            imgui.same_line()
            if imgui.button("Cancel"):
                answer = "cancel"
            if answer is not None:
                imgui.close_current_popup()
            imgui.end_popup()
            if answer is not None:
                self.answer_close_prompt(answer)

    def _settings_panel(self, imgui):
        if self.scene is not None and self.scene.settings_panel(imgui):  # e.g. a MIP scene's temperature, gain
            self._render_key_failed = None
        s = self.settings
        max_sh = self.scene.sh_degree if self.scene is not None else 0
        current = max_sh if s.sh_degree is None else min(s.sh_degree, max_sh)
        changed, v = imgui.slider_int("SH degree", current, 0, max_sh)
        if changed:
            s.sh_degree = v
        changed, v = imgui.slider_float("Splat scale", s.splat_scale, 0.01, 2.0, "%.2f", imgui.SliderFlags_.logarithmic)
        if changed:
            s.splat_scale = max(v, 1e-3)
        changed, v = imgui.slider_float("Field of view", s.fov_y_deg, 10.0, 120.0, "%.0f deg")
        if changed:
            s.fov_y_deg = v
        changed, v = imgui.color_edit3("Background", list(s.background))
        if changed:
            s.background = tuple(float(c) for c in v)
        changed, v = imgui.slider_float("Resolution", s.render_scale, 0.25, 1.0, "%.2f")
        if changed:
            s.render_scale = v
        changed, v = imgui.slider_float("Res. moving", s.moving_render_scale, 0.25, 1.0, "%.2f")
        if changed:
            s.moving_render_scale = v
        changed, v = imgui.slider_float("Fly speed", self.controller.settings.fly_speed, 1e-3, 1e3, "%.3g", imgui.SliderFlags_.logarithmic)
        if changed:
            self.controller.settings.fly_speed = v

    def _stats_panel(self, imgui):
        info = self.gpu.adapter.info
        imgui.text(f"FPS: {self.fps:.1f}   frame: {self.frame_ms:.1f} ms")
        view = self.view if self.scene is None else self.scene.view_for(self.view)
        imgui.text(f"Splat render: {self.render_ms:.1f} ms ({view.renders} renders)")
        state = self.view.state
        if state is not None and getattr(state, "num_visible", None) is not None:
            imgui.text(f"Visible splats: {state.num_visible:,}")
        rw, rh = self.render_size()
        imgui.text(f"Render size: {rw} x {rh}")
        imgui.text(f"GPU: {info.get('device', '?')}")
        imgui.text(f"Backend: {info.get('backend_type', '?')}  {info.get('adapter_type', '')}")

    # -- running -------------------------------------------------------------------------------------
    def run(self):
        """Enter the window's event loop until the window closes."""
        from rendercanvas.glfw import loop

        loop.run()

    def close(self):
        self.canvas.close()
