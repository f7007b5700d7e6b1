"""Live training inside the viewer: a :class:`~brushpy.train.trainer.Trainer` run between frames.

Training runs on the window's own thread (the GPU device and its queue are
shared with the renderer, so there is no locking and no copy of the
splats): each frame, :class:`LiveTraining` runs steps until the frame's
training budget is used, then the frame is drawn.

Time-budget policy (:class:`TrainingBudget`), adaptive per frame:

* ``overhead`` = the exponential mean of each frame period minus the time spent
  training in it (splat re-render, blit, panels, event loop);
* while the user interacts (the camera moves, a drag is held, a widget is
  active) training gets what is left of a ``1 / interactive_fps`` frame:
  ``max(1 / interactive_fps - overhead, 0)``, so the window keeps that frame
  rate when the device can (on a slow device training waits while you move);
* otherwise training gets ``train_share`` of the wall time:
  ``max(1 / interactive_fps - overhead, overhead * train_share / (1 - train_share))``,
  capped at ``max_budget_s`` so the panels still update a few times a second;
* a step starts only when the mean step time still fits in what is left of
  the budget, and every frame with a positive budget runs at least one step;
* the scene view is re-rendered with the new splats at most ``refresh_hz``
  times a second, and no more often than every ``render time / (1 - train_share)``
  seconds so drawing the splats stays within the drawing share (every frame
  while the camera moves).

The steps come from the same loop as ``brushpy train``,
:class:`brushpy.train.stream.TrainStream`: this class pulls one step's events
at a time until the frame's budget is used and updates its plots and messages
from them, so the run writes the same files (scheduled evaluations and exports,
``metrics.jsonl``, and at the last step a final export and evaluation).

Settings changed mid-run are limited to safe ones: pause / resume, the
evaluation and export intervals, "export now", "evaluate now" and "finish
now" (final export + evaluation at the current step). The learning-rate
schedule, refine schedule and total steps are fixed at the start (they are
baked into the optimiser's decay and the refine stop), and the SH degree
slider of the render settings only changes what is drawn, not what is trained.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class TrainingBudget:
    """How a frame's time is split between training and drawing (see the module docstring).

    Attributes:
        interactive_fps: frame rate aimed at while the user interacts.
        train_share: share of wall time training gets while nobody interacts (0..1).
        max_budget_s: most training time in one frame.
        refresh_hz: most re-renders per second of the scene as the splats change
            while the camera is still.
    """

    interactive_fps: float = 20.0
    train_share: float = 0.9
    max_budget_s: float = 1.0
    refresh_hz: float = 4.0

    def refresh_interval_s(self, render_s: float) -> float:
        """Least seconds between re-renders of the changing splats while the camera is still:
        ``1 / refresh_hz``, longer when one render costs more than ``1 - train_share`` of that
        (on a software rasterizer a 720p render can take longer than many steps)."""
        share = min(max(self.train_share, 0.0), 0.99)
        return max(1.0 / self.refresh_hz, render_s / (1.0 - share))

    def budget_s(self, overhead_s: float, interacting: bool) -> float:
        """Seconds of training for the next frame given the measured non-training frame cost."""
        frame = 1.0 / self.interactive_fps
        left = max(frame - overhead_s, 0.0)
        if interacting:
            return min(left, self.max_budget_s)
        share = min(max(self.train_share, 0.0), 0.99)
        return min(max(left, overhead_s * share / (1.0 - share)), self.max_budget_s)


class LiveTraining:
    """A training run driven by the viewer's frames.

    Args:
        scene: a :class:`brushpy.data.Scene` (train and eval views).
        config, process: :class:`~brushpy.train.config.TrainConfig`,
            :class:`~brushpy.train.config.ProcessConfig`.
        resume: a checkpoint to continue from.
        trainer: an existing :class:`~brushpy.train.trainer.Trainer` (default: a new one).
        watchers: observers of the run (e.g. the web viewer), handed each event of the stream
            (:class:`~brushpy.train.stream.Watchers`: the same mechanism as ``brushpy train``'s).

    Attributes:
        trainer: the trainer; ``trainer.splats`` is the live splat set.
        outputs: the run's :class:`~brushpy.train.stream.RunOutputs` (export folder, summary).
        stream: the run's :class:`~brushpy.train.stream.TrainStream` (where the steps come from).
        paused: no steps run while True.
        finished: the final export and evaluation are done.
        error: the message of a :class:`~brushpy.train.trainer.TrainingError` that stopped the run.
        loss_steps, loss_values: the loss plot (float64 arrays via :meth:`loss_curve`).
        psnr_steps, psnr_values: one point per evaluation.
        last_export: the path of the last PLY written.
        message: the last event worth showing (export written, evaluation result...).

    Raises:
        TrainingError: the scene does not fit the device (from the trainer).
    """

    def __init__(self, scene, config=None, process=None, resume=None, trainer=None, watchers=()):
        from ..train.config import ProcessConfig, TrainConfig
        from ..train.stream import RunOutputs, TrainStream
        from ..train.trainer import Trainer

        self.scene = scene
        self.config = config or TrainConfig()
        self.process = process or ProcessConfig()
        self.trainer = trainer or Trainer(scene, self.config, self.process)
        if resume is not None:
            self.trainer.load_checkpoint(resume)
        self.paused = False
        self.finished = False
        self.error: str | None = None
        self.message: str = f"resumed from {resume} at step {self.trainer.step_count}" if resume else ""
        if self.trainer.notes:
            self.message = "note: " + "; ".join(self.trainer.notes)
        self._train_time = 0.0  # wall time not paused, since the start
        self._resumed_at: float | None = time.perf_counter()
        self.outputs = RunOutputs(self.trainer, self.process, scene.name, clock=self.elapsed)
        self.stream = TrainStream(self.trainer, self.outputs, self.config.total_steps, watchers=watchers)
        self.loss_steps: list[int] = []
        self.loss_values: list[float] = []
        self.psnr_steps: list[int] = []
        self.psnr_values: list[float] = []
        self.last_export: Path | None = None
        self._rate = collections.deque(maxlen=64)  # (time, step) samples for it/s
        self._rate.append((time.perf_counter(), self.trainer.step_count))
        self.steps_run = 0
        self.step_time_s = 0.0  # time inside run_for, for the training-speed figures
        self._step_s = 0.0  # mean seconds per step (to stop before overrunning a budget)

    # -- state -----------------------------------------------------------------------
    @property
    def step(self) -> int:
        return self.trainer.step_count

    @property
    def total_steps(self) -> int:
        return self.config.total_steps

    @property
    def running(self) -> bool:
        """Steps will run on the next frames (not paused, finished or failed)."""
        return not (self.paused or self.finished or self.error)

    @property
    def active(self) -> bool:
        """The run has not ended (closing the window would lose work)."""
        return not (self.finished or self.error)

    def elapsed(self) -> float:
        """Seconds of the run outside pauses."""
        t = self._train_time
        if self._resumed_at is not None:
            t += time.perf_counter() - self._resumed_at
        return t

    def set_paused(self, paused: bool) -> None:
        if paused == self.paused:
            return
        now = time.perf_counter()
        if paused and self._resumed_at is not None:
            self._train_time += now - self._resumed_at
            self._resumed_at = None
        elif not paused:
            self._resumed_at = now
            self._rate.clear()
            self._rate.append((now, self.step))
        self.paused = paused

    @property
    def steps_per_s(self) -> float:
        """Training speed over the last few seconds (steps / wall second, window included)."""
        if len(self._rate) < 2:
            return 0.0
        (t0, s0), (t1, s1) = self._rate[0], self._rate[-1]
        return (s1 - s0) / (t1 - t0) if t1 > t0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds to the last step at the current speed (None: unknown)."""
        rate = self.steps_per_s
        if rate <= 0 or not self.active:
            return None
        return (self.total_steps - self.step) / rate

    def loss_curve(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.loss_steps, np.float64), np.asarray(self.loss_values, np.float64)

    def psnr_curve(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.psnr_steps, np.float64), np.asarray(self.psnr_values, np.float64)

    # -- running ------------------------------------------------------------------------
    def run_for(self, budget_s: float) -> int:
        """Run steps while one more (at the mean step time) fits in ``budget_s`` seconds; at least
        one when the budget is positive.

        Scheduled evaluations and exports run as in ``brushpy train``; reaching
        the total steps runs the final export and evaluation. A
        :class:`~brushpy.train.trainer.TrainingError` or a failed scheduled write
        (:class:`~brushpy.io.atomic.WriteError`, e.g. a full disk; the previous files are
        kept) stops the run and lands in :attr:`error`.
        Returns the number of steps run.
        """
        from ..io.atomic import WriteError
        from ..train.stream import StepEvent
        from ..train.trainer import TrainingError

        if not self.running or budget_s <= 0:
            return 0
        t0 = last = time.perf_counter()
        n = 0
        try:
            while not self.stream.done:
                stepped = False
                for event in self.stream.step_events():
                    self._on_event(event)
                    stepped = stepped or isinstance(event, StepEvent)
                n += stepped
                now = time.perf_counter()
                dt, last = now - last, now
                self._step_s = dt if self._step_s == 0 else 0.8 * self._step_s + 0.2 * dt
                if now - t0 + self._step_s > budget_s:  # the next step would overrun the budget
                    break
        except (TrainingError, WriteError) as exc:
            self.error = str(exc)
        now = time.perf_counter()
        self.steps_run += n
        self.step_time_s += now - t0
        self._rate.append((now, self.step))
        while len(self._rate) > 2 and now - self._rate[0][0] > 5.0:
            self._rate.popleft()
        return n

    def _on_event(self, event) -> None:
        """Update the plots, messages and state from one event of the stream."""
        from ..train.stream import DoneEvent, EvalEvent, ExportEvent, StepEvent

        if isinstance(event, StepEvent):
            if event.loss is not None:
                self.loss_steps.append(event.step)
                self.loss_values.append(float(event.loss))
            if event.step >= self.total_steps:
                self.set_paused(True)  # the clock stops before the final export and evaluation
        elif isinstance(event, EvalEvent):
            self._add_eval(event.metrics)
        elif isinstance(event, ExportEvent):
            self.last_export = event.path
            if event.final:
                self.message = f"wrote {event.path}"
        elif isinstance(event, DoneEvent):
            self.finished = True
            self.message = self.outputs.summary_text()

    def _add_eval(self, line: dict) -> None:
        self.psnr_steps.append(line["step"])
        self.psnr_values.append(float(line["psnr"]))
        self.message = f"step {line['step']}: PSNR {line['psnr']:.2f} dB, SSIM {line['ssim']:.4f}"

    def export_now(self) -> Path:
        """Write ``export_{step}.ply`` and the checkpoint to the export folder now."""
        path = self.outputs.export()
        self.last_export = path
        self.message = f"wrote {path}"
        return path

    def evaluate_now(self) -> dict | None:
        """Evaluate on the eval views now (appends to ``metrics.jsonl``, the PSNR plot and the experiment logs)."""
        event = self.stream.evaluate_now()
        line = event.metrics if event is not None else None
        if line:
            self._add_eval(line)
        else:
            self.message = "no eval views to evaluate on"
        return line

    def finish(self):
        """End the run here: final export and evaluation (as at the last step of ``brushpy train``)."""
        if self.finished:
            return self.outputs.summary
        self.set_paused(True)
        for event in self.stream.finish_events():
            self._on_event(event)
        return self.outputs.summary
