"""Benchmark: one Adam step over a full splat set (GPU timestamps + wall time).

Usage: python benchmarks/bench_adam.py [--splats 1000000] [--sh-degree 3] [--shared-sh] [--repeats 3] [--out FILE]

Parameters: means [N,3], rotations [N,4], log_scales [N,3], sh_coeffs [N,K,3],
raw_opacities [N] (K = (degree+1)^2; 59 floats per splat at degree 3). When
sh_coeffs exceeds one storage binding (lavapipe: 128 MiB, i.e. ~700k splats at
degree 3) the splats are stepped in equal chunks, each its own optimizer, all in
one recorder — the same work and memory traffic; the JSON says how many chunks.
Reports the median over repeats of the "adam" stage GPU time in milliseconds.
On lavapipe (software Vulkan) these are CPU figures.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np

from _report import emit, machine
from brushpy.gpu import GpuTensor, Profiler, Recorder, get_context
from brushpy.optim import Adam, AdamConfig


def bench(n: int = 1_000_000, sh_degree: int = 3, shared_sh: bool = False, repeats: int = 3) -> dict:
    """One Adam step over ``n`` random splats, ``repeats`` times after a warm-up step.

    Returns the report: splats, sh_degree, chunks, parameters (float count),
    ``gpu_ms`` {"adam": median ms or None without timestamp queries} and
    ``wall_ms`` (median record + submit + wait), plus the machine.
    """
    ctx = get_context()
    k = (sh_degree + 1) ** 2
    per_chunk = max(1, ctx.max_binding_bytes // (k * 3 * 4))
    chunks = math.ceil(n / per_chunk)
    sizes = [n // chunks + (1 if i < n % chunks else 0) for i in range(chunks)]
    rng = np.random.default_rng(0)
    sets = []
    for m in sizes:
        shapes = {"means": (m, 3), "rotations": (m, 4), "log_scales": (m, 3), "sh_coeffs": (m, k, 3), "raw_opacities": (m,)}
        params = {name: GpuTensor.from_numpy(rng.standard_normal(s, dtype=np.float32), name) for name, s in shapes.items()}
        grads = {name: GpuTensor.from_numpy(rng.standard_normal(s, dtype=np.float32), name + " grad") for name, s in shapes.items()}
        sets.append((Adam(AdamConfig(shared_sh_second_moment=shared_sh)), params, grads))
    prof = Profiler()
    rows = []
    for i in range(repeats + 1):  # first step allocates the moments
        rec = Recorder(profiler=prof)
        t0 = time.perf_counter()
        for opt, params, grads in sets:
            opt.step(rec, params, grads, i)
        rec.submit()
        ctx.device.queue.read_buffer(sets[0][1]["raw_opacities"].buffer, 0, 16)  # wait
        wall = (time.perf_counter() - t0) * 1e3
        stages = prof.read()
        if i:
            rows.append((stages.get("adam", None), wall))
    floats = sum(m * (3 + 4 + 3 + 3 * k + 1) for m in sizes)
    return {
        "benchmark": "adam_step",
        **machine(ctx),
        "splats": n,
        "sh_degree": sh_degree,
        "shared_sh_second_moment": shared_sh,
        "chunks": chunks,
        "parameters": floats,
        "repeats": repeats,
        "gpu_ms": {"adam": statistics.median(t) if (t := [r[0] for r in rows if r[0] is not None]) else None},
        "wall_ms": statistics.median(r[1] for r in rows),
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splats", type=int, default=1_000_000)
    ap.add_argument("--sh-degree", type=int, default=3)
    ap.add_argument("--shared-sh", action="store_true", help="one SH second moment per splat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    report = bench(args.splats, args.sh_degree, args.shared_sh, args.repeats)
    emit(report, args.out)
    return report


if __name__ == "__main__":
    main()
