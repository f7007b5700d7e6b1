"""Benchmark: fused L1 + SSIM loss forward + backward (GPU timestamps per stage + wall time).

Usage: python benchmarks/bench_loss.py [--sizes 800x800,1920x1080] [--repeats 3] [--out FILE]

Prints (and optionally writes) JSON: per size, the median over repeats of the
GPU time of the "loss_forward" (SSIM statistics, loss reduction) and
"loss_backward" stages in milliseconds and the wall time of record+submit+wait.
On lavapipe (software Vulkan) these are CPU figures, ~100x a GPU's.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _report import emit, machine, median
from brushpy.gpu import GpuTensor, Profiler, Recorder, get_context
from brushpy.loss import ImageLoss, pack_rgba8


def bench(h: int, w: int, repeats: int, mode: str) -> dict:
    rng = np.random.default_rng(0)
    image = GpuTensor.from_numpy(rng.random((h, w, 4), dtype=np.float32), "render")
    gt = GpuTensor.from_numpy(pack_rgba8(rng.integers(0, 256, (h, w, 4), dtype=np.uint8)), "gt")
    v = GpuTensor.empty((h, w, 4), np.float32, "v_image")
    fn = ImageLoss()
    prof = Profiler()
    rows = []
    for i in range(repeats + 1):  # first run warms up pipelines and scratch
        rec = Recorder(profiler=prof)
        t0 = time.perf_counter()
        fn.record(rec, image, gt, v_image=v, alpha_mode=mode, background=(0.1, 0.1, 0.1))
        rec.submit()
        loss = fn.read_loss()
        wall = (time.perf_counter() - t0) * 1e3
        stages = prof.read()
        if i:
            rows.append((stages.get("loss_forward", None), stages.get("loss_backward", None), wall))
    med = [median(c) for c in zip(*rows)]
    return {
        "size": f"{w}x{h}",
        "alpha_mode": mode,
        "gpu_ms": {"loss_forward": med[0], "loss_backward": med[1], "total": None if med[0] is None else med[0] + med[1]},
        "wall_ms": med[2],
        "loss": loss,
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="800x800,1920x1080", help="WxH list")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--mode", default="transparent", choices=("opaque", "transparent", "masked"))
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    ctx = get_context()
    results = []
    for s in args.sizes.split(","):
        w, h = (int(x) for x in s.lower().split("x"))
        results.append(bench(h, w, args.repeats, args.mode))
    report = {"benchmark": "loss_l1_ssim", **machine(ctx),
              "repeats": args.repeats, "results": results}
    emit(report, args.out)
    return report


if __name__ == "__main__":
    main()
