"""Forward render benchmark: per-stage GPU time, wall time and Python-side overhead.

Renders random splat scenes (uniform in a cube in front of the camera, sizes chosen so
every scene covers the image about equally) at several splat counts and resolutions and
prints one JSON document::

    python benchmarks/bench_render.py                      # 10k/100k/1M x 256x256, 1920x1080
    python benchmarks/bench_render.py --splats 10000 --sizes 256x256 --repeats 5 -o out.json

Per configuration: ``gpu_ms`` (GPU timestamps per stage: project, depth_sort,
project_visible, map_intersections, tile_sort, rasterize; a stage run by several
compute passes is their sum), ``gpu_total_ms``, ``wall_ms`` (render_forward call until
the GPU finished, median of the repeats), ``overhead_ms`` = wall - GPU total (Python,
command recording, submits, the one mid-render count read-back and idle gaps),
``host_record_ms`` = the render call's time outside ``submit`` and read-backs (the
Python/wgpu-py cost of recording ~36-50 dispatches; measured on further renders
without a profiler, as a training step records them), ``host_record_cpu_ms`` = the
same in this thread's CPU time (robust on a machine shared with other work),
``host_record_profiled_ms`` = the same with the profiler's timed passes,
``submit_cpu_ms`` = CPU time inside the two ``Recorder.submit`` calls (uniform upload,
wgpu-native command encoding and the driver's submit), and the visible and
intersection counts. States are handed back with ``release_forward_state`` after
each render (``--no-release``: not, so every render allocates its outputs afresh).
Larger configurations of a resolution are skipped once one render there took longer
than ``--max-seconds`` (lavapipe is slow).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _report import emit, machine  # noqa: E402
from brushpy.gpu import GpuTensor, Profiler, Recorder, get_context  # noqa: E402
from brushpy.render.camera import Camera  # noqa: E402
from brushpy.render.forward import release_forward_state, render_forward  # noqa: E402
from brushpy.render.splats import Splats  # noqa: E402


def random_splats(n: int, seed: int = 0, sh_degree: int = 0) -> Splats:
    """N splats uniform in [-1, 1]^3 around (0, 0, 4); radius ~ 0.6 of the mean spacing."""
    rng = np.random.default_rng(seed)
    means = rng.uniform(-1.0, 1.0, (n, 3)) + np.array([0.0, 0.0, 4.0])
    spacing = 2.0 / max(n, 1) ** (1.0 / 3.0)
    log_scales = np.log(0.6 * spacing) + rng.normal(0.0, 0.3, (n, 3))
    rotations = rng.normal(size=(n, 4))
    sh = rng.normal(0.0, 0.3, (n, (sh_degree + 1) ** 2, 3))
    raw_opacities = rng.normal(0.0, 1.5, n)
    return Splats.from_numpy(means, rotations, log_scales, sh, raw_opacities)


def camera_for(width: int, height: int) -> Camera:
    """Square pixels, 50 degree vertical field of view, looking down +z from the origin."""
    fy = 0.5 * height / math.tan(math.radians(25.0))
    return Camera(np.eye(4), fy, fy, width / 2.0, height / 2.0, width, height)


class _BlockingTimer:
    """Accumulates the time spent inside ``Recorder.submit`` and ``GpuTensor.numpy``
    (the calls that hand work to the driver or wait for the GPU), so that the rest of
    a render call is the Python-side recording cost. Both wall time and this thread's
    CPU time (``time.thread_time``: unaffected by other processes on a busy machine)."""

    def __init__(self):
        self.seconds = {"submit": 0.0, "numpy": 0.0}
        self.cpu_seconds = {"submit": 0.0, "numpy": 0.0}

    def __enter__(self):
        self._saved = (Recorder.submit, GpuTensor.numpy)
        timer = self

        def wrap(fn, kind):
            def timed(*a, **k):
                t, c = time.perf_counter(), time.thread_time()
                try:
                    return fn(*a, **k)
                finally:
                    timer.seconds[kind] += time.perf_counter() - t
                    timer.cpu_seconds[kind] += time.thread_time() - c
            return timed

        Recorder.submit, GpuTensor.numpy = wrap(Recorder.submit, "submit"), wrap(GpuTensor.numpy, "numpy")
        return self

    def __exit__(self, *exc):
        Recorder.submit, GpuTensor.numpy = self._saved


def _timed_render(splats: Splats, camera: Camera, profiler, release: bool) -> dict:
    """One render into a fresh recorder (as a training step records it); times in ms."""
    ctx = get_context()
    with _BlockingTimer() as blocking:
        t0, c0 = time.perf_counter(), time.thread_time()
        rec = Recorder(profiler=profiler)
        state = render_forward(splats, camera, rec=rec)
        rec.submit()
        t1, c1 = time.perf_counter(), time.thread_time()
        ctx.device.queue.read_buffer(state.final_index.buffer, 0, 16)  # wait for the GPU
        t2 = time.perf_counter()
    if release:
        release_forward_state(state)
    return {
        "state": state,
        "wall": (t2 - t0) * 1e3,
        "host": (t1 - t0 - sum(blocking.seconds.values())) * 1e3,
        "host_cpu": (c1 - c0 - sum(blocking.cpu_seconds.values())) * 1e3,
        "submit_cpu": blocking.cpu_seconds["submit"] * 1e3,
    }


def bench_one(splats: Splats, camera: Camera, repeats: int, release: bool = True) -> dict:
    """GPU stages and wall time from ``repeats`` profiled renders; host recording time
    from ``repeats`` more without a profiler (as in training: no timestamp passes)."""
    ctx = get_context()
    for _ in range(2):  # warm-up: pipelines, buffer pool, bind-group caches
        state = render_forward(splats, camera)
        ctx.device.queue.read_buffer(state.final_index.buffer, 0, 16)
        if release:
            release_forward_state(state)
    profiled, plain, stages = [], [], []
    for _ in range(repeats):
        prof = Profiler()
        profiled.append(_timed_render(splats, camera, prof, release))
        stages.append(prof.read())
    for _ in range(repeats):
        plain.append(_timed_render(splats, camera, None, release))
    state = plain[-1]["state"]
    names = sorted({k for s in stages for k in s})
    gpu = {k: statistics.median(s.get(k, 0.0) for s in stages) for k in names}
    gpu_total = statistics.median(sum(s.values()) for s in stages)
    walls = [r["wall"] for r in profiled]
    wall = statistics.median(walls)

    def med(runs, key):
        return round(statistics.median(r[key] for r in runs), 3)

    return {
        "splats": splats.num_splats,
        "width": camera.width,
        "height": camera.height,
        "visible": state.num_visible,
        "intersections": state.num_intersections,
        "gpu_ms": {k: round(v, 3) for k, v in gpu.items()},
        "gpu_total_ms": round(gpu_total, 3),
        "wall_ms": round(wall, 3),
        "wall_ms_all": [round(w, 3) for w in walls],
        "overhead_ms": round(wall - gpu_total, 3),
        "host_record_ms": med(plain, "host"),
        "host_record_cpu_ms": med(plain, "host_cpu"),
        "host_record_profiled_ms": med(profiled, "host"),
        "submit_cpu_ms": med(plain, "submit_cpu"),
        "buffers_released": release,
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--splats", default="10000,100000,1000000", help="comma-separated splat counts")
    ap.add_argument("--sizes", default="256x256,1920x1080", help="comma-separated WxH image sizes")
    ap.add_argument("--repeats", type=int, default=3, help="timed renders per configuration (median reported)")
    ap.add_argument("--max-seconds", type=float, default=30.0,
                    help="skip larger splat counts at a resolution once one render there took longer")
    ap.add_argument("--no-release", action="store_true",
                    help="keep every ForwardState (no release_forward_state): outputs allocated per render")
    ap.add_argument("-o", "--output", help="also write the JSON here")
    args = ap.parse_args(argv)

    ctx = get_context()
    counts = [int(float(s)) for s in args.splats.split(",")]
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",")]
    results, skipped = [], []
    for width, height in sizes:
        too_slow = False
        for n in sorted(counts):
            if too_slow:
                skipped.append({"splats": n, "width": width, "height": height,
                                "reason": f"a smaller scene took over {args.max_seconds} s per render"})
                continue
            splats = random_splats(n)
            r = bench_one(splats, camera_for(width, height), args.repeats, release=not args.no_release)
            results.append(r)
            print(json.dumps(r), file=sys.stderr)
            too_slow = r["wall_ms"] > 1e3 * args.max_seconds
            del splats
    out = {
        "benchmark": "forward render",
        **machine(ctx),
        "results": results,
        "skipped": skipped,
    }
    emit(out, args.output)
    return out


if __name__ == "__main__":
    main()
