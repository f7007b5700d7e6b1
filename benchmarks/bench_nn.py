"""Wall time of brushpy.nn's layer ops, forward and forward + backward, in milliseconds.

Each case records the op (and, for ``fwd_bwd``, its backward) into one recorder, submits and
waits for the result (reads one float back); the median over ``--repeats`` rounds after one
warm-up round (pipelines compiled). Shapes are those of a small DepthSplat-style encoder at
128x128 input (features at 1/4: 32x32):

* ``conv3x3_c32_64``: conv 3x3, 32 -> 32 channels, [1, 32, 64, 64];
* ``conv3x3_c64_32``: conv 3x3, 64 -> 64 channels, [1, 64, 32, 32];
* ``conv3x3_s2``: conv 3x3 stride 2, 32 -> 64, [1, 32, 64, 64] -> 32x32;
* ``group_norm``: 8 groups over [1, 64, 32, 32]; ``gelu``: [1, 64, 32, 32];
* ``upsample_x4``: [1, 32, 32, 32] -> 128x128; ``softmax_d32``: [1, 32, 32, 32];
* ``warp_c64_d32``: plane-sweep warp of [64, 32, 32] at 32 planes.

Usage::

    python benchmarks/bench_nn.py [--repeats 5] [-o out.json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _report import emit, machine  # noqa: E402
from brushpy.gpu import GpuTensor, Recorder  # noqa: E402
from brushpy.nn import (ActivationOp, Conv2dOp, GroupNormOp, PlaneSweepWarpOp, SoftmaxDepthOp,  # noqa: E402
                        UpsampleOp)


def _t(rng, *shape):
    return GpuTensor.from_numpy(rng.standard_normal(shape).astype(np.float32))


def cases(rng):
    k = np.array([[32.0, 0, 16], [0, 32, 16], [0, 0, 1]])
    src = np.eye(4)
    src[0, 3] = -0.1
    return {
        "conv3x3_c32_64": lambda rec, x=_t(rng, 1, 32, 64, 64), w=_t(rng, 32, 32, 3, 3), b=_t(rng, 32):
            Conv2dOp(rec, x, w, b, 1),
        "conv3x3_c64_32": lambda rec, x=_t(rng, 1, 64, 32, 32), w=_t(rng, 64, 64, 3, 3), b=_t(rng, 64):
            Conv2dOp(rec, x, w, b, 1),
        "conv3x3_s2": lambda rec, x=_t(rng, 1, 32, 64, 64), w=_t(rng, 64, 32, 3, 3), b=_t(rng, 64):
            Conv2dOp(rec, x, w, b, 2),
        "group_norm": lambda rec, x=_t(rng, 1, 64, 32, 32), g=_t(rng, 64), b=_t(rng, 64):
            GroupNormOp(rec, x, 8, g, b),
        "gelu": lambda rec, x=_t(rng, 1, 64, 32, 32): ActivationOp(rec, x, "gelu"),
        "upsample_x4": lambda rec, x=_t(rng, 1, 32, 32, 32): UpsampleOp(rec, x, 4),
        "softmax_d32": lambda rec, x=_t(rng, 1, 32, 32, 32): SoftmaxDepthOp(rec, x),
        "warp_c64_d32": lambda rec, x=_t(rng, 64, 32, 32): PlaneSweepWarpOp(
            rec, x, np.linspace(0.5, 5, 32), k, np.eye(4), k, src),
    }


def _time(make, backward: bool) -> float:
    rec = Recorder()
    t0 = time.perf_counter()
    op = make(rec)
    out = next(iter(op.outputs.values()))
    if backward:
        ones = GpuTensor.from_numpy(np.ones(out.shape, np.float32))
        grads = op.backward(rec, {n: (ones if t is out else None) for n, t in op.outputs.items()})
        out = next(iter(grads.values()))
    rec.submit()
    out.numpy()  # waits for the GPU
    return (time.perf_counter() - t0) * 1e3


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("-o", "--output")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    results = {}
    for name, make in cases(rng).items():
        row = {}
        for mode, bwd in (("fwd_ms", False), ("fwd_bwd_ms", True)):
            _time(make, bwd)  # warm-up: pipelines
            row[mode] = round(statistics.median(_time(make, bwd) for _ in range(args.repeats)), 2)
        results[name] = row
    emit({"benchmark": "nn_layers", "repeats": args.repeats, "results": results, **machine()}, args.output)


if __name__ == "__main__":
    main()
