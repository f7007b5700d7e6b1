"""Benchmark: one GPU refine of 100k and 1M random splats (prints JSON).

Usage::

    python benchmarks/bench_refine.py [--sizes 100000 1000000] [--sh-degree 3] [--repeats 3] [--out FILE]

Each run refines a random splat set with statistics that make every rule act
(about 2% pruned and re-filled, ~1.5% force splits, growth up to
``--max-splats``) and carries the GPU Adam's two moments per parameter
through the row gather, as training does. Reported per size: wall time of :func:`refine`
(median of the repeats, after one warm-up that builds the pipelines), GPU
time per stage from timestamp queries (last repeat), and the counts. The SH
degree is lowered when one ``sh_coeffs`` buffer would not fit the device's
storage-binding limit (128 MiB on lavapipe: degree 3 holds at most ~700k splats).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _report import emit, machine  # noqa: E402
from brushpy.gpu import Profiler, Recorder, get_context  # noqa: E402
from brushpy.render.splats import Splats  # noqa: E402
from brushpy.train.config import TrainConfig  # noqa: E402
from brushpy.optim.adam import Adam  # noqa: E402
from brushpy.train.refine import RefineStats, refine, scene_bounds  # noqa: E402

FIELDS = Splats.PARAM_NAMES


def make_inputs(n: int, sh_degree: int, rng):
    k = (sh_degree + 1) ** 2
    p = {
        "means": rng.normal(size=(n, 3)).astype(np.float32),
        "rotations": rng.normal(size=(n, 4)).astype(np.float32),
        "log_scales": rng.normal(-4.0, 0.7, size=(n, 3)).astype(np.float32),
        "sh_coeffs": rng.normal(size=(n, k, 3)).astype(np.float32),
        "raw_opacities": rng.normal(0.5, 3.0, size=n).astype(np.float32),
    }
    stat = np.abs(rng.normal(0.0, 0.0025, n)).astype(np.float32)
    vis = (rng.random(n) < 0.9).astype(np.uint32) * 5
    screen = (rng.random(n) ** 40).astype(np.float32)
    return p, stat, vis, screen


def fit_sh_degree(n: int, want: int, limit: int) -> int:
    d = want
    while d > 0 and n * (d + 1) ** 2 * 3 * 4 > limit:
        d -= 1
    return d


def bench(n: int, sh_degree: int, repeats: int, rng) -> dict:
    ctx = get_context()
    deg = fit_sh_degree(n, sh_degree, ctx.max_binding_bytes)
    p, stat, vis, screen = make_inputs(n, deg, rng)
    splats = Splats.from_numpy(**p)
    cfg = replace(TrainConfig(), max_splats=int(n * 1.1))
    bounds = scene_bounds(p["means"])
    walls, stages, res = [], {}, None
    for r in range(repeats + 1):
        stats = RefineStats(n)
        stats.refine_stat.write(stat)
        stats.visible_count.write(vis)
        stats.max_screen_frac.write(screen)
        opt = Adam()
        opt.load_state_dict({"t": np.array(1), **{f"{f}.{m}": np.zeros(getattr(splats, f).shape, np.float32)
                                                  for f in FIELDS for m in ("exp_avg", "exp_avg_sq")}})
        prof = Profiler()
        rec = Recorder(profiler=prof)
        rec.submit()
        ctx.device.queue.read_buffer(stats.refine_stat.buffer, 0, 16)  # idle GPU before timing
        t0 = time.perf_counter()
        res = refine(rec, splats, stats, opt, cfg, 1000, bounds, seed=42)
        res.src_rows.numpy()  # wait for the GPU
        dt = time.perf_counter() - t0
        stages = prof.read()
        if r > 0:
            walls.append(dt)
        del opt, stats
    return {
        "num_splats": n,
        "sh_degree": deg,
        "wall_ms_median": round(1e3 * statistics.median(walls), 2),
        "wall_ms_all": [round(1e3 * w, 2) for w in walls],
        "gpu_ms_per_stage": {k: round(v, 3) for k, v in stages.items()},
        "counts": {
            "pruned": res.num_pruned, "refilled": res.num_refilled, "force_split": res.num_force_split,
            "grown": res.num_grown, "new_num_splats": res.num_splats,
        },
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--sh-degree", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    ctx = get_context()
    rng = np.random.default_rng(0)
    out = {
        "benchmark": "refine",
        **machine(ctx),
        "results": [bench(n, args.sh_degree, args.repeats, rng) for n in args.sizes],
    }
    emit(out, args.out)


if __name__ == "__main__":
    main()
