"""Benchmark: training steps on a dataset (prints JSON).

Usage::

    python benchmarks/bench_train.py [DATASET] [--steps 40] [--warmup 10] [--max-resolution N]
                                     [--budget-s SECONDS] [--out FILE]

DATASET defaults to the embedded ``assets/lego_small``. After ``--warmup``
steps (pipelines built, pools filled) it times ``--steps`` steps without
timestamp queries (wall time per step, median and mean, and steps/s), then
``--steps`` more with them: GPU time per stage summed over those steps
(``rasterize``, ``loss_forward``, ``rasterize_backward``, ``adam``... as the
recorders name them) and the host time (profiled wall − GPU), our
Python/driver overhead (the two walls agree within a few % on lavapipe). Peak memory: GPU tensor buffers
(``gpu_memory_stats``) over the timed steps and the process's peak RSS. Refine is not in the timed
window (its own benchmark is ``bench_refine.py``). On lavapipe the "GPU" is
the CPU, so GPU and host times compete for the same cores.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _report import emit, machine  # noqa: E402
from brushpy.data import LoadConfig, load_dataset  # noqa: E402
from brushpy.gpu import Profiler, get_context, gpu_memory_stats, reset_gpu_memory_peak  # noqa: E402
from brushpy.train.config import ProcessConfig, TrainConfig  # noqa: E402
from brushpy.train.run import peak_rss_mib  # noqa: E402
from brushpy.train.trainer import Trainer  # noqa: E402

DEFAULT_DATASET = Path(__file__).resolve().parent.parent / "assets" / "lego_small"


def bench(dataset: str | Path = DEFAULT_DATASET, steps: int = 40, warmup: int = 10,
          max_resolution: int | None = None, budget_s: float | None = None) -> dict:
    """Warm up, then time ``steps`` plain steps and ``steps`` profiled steps; returns the report.

    ``budget_s`` (optional, seconds from the call, scene loading included) caps
    the run: warm-up and the plain steps stop at half of what is left after
    loading, the profiled steps at the budget; ``steps`` / ``profiled_steps``
    then say how many ran and ``stopped_by_budget`` is true. At least one step
    of each kind runs.
    """
    t_start = time.perf_counter()
    load = replace(LoadConfig(), progress=False)
    if max_resolution:
        load = replace(load, max_resolution=max_resolution)
    scene = load_dataset(str(dataset), load)
    load_s = time.perf_counter() - t_start
    end = math.inf if budget_s is None else t_start + budget_s
    half = math.inf if budget_s is None else time.perf_counter() + 0.5 * (end - time.perf_counter())
    total = warmup + 2 * steps + 1
    cfg = replace(TrainConfig(), total_steps=10 * total, refine_every=10 * total, background_color=(1.0, 1.0, 1.0))
    trainer = Trainer(scene, cfg, ProcessConfig(), log_every=10**9)
    warm = 0
    while warm < max(warmup, 1) and (warm == 0 or time.perf_counter() < half):
        trainer.step()
        warm += 1
    trainer.loss_fn.read_loss()
    reset_gpu_memory_peak()
    stages: dict[str, float] = {}

    def timed_steps(deadline: float, prof=None) -> list[float]:
        """Wall seconds of each step (waiting for the GPU), up to ``steps`` or ``deadline``; adds ``prof``'s stage times."""
        walls = []
        while len(walls) < steps and (not walls or time.perf_counter() < deadline):
            t0 = time.perf_counter()
            trainer.step()
            trainer.loss_fn.read_loss()  # wait for the step's GPU work
            walls.append(time.perf_counter() - t0)
            if prof is not None:
                for k, v in prof.read().items():
                    stages[k] = stages.get(k, 0.0) + v
        return walls

    walls = timed_steps(half)  # 1) wall time without timestamp queries
    prof = Profiler(capacity=256)  # 2) GPU time per stage: one step's passes, read back after every step
    trainer.profiler = prof
    prof_walls = timed_steps(end, prof)
    n, n_prof = len(walls), len(prof_walls)
    gpu_ms = sum(stages.values())
    prof_wall_ms = 1000 * sum(prof_walls)
    width, height = scene.train_views[0].camera.width, scene.train_views[0].camera.height
    return {
        "benchmark": "train_step",
        **machine(get_context()),
        "dataset": scene.name,
        "resolution": [width, height],
        "num_splats": trainer.splats.num_splats,
        "load_s": round(load_s, 2),
        "warmup_steps": warm,
        "steps": n,
        "profiled_steps": n_prof,
        "stopped_by_budget": n < steps or n_prof < steps,
        "wall_ms_per_step_median": round(1000 * statistics.median(walls), 2),
        "wall_ms_per_step_mean": round(1000 * sum(walls) / n, 2),
        "steps_per_s": round(n / sum(walls), 3),
        "splat_pixels_per_s": round(n / sum(walls) * trainer.splats.num_splats * width * height),
        "profiled_wall_ms_per_step_mean": round(prof_wall_ms / n_prof, 2),
        "gpu_ms_per_step": round(gpu_ms / n_prof, 2),
        "host_ms_per_step": round((prof_wall_ms - gpu_ms) / n_prof, 2),
        "gpu_ms_per_step_by_stage": {k: round(v / n_prof, 3) for k, v in sorted(stages.items(), key=lambda kv: -kv[1])},
        "peak_gpu_buffers_mib": round(gpu_memory_stats()["peak"] / 2**20, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dataset", nargs="?", default=str(DEFAULT_DATASET))
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--max-resolution", type=int, default=None)
    ap.add_argument("--budget-s", type=float, default=None,
                    help="stop early (recording how many steps ran) once this many seconds have passed")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    out = bench(a.dataset, a.steps, a.warmup, a.max_resolution, a.budget_s)
    emit(out, a.out)
    return out


if __name__ == "__main__":
    main()
