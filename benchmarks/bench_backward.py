"""Benchmark: per-stage GPU time of the render backward (and forward when present).

Usage::

    python benchmarks/bench_backward.py [--sizes 10000,100000,1000000] [--res 256x256,1920x1080]
                                        [--repeats 3] [--out bench_backward.json]

Scene: N random splats in the view frustum of a 60° camera (depth 2..8,
anisotropic scales, random rotations, opacities 0.1..0.9, SH degree 3 or the
highest degree whose coefficients fit in one storage binding). The same scene
is rendered at every resolution.

The forward state comes from the GPU forward renderer
(``brushpy.render.forward.render_forward``) when it is installed; otherwise it
is built in numpy from the float64 reference projection (exact depth order and
tile lists; every pixel walks its whole tile list, i.e. no early stop, which
makes the backward's figures pessimistic) and the forward is not timed.

Output: JSON list, one record per (N, resolution): GPU milliseconds per stage
(timestamp queries, median over repeats), wall milliseconds per backward
(record + submit + wait), intersection counts, the device and which state
path was used. Figures on lavapipe (software Vulkan) are ~100x slower than
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

from brushpy.gpu import GpuTensor, Profiler, Recorder, get_context  # noqa: E402
from brushpy.render.backward import RenderBackward  # noqa: E402
from brushpy.render.camera import Camera  # noqa: E402
from brushpy.render.splats import Splats  # noqa: E402
from brushpy.render.state import TILE_SIZE, ForwardState  # noqa: E402


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


def numpy_state(sp: dict, cam: Camera) -> ForwardState:
    """ForwardState from the float64 reference projection (vectorised; no early stop)."""
    from tests.reference.render import project

    n = sp["means"].shape[0]
    p = project(sp["means"], sp["rotations"], sp["log_scales"], sp["sh_coeffs"], sp["raw_opacities"],
                cam.world_to_camera, cam.intrinsics, cam.width, cam.height)
    ids = np.nonzero(p["visible"])[0]
    order = ids[np.argsort(p["depth"][ids], kind="stable")]
    v = order.size
    projected = np.concatenate([p["xy"][order], p["conic"][order], p["color"][order], p["opacity"][order, None]], -1)
    tx, ty = -(-cam.width // TILE_SIZE), -(-cam.height // TILE_SIZE)
    xy, ext = p["xy"][order], p["extent"][order]
    x0 = np.clip(np.floor((xy[:, 0] - ext[:, 0]) / TILE_SIZE), 0, tx - 1).astype(np.int64)
    x1 = np.clip(np.floor((xy[:, 0] + ext[:, 0]) / TILE_SIZE), 0, tx - 1).astype(np.int64)
    y0 = np.clip(np.floor((xy[:, 1] - ext[:, 1]) / TILE_SIZE), 0, ty - 1).astype(np.int64)
    y1 = np.clip(np.floor((xy[:, 1] + ext[:, 1]) / TILE_SIZE), 0, ty - 1).astype(np.int64)
    w = x1 - x0 + 1
    counts = w * (y1 - y0 + 1)
    total = int(counts.sum())
    cid = np.repeat(np.arange(v), counts)
    local = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    tile = (y0[cid] + local // w[cid]) * tx + x0[cid] + local % w[cid]
    perm = np.argsort(tile, kind="stable")  # cid is already in depth order
    compact_from_isect = cid[perm].astype(np.uint32)
    per_tile = np.bincount(tile, minlength=tx * ty)
    ends = np.cumsum(per_tile)
    tile_ranges = np.stack([ends - per_tile, ends], -1).astype(np.uint32)
    ptile = (np.arange(cam.height)[:, None] // TILE_SIZE) * tx + np.arange(cam.width)[None, :] // TILE_SIZE
    final_index = tile_ranges[ptile, 1]
    image = np.zeros((cam.height, cam.width, 4), np.float32)
    image[..., 3] = 0.5
    up = GpuTensor.from_numpy
    return ForwardState(cam, (0.0, 0.0, 0.0), n, v, total, tx, ty, up(image, "image"), up(projected.astype(np.float32), "projected"),
                        up(order.astype(np.uint32), "global_from_compact"), up(compact_from_isect, "compact_from_isect"),
                        up(tile_ranges, "tile_ranges"), up(final_index.astype(np.uint32), "final_index"),
                        int(round(math.sqrt(sp["sh_coeffs"].shape[1]))) - 1)


def gpu_forward():
    try:
        from brushpy.render.forward import render_forward
    except ImportError:
        return None
    return render_forward


def bench(n: int, width: int, height: int, repeats: int) -> dict:
    ctx = get_context()
    degree = 3
    while degree > 0 and n * (degree + 1) ** 2 * 12 > ctx.max_binding_bytes:
        degree -= 1
    sp = make_splats(n, degree)
    cam = camera(width, height)
    splats = Splats.from_numpy(*(sp[k] for k in ("means", "rotations", "log_scales", "sh_coeffs", "raw_opacities")))
    v_image = GpuTensor.from_numpy(np.random.default_rng(1).normal(size=(height, width, 4)).astype(np.float32) * 1e-3, "v_image")
    kb = RenderBackward()
    fwd = gpu_forward()
    stages: dict[str, list] = {}
    walls = []
    state = None
    for it in range(repeats + 1):
        prof = Profiler()
        rec = Recorder(profiler=prof)
        if fwd is not None:
            state = fwd(splats, cam, rec=rec)  # its own stages: project, depth_sort, ..., rasterize
        elif state is None:
            state = numpy_state(sp, cam)
        rec.submit()
        ctx.device.queue.read_buffer(state.image.buffer, 0, 16)  # wait
        t0 = time.perf_counter()
        grads = kb.record(rec, state, splats, v_image)
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
        "width": width,
        "height": height,
        "sh_degree": degree,
        "visible": state.num_visible,
        "intersections": state.num_intersections,
        "state": "gpu-forward" if fwd is not None else "numpy-reference (no early stop)",
        "gpu_ms": med,
        "backward_gpu_ms": bwd,
        "backward_wall_ms": float(np.median(walls)),
        "forward_gpu_ms": fwd_ms if fwd is not None else None,
        "backward_over_forward": (bwd / fwd_ms) if fwd is not None and fwd_ms > 0 else None,
        "device": ctx.describe()["adapter"],
        "features": sorted(ctx.features),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--res", default="256x256,1920x1080")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=None, help="write the JSON here too")
    args = ap.parse_args(argv)
    out = []
    for n in (int(s) for s in args.sizes.split(",")):
        for res in args.res.split(","):
            w, h = (int(v) for v in res.lower().split("x"))
            rec = bench(n, w, h, args.repeats)
            print(json.dumps(rec), flush=True)
            out.append(rec)
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
