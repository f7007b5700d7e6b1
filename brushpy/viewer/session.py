"""What a viewer session holds, apart from its window: the scene, loads, live training, closing.

:class:`ViewerSession` owns the scene shown (a
:class:`~brushpy.viewer.scene.ViewerScene`), the background job reading a
splat file or a dataset (:class:`LoadJob`), the live training started on a
dataset (:class:`~brushpy.viewer.training.LiveTraining`), the message lines
(error, status, path field) and the "export before closing?" answer. It
draws nothing and needs no imgui: what it asks of the window goes through a
:class:`SessionHost` (:class:`~brushpy.viewer.app.ViewerApp` is one).
"""

from __future__ import annotations

import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from ..render.camera import Camera
from ..render.splats import Splats
from .scene import SceneLoadError, SplatScene, ViewerScene, list_splat_files, read_splat_file
from .training import LiveTraining, TrainingBudget

DATASET_MARKERS = ("transforms.json", "transforms_train.json", "sparse", "cameras.bin", "cameras.txt")
CLOSE_ANSWERS = ("export", "discard", "cancel")


def looks_like_dataset(path) -> bool:
    """Whether ``path`` is a dataset folder / zip (COLMAP or transforms files at its top)."""
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


class SessionHost(Protocol):
    """What a :class:`ViewerSession` asks of the window that shows it."""

    def request_draw(self) -> None:
        """Draw a new frame soon (called on the window's thread)."""

    def wake(self) -> None:
        """Draw a new frame soon; safe to call from a worker thread."""

    def scene_changed(self, scene: ViewerScene, frame_view: bool) -> None:
        """``scene`` is now the one shown: drop cached renders (and frame the view on it if ``frame_view``)."""

    def training_started(self, training: LiveTraining) -> None:
        """Live training began: draw over its background, forget the views of the previous dataset."""

    def view_camera(self, camera: Camera) -> None:
        """Jump the view to ``camera`` (its pose and exact intrinsics)."""

    def close(self) -> None:
        """Close the window."""


@dataclass
class LoadJob:
    """One background read: a splat file of a list of sources, or a dataset to train on.

    Attributes:
        sources: the splat files of the opened path (empty for a dataset).
        index: which of ``sources`` is read.
        new_path: the files come from a newly opened path (the view is framed on them).
        dataset: the job reads a dataset (``brushpy.data.Scene``) instead of splats.
        configs: ``(TrainConfig | None, ProcessConfig | None)`` for the dataset's training
            (None: the dataset's defaults, as ``brushpy train``).
        result: what the read returned (``SplatData`` or ``Scene``), or the exception it raised.
        done: the read has ended (``result`` is set).
    """

    sources: list
    index: int = 0
    new_path: bool = False
    dataset: bool = False
    configs: tuple = (None, None)
    result: Any = None
    done: bool = False

    def run(self, read: Callable[[], Any]) -> None:
        """Call ``read`` and keep its result, or the exception it raised; mark the job done."""
        try:
            self.result = read()
        except BaseException as exc:  # shown in the window
            self.result = exc
        self.done = True


class ViewerSession:
    """The non-GUI state of a viewer window: scene, background loads, live training, closing.

    Args:
        host: the window (:class:`SessionHost`) that shows the session.
        path_input: the initial text of the path field.

    Attributes:
        scene: the :class:`~brushpy.viewer.scene.ViewerScene` shown, or None.
        error: the last loading / rendering / training error to show, or None.
        status: a one-line progress message ("Loading ..."), or "".
        path_input: the path field's text (the last path opened).
        training: the :class:`~brushpy.viewer.training.LiveTraining` run, or None.
        dataset: the ``brushpy.data.Scene`` being trained on, or None.
        budget: the :class:`~brushpy.viewer.training.TrainingBudget` splitting frames between
            training and drawing.
        dataset_configs: ``(LoadConfig | None, TrainConfig | None, ProcessConfig | None)`` for
            datasets opened in the window (None: the dataset's defaults).
        selected_view: ``("train" | "eval", index)`` of the dataset view last jumped to, or None.
        shown_step: the training step whose splats the scene shows.
        close_prompt_open: the "export before closing?" question is asked.
        closed_with: how a training window closed: ``"export"``, ``"discard"``, or None.
    """

    def __init__(self, host: SessionHost, path_input: str = ""):
        self.host = host
        self.scene: ViewerScene | None = None
        self.error: str | None = None
        self.status: str = ""
        self.path_input = path_input
        self._loading: LoadJob | None = None
        self._load_lock = threading.Lock()

        self.training: LiveTraining | None = None
        self.dataset = None
        self.budget = TrainingBudget()
        self.dataset_configs: tuple = (None, None, None)
        self.selected_view: tuple[str, int] | None = None
        self.shown_step = -1
        self._shown_source = None  # trainer.splats object last shown (a refine replaces it)
        self._last_refresh = 0.0
        self._refresh_now = False  # the run stopped this frame: show its last splats at once

        self.close_prompt_open = False
        self.closed_with: str | None = None

    def request_draw(self) -> None:
        """Ask the host window for a new frame."""
        self.host.request_draw()

    # -- scene ---------------------------------------------------------------------
    def set_scene(self, scene: ViewerScene, frame_view: bool = True) -> None:
        """Show ``scene`` (and frame the view on it unless ``frame_view`` is False).

        Raises:
            TypeError: ``scene`` is not a :class:`~brushpy.viewer.scene.ViewerScene`.
        """
        if not isinstance(scene, ViewerScene):
            raise TypeError(f"the viewer shows a ViewerScene (SplatScene, MipScene), got {type(scene).__name__}")
        self.scene = scene
        self.host.scene_changed(scene, frame_view)

    def set_splats(self, splats: Splats, name: str = "splats", frame_view: bool = True) -> None:
        """Show a splat set already on the GPU."""
        self.set_scene(SplatScene.from_splats(splats, name=name), frame_view)

    def open(self, path, frame: int = 0, wait: bool = False) -> bool:
        """Open a splat file (``.ply``, ``.spz``, ``.sog``, ``meta.json``, ``.splat``), a folder or
        a ``.zip`` of them, a MIP model ``.npz`` (``brushpy mip train`` output, drawn with the MIP
        blend), or a dataset (starts live training, see :meth:`open_dataset`).

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
            from ..data.sfm_cache import needs_sfm

            if needs_sfm(path):  # photos without poses, or a video: SfM first (see open_dataset)
                return self.open_dataset(path, wait=wait)
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
        source = sources[index]
        job = LoadJob(sources, index, new_path)
        return self._start(job, lambda: read_splat_file(source), f"Loading {source.name}...", "brushpy-load", wait)

    def _start(self, job: LoadJob, read: Callable[[], Any], status: str, thread_name: str, wait: bool) -> bool:
        """Run ``job`` (on a worker thread unless ``wait``, then finish it here)."""

        def work():
            job.run(read)
            self.host.wake()

        with self._load_lock:
            self._loading = job
        self.status = status
        if wait:
            work()
            return self.finish_load()
        threading.Thread(target=work, name=thread_name, daemon=True).start()
        self.request_draw()
        return True

    @property
    def loading(self) -> bool:
        """A load job is running or waits to be finished."""
        return self._loading is not None

    def finish_load(self) -> bool:
        """Finish a load whose reading is done (call on the window's thread: it uploads to the
        GPU and shows the scene, or starts the training). Returns True on success; False when
        no read was done or it failed (the failure lands in :attr:`error`)."""
        with self._load_lock:
            job = self._loading
            if job is None or not job.done:
                return False
            self._loading = None
        self.status = ""
        if job.dataset:
            return self._finish_dataset_load(job)
        result, source = job.result, job.sources[job.index]
        if isinstance(result, BaseException):
            self.error = str(result) if isinstance(result, SceneLoadError) else f"{source}: {result}"
            return False
        try:
            splats = result.to_gpu()
            means = getattr(result, "means", None)
            scene = SplatScene.from_splats(splats, name=source.name, means=means, source=source, sources=job.sources,
                                           frame=job.index, render_mode=getattr(result, "render_mode", "default"),
                                           vertical_axis=getattr(result, "vertical_axis", None))
        except Exception as exc:  # e.g. too large for this device's buffers
            self.error = f"{source}: {exc}"
            return False
        self.error = None
        self.set_scene(scene, frame_view=job.new_path or self.scene is None)
        return True

    def _finish_dataset_load(self, job: LoadJob) -> bool:
        result = job.result
        if isinstance(result, BaseException):
            self.error = f"{self.path_input}: {result}"
            return False
        try:
            config, process = job.configs
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

        def read():
            folder = self._poses_for(path)
            cfg = load_config if load_config is not None else resolve_load_config(folder)
            return load_dataset(folder, replace(cfg, progress=False) if hasattr(cfg, "progress") else cfg)

        # configs None: defaults for the loaded scene
        job = LoadJob([], dataset=True, configs=(train_config, process_config))
        return self._start(job, read, f"Loading dataset {Path(str(path)).name}...", "brushpy-load-dataset", wait)

    def _poses_for(self, path):
        """``path`` itself when it has camera poses; for photos without poses or a video, the COLMAP
        project of :func:`brushpy.data.sfm_cache.ensure_sfm` (made or reused beside it, as
        ``brushpy train`` does), its stages shown in :attr:`status`. Runs on the load thread."""
        from ..data.sfm_cache import ensure_sfm, needs_sfm

        if not needs_sfm(path):
            return path

        def show(stage, done, total):
            self.status = f"Structure from motion: {stage} {done}/{total}" if total else \
                f"Structure from motion: {stage} {done}"
            self.host.wake()

        def say(line):
            self.status = line
            self.host.wake()

        folder, _ = ensure_sfm(path, log_fn=say, progress=False, on_progress=show)
        return folder

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
        self.host.training_started(training)
        # the 3D-filtered splats, as training renders them
        self.set_scene(SplatScene.from_splats(training.trainer.display_splats(), name=f"{dataset.name} (training)",
                                              render_mode=training.config.render_mode),
                       frame_view=False)
        self.shown_step = training.step
        self._shown_source = training.trainer.splats
        if dataset.train_views:
            self.host.view_camera(dataset.train_views[0].camera)
        self.request_draw()
        return training

    def dataset_views(self, split: str) -> list:
        """The ``"train"`` or ``"eval"`` views of the dataset being trained on."""
        if self.dataset is None:
            return []
        return list(self.dataset.train_views if split == "train" else self.dataset.eval_views)

    def jump_to_view(self, split: str, index: int) -> None:
        """Select a dataset view and move the camera to it (its exact intrinsics).

        Raises:
            IndexError: the dataset has no such view.
        """
        views = self.dataset_views(split)
        if not 0 <= index < len(views):
            raise IndexError(f"no {split} view {index} (the dataset has {len(views)})")
        self.selected_view = (split, int(index))
        self.host.view_camera(views[index].camera)

    def pause_training(self, paused: bool = True) -> None:
        """Pause or resume the live training (the Pause / Resume button)."""
        if self.training is not None:
            self.training.set_paused(paused)
            self.request_draw()

    @property
    def training_active(self) -> bool:
        """A live training run has not ended (closing now would lose work)."""
        return self.training is not None and self.training.active

    @property
    def training_running(self) -> bool:
        """Live training steps will run on the next frames."""
        return self.training is not None and self.training.running

    def train_between_frames(self, overhead_s: float, interacting: bool) -> float:
        """Run this frame's training steps (budget: :attr:`budget` given the frame's non-training
        cost ``overhead_s`` and whether the user ``interacting``); returns the seconds spent.

        A run that stops (finished, failed) shows its last splats at the next
        :meth:`refresh_training_splats`; a failure lands in :attr:`error`.
        """
        tr = self.training
        if tr is None or not tr.running:
            return 0.0
        budget = self.budget.budget_s(overhead_s, interacting)
        t0 = time.perf_counter()
        tr.run_for(budget)
        spent = time.perf_counter() - t0
        if tr.error:
            self.error = f"training stopped: {tr.error}"
        if not tr.running:
            self._refresh_now = True
        return spent

    def refresh_training_splats(self, moving: bool, render_s: float) -> bool:
        """Put the trainer's current splats in the scene, at most as often as :attr:`budget`
        allows for a render time of ``render_s`` seconds, unless the view is ``moving`` or
        the run just stopped. Returns True when the scene's splats changed (re-render it)."""
        force, self._refresh_now = self._refresh_now, False
        tr = self.training
        if tr is None or self.scene is None:
            return False
        if tr.step == self.shown_step and self._shown_source is tr.trainer.splats:
            return False
        now = time.perf_counter()
        if not (force or moving or now - self._last_refresh >= self.budget.refresh_interval_s(render_s)):
            return False
        # trainer.splats is a new object after a refine, else updated in place
        self.scene.splats = tr.trainer.display_splats()
        self._shown_source = tr.trainer.splats
        self.shown_step = tr.step
        self._last_refresh = now
        return True

    # -- closing -------------------------------------------------------------------------
    def request_close(self) -> None:
        """Close as the window's close button does: while training, first ask whether to export."""
        if self.training_active:
            self.close_prompt_open = True
            self.request_draw()
        else:
            self.host.close()

    def answer_close_prompt(self, answer: str) -> None:
        """Answer the close prompt: ``"export"`` (export, then close), ``"discard"`` (close) or ``"cancel"``.

        Raises:
            ValueError: any other answer.
        """
        if answer not in CLOSE_ANSWERS:
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
        self.host.close()

    def guarded(self, fn: Callable[[], Any]) -> Any:
        """Call ``fn``; an exception it raises (e.g. a full disk while exporting) lands in
        :attr:`error` instead of propagating, and the result is None."""
        try:
            return fn()
        except Exception as exc:  # show it, keep training
            self.error = f"{getattr(fn, '__name__', 'action')} failed: {exc}"
            return None


__all__ = ["DATASET_MARKERS", "LoadJob", "SessionHost", "ViewerSession", "looks_like_dataset"]
