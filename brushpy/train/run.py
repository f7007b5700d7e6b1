"""A whole training run for ``brushpy train``: the stream of events, a progress bar, Ctrl-C, the summary.

The loop and its cadence (evaluations, exports, checkpoints, the final export
and evaluation, ``metrics.jsonl``) are :class:`brushpy.train.stream.TrainStream`;
this module only shows its events (a tqdm bar, a line per scheduled evaluation)
and handles Ctrl-C. The files written are listed in :mod:`brushpy.train.stream`.
"""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from .config import ProcessConfig, TrainConfig
from .stream import EvalEvent, RunOutputs, StepEvent, TrainStream, export_dir_for, peak_rss_mib
from .trainer import RunSummary, Trainer, TrainingError

__all__ = ["RunOutputs", "export_dir_for", "peak_rss_mib", "run_training"]


def run_training(
    scene,
    config: TrainConfig | None = None,
    process: ProcessConfig | None = None,
    resume: str | Path | None = None,
    progress: bool = True,
    log=print,
    trainer: Trainer | None = None,
) -> RunSummary:
    """Train on ``scene`` to ``config.total_steps``, evaluating and exporting on schedule.

    Args:
        scene: a :class:`brushpy.data.Scene`.
        config, process: options (defaults: Brush's).
        resume: a checkpoint written by an earlier run; training continues from its step.
        progress: show a tqdm progress bar (step, loss, splats, it/s, ETA).
        log: where summary lines go.
        trainer: an existing :class:`Trainer` to continue (the viewer passes its own).

    Returns:
        :class:`RunSummary`. Ctrl-C saves a checkpoint and an export and returns with
        ``interrupted=True``.

    Raises:
        TrainingError: non-finite loss (the last export is kept) or a scene too large.
    """
    config = config or TrainConfig()
    process = process or ProcessConfig()
    trainer = trainer or Trainer(scene, config, process)
    if trainer.capacity_note:
        log(f"note: {trainer.capacity_note}")
    if resume is not None:
        trainer.load_checkpoint(resume)
        log(f"resumed from {resume} at step {trainer.step_count}")
    outputs = RunOutputs(trainer, process, scene.name)
    summary = outputs.summary

    total = config.total_steps
    bar = tqdm(total=total, initial=trainer.step_count, disable=not progress, unit="step", dynamic_ncols=True)
    try:
        for event in TrainStream(trainer, outputs, total):
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
        bar.close()
        summary.interrupted = True
        path = outputs.export()
        log(f"interrupted at step {trainer.step_count}: saved {path} and {summary.checkpoint} "
            f"(continue with --resume {summary.checkpoint})")
        outputs.finish()
    except TrainingError:
        bar.close()
        raise
    bar.close()
    log(outputs.summary_text())
    return summary
