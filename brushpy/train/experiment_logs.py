"""Experiment logs of a training run: TensorBoard event files and a Rerun recording, from the stream's events.

:class:`ExperimentLogs` consumes the events of :class:`brushpy.train.stream.TrainStream` (the
stream hands it each event before its consumer sees it), so ``brushpy train`` and the viewer's live
training log the same things. It writes to one or two sinks:

* **TensorBoard** (``--log-dir``, default ``<export folder>/logs``; ``--log-dir none`` turns it
  off): event files written with tensorboardX, read by ``tensorboard --logdir <folder>``;
* **Rerun** (``--rerun FILE.rrd``, needs ``pip install 'brushpy[rerun]'``): a recording on a
  ``step`` timeline, opened with ``rerun FILE.rrd``.

What is logged (the tag is TensorBoard's tag and Rerun's entity path):

=========================  ===================================================================
``train/loss``             mean training loss over the last ``--log-every`` steps
``train/num_splats``       splats after the step
``train/num_visible``      splats that survived culling in the step's view
``train/step_time_s``      mean wall seconds of one training step (``Trainer.step``; evaluations
                           and exports not included)
``train/lr/<param>``       learning rate of ``means`` (scene units), ``rotations``,
                           ``log_scales``, ``sh_coeffs`` (SH band 0), ``sh_coeffs_rest``,
                           ``raw_opacities``
``refine/<count>``         each refine's counts (``added``, ``pruned``, ...)
``eval/psnr`` (dB),        per evaluation (scheduled and final), as in ``metrics.jsonl``;
``eval/ssim``,             ``depth_abs_rel`` only with depth maps, ``lpips`` only with
``eval/depth_abs_rel``,    ``--eval-lpips``
``eval/lpips``
``eval/image/<view>``      ground truth (left) beside the render (right), 8-bit RGB, for the first
                           :data:`EVAL_IMAGE_VIEWS` eval views, each half at most
                           :data:`MAX_IMAGE_SIZE` px on its long side
``splats`` (Rerun only)    the splats as points at each evaluation: means, colour from the SH DC
                           term (``0.5 + C0 · dc``), radius ``exp(mean log scale)``
=========================  ===================================================================

Scalars are written every ``--log-every`` steps (and at the last step); step numbers are
1-based counts of steps done, the ``step`` of ``metrics.jsonl``. A resumed run writes new event files
into the same folder that tell TensorBoard to drop the earlier files' events from the resumed step
on (tensorboardX's ``purge_step``), so a curve does not fold back on itself; a new run in a folder
with old logs (``--overwrite``) does the same from step 1.

A logging failure never stops training: the sink that failed is dropped and one warning says
why. A ``--log-dir`` or ``--rerun`` file that cannot be written, or a missing package, is an
:class:`~brushpy.errors.InputError` when the logs are opened, before the first step.
"""

from __future__ import annotations

import atexit
import logging
import re
import weakref
from pathlib import Path

import numpy as np

from ..errors import OptionError
from ..io.atomic import ensure_writable_dir
from ..io.ply import sh_dc_to_rgb

log = logging.getLogger(__name__)

#: Eval views whose images are logged at each evaluation (the first ones of the eval split).
EVAL_IMAGE_VIEWS = 3
#: Longest side of each half of a logged eval image, in pixels (Brush's ``--rerun-max-img-size``).
MAX_IMAGE_SIZE = 512


def resolve_log_dir(log_dir: str | None, export_dir: Path, dataset_name: str) -> Path | None:
    """``--log-dir`` with ``{export_path}`` and ``{dataset}`` filled in (None: TensorBoard logs off)."""
    if log_dir is None or log_dir.strip().lower() in ("", "none", "off"):
        return None
    return Path(log_dir.replace("{export_path}", str(export_dir)).replace("{dataset}", dataset_name))


def side_by_side(gt: np.ndarray, render: np.ndarray, max_size: int = MAX_IMAGE_SIZE) -> np.ndarray:
    """Ground truth (left) beside the render (right) as uint8 [H, 2W, 3]; inputs float [H,W,3] in [0,1],
    each downscaled (area filter) so its long side is at most ``max_size`` px."""
    from PIL import Image

    halves = []
    for a in (gt, render):
        img = (np.clip(a[..., :3], 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        h, w = img.shape[:2]
        if max(h, w) > max_size:
            s = max_size / max(h, w)
            img = np.asarray(Image.fromarray(img).resize((max(1, round(w * s)), max(1, round(h * s))), Image.BOX))
        halves.append(img)
    return np.concatenate(halves, axis=1)


def _tag_name(view_name: str) -> str:
    """A view's name as a tag component: its file stem, with anything but ``[A-Za-z0-9_.-]`` as ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", Path(view_name).stem) or "view"


# --------------------------------------------------------------------------- sinks


class TensorBoardSink:
    """TensorBoard event files in ``folder`` (tensorboardX's ``SummaryWriter``).

    Raises:
        OptionError: tensorboardX is not installed.
    """

    name = "TensorBoard"

    def __init__(self, folder: Path, purge_step: int | None = None):
        try:
            from tensorboardX import SummaryWriter
        except ImportError as exc:
            raise OptionError("--log-dir: TensorBoard logs need tensorboardX (a brushpy dependency): pip install "
                              "tensorboardX, or turn the logs off with --log-dir none") from exc
        self.folder = folder
        self.writer = SummaryWriter(logdir=str(folder), purge_step=purge_step, flush_secs=30)

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.writer.add_scalar(tag, float(value), step)

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        self.writer.add_image(tag, image, step, dataformats="HWC")

    def points(self, tag: str, positions, colors, radii, step: int) -> None:
        """TensorBoard gets no point clouds (its mesh plugin is too slow for splat counts)."""

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class RerunSink:
    """A Rerun recording saved to ``path`` (``.rrd``), on a ``step`` sequence timeline.

    Raises:
        OptionError: rerun-sdk is not installed.
    """

    name = "Rerun"

    def __init__(self, path: Path, run_name: str):
        try:
            import rerun as rr
        except ImportError as exc:
            raise OptionError(f"--rerun {path}: Rerun logging needs rerun-sdk: pip install 'brushpy[rerun]'") from exc
        self.rr = rr
        self.path = path
        self.rec = rr.RecordingStream("brushpy")
        self.rec.send_recording_name(run_name)
        self.rec.save(str(path))

    def _at(self, step: int) -> None:
        self.rec.set_time("step", sequence=int(step))

    def scalar(self, tag: str, value: float, step: int) -> None:
        self._at(step)
        self.rec.log(tag, self.rr.Scalars(float(value)))

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        self._at(step)
        self.rec.log(tag, self.rr.Image(image))

    def points(self, tag: str, positions, colors, radii, step: int) -> None:
        self._at(step)
        self.rec.log(tag, self.rr.Points3D(positions, colors=colors, radii=radii))

    def flush(self) -> None:
        self.rec.flush()

    def close(self) -> None:
        self.rec.flush()
        self.rec.disconnect()


# --------------------------------------------------------------------------- the logs


class ExperimentLogs:
    """The run's TensorBoard and Rerun logs, fed with the training stream's events.

    Args:
        trainer: the run's :class:`~brushpy.train.trainer.Trainer` (its splats for Rerun's points, its
            total steps for the last step's scalars).
        sinks: :class:`TensorBoardSink` / :class:`RerunSink` (or anything with ``scalar``, ``image``,
            ``points``, ``flush``, ``close``).
        log_every: write the training scalars every this many steps (``--log-every``).

    Attributes:
        sinks: the sinks still writing (one that failed is dropped with a warning).
        warnings: the warnings given (one per failed sink).
    """

    def __init__(self, trainer, sinks: list, log_every: int = 50):
        self.trainer = trainer
        self.sinks = list(sinks)
        self.log_every = max(1, int(log_every))
        self.warnings: list[str] = []
        self._loss_sum = self._loss_n = 0.0
        self._time_sum = self._time_n = 0.0
        self._closed = False
        if self.sinks:
            _OPEN.add(self)  # closed at exit (the viewer has no end-of-run hook), or when collected

    @property
    def enabled(self) -> bool:
        return bool(self.sinks)

    @property
    def eval_image_views(self) -> int:
        """Eval views whose images the logs want (0 when nothing logs)."""
        return EVAL_IMAGE_VIEWS if self.sinks else 0

    def on_event(self, event) -> None:
        """Log one event of the stream (see the module docstring for what each event writes). Never raises."""
        if not self.sinks:
            return
        from .stream import DoneEvent, EvalEvent, RefineEvent, StepEvent

        try:
            if isinstance(event, StepEvent):
                self._on_step(event)
            elif isinstance(event, RefineEvent):
                for key, value in event.counts.items():
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        self._each("scalar", f"refine/{key}", value, event.step)
            elif isinstance(event, EvalEvent):
                self._on_eval(event)
            elif isinstance(event, DoneEvent):
                self._each("flush")
        except Exception as exc:  # noqa: BLE001 - preparing what to log failed: logs off, training goes on
            self._fail(None, exc)

    def _on_step(self, event) -> None:
        if event.loss is not None:
            self._loss_sum += event.loss
            self._loss_n += 1
        if event.step_s > 0:
            self._time_sum += event.step_s
            self._time_n += 1
        total = self.trainer.config.total_steps
        if event.step % self.log_every and event.step < total:
            return
        s = event.step
        if self._loss_n:
            self._each("scalar", "train/loss", self._loss_sum / self._loss_n, s)
        self._each("scalar", "train/num_splats", event.num_splats, s)
        self._each("scalar", "train/num_visible", event.num_visible, s)
        if self._time_n:
            self._each("scalar", "train/step_time_s", self._time_sum / self._time_n, s)
        for name, lr in (event.lrs or {"means": event.lr_mean}).items():
            self._each("scalar", f"train/lr/{name}", lr, s)
        self._loss_sum = self._loss_n = self._time_sum = self._time_n = 0.0

    def _on_eval(self, event) -> None:
        s, line = event.step, event.metrics
        for key in ("psnr", "ssim", "depth_abs_rel", "lpips"):
            if key in line and line[key] is not None and np.isfinite(line[key]):
                self._each("scalar", f"eval/{key}", line[key], s)
        for name, render, gt in event.images:
            self._each("image", f"eval/image/{_tag_name(name)}", side_by_side(gt, render), s)
        if any(isinstance(sink, RerunSink) for sink in self.sinks):
            positions, colors, radii = self.splat_points()
            self._each("points", "splats", positions, colors, radii, s)
        self._each("flush")

    def splat_points(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The trained splats as points: means float32 [N,3] (scene units), colours float32 [N,3] in
        [0,1] from the SH DC term, radii float32 [N] = ``exp(mean log scale)``."""
        splats = self.trainer.splats
        means = splats.means.numpy().reshape(-1, 3)
        dc = splats.sh_coeffs.numpy().reshape(means.shape[0], -1, 3)[:, 0, :]
        colors = np.clip(sh_dc_to_rgb(dc), 0.0, 1.0).astype(np.float32)
        radii = np.exp(splats.log_scales.numpy().reshape(means.shape[0], 3).mean(axis=1)).astype(np.float32)
        return means.astype(np.float32), colors, radii

    def _each(self, method: str, *args) -> None:
        for sink in list(self.sinks):
            try:
                getattr(sink, method)(*args)
            except Exception as exc:  # noqa: BLE001 - a logger's failure must not stop training
                self._fail(sink, exc)

    def _fail(self, sink, exc: Exception) -> None:
        """Drop ``sink`` (all sinks when None) and warn once; training carries on."""
        dropped = [sink] if sink is not None else list(self.sinks)
        for s in dropped:
            if s in self.sinks:
                self.sinks.remove(s)
            try:
                s.close()
            except Exception:  # noqa: BLE001 - it failed already
                pass
        names = " and ".join(getattr(s, "name", type(s).__name__) for s in dropped) or "experiment"
        msg = f"{names} logging stopped ({type(exc).__name__}: {exc}); training goes on"
        self.warnings.append(msg)
        log.warning(msg)

    def flush(self) -> None:
        self._each("flush")

    def close(self) -> None:
        """Flush and close every sink (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._each("close")
        self.sinks = []
        _OPEN.discard(self)

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - best effort at garbage collection
            pass


#: Logs not closed yet; held weakly so an abandoned run's trainer can be freed.
_OPEN: "weakref.WeakSet[ExperimentLogs]" = weakref.WeakSet()


@atexit.register
def _close_open_logs() -> None:
    for logs in list(_OPEN):
        logs.close()


def open_experiment_logs(trainer, process, export_dir: Path, dataset_name: str) -> ExperimentLogs:
    """The logs ``process`` asks for (``--log-dir``, ``--rerun``, ``--log-every``), opened before training.

    Args:
        trainer: the run's trainer (its ``step_count`` is where a resumed run's logs restart).
        process: a :class:`~brushpy.train.config.ProcessConfig`.
        export_dir: the run's export folder (fills ``{export_path}`` in ``--log-dir``).
        dataset_name: fills ``{dataset}`` in ``--log-dir`` and ``--rerun``.

    Raises:
        InputError: ``--log-dir`` cannot be created or written to, or the ``--rerun`` file's folder
            (each names its option); a package a sink needs is missing (:class:`OptionError`, saying
            what to install).
    """
    sinks = []
    try:
        folder = resolve_log_dir(process.log_dir, export_dir, dataset_name)
        if folder is not None:
            ensure_writable_dir(folder, "--log-dir")
            sinks.append(TensorBoardSink(folder, purge_step=trainer.step_count + 1))
        if process.rerun:
            path = Path(process.rerun.replace("{dataset}", dataset_name))
            if path.suffix.lower() != ".rrd":
                raise OptionError(f"--rerun {path}: give a file name ending in .rrd (a Rerun recording)")
            if path.is_dir():
                raise OptionError(f"--rerun {path}: is a folder; give a file name ending in .rrd")
            ensure_writable_dir(path.parent if str(path.parent) else Path("."), "--rerun")
            sinks.append(RerunSink(path, f"{dataset_name} from step {trainer.step_count}"))
    except Exception:
        for sink in sinks:
            sink.close()
        raise
    return ExperimentLogs(trainer, sinks, process.log_every)
