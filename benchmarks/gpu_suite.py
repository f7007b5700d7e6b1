"""GPU suite: every speed figure of issue 13 from one command, for a lent GPU machine.

Usage::

    python benchmarks/gpu_suite.py [--out DIR] [--quick] [--sections forward,sort,...]
                                   [--budget SECTION=SECONDS ...] [--budget-scale F]
                                   [--datasets DIR]

Prints the adapter (``brushpy.gpu.get_context().describe()``), then runs these
sections in turn, each with its own time budget (seconds, defaults sized so the
whole suite takes under 8 minutes on an H100):

=================  =====================================================  ======
section            what (full mode)                                       budget
=================  =====================================================  ======
forward            ``bench_render.bench_one``: 100k and 1M splats at      45
                   1920x1080, GPU ms per stage, wall, host recording
backward           ``bench_backward.bench``: the same sizes, forward and  60
                   backward GPU ms per stage, backward wall
sort               ``bench_sort.bench_size``: 1M and 10M (u32, u32) pairs 40
adam               ``bench_adam.bench``: one Adam step, 1M splats, SH 3   25
loss               ``bench_loss.bench``: fused L1+SSIM fwd+bwd, 1920x1080 20
train_lego_400     ``bench_train.bench``: lego_400 at full resolution     90
                   (400x400), as many steps as fit the budget
train_beer_colmap  the same on beer_colmap (1280x720)                     120
=================  =====================================================  ======

Times are GPU timestamps where the device has ``timestamp-query``; every record
also carries wall times, which are what counts where it does not. A section
checks its budget between configurations (training: between steps); once it
has run out, the configurations left are listed under ``skipped`` and the
section's status is ``partial``. The training sections stop at their budget by
design ("as many steps as fit"): ``stopped_by_budget`` and the step counts say
how far they got, and their status stays ``ok``. A section that raises is recorded with status
``error``, its message and traceback (and whatever it had finished), and the
suite goes on to the next one.

Output (``--out DIR``; default ``$OUT`` when set, else ``gpu_suite_out``): one
``<section>.json`` per section run (``section``, ``status``, ``budget_s``,
``elapsed_s``, ``quick``, ``results``, ``skipped``, plus ``error`` /
``traceback`` on failure) and ``summary.json`` (the adapter, the machine, each
section's status, elapsed time and headline figures, the issue's targets and
gsplat's published figures; rewritten after every section, so a run killed
from outside keeps what it finished). ``benchmarks/gpu_suite.sh`` wraps this for
a lent machine (loader debs, wheels, staged datasets; docs/DEVELOPING.md). Exit status 1 when a section failed, else 0.

``--quick`` shrinks every size (2k splats at 64x48, 10k keys, a 2k-splat Adam
step, the loss at 64x48, 5 training steps of the embedded ``assets/lego_small``
at 64 px for both training sections) so the whole suite runs on lavapipe in
well under a minute; tests/test_gpu_suite.py runs it.

Datasets (full mode): ``--datasets DIR``, else ``$BRUSHPY_DATASETS``, else the
first of ``shared/datasets`` and ``../shared/datasets`` (beside the repo) that
exists; a missing dataset is that section's error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for p in (str(REPO), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

from _report import emit, machine  # noqa: E402

SECTIONS = ("forward", "backward", "sort", "adam", "loss", "train_lego_400", "train_beer_colmap")

DEFAULT_BUDGET_S = {
    "forward": 45.0,
    "backward": 60.0,
    "sort": 40.0,
    "adam": 25.0,
    "loss": 20.0,
    "train_lego_400": 90.0,
    "train_beer_colmap": 120.0,
}

# Sizes per mode. Full: issue 13 item 3; quick: lavapipe in seconds.
SIZES = {
    "full": {
        "raster_splats": [100_000, 1_000_000],
        "raster_res": [(1920, 1080)],
        "sort_keys": [1_000_000, 10_000_000],
        "adam_splats": 1_000_000,
        "loss_res": (1920, 1080),
        "repeats": 3,
        "train_steps": 100_000,  # the budget stops it first
        "train_warmup": 10,
        "train_max_resolution": None,  # full resolution (LoadConfig's default cap, 1920, is above both)
    },
    "quick": {
        "raster_splats": [2_000],
        "raster_res": [(64, 48)],
        "sort_keys": [10_000],
        "adam_splats": 2_000,
        "loss_res": (64, 48),
        "repeats": 1,
        "train_steps": 2,  # 1 warm-up + 2 plain + 2 profiled = 5 steps
        "train_warmup": 1,
        "train_max_resolution": 64,
    },
}

# What to compare with (issue 13): gsplat's published figures and the H200 targets.
REFERENCE = {
    "gsplat_published": {
        "rasterizer": "TITAN RTX, 1920x1080, 2.79M splats: forward 5.8 ms, backward 10.3 ms",
        "training": "Mip-NeRF 360, 7k steps in 5.6 min (about 20.8 steps/s)",
    },
    "issue13_targets_h200": {
        "forward_1M_1080p_ms": "< 3",
        "backward_over_forward_1M_1080p": "< 2",
        "sort_10M_keys_per_s": "> 2e9",
        "adam_1M_ms": "< 0.5",
        "loss_1080p_ms": "< 0.5",
        "training": "steps/s at least gsplat's published rate per splat-pixel",
    },
}


class Section:
    """What a running section may see: its mode's sizes, its deadline, and where it records progress."""

    def __init__(self, name: str, budget_s: float, sizes: dict, quick: bool, datasets: Path | None):
        self.name, self.budget_s, self.sizes, self.quick, self.datasets = name, budget_s, sizes, quick, datasets
        self.start = time.perf_counter()
        self.deadline = self.start + budget_s
        self.results: list = []
        self.skipped: list = []

    def out_of_time(self) -> bool:
        return time.perf_counter() >= self.deadline

    def left_s(self) -> float:
        return max(0.0, self.deadline - time.perf_counter())

    def each(self, configs: list[dict], fn) -> None:
        """Run ``fn(**config)`` for each config, appending its result; once out of time, skip the rest."""
        for cfg in configs:
            if self.out_of_time():
                self.skipped.append({**cfg, "reason": f"section time budget ({self.budget_s:g} s) spent"})
                continue
            r = fn(**cfg)
            self.results.append(r)
            print(f"[{self.name}] {json.dumps(cfg)} done ({time.perf_counter() - self.start:.1f} s)", file=sys.stderr,
                  flush=True)


# ---- sections: each fills sec.results / sec.skipped, and may return extra top-level fields ----------------------

def run_forward(sec: Section) -> dict:
    import bench_render

    def one(splats: int, width: int, height: int) -> dict:
        scene = bench_render.random_splats(splats)
        return bench_render.bench_one(scene, bench_render.camera_for(width, height), sec.sizes["repeats"])

    sec.each([{"splats": n, "width": w, "height": h}
              for n in sec.sizes["raster_splats"] for (w, h) in sec.sizes["raster_res"]], one)
    return {"scene": "bench_render.random_splats (SH degree 0)"}


def run_backward(sec: Section) -> dict:
    import bench_backward

    def one(splats: int, width: int, height: int) -> dict:
        return bench_backward.bench(splats, width, height, sec.sizes["repeats"])

    sec.each([{"splats": n, "width": w, "height": h}
              for n in sec.sizes["raster_splats"] for (w, h) in sec.sizes["raster_res"]], one)
    return {"scene": "bench_backward.make_splats (SH degree 3 where it fits one binding)"}


def run_sort(sec: Section) -> dict:
    import bench_sort
    from brushpy.gpu import get_context
    from brushpy.render.sort import DIGIT_BITS

    sec.each([{"n": n} for n in sec.sizes["sort_keys"]], lambda n: bench_sort.bench_size(n, sec.sizes["repeats"]))
    return {"subgroups": get_context().has_subgroups, "digit_bits": DIGIT_BITS, "key_bits": 32}


def run_adam(sec: Section) -> dict:
    import bench_adam

    sec.each([{"n": sec.sizes["adam_splats"]}], lambda n: bench_adam.bench(n, 3, False, sec.sizes["repeats"]))
    return {}


def run_loss(sec: Section) -> dict:
    import bench_loss

    w, h = sec.sizes["loss_res"]
    sec.each([{"w": w, "h": h}], lambda w, h: bench_loss.bench(h, w, sec.sizes["repeats"], "transparent"))
    return {}


def _dataset(sec: Section, name: str) -> Path:
    if sec.quick:
        return REPO / "assets" / "lego_small"
    path = (sec.datasets or Path("<none found>")) / name
    if not path.is_dir():
        raise FileNotFoundError(f"dataset {name} not found at {path} (give --datasets DIR or $BRUSHPY_DATASETS)")
    return path


def _train(sec: Section, name: str) -> dict:
    import bench_train

    path = _dataset(sec, name)
    s = sec.sizes
    sec.each([{"dataset": str(path)}], lambda dataset: bench_train.bench(
        dataset, s["train_steps"], s["train_warmup"], s["train_max_resolution"], budget_s=sec.left_s()))
    return {"dataset_requested": name, "dataset_used": path.name}


RUNNERS = {
    "forward": run_forward,
    "backward": run_backward,
    "sort": run_sort,
    "adam": run_adam,
    "loss": run_loss,
    "train_lego_400": lambda sec: _train(sec, "lego_400"),
    "train_beer_colmap": lambda sec: _train(sec, "beer_colmap"),
}


# ---- headline figures for the summary ------------------------------------------------------------------------

def _pick(gpu, wall):
    """(ms, "gpu") when there is a GPU time, else (wall ms, "wall")."""
    return (round(gpu, 4), "gpu") if gpu else (None if wall is None else round(wall, 4), "wall")


def headline(name: str, results: list) -> list:
    out = []
    for r in results:
        if name == "forward":
            ms, kind = _pick(r.get("gpu_total_ms"), r.get("wall_ms"))
            out.append({"splats": r["splats"], "pixels": f"{r['width']}x{r['height']}", "forward_ms": ms, "timing": kind})
        elif name == "backward":
            ms, kind = _pick(r.get("backward_gpu_ms"), r.get("backward_wall_ms"))
            out.append({"splats": r["splats"], "pixels": f"{r['width']}x{r['height']}", "backward_ms": ms,
                        "forward_gpu_ms": r.get("forward_gpu_ms"), "backward_over_forward": r.get("backward_over_forward"),
                        "timing": kind})
        elif name == "sort":
            out.append({"keys": r["pairs"], "correct": r["correct"],
                        "keys_per_s": r.get("keys_per_s_gpu", r["keys_per_s_wall"]),
                        "timing": "gpu" if "keys_per_s_gpu" in r else "wall"})
        elif name == "adam":
            ms, kind = _pick(r["gpu_ms"].get("adam"), r.get("wall_ms"))
            out.append({"splats": r["splats"], "adam_ms": ms, "timing": kind})
        elif name == "loss":
            ms, kind = _pick(r["gpu_ms"].get("total"), r.get("wall_ms"))
            out.append({"pixels": r["size"], "loss_ms": ms, "timing": kind})
        elif name.startswith("train"):
            out.append({k: r.get(k) for k in ("dataset", "resolution", "num_splats", "steps", "profiled_steps",
                                              "steps_per_s", "gpu_ms_per_step", "host_ms_per_step",
                                              "splat_pixels_per_s", "stopped_by_budget")})
    return out


def _safe_headline(name: str, results: list):
    """The headline, or the error that computing it raised (the section's own JSON has everything)."""
    try:
        return headline(name, results)
    except Exception as e:  # noqa: BLE001
        return [{"error": f"{type(e).__name__}: {e}"}]


# ---- driver ------------------------------------------------------------------------------------------------------

def run_section(name: str, budget_s: float, sizes: dict, quick: bool, datasets: Path | None, out_dir: Path) -> dict:
    sec = Section(name, budget_s, sizes, quick, datasets)
    print(f"[{name}] start (budget {budget_s:g} s)", file=sys.stderr, flush=True)
    report: dict = {"section": name, "quick": quick, "budget_s": budget_s}
    try:
        report.update(RUNNERS[name](sec) or {})
        report["status"] = "partial" if sec.skipped else "ok"
    except Exception as e:  # noqa: BLE001 - a failed section is recorded and the suite goes on
        report["status"] = "error"
        report["error"] = f"{type(e).__name__}: {e}"
        report["traceback"] = traceback.format_exc()
        print(f"[{name}] FAILED: {report['error']}", file=sys.stderr, flush=True)
    report["elapsed_s"] = round(time.perf_counter() - sec.start, 2)
    report["results"] = sec.results
    report["skipped"] = sec.skipped
    from brushpy.io.atomic import atomic_write

    with atomic_write(out_dir / f"{name}.json", "w", encoding="utf-8") as f:
        f.write(json.dumps(report, indent=2, default=str) + "\n")
    print(f"[{name}] {report['status']} in {report['elapsed_s']} s", file=sys.stderr, flush=True)
    return report


def find_datasets(arg: str | None) -> Path | None:
    if arg:
        return Path(arg)
    if os.environ.get("BRUSHPY_DATASETS"):
        return Path(os.environ["BRUSHPY_DATASETS"])
    for cand in (REPO / "shared" / "datasets", REPO.parent / "shared" / "datasets"):
        if cand.is_dir():
            return cand
    return None


def parse_budgets(items: list[str], scale: float) -> dict:
    budgets = {k: v * scale for k, v in DEFAULT_BUDGET_S.items()}
    for item in items:
        name, _, secs = item.partition("=")
        if name not in budgets or not secs:
            raise SystemExit(f"--budget wants SECTION=SECONDS with SECTION one of {', '.join(SECTIONS)}; got {item!r}")
        budgets[name] = float(secs)
    return budgets


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.environ.get("OUT") or "gpu_suite_out",
                    help="output folder (default: $OUT when set, else gpu_suite_out)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: the whole suite in seconds on lavapipe")
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    ap.add_argument("--budget", action="append", default=[], metavar="SECTION=SECONDS",
                    help="one section's time budget (repeatable)")
    ap.add_argument("--budget-scale", type=float, default=1.0, help="multiply every default budget")
    ap.add_argument("--datasets", default=None, help="folder holding lego_400/ and beer_colmap/")
    args = ap.parse_args(argv)
    names = [s for s in args.sections.split(",") if s]
    unknown = [s for s in names if s not in SECTIONS]
    if unknown:
        raise SystemExit(f"unknown section(s) {unknown}; known: {', '.join(SECTIONS)}")
    budgets = parse_budgets(args.budget, args.budget_scale)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    datasets = find_datasets(args.datasets)
    sizes = SIZES["quick" if args.quick else "full"]

    t0 = time.perf_counter()
    from brushpy.gpu import get_context

    ctx = get_context()
    adapter = ctx.describe()
    print("adapter:", json.dumps(adapter, default=str), flush=True)
    reports: dict = {}

    def summary() -> dict:
        return {
            "benchmark": "gpu_suite",
            "quick": args.quick,
            **machine(ctx),
            "adapter": adapter,
            "datasets": None if datasets is None else str(datasets),
            "elapsed_s": round(time.perf_counter() - t0, 2),
            "sections_not_run": [n for n in names if n not in reports],
            "sections": {n: {"status": r["status"], "elapsed_s": r["elapsed_s"], "budget_s": r["budget_s"],
                             "error": r.get("error"), "skipped": len(r["skipped"]),
                             "headline": _safe_headline(n, r["results"])}
                         for n, r in reports.items()},
            "reference": REFERENCE,
        }

    from brushpy.io.atomic import atomic_write

    for n in names:
        reports[n] = run_section(n, budgets[n], sizes, args.quick, datasets, out_dir)
        # the summary so far, after every section: a run killed from outside keeps what it measured
        with atomic_write(out_dir / "summary.json", "w", encoding="utf-8") as f:
            f.write(json.dumps(summary(), indent=2, default=str) + "\n")
    emit(summary(), out_dir / "summary.json")
    return 1 if any(r["status"] == "error" for r in reports.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
