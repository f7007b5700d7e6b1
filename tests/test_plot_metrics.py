"""scripts/plot_metrics.py: a PSNR-vs-steps PNG from metrics.jsonl files (legend names from the folders)."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest
from PIL import Image

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import plot_metrics  # noqa: E402


def _run(folder, lines):
    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"step": 9')  # a torn line
    return folder


def test_curves_labels_and_errors(tmp_path):
    a = _run(tmp_path / "run_a", [{"step": 200, "psnr": 20.0}, {"step": 100, "psnr": 18.0}, {"step": 200, "psnr": 21.0}])
    assert plot_metrics.run_curve(a, "psnr") == ([100, 200], [18.0, 21.0])  # sorted; a re-evaluated step keeps its last
    assert plot_metrics.run_curve(a / "metrics.jsonl", "psnr")[0] == [100, 200]
    assert plot_metrics.run_label(a) == plot_metrics.run_label(a / "metrics.jsonl") == "run_a"
    with pytest.raises(SystemExit, match="no line has 'lpips'"):
        plot_metrics.run_curve(a, "lpips")
    with pytest.raises(SystemExit, match="nope: no such file"):
        plot_metrics.run_curve(tmp_path / "nope", "psnr")


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                    reason="matplotlib is not installed: pip install 'brushpy[plot]'")
def test_writes_a_png_with_panels(tmp_path):
    a = _run(tmp_path / "a", [{"step": s, "psnr": 15 + s / 100} for s in (100, 200, 300)])
    b = _run(tmp_path / "b", [{"step": s, "psnr": 14 + s / 80} for s in (100, 300)])
    out = tmp_path / "plots" / "psnr.png"
    assert plot_metrics.main([str(a), str(b), "-o", str(out)]) == 0
    one = Image.open(out)
    assert one.format == "PNG" and one.width > 300 and one.height > 200
    two = tmp_path / "two.png"
    plot_metrics.main(["--panel", "first", str(a), "--panel", "second", str(b), "-o", str(two)])
    assert Image.open(two).width > 1.7 * one.width  # two panels side by side
