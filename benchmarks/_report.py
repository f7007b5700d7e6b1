"""What every benchmark reports beside its own figures, and how it writes them.

One owner for the parts the benchmarks share:

- :func:`machine` — the device (adapter, backend, adapter type, whether it has
  timestamp queries) and the host (CPU architecture, core count, Python, load
  average when the run started). Lavapipe figures mean nothing without the
  machine and its load, so every report carries them.
- :func:`median` — the median of the values that are not ``None`` (a stage has
  no GPU time when the device lacks timestamp queries), or ``None``.
- :func:`emit` — print the report as JSON and, when asked, write it to a file
  atomically (a temporary file beside it, then a rename), so a killed run
  never leaves half a report.

Benchmarks are run as scripts (``python benchmarks/bench_x.py``), which puts
this folder on ``sys.path``; they import this module as ``_report``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics


def machine(ctx=None) -> dict:
    """The device and host a benchmark ran on.

    Args:
        ctx: a :class:`brushpy.gpu.GpuContext`; the process-wide one when omitted.

    Returns:
        ``{"device": {adapter, backend, adapter_type, timestamps}, "host":
        {machine, cpus, python, load_avg_1m}}``.
    """
    if ctx is None:
        from brushpy.gpu import get_context

        ctx = get_context()
    d = ctx.describe()
    device = {k: d[k] for k in ("adapter", "backend", "adapter_type") if k in d}
    device["timestamps"] = bool(ctx.has_timestamps)
    return {"device": device, "host": host()}


def host() -> dict:
    """The host alone: ``{machine, cpus, python, load_avg_1m}`` (for benchmarks with no GPU work)."""
    try:
        load = round(os.getloadavg()[0], 2)
    except OSError:  # not on every platform
        load = None
    return {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_avg_1m": load,
    }


def median(values):
    """Median of the values that are not ``None``; ``None`` when there are none."""
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def emit(report: dict, out: str | os.PathLike | None = None) -> str:
    """Print ``report`` as indented JSON; also write it to ``out`` (atomically) when given.

    Returns the JSON text.
    """
    text = json.dumps(report, indent=2, default=str)
    print(text, flush=True)
    if out:
        from brushpy.io.atomic import atomic_write

        with atomic_write(out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return text
