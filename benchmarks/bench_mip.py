"""Benchmark: MIP training iterations per second (GPU timestamps per stage + wall time).

Usage: python benchmarks/bench_mip.py [--resolution 128] [--gaussians 12145] [--views 3]
       [--iterations 20] [--volume PATH] [--out FILE]

One iteration = render every view, loss (MSE + SSIM) forward/backward, render
backward, gradient clipping, Adam, clamps: one command buffer and one loss
readback. Gaussians are initialised from the bright voxels of the neuron volume
(``../shared/datasets/neuron_tiff/test.tif`` when present, else a synthetic
volume of random tubes). Prints JSON: it/s from wall time over ``--iterations``
steps after two warm-up steps, and the median GPU ms per stage of a step.
On lavapipe (software Vulkan) these are CPU figures, ~100x a GPU's.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from _report import emit, machine, median
from brushpy.gpu import Profiler, get_context
from brushpy.mip.camera import box_extents, orbit_cameras
from brushpy.cli.mip import training_angles
from brushpy.mip.model import MipGaussians, init_from_volume
from brushpy.mip.train import MipTrainConfig, MipTrainer
from brushpy.mip.volume import load_volume, normalise_volume, true_mips

DEFAULT_VOLUME = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "neuron_tiff" / "test.tif"


def synthetic_volume(shape=(64, 128, 128), seed: int = 0) -> np.ndarray:
    """Random bright tubes (random walks) in a dark volume, normalised to [0, 1]."""
    rng = np.random.default_rng(seed)
    vol = np.zeros(shape, np.float32)
    for _ in range(12):
        p = rng.uniform(0, 1, 3) * np.array(shape)
        d = rng.normal(size=3)
        for _ in range(200):
            d = d / np.linalg.norm(d) + 0.3 * rng.normal(size=3)
            p = np.clip(p + d / np.linalg.norm(d), 0, np.array(shape) - 1)
            z, y, x = p.astype(int)
            vol[z, y, x] = max(vol[z, y, x], rng.uniform(0.4, 1.0))
    return normalise_volume(vol, "synthetic")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", type=int, default=128, help="square MIP size in pixels")
    ap.add_argument("--gaussians", type=int, default=12145)
    ap.add_argument("--views", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--volume", default=None, help="volume file (default: the shared neuron test.tif, else synthetic)")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args()
    ctx = get_context()
    path = Path(args.volume) if args.volume else (DEFAULT_VOLUME if DEFAULT_VOLUME.exists() else None)
    vol = load_volume(path) if path else synthetic_volume()
    E = box_extents(vol.shape)
    res = (args.resolution, args.resolution)
    cams = orbit_cameras(E, training_angles(args.views), res)
    gts = true_mips(vol, cams, step=1.0)
    model = MipGaussians.from_numpy(**init_from_volume(vol, args.gaussians, extents=E))
    prof = Profiler()
    tr = MipTrainer(model, cams, gts, MipTrainConfig(iterations=args.iterations + 2), profiler=prof)
    stage_rows = []
    for _ in range(2):  # warm-up: pipelines, bind groups
        tr.step()
        prof.read()
    t0 = time.perf_counter()
    for i in range(args.iterations):
        loss = tr.step(read_loss=True)
        stage_rows.append(prof.read())
    wall = time.perf_counter() - t0
    tr.check()
    stages = {}
    for k in stage_rows[0] if stage_rows and stage_rows[0] else []:
        stages[k] = median(r.get(k) for r in stage_rows)
    report = {
        "benchmark": "mip_train_step",
        **machine(ctx),
        "volume": str(path) if path else "synthetic",
        "resolution": list(res),
        "gaussians": model.num_gaussians,
        "views": args.views,
        "iterations": args.iterations,
        "wall_s": wall,
        "it_per_s": args.iterations / wall,
        "gpu_ms_per_step": stages,
        "gpu_ms_total": sum(v for v in stages.values() if v is not None) if stages else None,
        "final_loss": loss,
    }
    emit(report, args.out)


if __name__ == "__main__":
    main()
