"""Splat file formats: size on disk, write time and read time per format (JSON on stdout).

Scenes are made from a real splat file (default ``../shared/splats/biker.spz``, 152,746
splats at SH degree 3): a scene of N splats draws N of its splats (without replacement when
N is at most the file's count, else with replacement, each copy moved by one standard
deviation of its own Gaussian so no two coincide). Every format in
:data:`brushpy.io.formats.WRITE_FORMATS` is written and read back ``--repeats`` times; the
median is reported, with bytes per splat and the read-back's largest position error
relative to the scene's extent. Runs on the CPU (no GPU work), so the figures depend on the
machine and its load, which the report carries.

Usage: ``python benchmarks/bench_formats.py [--counts 100000 1000000] [--source FILE]
[--formats ply spz ...] [--repeats 3] [--sh-degree 3] [--out f.json]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _report import emit
from _report import host as machine_host

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("BRUSHPY_SHARED", REPO.parent / "shared"))
sys.path.insert(0, str(REPO))

from brushpy.io.formats import WRITE_FORMATS, read_splats, write_splats  # noqa: E402
from brushpy.io.ply import SplatData  # noqa: E402

_EXT = {"ply": ".ply", "compressed.ply": ".compressed.ply", "spz": ".spz", "sog": ".sog", "splat": ".splat"}


def make_scene(source: SplatData, n: int, seed: int = 0, sh_degree: int | None = None) -> SplatData:
    """``n`` splats drawn from ``source`` (see the module docstring).

    ``sh_degree`` above the source's adds the missing bands as Gaussian noise (standard
    deviation 0.1 / band index), so that the SH paths of each format are timed and sized; no
    shared file has higher bands.
    """
    rng = np.random.default_rng(seed)
    m = source.num_splats
    replace = n > m
    idx = rng.choice(m, size=n, replace=replace)
    means = source.means[idx].copy()
    if replace:
        sigma = np.exp(source.log_scales[idx]).max(axis=1, keepdims=True)
        means += rng.standard_normal((n, 3)).astype(np.float32) * sigma
    sh = source.sh_coeffs[idx]
    if sh_degree is not None and sh_degree > source.sh_degree:
        k = (sh_degree + 1) ** 2
        full = np.zeros((n, k, 3), np.float32)
        full[:, : sh.shape[1]] = sh
        for j in range(sh.shape[1], k):
            band = int(np.floor(np.sqrt(j)))
            full[:, j] = rng.standard_normal((n, 3)).astype(np.float32) * (0.1 / band)
        sh = full
    return SplatData(
        means=means,
        rotations=source.rotations[idx],
        log_scales=source.log_scales[idx],
        sh_coeffs=sh,
        raw_opacities=source.raw_opacities[idx],
    )


def bench_one(scene: SplatData, fmt: str, folder: Path, repeats: int) -> dict:
    path = folder / f"scene{_EXT[fmt]}"
    writes, reads = [], []
    back = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        write_splats(path, scene, format=fmt)
        writes.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        back = read_splats(path)
        reads.append(time.perf_counter() - t0)
    size = path.stat().st_size
    extent = float(np.ptp(scene.means, axis=0).max()) or 1.0
    pos_err = None
    if back is not None and back.num_splats == scene.num_splats:
        # formats that reorder splats (spatial sort) are compared by nearest match
        from scipy.spatial import cKDTree

        dist, _ = cKDTree(scene.means).query(back.means, k=1)
        pos_err = float(dist.max() / extent)
    return {
        "format": fmt,
        "bytes": size,
        "bytes_per_splat": round(size / scene.num_splats, 2),
        "write_s": round(statistics.median(writes), 3),
        "read_s": round(statistics.median(reads), 3),
        "splats_read": None if back is None else back.num_splats,
        "sh_degree_read": None if back is None else back.sh_degree,
        "max_position_error_rel_extent": pos_err,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--source", type=Path, default=SHARED / "splats" / "biker.spz")
    ap.add_argument("--formats", nargs="+", default=list(WRITE_FORMATS), choices=list(WRITE_FORMATS))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sh-degree", type=int, default=3, help="add synthetic SH bands up to this degree (see make_scene)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    source = read_splats(args.source)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.counts:
            scene = make_scene(source, n, sh_degree=args.sh_degree)
            for fmt in args.formats:
                row = bench_one(scene, fmt, Path(tmp), args.repeats)
                row["splats"] = n
                rows.append(row)
                print(row, file=sys.stderr, flush=True)
    report = {
        "benchmark": "formats",
        "host": machine_host(),
        "source": str(args.source),
        "source_splats": source.num_splats,
        "source_sh_degree": source.sh_degree,
        "repeats": args.repeats,
        "sh_degree": args.sh_degree,
        "rows": rows,
    }
    emit(report, args.out)


if __name__ == "__main__":
    main()
