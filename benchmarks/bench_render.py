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
Python/wgpu-py cost of recording ~45 dispatches), and the visible and intersection counts. Larger configurations of a resolution are skipped once
one render there took longer than ``--max-seconds`` (lavapipe is slow).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from brushpy.gpu import GpuTensor, Profiler, Recorder, get_context  # noqa: E402
from brushpy.render.camera import Camera  # noqa: E402
from brushpy.render.forward import render_forward  # noqa: E402
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
    a render call is the Python-side recording cost."""

    def __init__(self):
        self.seconds = 0.0

    def __enter__(self):
        self._saved = (Recorder.submit, GpuTensor.numpy)
        timer = self

        def wrap(fn):
            def timed(*a, **k):
                t = time.perf_counter()
                try:
                    return fn(*a, **k)
                finally:
                    timer.seconds += time.perf_counter() - t
            return timed

        Recorder.submit, GpuTensor.numpy = wrap(Recorder.submit), wrap(GpuTensor.numpy)
        return self

    def __exit__(self, *exc):
        Recorder.submit, GpuTensor.numpy = self._saved


def bench_one(splats: Splats, camera: Camera, repeats: int) -> dict:
    ctx = get_context()
    state = render_forward(splats, camera)  # warm-up: pipelines, allocator
    ctx.device.queue.read_buffer(state.final_index.buffer, 0, 16)
    walls, stages, hosts = [], [], []
    for _ in range(repeats):
        prof = Profiler()
        with _BlockingTimer() as blocking:
            t0 = time.perf_counter()
            rec = Recorder(profiler=prof)
            state = render_forward(splats, camera, rec=rec)
            rec.submit()
            t1 = time.perf_counter()
            ctx.device.queue.read_buffer(state.final_index.buffer, 0, 16)  # wait for the GPU
            walls.append((time.perf_counter() - t0) * 1e3)
        hosts.append((t1 - t0 - blocking.seconds) * 1e3)
        stages.append(prof.read())
    names = sorted({k for s in stages for k in s})
    gpu = {k: statistics.median(s.get(k, 0.0) for s in stages) for k in names}
    gpu_total = statistics.median(sum(s.values()) for s in stages)
    wall = statistics.median(walls)
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
        "host_record_ms": round(statistics.median(hosts), 3),
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--splats", default="10000,100000,1000000", help="comma-separated splat counts")
    ap.add_argument("--sizes", default="256x256,1920x1080", help="comma-separated WxH image sizes")
    ap.add_argument("--repeats", type=int, default=3, help="timed renders per configuration (median reported)")
    ap.add_argument("--max-seconds", type=float, default=30.0,
                    help="skip larger splat counts at a resolution once one render there took longer")
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
            r = bench_one(splats, camera_for(width, height), args.repeats)
            results.append(r)
            print(json.dumps(r), file=sys.stderr)
            too_slow = r["wall_ms"] > 1e3 * args.max_seconds
            del splats
    out = {
        "benchmark": "forward render",
        "device": ctx.describe()["adapter"],
        "backend": ctx.describe()["backend"],
        "python": platform.python_version(),
        "results": results,
        "skipped": skipped,
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")
    return out


if __name__ == "__main__":
    main()
