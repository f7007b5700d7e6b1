"""Radix sort throughput: (u32 key, u32 value) pairs per second.

For each size: upload random 32-bit keys and index values, sort once to warm
up (pipelines, scratch buffers), then time ``--repeats`` full 32-bit sorts:

- GPU time from timestamp queries, per step (count / scan / scatter, summed
  over the 8 passes) and in total;
- wall time from the start of recording to the end of a 4-byte readback
  (record + submit + GPU + sync), and the Python recording time alone.

The first sort of every size is checked against ``np.argsort(kind="stable")``.
Prints JSON (and writes it to ``--out FILE``).

Usage: python benchmarks/bench_sort.py [--sizes 1000000 10000000] [--repeats 3]
       [--no-subgroups] [--out FILE]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _report import emit, machine  # noqa: E402
from brushpy.gpu import GpuTensor, Profiler, Recorder, create_context, get_context, set_context  # noqa: E402
from brushpy.render.sort import BLOCK, DIGIT_BITS, radix_sort_pairs  # noqa: E402


def _sync(t: GpuTensor) -> None:
    t.ctx.device.queue.read_buffer(t.buffer, 0, 16)


def bench_size(n: int, repeats: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    values = np.arange(n, dtype=np.uint32)
    kt, vt = GpuTensor.from_numpy(keys, "bench.keys"), GpuTensor.from_numpy(values, "bench.values")

    rec = Recorder()
    radix_sort_pairs(rec, kt, vt, n)
    rec.submit()
    order = np.argsort(keys, kind="stable")
    correct = bool(np.array_equal(vt.numpy(), order) and np.array_equal(kt.numpy(), keys[order]))

    prof = Profiler()
    gpu_ms, wall_ms, record_ms, steps = [], [], [], []
    for _ in range(repeats):
        kt.write(keys)
        vt.write(values)
        _sync(kt)
        t0 = time.perf_counter()
        rec = Recorder(profiler=prof)
        radix_sort_pairs(rec, kt, vt, n, stage="sort")
        t1 = time.perf_counter()
        rec.submit()
        _sync(kt)
        t2 = time.perf_counter()
        st = prof.read()
        steps.append(st)
        gpu_ms.append(sum(st.values()))
        wall_ms.append((t2 - t0) * 1e3)
        record_ms.append((t1 - t0) * 1e3)
    best = int(np.argmin(wall_ms))
    out = {
        "pairs": n,
        "correct": correct,
        "wall_ms": round(min(wall_ms), 3),
        "wall_ms_all": [round(x, 3) for x in wall_ms],
        "record_ms": round(min(record_ms), 3),
        "keys_per_s_wall": round(n / (min(wall_ms) * 1e-3)),
    }
    if any(gpu_ms):
        out["gpu_ms"] = round(min(gpu_ms), 3)
        out["keys_per_s_gpu"] = round(n / (min(gpu_ms) * 1e-3))
        out["gpu_ms_per_step"] = {k: round(v, 3) for k, v in steps[best].items()}
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-subgroups", action="store_true", help="force the workgroup-memory scan path")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    args = ap.parse_args(argv)

    if args.no_subgroups:
        set_context(create_context(disable={"subgroup"}))
    ctx = get_context()
    result = {
        "benchmark": "radix_sort_pairs",
        **machine(ctx),
        "subgroups": ctx.has_subgroups,
        "digit_bits": DIGIT_BITS,
        "block": BLOCK,
        "key_bits": 32,
        "results": [bench_size(n, args.repeats) for n in args.sizes],
    }
    emit(result, args.out)
    return result


if __name__ == "__main__":
    main()
