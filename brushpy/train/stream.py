"""The one training loop: steps, the evaluation/export cadence and the end of a run, as a stream of events.

:class:`TrainStream` runs a :class:`~brushpy.train.trainer.Trainer` step by step
and yields a typed event for each thing that happened, in order, as Brush's
"process" stream of messages does. Both front ends consume it and only react
to events: ``brushpy train`` (:func:`brushpy.train.run.run_training`: progress
bar, printed lines, Ctrl-C) and the viewer's live training
(:class:`brushpy.viewer.training.LiveTraining`: a time budget per frame, pause,
plots). The cadence is written here once:

* after every step: a :class:`StepEvent`, then a :class:`RefineEvent` when the
  step ran a refine;
* after step ``s < total`` with ``s % eval_every == 0`` (``--eval-every``, 0 = never):
  an evaluation, appended to ``metrics.jsonl`` (:class:`EvalEvent`; none when
  the scene has no eval views);
* after step ``s < total`` with ``s % export_every == 0`` (``--export-every``):
  ``export_{iter}.ply`` (or the ``--export-format``'s extension) and ``checkpoint.npz`` (:class:`ExportEvent`, then
  :class:`CheckpointEvent`);
* at the last step (or at once when the trainer is already there): the final
  export and checkpoint, the final evaluation (events with ``final=True``), then
  :class:`DoneEvent` with the run's summary.

The intervals are read from ``outputs.process`` when each step's scheduled work runs, so a front end
may change them mid-run. Work is lazy: a step runs when its first event is
asked for, an evaluation or export when the event after the step's is.

Files written under the export folder (``--export-path``, ``{dataset}`` replaced
by the dataset name), by :class:`RunOutputs`:

* ``export_{iter}.ply`` (``--export-name``; ``.spz``, ``.sog``, ... with ``--export-format``,
  :func:`export_file_name`) every ``--export-every`` steps and at the end;
* ``checkpoint.npz``, the full training state, beside every export (and on Ctrl-C,
  by ``run_training``); ``brushpy train --resume <file>`` continues from it;
* ``metrics.jsonl``, one JSON line per evaluation:
  ``{"step", "psnr", "ssim", "num_splats", "elapsed_s", "steps_per_s"}``;
* ``eval_{step}/`` renders when ``--eval-save-to-disk``;
* ``logs/`` (``--log-dir``): TensorBoard event files, and ``--rerun FILE.rrd``, written by
  :class:`~brushpy.train.experiment_logs.ExperimentLogs` from this stream's events.

Watchers: everything that observes a run without driving it (the experiment logs
``outputs.logs``, always first; the web viewer; any object with ``on_event``) is a
:class:`Watchers` entry of the stream, handed each event before the stream's consumer sees
it. One mechanism serves both front ends; a watcher that raises is warned about once and
dropped, and training carries on.

Every file is written atomically (:mod:`brushpy.io.atomic`: a temp file, then a
rename), so an interrupted or failed write keeps the previous file; a folder that
cannot be created or written to fails when :class:`RunOutputs` is made, before
training, naming ``--export-path``. ``metrics.jsonl`` lines are appended and
fsync'd one at a time; :func:`read_metrics` skips a line torn by a crash.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, Union

import numpy as np

from ..errors import InputError
from ..gpu import gpu_memory_stats
from ..io.atomic import append_line, atomic_write, ensure_writable_dir, read_jsonl
from ..io.edit import with_format_extension
from .config import ProcessConfig
from .experiment_logs import open_experiment_logs
from .trainer import RunSummary, StepInfo, Trainer

_log = logging.getLogger("brushpy.train")


class StopRequested(Exception):
    """A stop signal arrived (``signum``: SIGINT or SIGTERM); ``exit_code`` is the shell's 128 + signum."""

    def __init__(self, signum: int):
        self.signum = int(signum)
        self.exit_code = 128 + self.signum
        super().__init__(f"stopped by {signal.Signals(self.signum).name}")


class Watchers:
    """The observers of a run, called on the training thread; the one mechanism for them.

    A watcher is any object with some of: ``start(trainer, outputs, stops)`` (before the first
    step, by :func:`~brushpy.train.run.run_training`), ``on_event(event)`` (each event of the
    :class:`TrainStream`, between steps: a watcher may use the GPU there, and one that waits
    there pauses training), ``end()`` (when the run ends: finished, stopped or failed) and
    ``close()``. Missing methods are skipped. A watcher that raises (anything but
    :class:`StopRequested`, which passes through) is warned about once through ``log``, closed
    and dropped: a viewer or logger never loses training.

    Args:
        items: the watchers, in call order.
        log: a function taking one line (default: the ``brushpy.train`` logger's warning).
    """

    def __init__(self, items=(), log=None):
        self.items = list(items or ())
        self.log = log or _log.warning

    def call(self, method: str, *args) -> None:
        """Call ``method(*args)`` on each watcher that has it."""
        for watcher in list(self.items):
            fn = getattr(watcher, method, None)
            if fn is None:
                continue
            try:
                fn(*args)
            except StopRequested:
                raise
            except Exception as exc:  # noqa: BLE001 - a viewer or logger must never lose training
                self.items.remove(watcher)
                self.log(f"warning: {type(watcher).__name__} failed ({type(exc).__name__}: {exc}); "
                         "training carries on without it")
                try:
                    getattr(watcher, "close", lambda: None)()
                except Exception:  # noqa: BLE001 - it failed already; the warning says so
                    pass


def peak_rss_mib() -> float | None:
    """This process's peak resident memory in MiB (None where ``resource`` is missing, e.g. Windows)."""
    try:
        import resource
    except ImportError:
        return None
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024 if sys.platform != "darwin" else kib / 2**20  # macOS reports bytes


def export_dir_for(process: ProcessConfig, dataset_name: str) -> Path:
    """The export folder with ``{dataset}`` filled in."""
    return Path(process.export_path.replace("{dataset}", dataset_name))


def export_file_name(process: ProcessConfig, step: int) -> str:
    """The export's file name at ``step``: ``--export-name`` with ``{iter}`` filled in and its
    extension made ``--export-format``'s (``export_{iter}.ply`` with ``spz`` -> ``export_800.spz``;
    :func:`brushpy.io.edit.with_format_extension`)."""
    return with_format_extension(process.export_name.replace("{iter}", str(step)), process.export_format)


def read_metrics(path) -> list[dict]:
    """The lines of a ``metrics.jsonl``, skipping one torn by a crash mid-append."""
    return [line for line in read_jsonl(path) if isinstance(line, dict)]


#: The training state file of a run, beside its exports.
CHECKPOINT_NAME = "checkpoint.npz"
#: One JSON line per evaluation.
METRICS_NAME = "metrics.jsonl"


def claim_run_folder(out_dir: Path, resume: str | Path | None = None, overwrite: bool = False) -> None:
    """Make ``out_dir`` ready for a run, refusing to mix two runs in one folder.

    * A folder without a checkpoint is used as it is.
    * Resuming from the folder's own checkpoint continues the run: ``metrics.jsonl``
      keeps its lines up to the checkpoint's step (later ones, written after the
      checkpoint by a run that was then killed, are dropped) and the resumed run
      appends to it.
    * ``overwrite`` starts a new run there: ``metrics.jsonl`` starts empty and the
      checkpoint is replaced at the first export (old exports stay until rewritten).
    * Anything else (a checkpoint of another run, and no ``--resume`` of it) is refused.

    Raises:
        brushpy.errors.InputError: the folder holds another run; the message names
            ``--resume``, ``--overwrite`` and ``--export-path``.
    """
    ckpt = Path(out_dir) / CHECKPOINT_NAME
    metrics = Path(out_dir) / METRICS_NAME
    if overwrite:
        if metrics.exists():
            metrics.unlink()
        return
    if not ckpt.exists():
        return
    if resume is not None and Path(resume).resolve() == ckpt.resolve():
        step = checkpoint_step(ckpt)
        if step is not None and metrics.exists():
            _keep_metrics_until(metrics, step)
        return
    step = checkpoint_step(ckpt)
    at = f" (saved at step {step})" if step is not None else ""
    raise InputError(
        f"--export-path {out_dir} already holds another run's {CHECKPOINT_NAME}{at}: continue that run with "
        f"--resume {ckpt}, start over there with --overwrite, or choose another --export-path")


#: Metrics an evaluation reports only when it has them: ``depth_abs_rel`` (eval views with depth
#: maps), ``lpips`` (``--eval-lpips``), the split-half exposure protocol (``--eval-exposure-fit``).
OPTIONAL_EVAL_METRICS = ("depth_abs_rel", "lpips", "psnr_fit", "ssim_fit", "psnr_right", "ssim_right")


def checkpoint_step(path: Path) -> int | None:
    """The step a checkpoint was saved at (None if it cannot be read)."""
    try:
        with np.load(path) as data:
            return int(json.loads(bytes(data["meta"]).decode())["step"])
    except Exception:  # noqa: BLE001 - an unreadable checkpoint is reported by the resume itself
        return None


def _keep_metrics_until(metrics: Path, step: int) -> None:
    """Drop the lines of ``metrics`` after ``step`` (and a torn line), rewriting it atomically."""
    lines = read_metrics(metrics)
    kept = [line for line in lines if isinstance(line.get("step"), int) and line["step"] <= step]
    if len(kept) != len(metrics.read_text(encoding="utf-8", errors="replace").splitlines()):
        with atomic_write(metrics, "w", encoding="utf-8", option="--export-path") as f:
            f.writelines(json.dumps(line) + "\n" for line in kept)


class RunOutputs:
    """The files of one run: exports, checkpoint, ``metrics.jsonl``, and the :class:`RunSummary`.

    :class:`TrainStream` writes through it on schedule; the front ends call it
    directly for what a user asks for (Ctrl-C, "export now", "evaluate now").

    Args:
        trainer: the :class:`Trainer` being run.
        process: process options (export folder and names, eval saving).
        dataset_name: fills ``{dataset}`` in the export path.
        clock: seconds of training so far (default: wall time since this
            object was made; the viewer passes one that stops while paused).

    Attributes:
        logs: the run's :class:`~brushpy.train.experiment_logs.ExperimentLogs` (TensorBoard, Rerun).
        lpips: the :class:`~brushpy.train.perceptual.LpipsMetric` of ``--eval-lpips`` (else None).
        last_images: ``(name, render, gt)`` of the last evaluation's first views, for the logs.

    Raises:
        InputError: the export folder cannot be created or written to (names ``--export-path``); the
            same for ``--log-dir`` and ``--rerun``; ``--eval-lpips`` without torch, lpips or the
            backbone's weights (says how to get them).
    """

    def __init__(self, trainer: Trainer, process: ProcessConfig, dataset_name: str, clock=None):
        self.trainer = trainer
        self.process = process
        self.out_dir = ensure_writable_dir(export_dir_for(process, dataset_name), "--export-path")
        self.lpips = None
        if process.eval_lpips:
            from .perceptual import LpipsMetric

            self.lpips = LpipsMetric(process.lpips_net, process.lpips_weights)
        self.logs = open_experiment_logs(trainer, process, self.out_dir, dataset_name)
        self.last_images: list = []
        self.metrics_path = self.out_dir / METRICS_NAME
        self.summary = RunSummary(steps=trainer.step_count, elapsed_s=0.0, num_splats=trainer.splats.num_splats)
        self.start_step = trainer.step_count
        t0 = time.perf_counter()
        self.elapsed = clock or (lambda: time.perf_counter() - t0)

    def export(self) -> Path:
        """Write ``export_{iter}.<ext>`` (:func:`export_file_name`) and ``checkpoint.npz``; returns the export's path."""
        trainer = self.trainer
        name = export_file_name(self.process, trainer.step_count)
        path = trainer.export_splats(self.out_dir / name, self.process.export_format)
        trainer.save_checkpoint(self.out_dir / CHECKPOINT_NAME)
        self.summary.export = str(path)
        self.summary.checkpoint = str(self.out_dir / CHECKPOINT_NAME)
        return path

    def evaluate(self) -> dict | None:
        """Evaluate now and append a line to ``metrics.jsonl``; returns the line (None: no eval views)."""
        trainer = self.trainer
        save = self.out_dir / f"eval_{trainer.step_count}" if self.process.eval_save_to_disk else None
        res = trainer.evaluate(save_dir=save, keep_images=self.logs.eval_image_views,
                               lpips=self.lpips.score_or_none if self.lpips is not None else None)
        if not res:
            return None
        self.last_images = res.get("images", [])
        steps_done = trainer.step_count - self.start_step
        elapsed = self.elapsed()
        line = {
            "step": trainer.step_count,
            "psnr": res["psnr"],
            "ssim": res["ssim"],
            "num_splats": trainer.splats.num_splats,
            "elapsed_s": round(elapsed, 3),
            "steps_per_s": round(steps_done / max(elapsed, 1e-9), 3),
        }
        line.update({k: res[k] for k in OPTIONAL_EVAL_METRICS if k in res})
        append_line(self.metrics_path, json.dumps(line), option="--export-path")  # fsync'd; read back with read_metrics
        self.summary.history.append(line)
        self.summary.psnr, self.summary.ssim = res["psnr"], res["ssim"]
        return line

    def finish(self) -> RunSummary:
        """Fill in the summary's final step count, time and splat count."""
        summary = self.summary
        summary.steps = self.trainer.step_count
        summary.elapsed_s = self.elapsed()
        summary.num_splats = self.trainer.splats.num_splats
        summary.peak_gpu_mib = gpu_memory_stats()["peak"] / 2**20
        summary.peak_rss_mib = peak_rss_mib()
        return summary

    def summary_text(self) -> str:
        """The one-line end-of-run summary ``brushpy train`` prints."""
        summary = self.summary
        parts = [f"trained {summary.steps - self.start_step} steps in {summary.elapsed_s:.1f} s",
                 f"{summary.num_splats:,} splats"]
        if summary.psnr is not None:
            parts.append(f"eval PSNR {summary.psnr:.2f} dB, SSIM {summary.ssim:.4f}")
        if summary.peak_gpu_mib is not None:
            mem = f"peak GPU buffers {summary.peak_gpu_mib:,.0f} MiB"
            if summary.peak_rss_mib is not None:
                mem += f", peak host memory {summary.peak_rss_mib:,.0f} MiB"
            parts.append(mem)
        parts.append(f"wrote {summary.export}")
        return "; ".join(parts)


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class StepEvent:
    """A training step finished (its refine, if any, included).

    Attributes:
        step: steps done so far (1-based number of this step).
        loss: the step's loss when it was read back (every ``log_every`` steps), else None.
        num_splats: splats after the step.
        num_visible: splats that survived culling in the step's view.
        lr_mean: the mean learning rate used.
        step_s: wall seconds of :meth:`Trainer.step` (its refine included), 0 when not measured.
        lrs: every parameter's learning rate this step (:attr:`StepInfo.lrs`).
    """

    step: int
    loss: float | None
    num_splats: int
    num_visible: int
    lr_mean: float
    step_s: float = 0.0
    lrs: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_info(cls, info: StepInfo, step_s: float = 0.0) -> "StepEvent":
        return cls(step=info.step, loss=info.loss, num_splats=info.num_splats,
                   num_visible=info.num_visible, lr_mean=info.lr_mean, step_s=step_s, lrs=info.lrs)


@dataclass(frozen=True)
class RefineEvent:
    """The step ``step`` ended with a refine; ``counts`` is :meth:`Trainer.refine`'s dict."""

    step: int
    num_splats: int
    counts: dict


@dataclass(frozen=True)
class EvalEvent:
    """An evaluation ran; ``metrics`` is the line appended to ``metrics.jsonl``
    (``step``, ``psnr`` dB, ``ssim``, ``num_splats``, ``elapsed_s``, ``steps_per_s``; ``lpips``
    with ``--eval-lpips``). ``final``: the end-of-run evaluation (else a scheduled one).
    ``images``: ``(name, render, gt)`` (float32 [H,W,3] in [0,1]) of the first eval views when the
    experiment logs asked for them, else empty."""

    step: int
    metrics: dict
    final: bool = False
    images: tuple = field(default=(), repr=False, compare=False)

    @property
    def psnr(self) -> float:
        return self.metrics["psnr"]

    @property
    def ssim(self) -> float:
        return self.metrics["ssim"]


@dataclass(frozen=True)
class ExportEvent:
    """``path`` (a PLY) was written at ``step``; ``final``: the end-of-run export."""

    step: int
    path: Path
    final: bool = False


@dataclass(frozen=True)
class CheckpointEvent:
    """``path`` (``checkpoint.npz``, the full training state) was written at ``step``."""

    step: int
    path: Path
    final: bool = False


@dataclass(frozen=True)
class DoneEvent:
    """The run reached its last step; the final export and evaluation are done."""

    step: int
    summary: RunSummary


Event = Union[StepEvent, RefineEvent, EvalEvent, ExportEvent, CheckpointEvent, DoneEvent]


def _due(every: int, step: int, total: int) -> bool:
    """A scheduled action every ``every`` steps (0 = never), not at the last step (the end does it)."""
    return every > 0 and step % every == 0 and step < total


class TrainStream:
    """A training run as an iterator of events (see the module docstring for the order).

    Args:
        trainer: the :class:`Trainer` to run (from its current step).
        outputs: the run's :class:`RunOutputs` (its ``process`` gives the intervals).
        total: the last step (default: ``trainer.config.total_steps``).
        watchers: a :class:`Watchers` (or a list of watchers) handed each event before the
            consumer sees it; ``outputs.logs`` (the experiment logs) is always the first.
        log: where a failed watcher's warning goes (when ``watchers`` is a list).

    Iterating runs the whole run lazily; :meth:`step_events` runs one step and
    what follows it, for a consumer that stops between steps (the viewer);
    :meth:`finish_events` ends the run now. Exceptions of the trainer pass
    through (:class:`~brushpy.train.trainer.TrainingError`, ``KeyboardInterrupt``).

    Attributes:
        done: the final events have been produced (nothing more to run).
        watchers: the run's :class:`Watchers`.
    """

    def __init__(self, trainer: Trainer, outputs: RunOutputs, total: int | None = None,
                 watchers: "Watchers | list | tuple" = (), log=None):
        self.trainer = trainer
        self.outputs = outputs
        self.total = int(trainer.config.total_steps if total is None else total)
        self.done = False
        self.watchers = watchers if isinstance(watchers, Watchers) else Watchers(watchers, log)
        if outputs.logs not in self.watchers.items:
            self.watchers.items.insert(0, outputs.logs)

    def __iter__(self) -> Iterator[Event]:
        while not self.done:
            yield from self.step_events()

    def step_events(self) -> Iterator[Event]:
        """One step and its scheduled work (the final work after the last step); nothing once done."""
        for event in self._step_events():
            self.watchers.call("on_event", event)
            yield event

    def finish_events(self) -> Iterator[Event]:
        """End the run at the current step: final export and checkpoint, final evaluation, :class:`DoneEvent`."""
        for event in self._finish_events():
            self.watchers.call("on_event", event)
            yield event

    def evaluate_now(self) -> EvalEvent | None:
        """Evaluate at the current step outside the schedule ("evaluate now"): appends to ``metrics.jsonl``
        and is handed to the watchers like a scheduled evaluation; None when the scene has no eval views."""
        event = self._evaluation(final=False)
        if event is not None:
            self.watchers.call("on_event", event)
        return event

    def _step_events(self) -> Iterator[Event]:
        if self.done:
            return
        trainer, outputs, total = self.trainer, self.outputs, self.total
        if trainer.step_count >= total:
            yield from self._finish_events()
            return
        t0 = time.perf_counter()
        info = trainer.step()
        yield StepEvent.from_info(info, step_s=time.perf_counter() - t0)
        if info.refine is not None:
            yield RefineEvent(info.step, info.num_splats, info.refine)
        s, process = trainer.step_count, outputs.process
        if s >= total:
            yield from self._finish_events()
            return
        if _due(process.eval_every, s, total):
            event = self._evaluation(final=False)
            if event is not None:
                yield event
        if _due(process.export_every, s, total):
            yield from self._export(final=False)

    def _finish_events(self) -> Iterator[Event]:
        if self.done:
            return
        yield from self._export(final=True)
        event = self._evaluation(final=True)
        if event is not None:
            yield event
        self.done = True
        yield DoneEvent(self.trainer.step_count, self.outputs.finish())

    def _evaluation(self, final: bool) -> EvalEvent | None:
        line = self.outputs.evaluate()
        if not line:
            return None
        return EvalEvent(self.trainer.step_count, line, final=final, images=tuple(self.outputs.last_images))

    def _export(self, final: bool) -> Iterator[Event]:
        path = self.outputs.export()
        step = self.trainer.step_count
        yield ExportEvent(step, Path(path), final)
        yield CheckpointEvent(step, Path(self.outputs.summary.checkpoint), final)
