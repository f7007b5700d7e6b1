"""A whole training run: steps, evaluation, exports, checkpoints, progress and summary.

Files written under the export folder (``--export-path``, ``{dataset}`` replaced
by the dataset name):

* ``export_{iter}.ply`` (``--export-name``) every ``--export-every`` steps and at the end;
* ``checkpoint.npz``, the full training state, beside every export and on Ctrl-C
  (``brushpy train --resume <file>`` continues from it);
* ``metrics.jsonl``, one JSON line per evaluation:
  ``{"step", "psnr", "ssim", "num_splats", "elapsed_s", "steps_per_s"}``;
* ``eval_{step}/`` renders when ``--eval-save-to-disk``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tqdm import tqdm

from ..gpu import gpu_memory_stats
from .config import ProcessConfig, TrainConfig
from .trainer import RunSummary, Trainer, TrainingError


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


class RunOutputs:
    """The files of one run: exports, checkpoint, ``metrics.jsonl``, and the :class:`RunSummary`.

    Shared by :func:`run_training` and the viewer's live training so both write
    the same files the same way.

    Args:
        trainer: the :class:`Trainer` being run.
        process: process options (export folder and names, eval saving).
        dataset_name: fills ``{dataset}`` in the export path.
        clock: seconds of training so far (default: wall time since this
            object was made; the viewer passes one that stops while paused).
    """

    def __init__(self, trainer: Trainer, process: ProcessConfig, dataset_name: str, clock=None):
        self.trainer = trainer
        self.process = process
        self.out_dir = export_dir_for(process, dataset_name)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.out_dir / "metrics.jsonl"
        self.summary = RunSummary(steps=trainer.step_count, elapsed_s=0.0, num_splats=trainer.splats.num_splats)
        self.start_step = trainer.step_count
        t0 = time.perf_counter()
        self.elapsed = clock or (lambda: time.perf_counter() - t0)

    def export(self) -> Path:
        """Write ``export_{iter}.ply`` and ``checkpoint.npz``; returns the PLY path."""
        trainer = self.trainer
        name = self.process.export_name.replace("{iter}", str(trainer.step_count))
        path = trainer.export_ply(self.out_dir / name)
        trainer.save_checkpoint(self.out_dir / "checkpoint.npz")
        self.summary.export = str(path)
        self.summary.checkpoint = str(self.out_dir / "checkpoint.npz")
        return path

    def evaluate(self) -> dict | None:
        """Evaluate now and append a line to ``metrics.jsonl``; returns the line (None: no eval views)."""
        trainer = self.trainer
        save = self.out_dir / f"eval_{trainer.step_count}" if self.process.eval_save_to_disk else None
        res = trainer.evaluate(save_dir=save)
        if not res:
            return None
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
        with self.metrics_path.open("a") as f:
            f.write(json.dumps(line) + "\n")
        self.summary.history.append(line)
        self.summary.psnr, self.summary.ssim = res["psnr"], res["ssim"]
        return line

    def after_step(self, total: int) -> dict | None:
        """The scheduled evaluation / export after a step (``--eval-every``, ``--export-every``);
        returns the evaluation's metrics line when one ran."""
        s, process = self.trainer.step_count, self.process
        line = None
        if process.eval_every > 0 and s % process.eval_every == 0 and s < total:
            line = self.evaluate()
        if process.export_every > 0 and s % process.export_every == 0 and s < total:
            self.export()
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
        while trainer.step_count < total:
            info = trainer.step()
            bar.update(1)
            if info.loss is not None:
                bar.set_postfix(loss=f"{info.loss:.4f}", splats=f"{info.num_splats:,}", refresh=False)
            line = outputs.after_step(total)
            if line:
                bar.write(f"step {line['step']}: PSNR {line['psnr']:.2f} dB, SSIM {line['ssim']:.4f}, "
                          f"{line['num_splats']:,} splats")
    except KeyboardInterrupt:
        bar.close()
        summary.interrupted = True
        path = outputs.export()
        log(f"interrupted at step {trainer.step_count}: saved {path} and {summary.checkpoint} "
            f"(continue with --resume {summary.checkpoint})")
    except TrainingError:
        bar.close()
        raise
    else:
        bar.close()
        outputs.export()
        outputs.evaluate()
    outputs.finish()
    log(outputs.summary_text())
    return summary
