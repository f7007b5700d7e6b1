"""Benchmark: per-stage GPU time of the render backward (and forward when present).

Usage::

    python benchmarks/bench_backward.py [--sizes 10000,100000,1000000] [--res 256x256,1920x1080]
                                        [--repeats 3] [--out bench_backward.json]
                                        [--outputs RGB,RGB+ED]

Scene: N random splats in the view frustum of a 60° camera (depth 2..8,
anisotropic scales, random rotations, opacities 0.1..0.9, SH degree 3 or the
highest degree whose coefficients fit in one storage binding). The same scene
is rendered at every resolution.

Each repeat records the GPU forward (``brushpy.render.forward.render_forward``,
its own stages) and the backward (stages ``rasterize_backward`` and
``project_backward``) into one recorder. ``--outputs`` (comma-separated, e.g.
``RGB,RGB+ED``) renders each configuration with those ``outputs=`` in turn and,
for a depth output, backpropagates a random depth cotangent too; every output
after the first gets ``forward_ratio`` / ``backward_ratio`` against the first
(same scene, same process: the cost of depth).

Output: JSON list, one record per (N, resolution): GPU milliseconds per stage
(timestamp queries, median over repeats), forward and backward totals and
their ratio, wall milliseconds per backward (record + submit + wait),
visible/intersection counts and the device. Figures on lavapipe (software Vulkan) are ~100x slower than
on a GPU and are only meaningful as ratios.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from _report import emit, machine  # noqa: E402
from brushpy.gpu import GpuTensor, Profiler, Recorder, get_context  # noqa: E402
from brushpy.render.backward import RenderBackward  # noqa: E402
from brushpy.render.camera import Camera  # noqa: E402
from brushpy.render.forward import render_forward  # noqa: E402
from brushpy.render.splats import Splats  # noqa: E402


def make_splats(n: int, sh_degree: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    z = rng.uniform(2.0, 8.0, n)
    half = math.tan(math.radians(30.0))
    means = np.stack([rng.uniform(-1, 1, n) * half * 1.3 * z, rng.uniform(-1, 1, n) * half * 1.3 * z, z], -1)
    # about 30k splats fill the view at these sizes; smaller when there are more
    base = math.log(0.04 * (30000.0 / n) ** (1.0 / 3.0))
    k = (sh_degree + 1) ** 2
    sh = rng.normal(size=(n, k, 3)) * 0.2
    sh[:, 0] = rng.normal(size=(n, 3)) * 0.5
    return {
        "means": means,
        "rotations": rng.normal(size=(n, 4)),
        "log_scales": base + rng.normal(size=(n, 3)) * 0.5,
        "sh_coeffs": sh,
        "raw_opacities": rng.uniform(-2.2, 2.2, n),
    }


def camera(width: int, height: int) -> Camera:
    fy = 0.5 * height / math.tan(math.radians(30.0))
    return Camera(np.eye(4), fy, fy, width / 2.0, height / 2.0, width, height)


def bench(n: int, width: int, height: int, repeats: int, ppt: int | None = None, outputs: str = "RGB") -> dict:
    ctx = get_context()
    degree = 3
    while degree > 0 and n * (degree + 1) ** 2 * 12 > ctx.max_binding_bytes:
        degree -= 1
    sp = make_splats(n, degree)
    cam = camera(width, height)
    splats = Splats.from_numpy(*(sp[k] for k in Splats.PARAM_NAMES))
    v_image = GpuTensor.from_numpy(np.random.default_rng(1).normal(size=(height, width, 4)).astype(np.float32) * 1e-3, "v_image")
    depth = "D" in outputs.split("+") or "ED" in outputs.split("+")
    v_depth = GpuTensor.from_numpy(np.random.default_rng(2).normal(size=(height, width)).astype(np.float32) * 1e-3,
                                   "v_depth") if depth else None
    kb = RenderBackward(defines={"PIXELS_PER_THREAD": ppt} if ppt else None)
    stages: dict[str, list] = {}
    walls = []
    for it in range(repeats + 1):
        prof = Profiler()
        rec = Recorder(profiler=prof)
        state = render_forward(splats, cam, rec=rec, outputs=outputs)  # its own stages: project, depth_sort, ..., rasterize
        rec.submit()
        ctx.device.queue.read_buffer(state.image.buffer, 0, 16)  # wait
        t0 = time.perf_counter()
        grads = kb.record(rec, state, splats, v_image, v_depth=v_depth)
        rec.submit()
        ctx.device.queue.read_buffer(grads.means.buffer, 0, 16)
        wall = (time.perf_counter() - t0) * 1e3
        times = prof.read()
        if it == 0:
            continue  # warm-up (pipeline compilation)
        walls.append(wall)
        for k, ms in times.items():
            stages.setdefault(k, []).append(ms)
    med = {k: float(np.median(v)) for k, v in stages.items()}
    backward_stages = ("rasterize_backward", "project_backward")
    bwd = sum(med.get(k, 0.0) for k in backward_stages)
    fwd_ms = sum(v for k, v in med.items() if k not in backward_stages)
    return {
        "splats": n,
        "outputs": outputs,
        "width": width,
        "height": height,
        "sh_degree": degree,
        "visible": state.num_visible,
        "intersections": state.num_intersections,
        "gpu_ms": med,
        "backward_gpu_ms": bwd,
        "backward_wall_ms": float(np.median(walls)),
        "forward_gpu_ms": fwd_ms,
        "backward_over_forward": (bwd / fwd_ms) if fwd_ms > 0 else None,
        "features": sorted(ctx.features),
        "pixels_per_thread": kb.pixels_per_thread,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--res", default="256x256,1920x1080")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=None, help="write the JSON here too")
    ap.add_argument("--pixels-per-thread", type=int, default=None,
                    help="rasterize-backward pixels per thread (default: the device's, see default_pixels_per_thread)")
    ap.add_argument("--outputs", default="RGB",
                    help="comma-separated render outputs to compare, e.g. RGB,RGB+ED (the first is the baseline)")
    args = ap.parse_args(argv)
    out = []
    for n in (int(s) for s in args.sizes.split(",")):
        for res in args.res.split(","):
            w, h = (int(v) for v in res.lower().split("x"))
            first = None
            for outputs in args.outputs.split(","):
                rec = bench(n, w, h, args.repeats, args.pixels_per_thread, outputs)
                if first is None:
                    first = rec
                else:
                    rec["forward_ratio"] = rec["forward_gpu_ms"] / max(first["forward_gpu_ms"], 1e-9)
                    rec["backward_ratio"] = rec["backward_gpu_ms"] / max(first["backward_gpu_ms"], 1e-9)
                    rec["baseline_outputs"] = first["outputs"]
                print(json.dumps(rec), flush=True)
                out.append(rec)
    emit({"benchmark": "render_backward", **machine(), "results": out}, args.out)
    return out


if __name__ == "__main__":
    main()
