"""Dataset loading benchmark: wall time and peak host memory (JSON on stdout).

Each dataset is loaded in a fresh subprocess so peak memory (``ru_maxrss``)
belongs to that load alone. Reported per dataset:

* ``cameras_s``: parse cameras + read image headers (+ undistortion plans);
* ``decode_s``: decode every image (thread pool, ``--workers`` threads);
* ``total_s``: both, i.e. ``load_dataset(..., decode=True)``;
* ``peak_rss_mib``: process peak resident memory (includes the Python runtime);
* ``tracemalloc_peak_mib``: peak of Python/NumPy allocations during the load;
* ``pixels_mib``: bytes of the decoded images kept in memory.

Usage: ``python benchmarks/bench_data.py [--workers 2] [--datasets beer_colmap lego_400] [--out f.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from _report import emit
from _report import host as machine_host

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("BRUSHPY_SHARED", REPO.parent / "shared"))


def _child(dataset: str, workers: int, max_resolution: int) -> dict:
    import resource
    import time
    import tracemalloc

    sys.path.insert(0, str(REPO))
    from brushpy.data import LoadConfig, load_dataset

    path = SHARED / "datasets" / dataset
    cfg = LoadConfig(max_resolution=max_resolution, num_workers=workers, progress=False)
    tracemalloc.start()
    t0 = time.perf_counter()
    scene = load_dataset(path, cfg, decode=False)
    t1 = time.perf_counter()
    scene.decode()
    t2 = time.perf_counter()
    _cur, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    pixels = sum(v.image.nbytes + (v.mask.nbytes if v.mask is not None else 0) for v in scene.views)
    v0 = scene.views[0]
    return {
        "dataset": dataset,
        "workers": workers,
        "max_resolution": max_resolution,
        "train_views": len(scene.train_views),
        "eval_views": len(scene.eval_views),
        "image_size": [v0.camera.width, v0.camera.height],
        "init_points": len(scene.init_points) if scene.init_points is not None else 0,
        "cameras_s": round(t1 - t0, 4),
        "decode_s": round(t2 - t1, 4),
        "total_s": round(t2 - t0, 4),
        "ms_per_image": round(1000 * (t2 - t0) / len(scene.views), 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "tracemalloc_peak_mib": round(peak / 2**20, 1),
        "pixels_mib": round(pixels / 2**20, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-resolution", type=int, default=1920)
    ap.add_argument("--datasets", nargs="+", default=["beer_colmap", "lego_400"])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.workers, args.max_resolution)))
        return
    results = []
    for name in args.datasets:
        if not (SHARED / "datasets" / name).exists():
            results.append({"dataset": name, "skipped": f"{SHARED / 'datasets' / name} not found"})
            continue
        out = subprocess.run(
            [sys.executable, __file__, "--child", name, "--workers", str(args.workers),
             "--max-resolution", str(args.max_resolution)],
            check=True, capture_output=True, text=True,
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    report = {"benchmark": "data_load", "host": machine_host(), "results": results}
    emit(report, args.out)


if __name__ == "__main__":
    main()
