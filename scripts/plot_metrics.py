#!/usr/bin/env python3
"""Plot an evaluation metric against training steps from one or more runs' ``metrics.jsonl``.

Each RUN is an export folder (``--export-path``) holding ``metrics.jsonl``, or the file itself;
its line in the legend is the folder's name (``--label`` overrides, in order). One panel by
default; ``--panel TITLE RUN [RUN ...]`` (repeatable) puts runs on panels side by side, e.g.
one per dataset. Needs matplotlib (``pip install 'brushpy[plot]'``).

    python3 scripts/plot_metrics.py runs/a runs/b -o psnr.png
    python3 scripts/plot_metrics.py --panel "lego" runs/lego --panel "7-Scenes" runs/a runs/b -o docs/images/psnr.png

Metrics (``--metric``): ``psnr`` (dB, default), ``ssim``, ``lpips``, ``depth_abs_rel``,
``num_splats``, ``steps_per_s``: any number in the lines. Lines without it are skipped; a run
with none is an error naming the file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from brushpy.train.stream import METRICS_NAME, read_metrics  # noqa: E402

LABELS = {"psnr": "PSNR (dB)", "ssim": "SSIM", "lpips": "LPIPS", "depth_abs_rel": "depth AbsRel",
          "num_splats": "splats", "steps_per_s": "steps / s"}


def metrics_file(run: str | Path) -> Path:
    """``run``'s ``metrics.jsonl`` (``run`` is the file or the folder holding it).

    Raises:
        SystemExit: there is no such file (the message names it).
    """
    path = Path(run)
    if path.is_dir():
        path = path / METRICS_NAME
    if not path.is_file():
        raise SystemExit(f"Error: {path}: no such file (give an export folder holding {METRICS_NAME}, or the file)")
    return path


def run_curve(run: str | Path, metric: str) -> tuple[list[int], list[float]]:
    """``(steps, values)`` of ``metric`` in ``run``'s ``metrics.jsonl``, in step order (a step evaluated
    twice keeps its last value, as after a resume).

    Raises:
        SystemExit: no line has the metric.
    """
    path = metrics_file(run)
    by_step = {}
    for line in read_metrics(path):
        value, step = line.get(metric), line.get("step")
        if isinstance(step, int) and isinstance(value, (int, float)):
            by_step[step] = float(value)
    if not by_step:
        raise SystemExit(f"Error: {path}: no line has {metric!r} (try --metric psnr, ssim, ...)")
    steps = sorted(by_step)
    return steps, [by_step[s] for s in steps]


def run_label(run: str | Path) -> str:
    """The legend name of a run: its folder's name."""
    path = Path(run).resolve()
    return (path.parent if path.is_file() else path).name


def plot(panels: list[tuple[str, list[str]]], out: Path, metric: str = "psnr", labels: list[str] | None = None,
         title: str | None = None, dpi: int = 120) -> Path:
    """Draw ``panels`` (``[(title, [run, ...]), ...]``) side by side and write a PNG to ``out`` (atomically).

    Returns ``out``. Raises ``SystemExit`` with an ``Error:`` line for a missing run or a missing matplotlib.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("Error: scripts/plot_metrics.py needs matplotlib: pip install 'brushpy[plot]'") from None
    from brushpy.io.atomic import atomic_write

    curves = [[(run, *run_curve(run, metric)) for run in runs] for _, runs in panels]  # errors before drawing
    labels = list(labels or [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), squeeze=False)
    for ax, (panel_title, _), panel in zip(axes[0], panels, curves):
        for run, steps, values in panel:
            name = labels.pop(0) if labels else run_label(run)
            ax.plot(steps, values, marker="o", markersize=3.5, linewidth=1.6, label=name)
        ax.set_xlabel("training step")
        ax.set_ylabel(LABELS.get(metric, metric))
        if panel_title:
            ax.set_title(panel_title, fontsize=11)
        ax.set_xlim(left=0)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=9, loc="best")
    if title:
        fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    with atomic_write(out, "wb", option="-o") as f:
        fig.savefig(f, format="png", dpi=dpi)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="*", help="export folders (or metrics.jsonl files), one line each")
    parser.add_argument("--panel", nargs="+", action="append", default=[], metavar="TITLE RUN",
                        help="a panel: its title, then its runs (repeatable)")
    parser.add_argument("-o", "--output", type=Path, default=Path("metrics.png"), help="PNG to write")
    parser.add_argument("--metric", default="psnr", help="the value to plot (default: psnr)")
    parser.add_argument("--label", action="append", default=[], help="legend names in order (default: folder names)")
    parser.add_argument("--title", default=None, help="a title above the panels")
    parser.add_argument("--dpi", type=int, default=120)
    args = parser.parse_args(argv)
    panels = [("", list(args.runs))] if args.runs else []
    for spec in args.panel:
        if len(spec) < 2:
            parser.error(f"--panel {spec[0]!r}: give a title and at least one run")
        panels.append((spec[0], spec[1:]))
    if not panels:
        parser.error("give at least one run (an export folder holding metrics.jsonl)")
    out = plot(panels, args.output, args.metric, args.label, args.title, args.dpi)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
