"""Partitioned training of one large scene on Ray: ``brushpy train DATA --partition RxC``.

:func:`train_partitioned` splits the scene (:func:`brushpy.distributed.partition.partition_scene`),
trains every block as one Ray task (:func:`train_block`: an ordinary
:func:`brushpy.train.run.run_training` on :meth:`brushpy.data.Scene.subset` of the scene, so every
training option applies per block), merges the blocks' exports
(:func:`~brushpy.distributed.partition.merge_splats`), evaluates the merged set on the full scene's
eval split (:meth:`brushpy.train.trainer.Trainer.evaluate`) and optionally fine-tunes it on all
views (``--partition-finetune-steps``, again through ``run_training``).

**Step budget.** ``--total-steps`` is the budget of the whole run, so a partitioned run and a
monolithic one of the same ``--total-steps`` take the same number of optimisation steps: the
fine-tune takes its steps, and each trained block gets an equal share of the rest,
``(total − finetune) // blocks`` (the remainder is not used). Blocks run in parallel, so the
wall time is about one block's on enough workers.

**Fine-tune.** The merged set is read from the blocks' PLY exports, whose 3D filter
(``--min-scale-factor``) is already folded into scales and opacities; the fine-tune therefore runs
without the filter, without growth (refine still prunes), with the means' learning rate at its end
value ``--lr-mean-end`` (the blocks have converged; a fresh start value would shake them).

Files under the export folder (``--export-path``, OUT):

* ``blocks/<row>_<col>/``: each block's run (``export_<steps>.ply``, ``checkpoint.npz``,
  ``metrics.jsonl``, logs) and ``block.json`` (its job and figures). A rerun reuses a block
  whose ``block.json`` matches its job and whose export exists.
* ``merged.<ext>`` (``--export-format``): the merged splats, an ordinary splat file.
* with a fine-tune: ``export_<N>.<ext>``, ``checkpoint.npz`` and ``metrics.jsonl`` of the fine-tune run.
* ``partition.json``: the grid, each block's views, points, steps, time and splat counts (trained
  and kept), skipped blocks and notes, the merged and fine-tuned evaluations.

**Splats past one device.** Each block obeys ``--max-splats`` (and the device's buffer limit) on its
own, so the merged set may hold more splats than one block may. When it holds more than one
device buffer can (:func:`brushpy.train.trainer.max_splats_for_device`), the merged file is still
written but the evaluation and fine-tune on this machine are skipped with a note.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..data import LoadConfig, load_dataset
from ..errors import OptionError
from ..io import SplatData, read_splats, write_splats
from ..io.atomic import atomic_write, ensure_writable_dir
from ..io.edit import with_format_extension
from ..train.config import ProcessConfig, TrainConfig
from ..train.stream import claim_run_folder, export_dir_for
from .cluster import connect, require_ray
from .partition import DEFAULT_MARGIN, DEFAULT_VISIBILITY, Partition, merge_splats, partition_scene

__all__ = ["BlockJob", "block_steps", "partition_from_summary", "train_block", "train_partitioned"]

#: The per-splat arrays merged (``SplatData``'s, in the Splats layout).
SPLAT_ARRAYS = ("means", "rotations", "log_scales", "sh_coeffs", "raw_opacities")


def block_steps(total_steps: int, finetune_steps: int, num_blocks: int) -> int:
    """Steps of each block: ``(total − finetune) // blocks`` (module docstring, "Step budget").

    Raises:
        OptionError: fewer than one step per block (names the options to change).
    """
    if finetune_steps < 0:
        raise OptionError(f"--partition-finetune-steps {finetune_steps}: must be ≥ 0")
    steps = (int(total_steps) - int(finetune_steps)) // max(1, int(num_blocks))
    if steps < 1:
        raise OptionError(f"--total-steps {total_steps} leaves no step for the {num_blocks} blocks after "
                          f"--partition-finetune-steps {finetune_steps}: raise --total-steps (it is the budget of "
                          "the whole run, blocks and fine-tune together)")
    return steps


@dataclass
class BlockJob:
    """One block's training run (what a Ray task gets).

    Attributes:
        name: ``"<row>_<col>"``.
        dataset: the dataset path (each task loads it itself; only names and indices travel).
        load, train, process: the run's options (``process.export_path`` is the block's folder,
            ``train.total_steps`` the block's share).
        view_names: the training views of the block.
        point_indices: int64 [M] indices of the init points of the block.
    """

    name: str
    dataset: str
    load: LoadConfig
    train: TrainConfig
    process: ProcessConfig
    view_names: list
    point_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def fingerprint(self) -> dict:
        """What decides the block's result (``block.json`` records it; a rerun reuses a matching block)."""
        return {"name": self.name, "dataset": str(Path(self.dataset).resolve()), "load": asdict(self.load),
                "train": asdict(self.train), "seed": self.process.seed, "views": list(self.view_names),
                "points": int(len(self.point_indices)),
                "points_sum": int(np.asarray(self.point_indices, np.int64).sum())}


def _json_safe(value):
    return json.loads(json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def _block_done(job: BlockJob) -> dict | None:
    """The recorded result of a finished block with the same job, or None."""
    path = Path(job.process.export_path) / "block.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if record.get("job") != _json_safe(job.fingerprint()) or not Path(record.get("export", "")).is_file():
        return None
    return {**record["result"], "reused": True}


def train_block(job: BlockJob) -> dict:
    """Train one block (an ordinary run on the block's views and points); runs inside a Ray task.

    Returns:
        ``{"name", "views", "points", "steps", "elapsed_s", "num_splats", "export", "notes", "reused"}``
        (and ``"interrupted": True`` when SIGINT/SIGTERM stopped it: its export is at that step and
        it is not recorded as finished); ``export`` is the block's final PLY. A block already
        finished with the same job is not trained again.

    Raises:
        brushpy.errors.BrushpyError: what the run raises (a bad option, a diverged run).
    """
    from ..train.run import run_training

    done = _block_done(job)
    if done is not None:
        return done
    t0 = time.perf_counter()
    scene = load_dataset(job.dataset, replace(job.load, progress=False), decode=False)
    scene = scene.subset(job.view_names, job.point_indices)
    scene.decode(progress=False)
    notes: list[str] = []
    summary = run_training(scene, job.train, job.process, progress=False, log=notes.append, overwrite=True)
    result = {"name": job.name, "views": len(scene.train_views),
              "points": len(scene.init_points) if scene.init_points is not None else 0,
              "steps": summary.steps, "elapsed_s": round(time.perf_counter() - t0, 2),
              "num_splats": summary.num_splats, "export": summary.export,
              "notes": [n for n in notes if n.startswith("note:")], "reused": False}
    if summary.interrupted:  # stopped by a signal: merged as it is, but not reused by a rerun
        result["interrupted"] = True
        return result
    record = {"job": _json_safe(job.fingerprint()), "result": result, "export": summary.export}
    with atomic_write(Path(job.process.export_path) / "block.json", "w", encoding="utf-8",
                      option="--export-path") as f:
        json.dump(record, f, indent=1)
    return result


def _read_block(path: str) -> tuple[dict, SplatData]:
    data = read_splats(path)
    return {k: getattr(data, k) for k in SPLAT_ARRAYS}, data


def _remote_options(ray) -> dict:
    """One GPU per block where the cluster has GPUs, else one CPU."""
    gpus = ray.cluster_resources().get("GPU", 0)
    return {"num_gpus": 1, "num_cpus": 1} if gpus >= 1 else {"num_cpus": 1}


def train_partitioned(dataset, load: LoadConfig, train: TrainConfig, process: ProcessConfig, grid: tuple[int, int],
                      margin: float = DEFAULT_MARGIN, finetune_steps: int = 0, address: str | None = None,
                      visibility: float = DEFAULT_VISIBILITY, num_cpus: int | None = None, overwrite: bool = False,
                      progress: bool = True, log=print, scene=None) -> dict:
    """Train ``dataset`` split into ``grid`` blocks on Ray and merge them (module docstring).

    Args:
        dataset: the dataset folder (or zip).
        load, train, process: the run's options; ``train.total_steps`` is the whole budget.
        grid: ``(rows, cols)`` (``--partition RxC``).
        margin: ``--partition-margin``; visibility: ``--partition-visibility``.
        finetune_steps: ``--partition-finetune-steps`` (0: no fine-tune).
        address: a Ray cluster to join (``--address``); None starts a local one (``num_cpus`` CPUs).
        overwrite: train into an export folder that holds another run's checkpoint.
        progress, log: a progress bar for the fine-tune; where lines go.
        scene: ``dataset`` already loaded with ``load`` (undecoded is fine), to skip loading it again.

    Returns:
        The ``partition.json`` summary (a dict).

    Raises:
        OptionError: a bad grid, margin, visibility or step budget.
        brushpy.errors.InputError: Ray missing or ``--address`` unreachable; the export folder holds
            another run (see ``overwrite``); bad dataset files.
        brushpy.errors.RunError: a block's training failed (its name and error; the blocks that
            finished keep their files and are reused by a rerun).
    """
    from ..train.run import run_training
    from ..train.trainer import Trainer, max_splats_for_device
    from ..errors import RunError

    t_start = time.perf_counter()
    if scene is None:
        scene = load_dataset(dataset, replace(load, progress=False), decode=False)
    # absolute paths: a Ray worker's working folder is not the driver's
    out = ensure_writable_dir(export_dir_for(process, scene.name), "--export-path").resolve()
    claim_run_folder(out, None, overwrite)
    points = scene.init_points.positions if scene.init_points is not None else None
    part = partition_scene([v.camera for v in scene.train_views], points, grid[0], grid[1], margin, visibility)
    for note in part.notes:
        log(f"note: {note}")
    if not part.blocks:
        raise OptionError(f"--partition {grid[0]}x{grid[1]}: no block is seen by any camera")
    steps = block_steps(train.total_steps, finetune_steps, len(part.blocks))
    log(f"{scene.name}: {grid[0]}x{grid[1]} partition, {len(part.blocks)} blocks of {steps} steps"
        + (f" + {finetune_steps} fine-tune steps" if finetune_steps else "")
        + f" (--total-steps {train.total_steps})")
    names = [v.name for v in scene.train_views]
    block_process = replace(process, export_format="ply", export_name="export_{iter}.ply")
    jobs = [BlockJob(b.name, str(Path(dataset).resolve()), load, replace(train, total_steps=steps),
                     replace(block_process, export_path=str(out / "blocks" / b.name)),
                     [names[i] for i in b.view_indices], b.point_indices) for b in part.blocks]

    connect(address, num_cpus)
    ray = require_ray()
    task = ray.remote(**_remote_options(ray))(train_block)
    pending = {task.remote(job): job for job in jobs}
    results: dict[str, dict] = {}
    failures = []
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        job = pending.pop(ready[0])
        try:
            res = ray.get(ready[0])
        except Exception as exc:  # noqa: BLE001 - a Ray task error wraps the block's own error
            cause = getattr(exc, "cause", None) or exc
            failures.append(f"block {job.name}: {type(cause).__name__}: {cause}")
            log(f"block {job.name}: failed ({type(cause).__name__}: {cause})")
            continue
        results[job.name] = res
        if res.get("interrupted"):
            log(f"note: block {job.name} was stopped by a signal at step {res['steps']} of {steps}; merged as it is")
        log(f"block {job.name}: {res['views']} views, {res['points']:,} init points, {res['steps']} steps, "
            f"{res['num_splats']:,} splats, {res['elapsed_s']:.1f} s" + (" (reused)" if res.get("reused") else ""))
    if failures:
        raise RunError("partitioned training: " + "; ".join(failures)
                       + f" (finished blocks are kept under {out / 'blocks'} and reused by a rerun)")

    block_splats, first = [], None
    for b in part.blocks:
        arrays, data = _read_block(results[b.name]["export"])
        block_splats.append(arrays)
        first = first or data
    merged, kept = merge_splats(part, block_splats)
    n = len(merged["means"])
    merged_data = SplatData(**merged, render_mode=train.render_mode, vertical_axis=first.vertical_axis)
    merged_path = out / with_format_extension("merged", process.export_format)
    write_splats(merged_path, merged_data, format=process.export_format, option="--export-path",
                 **({"comments": [f"SplatRenderMode: {train.render_mode}"]} if process.export_format == "ply" else {}))
    log(f"merged {n:,} splats ({', '.join(f'{b.name}: {k:,}' for b, k in zip(part.blocks, kept))}) into {merged_path}")

    summary = _summary(part, results, kept, steps, finetune_steps, train.total_steps, margin, visibility)
    summary["merged"] = {"num_splats": n, "export": str(merged_path)}
    summary["export"] = str(merged_path)
    ft_config = replace(train, total_steps=max(1, finetune_steps), lr_mean=train.lr_mean_end, growth_stop_iter=0,
                        min_scale_factor=0.0, max_splats=max(int(train.max_splats), n))
    if n > max_splats_for_device(train.sh_degree):
        summary["notes"].append(f"the merged set ({n:,} splats) is more than one buffer of this device holds at SH "
                                f"degree {train.sh_degree}: evaluation and fine-tune skipped here")
        log("note: " + summary["notes"][-1])
    else:
        scene.decode(progress=False)
        trainer = Trainer(scene, ft_config, process, initial=merged)
        res = trainer.evaluate()
        if res:
            summary["merged"].update(psnr=res["psnr"], ssim=res["ssim"])
            log(f"merged: eval PSNR {res['psnr']:.2f} dB, SSIM {res['ssim']:.4f} on {len(scene.eval_views)} views")
        if finetune_steps > 0:
            t0 = time.perf_counter()
            ft = run_training(scene, ft_config, process, progress=progress, log=log, trainer=trainer, overwrite=True)
            summary["finetune"] = {"steps": finetune_steps, "elapsed_s": round(time.perf_counter() - t0, 2),
                                   "num_splats": ft.num_splats, "psnr": ft.psnr, "ssim": ft.ssim, "export": ft.export}
            summary["export"] = ft.export
    summary["elapsed_s"] = round(time.perf_counter() - t_start, 2)
    with atomic_write(out / "partition.json", "w", encoding="utf-8", option="--export-path") as f:
        json.dump(_json_safe(summary), f, indent=1)
    return summary


def _finite(rect: np.ndarray) -> list:
    """A region as nested lists with None for an unbounded side (strict JSON has no infinity)."""
    return [[float(x) if np.isfinite(x) else None for x in row] for row in rect]


def _summary(part: Partition, results: dict, kept: list, steps: int, finetune: int, total: int, margin: float,
             visibility: float) -> dict:
    blocks = []
    for b, k in zip(part.blocks, kept):
        r = results[b.name]
        blocks.append({"name": b.name, "views": r["views"], "points": r["points"], "steps": r["steps"],
                       "elapsed_s": r["elapsed_s"], "num_splats": r["num_splats"], "kept": k,
                       "reused": r.get("reused", False), "interrupted": r.get("interrupted", False), "core": _finite(b.core), "expanded": _finite(b.expanded)})
    return {"grid": list(part.grid), "margin": margin, "visibility": visibility, "total_steps": total,
            "block_steps": steps, "finetune_steps": finetune, "up": part.frame.up.tolist(),
            "ground_axes": part.frame.axes.tolist(), "origin": part.frame.origin.tolist(),
            "blocks": blocks, "skipped": [b.name for b in part.skipped], "notes": list(part.notes)}


def partition_from_summary(summary: dict) -> Partition:
    """The trained blocks' :class:`Partition` (frame and cores) back from a ``partition.json`` dict, for
    :meth:`Partition.owner` (which block keeps a point); views and points are not recorded there."""
    from .partition import Block, GroundFrame

    def rect(rows, sign):
        return np.array([[(sign[i] * np.inf if x is None else x) for x in row] for i, row in enumerate(rows)])

    frame = GroundFrame(np.array(summary["origin"]), np.array(summary["up"]), np.array(summary["ground_axes"]))
    blocks = [Block(*map(int, b["name"].split("_")), rect(b["core"], (-1, 1)), rect(b["expanded"], (-1, 1)))
              for b in summary["blocks"]]
    return Partition(frame, tuple(summary["grid"]), np.zeros((2, 2)), blocks)
