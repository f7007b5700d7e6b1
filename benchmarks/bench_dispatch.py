"""Host cost of recording one compute dispatch (Python + wgpu-py), in microseconds.

Records many dispatches of a small kernel (3 bindings: a uniform, a read-only and a
read-write storage buffer; zero GPU work per dispatch beyond one tiny workgroup) and
prints one JSON document with the median over ``--repeats`` rounds of the host time
per dispatch for:

* ``cached``: the same two tensors every dispatch and a new :class:`Uniform` each time
  (the common case: bind group cached, uniform bytes appended to the recorder's arena);
* ``same_uniform``: the same ``Uniform`` object bound by every dispatch;
* ``new_buffers``: fresh tensors every dispatch (bind-group cache miss: one
  ``create_bind_group`` per dispatch, plus the tensor allocations, counted separately
  as ``alloc_us``);
* ``raw_wgpu``: the wgpu-py floor: ``set_pipeline`` + ``set_bind_group`` (with a dynamic
  offset) + ``dispatch_workgroups`` on pre-built objects;
* ``submit_us``: one ``Recorder.submit`` of the batch (uniform arena upload, finish,
  submit), per batch, not per dispatch.

Usage::

    python benchmarks/bench_dispatch.py [--dispatches 200] [--repeats 15] [-o out.json]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _report import emit, machine  # noqa: E402
from brushpy.gpu import GpuTensor, Kernel, Recorder, Uniform, get_context, workgroups_for  # noqa: E402


def _kernel() -> Kernel:
    # prefix_sum_add: [uniform, read_write values, read block sums]; a 1-workgroup grid
    return Kernel("prefix_sum_add.wgsl", defines={"WG": 64, "EPT": 16})


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dispatches", type=int, default=200, help="dispatches recorded per round")
    ap.add_argument("--repeats", type=int, default=15, help="rounds (median reported)")
    ap.add_argument("-o", "--output", help="also write the JSON here")
    args = ap.parse_args(argv)
    ctx = get_context()
    k = _kernel()
    n = args.dispatches
    a = GpuTensor.empty((1024,), np.uint32, "bench.a")
    b = GpuTensor.empty((16,), np.uint32, "bench.b")
    groups = workgroups_for(1, 1)
    params = np.array([1024, 1, 0, 0], np.uint32)
    results: dict[str, list[float]] = {k_: [] for k_ in ("cached", "same_uniform", "new_buffers", "alloc", "raw_wgpu", "submit")}

    def timed(fn) -> float:
        gc.collect()
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e6

    for _ in range(args.repeats + 1):  # the first round warms caches up and is dropped
        rec = Recorder()
        with rec.stage("bench"):
            cached = timed(lambda: [rec.dispatch(k, [Uniform(params), a, b], groups) for _ in range(n)])
        submit = timed(rec.submit)
        u = Uniform(params)
        with rec.stage("bench"):
            same = timed(lambda: [rec.dispatch(k, [u, a, b], groups) for _ in range(n)])
        rec.submit()
        t0 = time.perf_counter()
        fresh = [(GpuTensor.empty((1024,), np.uint32), GpuTensor.empty((16,), np.uint32)) for _ in range(n)]
        alloc = (time.perf_counter() - t0) * 1e6
        with rec.stage("bench"):
            new = timed(lambda: [rec.dispatch(k, [Uniform(params), x, y], groups) for x, y in fresh])
        rec.submit()
        del fresh
        # the wgpu-py floor on the same pre-built objects
        rec2 = Recorder()
        rec2.dispatch(k, [u, a, b], groups)
        bg, offsets = k.bind([u, a, b], rec2)
        enc = ctx.device.create_command_encoder()
        p = enc.begin_compute_pass()

        def raw():
            for _ in range(n):
                p.set_pipeline(k.pipeline)
                p.set_bind_group(0, bg, offsets)
                p.dispatch_workgroups(*groups)

        rawt = timed(raw)
        p.end()
        rec2.submit()
        for key, v in (("cached", cached), ("same_uniform", same), ("new_buffers", new), ("alloc", alloc), ("raw_wgpu", rawt)):
            results[key].append(v / n)
        results["submit"].append(submit)
    med = {key: round(statistics.median(v[1:]), 2) for key, v in results.items()}
    out = {
        "benchmark": "dispatch host cost",
        **machine(ctx),
        "dispatches_per_round": n,
        "cached_us": med["cached"],
        "same_uniform_us": med["same_uniform"],
        "new_buffers_us": med["new_buffers"],
        "alloc_us": med["alloc"],
        "raw_wgpu_us": med["raw_wgpu"],
        "submit_us": med["submit"],
    }
    emit(out, args.output)
    return out


if __name__ == "__main__":
    main()
