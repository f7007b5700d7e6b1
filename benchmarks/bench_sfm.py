"""Structure-from-motion benchmark: ``brushpy sfm`` on a COLMAP dataset's photos, its poses ignored,
measured against the dataset's own model (JSON on stdout).

Reported: images registered / total, points, mean reprojection error, the wall time of each
stage (and the host's load average before and after: the machine may be shared), and the pose
errors after a similarity alignment of the camera centres (:func:`brushpy.data.pose_compare.
compare_poses`), both fitted to every image (``all``) and to the largest agreeing subset
(``robust``, RANSAC; its inlier count shows how many images the two models agree on).
``jumps`` counts, in each model, the steps between consecutive images (by name) longer than 4x
the median step: in a video capture every such step is a misplaced segment.

Usage: ``python benchmarks/bench_sfm.py [--dataset beer_colmap] [--max-image-size 1024]
[--matcher auto] [--mapper incremental] [--work /tmp/bench_sfm] [--out f.json]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from _report import emit, host

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("BRUSHPY_SHARED", REPO.parent / "shared"))
sys.path.insert(0, str(REPO))


def _jumps(poses: dict[str, np.ndarray]) -> list[str]:
    from brushpy.data.pose_compare import camera_centre, path_jumps
    from brushpy.data.scene import natural_key

    names = sorted(poses, key=natural_key)
    c = np.stack([camera_centre(poses[n]) for n in names])
    step = np.linalg.norm(np.diff(c, axis=0), axis=1)
    med = float(np.median(step))
    return [f"{names[i]}->{names[i + 1]} ({step[i] / med:.1f}x)" for i in path_jumps(c, ratio=4.0)]


def _errors(cmp) -> dict:
    return {
        "fitted_to": int(cmp.inliers.sum()),
        "median_rotation_deg": round(cmp.median_rotation_deg, 3),
        "median_centre_error_pct_extent": round(100 * cmp.median_centre_error_fraction, 3),
        "images_within_1deg": int((cmp.rotation_error_deg < 1.0).sum()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="beer_colmap")
    ap.add_argument("--max-image-size", type=int, default=1024)
    ap.add_argument("--matcher", default="auto")
    ap.add_argument("--mapper", default="incremental")
    ap.add_argument("--work", default="/tmp/bench_sfm")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    from brushpy.data.pose_compare import compare_poses, read_poses
    from brushpy.data.sfm import SfmOptions, run_sfm

    dataset = SHARED / "datasets" / args.dataset
    out = Path(args.work) / f"{args.dataset}_{args.max_image_size}_{args.matcher}_{args.mapper}"
    if out.exists():
        shutil.rmtree(out)
    before = host()
    t0 = time.perf_counter()
    opts = SfmOptions(max_image_size=args.max_image_size, matcher=args.matcher, mapper=args.mapper, progress=False)
    result = run_sfm(dataset / "images", out, opts, log_fn=lambda m: print(m, file=sys.stderr))
    total = time.perf_counter() - t0
    cpu = os.times()
    est, ref = read_poses(out), read_poses(dataset)
    report = {
        "benchmark": "sfm",
        "dataset": args.dataset,
        "max_image_size": args.max_image_size,
        "host_before": before,
        "host_after": host(),
        "process_cpu_s": round(cpu.user + cpu.system, 1),
        "images": result.images,
        "registered": result.registered,
        "registered_pct": round(100 * result.registered / result.images, 1),
        "points": result.points,
        "mean_reprojection_error_px": round(result.mean_reprojection_error, 3),
        "matcher": result.matcher,
        "mapper": result.mapper,
        "stage_s": {k: round(v, 1) for k, v in result.stage_seconds.items()},
        "total_s": round(total, 1),
        "pose_errors_all": _errors(compare_poses(est, ref)),
        "pose_errors_robust": _errors(compare_poses(est, ref, robust=True)),
        "jumps_estimated": _jumps(est),
        "jumps_reference": _jumps(ref),
        "output": str(out),
    }
    emit(report, args.out)


if __name__ == "__main__":
    main()
