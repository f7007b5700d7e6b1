"""Benchmark: training steps on a dataset (prints JSON).

Usage::

    python benchmarks/bench_train.py [DATASET] [--steps 40] [--warmup 10] [--max-resolution N] [--out FILE]

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dataset", nargs="?", default=str(Path(__file__).resolve().parent.parent / "assets" / "lego_small"))
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--max-resolution", type=int, default=None)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    load = replace(LoadConfig(), progress=False)
    if a.max_resolution:
        load = replace(load, max_resolution=a.max_resolution)
    scene = load_dataset(a.dataset, load)
    total = a.warmup + a.steps + 1
    cfg = replace(TrainConfig(), total_steps=10 * total, refine_every=10 * total, background_color=(1.0, 1.0, 1.0))
    trainer = Trainer(scene, cfg, ProcessConfig(), log_every=10**9)
    for _ in range(a.warmup):
        trainer.step()
    trainer.loss_fn.read_loss()
    reset_gpu_memory_peak()

    def timed_steps(prof=None) -> list[float]:
        """Wall seconds of each of ``a.steps`` steps (waiting for the GPU); adds ``prof``'s stage times."""
        walls = []
        for _ in range(a.steps):
            t0 = time.perf_counter()
            trainer.step()
            trainer.loss_fn.read_loss()  # wait for the step's GPU work
            walls.append(time.perf_counter() - t0)
            if prof is not None:
                for k, v in prof.read().items():
                    stages[k] = stages.get(k, 0.0) + v
        return walls

    stages: dict[str, float] = {}
    walls = timed_steps()  # 1) wall time without timestamp queries
    prof = Profiler(capacity=256)  # 2) GPU time per stage: one step's passes, read back after every step
    trainer.profiler = prof
    prof_walls = timed_steps(prof)
    gpu_ms = sum(stages.values())
    prof_wall_ms = 1000 * sum(prof_walls)
    out = {
        "benchmark": "train_step",
        **machine(get_context()),
        "dataset": scene.name,
        "resolution": [scene.train_views[0].camera.width, scene.train_views[0].camera.height],
        "num_splats": trainer.splats.num_splats,
        "steps": a.steps,
        "wall_ms_per_step_median": round(1000 * statistics.median(walls), 2),
        "wall_ms_per_step_mean": round(1000 * sum(walls) / a.steps, 2),
        "steps_per_s": round(a.steps / sum(walls), 3),
        "profiled_wall_ms_per_step_mean": round(prof_wall_ms / a.steps, 2),
        "gpu_ms_per_step": round(gpu_ms / a.steps, 2),
        "host_ms_per_step": round((prof_wall_ms - gpu_ms) / a.steps, 2),
        "gpu_ms_per_step_by_stage": {k: round(v / a.steps, 3) for k, v in sorted(stages.items(), key=lambda kv: -kv[1])},
        "peak_gpu_buffers_mib": round(gpu_memory_stats()["peak"] / 2**20, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }
    emit(out, a.out)


if __name__ == "__main__":
    main()
