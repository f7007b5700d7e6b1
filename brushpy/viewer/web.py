"""The web viewer: training and splat files shown in a browser, on viser (nerfstudio's viewer library).

``brushpy train DATA --web [--port 8080]`` and ``brushpy view --web FILE`` serve a page
(``http://HOST:PORT``) that shows:

* the splats, drawn by the browser with viser's Gaussian-splat primitive
  (:meth:`viser.SceneApi.add_gaussian_splats`: centres, 3x3 covariances, RGB from the SH
  band 0, opacities; :func:`splats_for_viser`), sent again every
  :data:`SPLAT_PUSH_INTERVAL_S` seconds while training (not every step);
* the training cameras as frustums with small thumbnails of their photos; a click on one
  moves the browser's camera to it (pose and vertical field of view);
* a panel: step, splat count, loss, PSNR, steps/s, loss and PSNR curves (uPlot), pause /
  resume, "evaluate now", "export now";
* "brushpy render": the browser's camera rendered on the server by brushpy's own
  rasterizer (:func:`brushpy.render.forward.render_forward`, the splats, SH degree,
  background and render mode training uses) and shown as the page's background image
  (nerfview's approach), so what you see is exactly what training renders. The browser's
  own splats are hidden meanwhile.

Threads: viser serves the page and runs the panel's callbacks in its own threads; those
callbacks only set flags and queue requests. All GPU work (reading the splats back,
brushpy renders, evaluate / export now) runs on the thread that drives training, between
steps, in :meth:`WebViewer.service`, so training and the viewer never use the GPU device at
once. Training reaches the viewer as a watcher of :func:`brushpy.train.run.run_training`
(``start`` / ``on_event`` / ``close``): the events of the one training stream
(:mod:`brushpy.train.stream`). Pause makes ``on_event`` wait after the step, so the step
counter really stops; the run's clock (``elapsed_s``, ``steps_per_s`` in ``metrics.jsonl``)
leaves the pauses out. A web viewer that fails is dropped by ``run_training`` with one
warning, and training carries on headless.

Camera conventions: viser's camera frame is OpenCV's (+x right, +y down, +z forward), as
brushpy's; a viser pose ``(wxyz, position)`` is the camera-to-world rotation (quaternion
w, x, y, z) and the camera centre; ``fov`` is the vertical field of view in radians.
"""

from __future__ import annotations

import errno
import logging
import math
import queue
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.ply import sh_dc_to_rgb
from ..render.camera import Camera
from ..render.rotations import matrices_to_quaternions, quaternions_to_matrices

log = logging.getLogger("brushpy")

#: The modules of the ``web`` extra (``pip install 'brushpy[web]'``).
WEB_MODULES = ("viser",)
#: Seconds between two sends of the splats to the browser while training.
SPLAT_PUSH_INTERVAL_S = 5.0
#: Seconds between two updates of the panel's numbers while training (the curves: 4x this).
PANEL_INTERVAL_S = 0.5
#: Least seconds between two brushpy renders for the browser while training runs (when
#: paused, or viewing a file, every camera move is rendered at once).
RENDER_INTERVAL_S = 0.5
#: Default longest side, in pixels, of a brushpy render for the browser.
RENDER_MAX_SIDE = 640
#: Most training cameras drawn as frustums (evenly subsampled beyond).
MAX_FRUSTUMS = 300
#: Height in pixels of a frustum's thumbnail.
THUMBNAIL_HEIGHT = 48


class WebViewerNotInstalled(InputError):
    """The web viewer was asked for but viser (the ``web`` extra) is not installed."""


class PortInUseError(InputError):
    """The web viewer's port is taken by another program."""


def import_viser():
    """The ``viser`` module.

    Raises:
        WebViewerNotInstalled: viser is missing (the message says ``pip install 'brushpy[web]'``).
    """
    try:
        import viser
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] in WEB_MODULES:
            raise WebViewerNotInstalled(
                f"the web viewer needs viser: pip install 'brushpy[web]' (module {exc.name} is missing)") from None
        raise
    return viser


def check_port_free(host: str, port: int, option: str = "--port") -> None:
    """Fail early when ``host:port`` cannot be listened on.

    Binds and closes a TCP socket the way the server will (``SO_REUSEADDR`` on POSIX, so a
    port left in TIME_WAIT by an earlier run counts as free). viser itself would silently
    move to the next free port; brushpy refuses instead, so the address printed is the one
    asked for.

    Raises:
        PortInUseError: the port is taken (names it and suggests ``--port``).
        InputError: the port is out of range or the host cannot be bound.
    """
    if not 0 < int(port) < 65536:
        raise InputError(f"{option} {port}: a TCP port is 1..65535")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        if sys.platform != "win32":  # on Windows SO_REUSEADDR would allow stealing a bound port
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, int(port)))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1), errno.EACCES):
                why = "is already in use" if exc.errno != errno.EACCES else "needs privileges to listen on"
                raise PortInUseError(
                    f"the web viewer's port {port} {why} (another brushpy or web server?): "
                    f"choose another with {option}, e.g. {option} {_suggest_port(host, int(port))}") from None
            raise InputError(f"the web viewer cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _suggest_port(host: str, port: int) -> int:
    """A free port near ``port`` to suggest (the next ones up; any free one if none)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for candidate in list(range(port + 1, min(port + 20, 65535))) + [0]:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, candidate))
                return s.getsockname()[1]
            except OSError:
                continue
    return port + 1


# --------------------------------------------------------------------------- conversions


def covariances(log_scales: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """World-space 3D covariances ``Σ = R S Sᵀ Rᵀ`` of splats.

    Args:
        log_scales: [N,3] natural log of the standard deviations along the local axes.
        rotations: [N,4] quaternions (w, x, y, z), any norm.

    Returns:
        float32 [N,3,3], symmetric positive semi-definite (scene units squared).
    """
    r = quaternions_to_matrices(rotations)
    s2 = np.exp(2.0 * np.asarray(log_scales, np.float64).reshape(-1, 3))
    return np.einsum("nij,nj,nkj->nik", r, s2, r).astype(np.float32)


def splats_for_viser(params) -> dict[str, np.ndarray]:
    """viser's Gaussian-splat arrays of a splat set.

    Args:
        params: a mapping or object with ``means`` [N,3], ``rotations`` [N,4] (w,x,y,z),
            ``log_scales`` [N,3], ``sh_coeffs`` [N,K,3] and ``raw_opacities`` [N] (numpy; a
            :class:`~brushpy.io.ply.SplatData` or :meth:`Splats.numpy()
            <brushpy.render.splats.Splats.numpy>`'s dict).

    Returns:
        ``centers`` float32 [N,3], ``covariances`` float32 [N,3,3] (:func:`covariances`),
        ``rgbs`` float32 [N,3] in 0..1 (band 0 only: ``clip(SH_C0 · f_dc + 0.5, 0, 1)``; the
        browser draws view-independent colour), ``opacities`` float32 [N,1]
        (``sigmoid(raw_opacities)``). Splats with a non-finite value are left out.
    """
    get = params.__getitem__ if isinstance(params, dict) else lambda k: getattr(params, k)
    means = np.asarray(get("means"), np.float32).reshape(-1, 3)
    rotations = np.asarray(get("rotations"), np.float32).reshape(-1, 4)
    log_scales = np.asarray(get("log_scales"), np.float32).reshape(-1, 3)
    sh = np.asarray(get("sh_coeffs"), np.float32)
    dc = sh.reshape(len(means), -1, 3)[:, 0, :]
    raw = np.asarray(get("raw_opacities"), np.float32).reshape(-1)
    ok = (np.isfinite(means).all(1) & np.isfinite(rotations).all(1) & np.isfinite(log_scales).all(1)
          & np.isfinite(dc).all(1) & np.isfinite(raw))
    if not ok.all():
        means, rotations, log_scales, dc, raw = means[ok], rotations[ok], log_scales[ok], dc[ok], raw[ok]
    return {
        "centers": np.ascontiguousarray(means),
        "covariances": covariances(log_scales, rotations),
        "rgbs": np.clip(sh_dc_to_rgb(dc), 0.0, 1.0).astype(np.float32),
        "opacities": (1.0 / (1.0 + np.exp(-raw.astype(np.float64)))).astype(np.float32).reshape(-1, 1),
    }


def camera_pose(camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """viser's pose of a brushpy camera: ``(wxyz [4], position [3])``, the camera-to-world
    rotation (OpenCV axes, as viser's camera frame) and the camera centre, float64."""
    r_wc = camera.world_to_camera[:3, :3].T
    return matrices_to_quaternions(r_wc)[0], camera.position


def vertical_fov(camera: Camera) -> float:
    """The vertical field of view of ``camera`` in radians (``2·atan(H / 2fy)``)."""
    return 2.0 * math.atan(0.5 * camera.height / camera.fy)


def browser_camera(wxyz, position, fov_y: float, width: int, height: int, max_side: int | None = None) -> Camera:
    """The brushpy :class:`~brushpy.render.camera.Camera` of a browser's view.

    Args:
        wxyz, position: viser's camera pose (camera-to-world rotation, camera centre).
        fov_y: vertical field of view in radians.
        width, height: the browser canvas in pixels (its aspect is kept).
        max_side: scale the image down so its longest side is at most this (None: as is).

    Returns:
        A centred pinhole camera with square pixels.
    """
    width, height = max(int(width), 1), max(int(height), 1)
    if max_side is not None and max(width, height) > max_side:
        k = max_side / max(width, height)
        width, height = max(int(round(width * k)), 1), max(int(round(height * k)), 1)
    r_wc = quaternions_to_matrices(wxyz)[0]
    w2c = np.eye(4)
    w2c[:3, :3] = r_wc.T
    w2c[:3, 3] = -r_wc.T @ np.asarray(position, np.float64).reshape(3)
    fy = 0.5 * height / math.tan(0.5 * float(fov_y))
    return Camera(w2c, fy, fy, 0.5 * width, 0.5 * height, width, height)


def thumbnail(image: np.ndarray, background=(0.0, 0.0, 0.0), height: int = THUMBNAIL_HEIGHT) -> np.ndarray:
    """A small uint8 [h,w,3] copy of a photo (RGBA composited over ``background``, 0..1)."""
    from PIL import Image

    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 4:
        a = img[..., 3:4].astype(np.float32) / 255.0
        bg = np.asarray(background, np.float32).reshape(1, 1, 3) * 255.0
        img = (img[..., :3] * a + bg * (1.0 - a) + 0.5).astype(np.uint8)
    h, w = img.shape[:2]
    th = max(1, min(int(height), h))
    tw = max(1, int(round(w * th / h)))
    return np.asarray(Image.fromarray(np.ascontiguousarray(img[..., :3])).resize((tw, th), Image.BILINEAR))


# --------------------------------------------------------------------------- the viewer


class WebViewer:
    """A viser server showing splats, and a training run when one is attached.

    Args:
        port: TCP port (checked first: :func:`check_port_free`).
        host: address to listen on (``0.0.0.0``: every interface, so a remote machine's
            browser can connect; ``127.0.0.1``: this machine only, e.g. behind an SSH tunnel).
        background: (r, g, b) 0..1 behind brushpy renders.
        sh_degree: SH degree of brushpy renders (None: all of the splats').
        render_mode: ``"default"`` or ``"mip"`` for brushpy renders.
        up: the world's up direction (a vector or an axis name such as ``"-y"``).
        push_interval_s: seconds between two sends of the splats while training.
        verbose: let viser print its address banner.

    Raises:
        WebViewerNotInstalled: viser is missing.
        PortInUseError: ``port`` is taken.

    Attributes:
        server: the ``viser.ViserServer``.
        url: ``http://HOST:PORT`` (``localhost`` for the any-interface host).
        paused: training waits after its current step while True.
        failed: the viewer stopped itself after an error (training went on without it).
    """

    def __init__(self, port: int = 8080, host: str = "0.0.0.0", *, background=(0.0, 0.0, 0.0),
                 sh_degree: int | None = None, render_mode: str = "default", up=None,
                 push_interval_s: float = SPLAT_PUSH_INTERVAL_S, verbose: bool = True):
        viser = import_viser()
        check_port_free(host, port)
        self.server = viser.ViserServer(host=host, port=int(port), verbose=verbose)
        if self.server.get_port() != int(port):  # taken between the check and the bind
            self.server.stop()
            raise PortInUseError(f"the web viewer's port {port} is already in use: choose another with --port")
        self.port = int(port)
        self.url = f"http://{'localhost' if host in ('0.0.0.0', '::', '') else host}:{self.port}"
        self.background = tuple(float(c) for c in background)
        self.sh_degree = sh_degree
        self.render_mode = render_mode
        self.push_interval_s = float(push_interval_s)
        self.paused = False
        self.failed = False
        self.closed = False
        self.trainer = None
        self.outputs = None
        self.stops = None
        self.total_steps = None
        self._lock = threading.Lock()
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._dirty_clients: set[int] = set()
        self._splat_source = None  # callable -> GPU Splats for brushpy renders
        self._splat_handle = None
        self._frustums: list = []
        self._last_push = -math.inf
        self._last_panel = -math.inf
        self._last_plot = -math.inf
        self._last_render = -math.inf
        self._pause_started: float | None = None
        self._paused_s = 0.0
        self._loss: tuple[int, float] | None = None
        self._loss_steps: list[float] = []
        self._loss_values: list[float] = []
        self._psnr_steps: list[float] = []
        self._psnr_values: list[float] = []
        self._rate: list[tuple[float, int]] = []
        self.renders = 0  # brushpy renders sent to browsers
        self.last_render: np.ndarray | None = None  # the last one, uint8 [H,W,3]
        self.pushes = 0  # splat sets sent
        if up is not None:
            self.set_up(up)
        self._build_panel()
        self.server.on_client_connect(self._on_connect)

    # -- panel -----------------------------------------------------------------------------
    def _build_panel(self) -> None:
        gui = self.server.gui
        self._status = gui.add_markdown("brushpy")
        with gui.add_folder("View"):
            self._render_box = gui.add_checkbox(
                "brushpy render", initial_value=False,
                hint="Render the browser's camera on the server with brushpy's rasterizer (what training renders)")
            self._render_size = gui.add_slider("render size", min=64, max=2048, step=32, initial_value=RENDER_MAX_SIDE,
                                               hint="Longest side in pixels of the brushpy render")
            self._cams_box = gui.add_checkbox("training cameras", initial_value=True)
        self._render_box.on_update(lambda _: self._on_render_toggle())
        self._render_size.on_update(lambda _: self._mark_all_dirty())
        self._cams_box.on_update(lambda _: self._on_cams_toggle())
        self._train_folder = None

    def _build_training_panel(self) -> None:
        gui = self.server.gui
        self._train_folder = gui.add_folder("Training", order=-1)
        with self._train_folder:
            self._step_text = gui.add_text("step", initial_value="0", disabled=True)
            self._splats_text = gui.add_text("splats", initial_value="0", disabled=True)
            self._loss_text = gui.add_text("loss", initial_value="-", disabled=True)
            self._psnr_text = gui.add_text("PSNR", initial_value="-", disabled=True)
            self._rate_text = gui.add_text("steps/s", initial_value="-", disabled=True)
            self._pause_button = gui.add_button("Pause")
            self._eval_button = gui.add_button("Evaluate now")
            self._export_button = gui.add_button("Export now")
        self._plots: dict = {}  # title -> uPlot handle, made at the curve's second point
        self._pause_button.on_click(lambda _: self.set_paused(not self.paused))
        self._eval_button.on_click(lambda _: self._requests.put("evaluate"))
        self._export_button.on_click(lambda _: self._requests.put("export"))

    def _plot(self, title: str, label: str, colour: str, x: list, y: list) -> None:
        """Show the curve ``y(x)`` in the training panel (uPlot, viser >= 1.0; else only the numbers).
        The chart is made once it has two points: uPlot draws nothing for a chart that a browser
        first received empty."""
        gui = self.server.gui
        if len(x) < 2 or not hasattr(gui, "add_uplot"):
            return
        data = (np.asarray(x, np.float64), np.asarray(y, np.float64))
        handle = self._plots.get(title)
        if handle is not None:
            handle.data = data
            return
        with self._train_folder:
            self._plots[title] = gui.add_uplot(
                data=data, series=({"label": "step"}, {"label": label, "stroke": colour, "width": 2}),
                scales={"x": {"time": False, "auto": True}, "y": {"auto": True}},
                legend={"show": False}, title=title, aspect=2.0)

    def _on_connect(self, client) -> None:
        client.camera.on_update(lambda cam: self._mark_dirty(cam.client.client_id))
        self._mark_dirty(client.client_id)

    def _mark_dirty(self, client_id: int) -> None:
        with self._lock:
            self._dirty_clients.add(client_id)

    def _mark_all_dirty(self) -> None:
        with self._lock:
            self._dirty_clients.update(self.server.get_clients().keys())

    def _on_render_toggle(self) -> None:
        on = self._render_box.value
        if self._splat_handle is not None:
            self._splat_handle.visible = not on
        if on:
            self._mark_all_dirty()
        else:
            for client in self.server.get_clients().values():
                client.scene.set_background_image(None)

    def _on_cams_toggle(self) -> None:
        for f in self._frustums:
            f.visible = self._cams_box.value

    def set_status(self, text: str) -> None:
        """Show ``text`` (markdown) at the top of the panel."""
        self._status.content = text

    def set_paused(self, paused: bool) -> None:
        """Pause or resume training (the panel's button); the run's clock stops while paused."""
        with self._lock:
            if paused == self.paused:
                return
            now = time.perf_counter()
            if paused:
                self._pause_started = now
            elif self._pause_started is not None:
                self._paused_s += now - self._pause_started
                self._pause_started = None
            self.paused = paused
        if self._train_folder is not None:
            self._pause_button.label = "Resume" if paused else "Pause"
        if paused and self.trainer is not None:
            self.set_status(f"**paused** at step {self.trainer.step_count}")

    def paused_seconds(self) -> float:
        """Seconds spent paused so far."""
        with self._lock:
            extra = time.perf_counter() - self._pause_started if self._pause_started is not None else 0.0
            return self._paused_s + extra

    # -- scene ---------------------------------------------------------------------------
    def set_up(self, up) -> None:
        """Set the world's up direction (an axis name such as ``"-y"`` or a vector)."""
        from ..io.framing import axis_vector

        v = axis_vector(up)
        if v is not None:
            self.server.scene.set_up_direction(tuple(float(c) for c in v))
            self._up = v

    def frame(self, means: np.ndarray, up) -> None:
        """Point new browsers' cameras at the bulk of ``means`` [N,3] (:func:`brushpy.io.framing.framing_camera`)."""
        from ..io.framing import framing_camera, robust_bounds

        cam = framing_camera(means, 640, 480, up=up)
        lo, hi = robust_bounds(means)
        init = self.server.initial_camera
        init.position = tuple(float(c) for c in cam.position)
        init.look_at = tuple(float(c) for c in 0.5 * (lo + hi))
        init.up = tuple(float(c) for c in up)

    def show_splats(self, params) -> None:
        """Send a splat set to the browsers (:func:`splats_for_viser` of ``params``)."""
        arrays = splats_for_viser(params)
        self._splat_handle = self.server.scene.add_gaussian_splats(
            "/splats", arrays["centers"], arrays["covariances"], arrays["rgbs"], arrays["opacities"],
            visible=not self._render_box.value)
        self.pushes += 1
        self._last_push = time.perf_counter()

    def add_cameras(self, views, background=(0.0, 0.0, 0.0)) -> None:
        """Draw the cameras of ``views`` (:class:`brushpy.data.scene.View`) as frustums with
        thumbnails; a click on one moves that browser's camera to it. At most
        :data:`MAX_FRUSTUMS` (evenly spaced) are drawn."""
        views = list(views)
        if len(views) > MAX_FRUSTUMS:
            views = [views[i] for i in np.linspace(0, len(views) - 1, MAX_FRUSTUMS).round().astype(int)]
        if not views:
            return
        centres = np.stack([v.camera.position for v in views])
        spread = float(np.median(np.linalg.norm(centres - centres.mean(0), axis=1))) if len(views) > 1 else 1.0
        scale = 0.05 * (spread if spread > 0 else 1.0)
        for i, view in enumerate(views):
            cam = view.camera
            wxyz, position = camera_pose(cam)
            try:
                image = thumbnail(view.image, background)
            except Exception:  # noqa: BLE001 - a photo that cannot be shown still gets its frustum
                image = None
            handle = self.server.scene.add_camera_frustum(
                f"/cameras/{i:04d}", fov=vertical_fov(cam), aspect=cam.width / cam.height, scale=scale,
                image=image, wxyz=wxyz, position=position, color=(230, 120, 20))
            handle.on_click(self._jump_to(wxyz, position, vertical_fov(cam)))
            self._frustums.append(handle)

    @staticmethod
    def _jump_to(wxyz, position, fov):
        def jump(event) -> None:
            camera = event.client.camera
            with event.client.atomic():
                camera.wxyz = wxyz
                camera.position = position
                camera.fov = fov
        return jump

    # -- the GPU side (the training thread) ---------------------------------------------
    def service(self, training_running: bool = False) -> None:
        """Do what the browsers asked for: evaluate / export now (training attached), brushpy
        renders of cameras that moved (at most every :data:`RENDER_INTERVAL_S` while
        ``training_running``). Call it on the thread that owns the GPU work."""
        while True:
            try:
                request = self._requests.get_nowait()
            except queue.Empty:
                break
            self._handle_request(request)
        if self._render_box.value and self._splat_source is not None:
            now = time.perf_counter()
            if not training_running or now - self._last_render >= RENDER_INTERVAL_S:
                self._render_dirty()

    def _handle_request(self, request: str) -> None:
        if self.outputs is None:
            return
        if request == "export":
            path = self.outputs.export()
            self.set_status(f"wrote `{path}`")
        elif request == "evaluate":
            line = self.outputs.evaluate()
            if line is None:
                self.set_status("no eval views to evaluate on")
            else:
                self._add_eval(line)
                self.set_status(f"step {line['step']}: PSNR {line['psnr']:.2f} dB, SSIM {line['ssim']:.4f}")

    def _render_dirty(self) -> None:
        from ..render.forward import release_forward_state, render_forward

        with self._lock:
            dirty, self._dirty_clients = self._dirty_clients, set()
        clients = self.server.get_clients()
        splats = None
        for cid in dirty:
            client = clients.get(cid)
            if client is None:
                continue
            cam = client.camera
            try:
                if cam.update_timestamp == 0.0:  # no camera message from this browser yet
                    self._mark_dirty(cid)
                    continue
                camera = browser_camera(cam.wxyz, cam.position, cam.fov, cam.image_width, cam.image_height,
                                        int(self._render_size.value))
            except (AssertionError, AttributeError):
                continue
            if splats is None:
                splats = self._splat_source()
            sh = splats.sh_degree if self.sh_degree is None else min(int(self.sh_degree), splats.sh_degree)
            state = render_forward(splats, camera, background=self.background, sh_degree=sh,
                                   render_mode=self.render_mode)
            rgb = np.clip(state.image.numpy()[..., :3], 0.0, 1.0)
            release_forward_state(state)
            self.last_render = (rgb * 255.0 + 0.5).astype(np.uint8)
            client.scene.set_background_image(self.last_render, format="jpeg", jpeg_quality=90)
            self.renders += 1
        self._last_render = time.perf_counter()

    # -- watching a training run (brushpy.train.run.run_training's watcher) ---------------
    def start(self, trainer, outputs, stops=None) -> None:
        """Attach a run: draw its cameras and splats, build the training panel, and leave its
        pauses out of its clock (``outputs.elapsed``)."""
        from ..io.framing import scene_up

        self.trainer, self.outputs, self.stops = trainer, outputs, stops
        config = trainer.config
        self.total_steps = int(config.total_steps)
        self.background = tuple(float(c) for c in config.background_color)
        self.sh_degree = config.sh_degree
        self.render_mode = config.render_mode
        clock = outputs.elapsed
        outputs.elapsed = lambda: clock() - self.paused_seconds()
        up = scene_up(trainer.vertical_axis)
        self.set_up(up)
        self._build_training_panel()
        self._splat_source = trainer.display_splats
        data = trainer.display_splats().numpy()
        self.frame(data["means"], up)
        self.show_splats(data)
        self.add_cameras(trainer.scene.train_views, self.background)
        self._rate = [(time.perf_counter(), trainer.step_count)]
        self._update_panel(force=True)
        self.set_status(f"training **{trainer.scene.name}**")

    def on_event(self, event) -> None:
        """React to one event of the training stream (on the training thread): update the
        panel, send the splats when due, serve the browsers' requests; wait here while paused."""
        from ..train.stream import DoneEvent, EvalEvent, ExportEvent, RefineEvent, StepEvent

        if isinstance(event, StepEvent):
            if event.loss is not None:
                self._loss = (event.step, float(event.loss))
                self._loss_steps.append(float(event.step))
                self._loss_values.append(float(event.loss))
            now = time.perf_counter()
            self._rate.append((now, event.step))
            if len(self._rate) > 64:
                del self._rate[0]
            self._update_panel()
            if now - self._last_push >= self.push_interval_s:
                self.show_splats(self.trainer.display_splats().numpy())
                self._mark_all_dirty()
            self.service(training_running=True)
            self._wait_while_paused()
        elif isinstance(event, RefineEvent):
            pass
        elif isinstance(event, EvalEvent):
            self._add_eval(event.metrics)
        elif isinstance(event, ExportEvent) and event.final:
            self.set_status(f"wrote `{event.path}`")
        elif isinstance(event, DoneEvent):
            self.show_splats(self.trainer.display_splats().numpy())
            self._mark_all_dirty()
            self._update_panel(force=True)
            self.set_status(f"**done**: {self.outputs.summary_text()}")
            self._pause_button.disabled = True

    def _wait_while_paused(self) -> None:
        if not self.paused:
            return
        self._update_panel(force=True)
        while self.paused and not self._stop_requested():
            self.service()
            time.sleep(0.05)
        self._rate = [(time.perf_counter(), self.trainer.step_count)]
        if not self.paused:
            self.set_status(f"training **{self.trainer.scene.name}**")

    def _stop_requested(self) -> bool:
        return self.closed or (self.stops is not None and getattr(self.stops, "signum", None) is not None)

    def _add_eval(self, line: dict) -> None:
        self._psnr_steps.append(float(line["step"]))
        self._psnr_values.append(float(line["psnr"]))
        self._psnr_text.value = f"{line['psnr']:.2f} dB (step {line['step']})"
        self._plot("eval PSNR", "PSNR (dB)", "#1c7ed6", self._psnr_steps, self._psnr_values)

    def _update_panel(self, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self._last_panel < PANEL_INTERVAL_S:
            return
        self._last_panel = now
        trainer = self.trainer
        self._step_text.value = f"{trainer.step_count} / {self.total_steps}"
        self._splats_text.value = f"{trainer.splats.num_splats:,}"
        if self._loss is not None:
            self._loss_text.value = f"{self._loss[1]:.4f} (step {self._loss[0]})"
        if len(self._rate) >= 2 and not self.paused:
            (t0, s0), (t1, s1) = self._rate[0], self._rate[-1]
            if t1 > t0:
                self._rate_text.value = f"{(s1 - s0) / (t1 - t0):.2f}"
        if force or now - self._last_plot >= 4 * PANEL_INTERVAL_S:
            self._last_plot = now
            self._plot("loss", "loss", "#d9480f", self._loss_steps, self._loss_values)

    def end(self) -> None:
        """The run ended (finished, stopped or failed): the browsers keep the last splats."""
        if self.trainer is not None and not self.closed:
            self.paused = False
            self._update_panel(force=True)

    # -- lifetime ------------------------------------------------------------------------
    def serve_forever(self, should_stop=None, poll_s: float = 0.05) -> None:
        """Serve the browsers (brushpy renders included) until Ctrl-C or ``should_stop()``."""
        warned = False
        try:
            while not self.closed and not (should_stop is not None and should_stop()):
                try:
                    self.service()
                except Exception as exc:  # noqa: BLE001 - keep serving the browser's own splats
                    if not warned:
                        log.warning("web viewer: brushpy render failed (%s: %s); showing the browser's splats",
                                    type(exc).__name__, exc)
                        warned = True
                    self._render_box.value = False
                    self._on_render_toggle()
                    self.set_status(f"brushpy render failed: {exc}")
                time.sleep(poll_s)
        except KeyboardInterrupt:
            pass

    def close(self) -> None:
        """Stop the server (idempotent)."""
        if self.closed:
            return
        self.closed = True
        with self._lock:  # a pause ends with the viewer: the run's clock counts on
            if self._pause_started is not None:
                self._paused_s += time.perf_counter() - self._pause_started
                self._pause_started = None
            self.paused = False
        try:
            self.server.stop()
        except Exception:  # noqa: BLE001 - stopping a half-dead server must not raise
            pass


def view_web(path, port: int = 8080, host: str = "0.0.0.0", verbose: bool = True) -> None:
    """``brushpy view --web PATH``: serve a splat file (any format :func:`brushpy.io.formats.read_splats`
    reads) until Ctrl-C; "brushpy render" draws it with brushpy's rasterizer in its render mode.

    Raises:
        WebViewerNotInstalled, PortInUseError: as :class:`WebViewer`.
        FileNotFoundError, brushpy.errors.InputError: ``path`` cannot be read (named).
    """
    from ..io.formats import read_splats
    from ..io.framing import scene_up

    import_viser()  # before reading a large file
    data = read_splats(Path(path))
    web = WebViewer(port, host, render_mode=data.render_mode, verbose=verbose)
    try:
        up = scene_up(data.vertical_axis)
        web.set_up(up)
        web.frame(data.means, up)
        web.show_splats(data)
        gpu = {}

        def source():
            if "splats" not in gpu:
                from ..render.splats import Splats

                gpu["splats"] = Splats.from_numpy(data.means, data.rotations, data.log_scales, data.sh_coeffs,
                                                  data.raw_opacities)
            return gpu["splats"]

        web._splat_source = source
        web.set_status(f"**{Path(path).name}**: {len(data.means):,} splats")
        print(f"web viewer: {web.url} (Ctrl-C to quit)")
        web.serve_forever()
    finally:
        web.close()


def check_web(host: str, port: int) -> None:
    """Fail before any work when the web viewer cannot start: viser missing
    (:class:`WebViewerNotInstalled`) or the port taken (:class:`PortInUseError`)."""
    import_viser()
    check_port_free(host, port)


def train_with_web(web_at, scene, config=None, process=None, *, resume=None, progress: bool = True,
                   overwrite: bool = False, stops=None, log=print, keep_serving: bool = True, verbose: bool = True):
    """``brushpy train DATA --web``: :func:`brushpy.train.run.run_training` with a :class:`WebViewer`
    watching; after the run the page stays up (``keep_serving``) until Ctrl-C.

    Args:
        web_at: ``(host, port)`` to serve on.
        scene, config, process, resume, progress, overwrite, stops: as ``run_training``.
        log: where lines go.

    Returns:
        The run's :class:`~brushpy.train.trainer.RunSummary`.

    Raises:
        WebViewerNotInstalled, PortInUseError: before training. Once training runs, a failure
        of the web viewer only warns (training carries on headless).
    """
    from ..train.run import run_training

    host, port = web_at
    web = WebViewer(port, host, verbose=verbose)
    log(f"web viewer: {web.url}")
    try:
        summary = run_training(scene, config, process, resume=resume, progress=progress, log=log,
                               overwrite=overwrite, stop_signals=stops, watchers=[web])
        if keep_serving and not web.closed and summary.stop_signal is None:
            log(f"training done; the web viewer stays at {web.url} until Ctrl-C")
            if stops is not None:
                stops.deferred = True  # Ctrl-C now only ends the serving below
            try:
                web.serve_forever(should_stop=lambda: stops is not None and stops.signum is not None)
            finally:
                if stops is not None:
                    stops.deferred = False
        return summary
    finally:
        web.close()
