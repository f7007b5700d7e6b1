"""A whole training run for ``brushpy train``: the stream of events, a progress bar, Ctrl-C, the summary.

The loop and its cadence (evaluations, exports, checkpoints, the final export
and evaluation, ``metrics.jsonl``) are :class:`brushpy.train.stream.TrainStream`;
this module only shows its events (a tqdm bar, a line per scheduled evaluation)
and handles Ctrl-C. The files written are listed in :mod:`brushpy.train.stream`.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

from tqdm import tqdm

from .config import ProcessConfig, TrainConfig
from .stream import (
    EvalEvent,
    RunOutputs,
    StepEvent,
    StopRequested,
    TrainStream,
    Watchers,
    claim_run_folder,
    export_dir_for,
    peak_rss_mib,
)
from .trainer import RunSummary, Trainer, TrainingError

__all__ = ["RunOutputs", "StopRequested", "StopSignals", "export_dir_for", "peak_rss_mib", "run_training"]

#: The signals that stop a run cleanly: Ctrl-C, and what ``timeout``, job schedulers,
#: ``docker stop`` and Ray send.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """While active, SIGINT and SIGTERM stop a run cleanly; a second signal exits at once.

    The first signal is recorded; :meth:`raise_if_requested` (called by
    :func:`run_training` between steps) raises :class:`StopRequested`, so a step
    is never cut in half and the export and checkpoint written after it are whole.
    Outside that loop (while a dataset loads) the first signal raises at once. A
    second signal exits the process immediately with 128 + signum: files are
    written atomically, so what is on disk stays readable. Only the main thread can
    install handlers; elsewhere this does nothing (Ctrl-C then raises
    ``KeyboardInterrupt``, which :func:`run_training` also handles).
    """

    def __init__(self):
        self.signum: int | None = None
        self.deferred = False  # True inside the training loop: stop between steps
        self._previous: dict = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for s in STOP_SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()

    def _handle(self, signum, _frame) -> None:
        if self.signum is not None:  # the second signal: leave now
            os.write(2, f"\n{signal.Signals(signum).name} again: exiting without saving\n".encode())
            os._exit(128 + signum)
        self.signum = signum
        if not self.deferred:
            raise StopRequested(signum)

    def raise_if_requested(self) -> None:
        """Raise :class:`StopRequested` if a signal arrived."""
        if self.signum is not None:
            raise StopRequested(self.signum)


def run_training(
    scene,
    config: TrainConfig | None = None,
    process: ProcessConfig | None = None,
    resume: str | Path | None = None,
    progress: bool = True,
    log=print,
    trainer: Trainer | None = None,
    overwrite: bool = False,
    stop_signals: StopSignals | None = None,
    watchers=(),
) -> RunSummary:
    """Train on ``scene`` to ``config.total_steps``, evaluating and exporting on schedule.

    Args:
        scene: a :class:`brushpy.data.Scene`.
        config, process: options (defaults: Brush's).
        resume: a checkpoint written by an earlier run; training continues from its step.
        progress: show a tqdm progress bar (step, loss, splats, it/s, ETA).
        log: where summary lines go.
        trainer: an existing :class:`Trainer` to continue (the viewer passes its own).
        overwrite: train into an export folder that holds another run's checkpoint
            (its ``metrics.jsonl`` starts afresh); without it such a folder is refused.
        stop_signals: an active :class:`StopSignals` (default: one is made for the run);
            SIGINT or SIGTERM then stop after the current step.
        watchers: objects that watch the run (the web viewer, :class:`brushpy.viewer.web.WebViewer`),
            added to the stream's :class:`~brushpy.train.stream.Watchers` after the experiment
            logs: ``start(trainer, outputs, stops)`` before the first step, ``on_event(event)``
            for each event, ``end()`` when the run ends (finished, stopped or failed). A watcher
            that raises is warned about once (through ``log``), closed and dropped: training
            carries on without it.

    Returns:
        :class:`RunSummary`. Ctrl-C, SIGINT or SIGTERM save a checkpoint and an export and
        return with ``interrupted=True`` and ``stop_signal`` set (the CLI exits 130 or 143).

    Raises:
        TrainingError: non-finite loss or splats (the last export is kept), a scene too large,
            an unusable ``resume`` checkpoint (CheckpointError).
        brushpy.errors.InputError: the export folder holds another run (see ``overwrite``).
    """
    config = config or TrainConfig()
    process = process or ProcessConfig()
    claim_run_folder(export_dir_for(process, scene.name), resume, overwrite)
    trainer = trainer or Trainer(scene, config, process)
    for note in trainer.notes:
        log(f"note: {note}")
    if resume is not None:
        trainer.load_checkpoint(resume)
        log(f"resumed from {resume} at step {trainer.step_count}")
    outputs = RunOutputs(trainer, process, scene.name)
    with (stop_signals or StopSignals()) as stops:
        watch = Watchers([outputs.logs, *(watchers or ())], log)
        watch.call("start", trainer, outputs, stops)
        stops.deferred = True
        try:
            return _run(trainer, outputs, config.total_steps, progress, log, stops, watch)
        finally:
            stops.deferred = False
            watch.call("end")


def _run(trainer: Trainer, outputs: RunOutputs, total: int, progress: bool, log, stops: StopSignals,
         watch: Watchers | None = None) -> RunSummary:
    """Consume the run's events (progress bar, printed evaluations) until done or stopped."""
    summary = outputs.summary
    bar = tqdm(total=total, initial=trainer.step_count, disable=not progress, unit="step", dynamic_ncols=True)
    reason = None
    try:
        for event in TrainStream(trainer, outputs, total, watchers=watch or (), log=log):
            stops.raise_if_requested()
            if isinstance(event, StepEvent):
                bar.update(1)
                if event.loss is not None:
                    bar.set_postfix(loss=f"{event.loss:.4f}", splats=f"{event.num_splats:,}", refresh=False)
                if event.step >= total:
                    bar.close()  # before the final export and evaluation
            elif isinstance(event, EvalEvent) and not event.final:
                line = event.metrics
                bar.write(f"step {line['step']}: PSNR {line['psnr']:.2f} dB, SSIM {line['ssim']:.4f}, "
                          f"{line['num_splats']:,} splats")
    except KeyboardInterrupt:
        reason, summary.stop_signal = "interrupted", int(signal.SIGINT)
    except StopRequested as stop:
        summary.stop_signal = stop.signum
        reason = "interrupted" if stop.signum == signal.SIGINT else str(stop)
    except TrainingError:
        bar.close()
        outputs.logs.close()
        raise
    bar.close()
    outputs.logs.close()  # flush the TensorBoard / Rerun logs (an interrupted run's included)
    if reason is not None:
        summary.interrupted = True
        path = outputs.export()
        log(f"{reason} at step {trainer.step_count}: saved {path} and {summary.checkpoint} "
            f"(continue with --resume {summary.checkpoint})")
        outputs.finish()
    log(outputs.summary_text())
    return summary
