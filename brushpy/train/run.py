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
import time
from pathlib import Path

from tqdm import tqdm

from .config import ProcessConfig, TrainConfig
from .trainer import RunSummary, Trainer, TrainingError


def export_dir_for(process: ProcessConfig, dataset_name: str) -> Path:
    """The export folder with ``{dataset}`` filled in."""
    return Path(process.export_path.replace("{dataset}", dataset_name))


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
    out_dir = export_dir_for(process, scene.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = out_dir / "metrics.jsonl"
    summary = RunSummary(steps=trainer.step_count, elapsed_s=0.0, num_splats=trainer.splats.num_splats)
    t0 = time.perf_counter()
    start_step = trainer.step_count

    def elapsed() -> float:
        return time.perf_counter() - t0

    def do_export() -> Path:
        name = process.export_name.replace("{iter}", str(trainer.step_count))
        path = trainer.export_ply(out_dir / name)
        trainer.save_checkpoint(out_dir / "checkpoint.npz")
        summary.export = str(path)
        summary.checkpoint = str(out_dir / "checkpoint.npz")
        return path

    def do_eval() -> dict | None:
        save = out_dir / f"eval_{trainer.step_count}" if process.eval_save_to_disk else None
        res = trainer.evaluate(save_dir=save)
        if not res:
            return None
        steps_done = trainer.step_count - start_step
        line = {
            "step": trainer.step_count,
            "psnr": res["psnr"],
            "ssim": res["ssim"],
            "num_splats": trainer.splats.num_splats,
            "elapsed_s": round(elapsed(), 3),
            "steps_per_s": round(steps_done / max(elapsed(), 1e-9), 3),
        }
        with metrics_path.open("a") as f:
            f.write(json.dumps(line) + "\n")
        summary.history.append(line)
        summary.psnr, summary.ssim = res["psnr"], res["ssim"]
        return line

    total = config.total_steps
    bar = tqdm(total=total, initial=trainer.step_count, disable=not progress, unit="step", dynamic_ncols=True)
    try:
        while trainer.step_count < total:
            info = trainer.step()
            bar.update(1)
            if info.loss is not None:
                bar.set_postfix(loss=f"{info.loss:.4f}", splats=f"{info.num_splats:,}", refresh=False)
            s = trainer.step_count
            if process.eval_every > 0 and s % process.eval_every == 0 and s < total:
                line = do_eval()
                if line:
                    bar.write(f"step {s}: PSNR {line['psnr']:.2f} dB, SSIM {line['ssim']:.4f}, {line['num_splats']:,} splats")
            if process.export_every > 0 and s % process.export_every == 0 and s < total:
                do_export()
    except KeyboardInterrupt:
        bar.close()
        summary.interrupted = True
        path = do_export()
        log(f"interrupted at step {trainer.step_count}: saved {path} and {summary.checkpoint} "
            f"(continue with --resume {summary.checkpoint})")
    except TrainingError:
        bar.close()
        raise
    else:
        bar.close()
        do_export()
        do_eval()
    summary.steps = trainer.step_count
    summary.elapsed_s = elapsed()
    summary.num_splats = trainer.splats.num_splats
    parts = [f"trained {summary.steps - start_step} steps in {summary.elapsed_s:.1f} s",
             f"{summary.num_splats:,} splats"]
    if summary.psnr is not None:
        parts.append(f"eval PSNR {summary.psnr:.2f} dB, SSIM {summary.ssim:.4f}")
    parts.append(f"wrote {summary.export}")
    log("; ".join(parts))
    return summary
