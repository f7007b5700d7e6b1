"""benchmarks/gpu_suite.py: the --quick suite runs end to end and writes every section's JSON.

No timing assertions (speed lives in benchmarks/); this checks the suite's shape: one JSON per
section with the expected keys, a summary, a spent budget recorded as ``partial`` and a failing
section recorded as ``error`` while the suite goes on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SUITE = REPO / "benchmarks" / "gpu_suite.py"
SECTIONS = ("forward", "backward", "sort", "adam", "loss", "train_lego_400", "train_beer_colmap")
SECTION_KEYS = {"section", "status", "quick", "budget_s", "elapsed_s", "results", "skipped"}
RESULT_KEYS = {
    "forward": {"splats", "width", "height", "gpu_ms", "gpu_total_ms", "wall_ms", "host_record_ms"},
    "backward": {"splats", "width", "height", "gpu_ms", "forward_gpu_ms", "backward_gpu_ms", "backward_wall_ms"},
    "sort": {"pairs", "correct", "wall_ms", "keys_per_s_wall"},
    "adam": {"splats", "gpu_ms", "wall_ms", "parameters"},
    "loss": {"size", "gpu_ms", "wall_ms", "loss"},
    "train_lego_400": {"dataset", "resolution", "num_splats", "steps", "steps_per_s", "gpu_ms_per_step_by_stage"},
    "train_beer_colmap": {"dataset", "resolution", "num_splats", "steps", "steps_per_s", "gpu_ms_per_step_by_stage"},
}


def _run(out: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("OUT", None)
    return subprocess.run([sys.executable, str(SUITE), "--out", str(out), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_suite")
    proc = _run(out, "--quick")
    return out, proc


def test_quick_suite_writes_every_section(quick_run):
    out, proc = quick_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "adapter:" in proc.stdout
    for name in SECTIONS:
        rep = json.loads((out / f"{name}.json").read_text())
        assert SECTION_KEYS <= rep.keys(), (name, rep.keys())
        assert rep["section"] == name and rep["quick"] is True
        assert rep["status"] == "ok", (name, rep.get("error"), rep.get("traceback"))
        assert rep["results"], name
        for r in rep["results"]:
            assert RESULT_KEYS[name] <= r.keys(), (name, RESULT_KEYS[name] - r.keys())
    sort = json.loads((out / "sort.json").read_text())
    assert all(r["correct"] for r in sort["results"])


def test_quick_summary(quick_run):
    out, _ = quick_run
    summary = json.loads((out / "summary.json").read_text())
    assert {"adapter", "device", "host", "sections", "reference", "elapsed_s"} <= summary.keys()
    assert summary["sections_not_run"] == []
    assert set(summary["sections"]) == set(SECTIONS)
    for name, s in summary["sections"].items():
        assert s["status"] == "ok" and s["headline"] and "error" not in s["headline"][0], (name, s)
    assert "gsplat_published" in summary["reference"]


def test_spent_budget_and_failing_section_are_recorded(tmp_path):
    # full sizes, but the sort budget is 0 (nothing runs) and the dataset folder is missing
    proc = _run(tmp_path, "--sections", "sort,train_lego_400,adam", "--budget", "sort=0",
                "--budget", "adam=0", "--datasets", str(tmp_path / "missing"))
    assert proc.returncode == 1  # a section failed
    sort = json.loads((tmp_path / "sort.json").read_text())
    assert sort["status"] == "partial" and not sort["results"]
    assert [s["n"] for s in sort["skipped"]] == [1_000_000, 10_000_000]
    train = json.loads((tmp_path / "train_lego_400.json").read_text())
    assert train["status"] == "error" and "lego_400" in train["error"] and train["traceback"]
    adam = json.loads((tmp_path / "adam.json").read_text())  # the suite went on after the error
    assert adam["status"] == "partial"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["sections"]["train_lego_400"]["status"] == "error"
