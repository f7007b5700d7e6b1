"""Experiment logs (brushpy.train.experiment_logs): TensorBoard event files read back with TensorBoard's own
reader, a Rerun recording read back with rerun-sdk, failures that never stop training, and LPIPS
(brushpy.train.perceptual) where torch and its weights are on the machine."""

from __future__ import annotations

import importlib.util
import json
import logging
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from brushpy.errors import InputError, OptionError
from brushpy.train.config import ProcessConfig
from tests.test_train import tiny_config, tiny_scene

HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None
HAS_RERUN = importlib.util.find_spec("rerun") is not None
requires_tensorboard = pytest.mark.skipif(
    not HAS_TENSORBOARD, reason="tensorboard (its event reader) is not installed: pip install 'brushpy[test]'")
requires_rerun = pytest.mark.skipif(
    not HAS_RERUN, reason="rerun-sdk is not installed: pip install 'brushpy[rerun]' (scripts/setup.sh --test does)")

TOTAL, EVAL_EVERY, LOG_EVERY = 20, 10, 5


def _train(tmp_path, total=TOTAL, resolution=16, **process):
    """A short run_training on a tiny lego (4 views at 16 px); returns (summary, export folder)."""
    from brushpy.train.run import run_training

    out = tmp_path / "out"
    process = ProcessConfig(**{"eval_every": EVAL_EVERY, "export_every": 0, "export_path": str(out),
                               "log_every": LOG_EVERY, **process})
    scene = tiny_scene(max_frames=4, resolution=resolution)
    summary = run_training(scene, tiny_config(total_steps=total, refine_every=8), process, progress=False,
                           log=lambda *_: None)
    return summary, out


def _accumulator(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


@requires_tensorboard
def test_tensorboard_event_file_reads_back_with_tensorboards_reader(gpu, tmp_path):
    summary, out = _train(tmp_path)
    logs = out / "logs"
    assert list(logs.glob("events.out.tfevents.*")), sorted(p.name for p in out.iterdir())
    acc = _accumulator(logs)
    tags = acc.Tags()
    train_steps = [5, 10, 15, 20]  # every --log-every steps; the last step is one of them
    for tag in ("train/loss", "train/num_splats", "train/num_visible", "train/step_time_s",
                "train/lr/means", "train/lr/log_scales", "train/lr/sh_coeffs", "train/lr/raw_opacities"):
        assert tag in tags["scalars"], (tag, tags["scalars"])
        assert [e.step for e in acc.Scalars(tag)] == train_steps, tag
    assert all(e.value > 0 for e in acc.Scalars("train/loss") + acc.Scalars("train/step_time_s"))
    lr = [e.value for e in acc.Scalars("train/lr/means")]
    assert lr[0] > lr[-1] > 0  # the means' learning rate decays
    assert acc.Scalars("train/num_splats")[-1].value == summary.num_splats
    assert any(t.startswith("refine/") for t in tags["scalars"])  # refine every 8 steps

    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [10, 20]  # metrics.jsonl is as before
    assert set(metrics[0]) == {"step", "psnr", "ssim", "num_splats", "elapsed_s", "steps_per_s"}
    for key in ("psnr", "ssim"):
        got = acc.Scalars(f"eval/{key}")
        assert [e.step for e in got] == [10, 20]
        assert np.allclose([e.value for e in got], [m[key] for m in metrics], rtol=1e-6)

    image_tags = [t for t in tags["images"] if t.startswith("eval/image/")]
    assert len(image_tags) == 3, tags["images"]  # the first three eval views
    for tag in image_tags:
        images = acc.Images(tag)
        assert [e.step for e in images] == [10, 20]
        assert images[0].width == 2 * images[0].height  # ground truth beside the render (square views)


@requires_tensorboard
def test_viewer_live_training_logs_the_same(gpu, tmp_path):
    """LiveTraining consumes the same stream: its run writes the same tags, and "evaluate now" is logged."""
    from brushpy.viewer.training import LiveTraining

    process = ProcessConfig(eval_every=EVAL_EVERY, export_every=0, export_path=str(tmp_path / "out"),
                            log_every=LOG_EVERY)
    live = LiveTraining(tiny_scene(max_frames=4, resolution=16), tiny_config(total_steps=12, refine_every=8), process)
    while live.run_for(10.0):
        pass
    assert live.finished
    live.evaluate_now()
    live.outputs.logs.close()
    acc = _accumulator(tmp_path / "out" / "logs")
    assert [e.step for e in acc.Scalars("train/loss")] == [5, 10, 12]
    assert [e.step for e in acc.Scalars("eval/psnr")] == [10, 12, 12]  # scheduled, final, evaluate now


@requires_rerun
def test_rerun_recording_is_written_and_reads_back(gpu, tmp_path):
    from rerun.chunk import RrdReader

    rrd = tmp_path / "run.rrd"
    summary, out = _train(tmp_path, log_dir="none", rerun=str(rrd))
    assert not (out / "logs").exists()  # --log-dir none: no TensorBoard files
    assert rrd.is_file() and rrd.stat().st_size > 0
    reader = RrdReader(rrd)
    assert [r.application_id for r in reader.recordings()] == ["brushpy"]
    rows: dict[str, int] = {}
    for chunk in reader.stream().collect().stream():
        rows[chunk.entity_path] = rows.get(chunk.entity_path, 0) + chunk.num_rows
    assert rows["/train/loss"] == 4 and rows["/train/lr/means"] == 4
    assert rows["/eval/psnr"] == 2 and rows["/eval/ssim"] == 2
    assert sum(n for p, n in rows.items() if p.startswith("/eval/image/")) == 3 * 2
    assert rows["/splats"] == 2  # the splats as points at each evaluation
    store = reader.stream().collect()
    schema = str(store.schema())
    assert "/splats:Points3D:positions" in schema and "/splats:Points3D:colors" in schema


def test_unwritable_log_dir_is_a_clear_error_before_training(gpu, tmp_path):
    from brushpy import cli

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli.main, ["train", "--total-steps", "3", "--export-path", str(out),
                                           "--log-dir", str(blocker / "logs"), "--quiet"])
    assert result.exit_code == 2, result.output
    assert "Error: --log-dir" in result.output and str(blocker / "logs") in result.output
    assert not list(out.glob("export_*")) and not (out / "metrics.jsonl").exists()  # nothing trained


def test_rerun_option_errors(gpu, tmp_path, monkeypatch):
    from brushpy.train.experiment_logs import open_experiment_logs
    from brushpy.train.trainer import Trainer

    trainer = Trainer(tiny_scene(max_frames=2, resolution=16), tiny_config(total_steps=2), ProcessConfig())
    with pytest.raises(OptionError, match=r"--rerun .*\.rrd"):
        open_experiment_logs(trainer, ProcessConfig(log_dir="none", rerun=str(tmp_path / "x.txt")), tmp_path, "lego")
    blocker = tmp_path / "f"
    blocker.write_text("")
    with pytest.raises(InputError, match="--rerun"):
        open_experiment_logs(trainer, ProcessConfig(log_dir="none", rerun=str(blocker / "x.rrd")), tmp_path, "lego")
    monkeypatch.setitem(sys.modules, "rerun", None)  # as if rerun-sdk were not installed
    with pytest.raises(OptionError, match=r"pip install 'brushpy\[rerun\]'"):
        open_experiment_logs(trainer, ProcessConfig(log_dir="none", rerun=str(tmp_path / "x.rrd")), tmp_path, "lego")
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(OptionError, match="--log-dir none"):
        open_experiment_logs(trainer, ProcessConfig(), tmp_path, "lego")


class _BrokenSink:
    name = "Broken"

    def __init__(self):
        self.calls = 0

    def scalar(self, *args):
        self.calls += 1
        raise OSError(28, "No space left on device")

    image = points = scalar

    def flush(self):
        pass

    def close(self):
        pass


class _ListSink(_BrokenSink):
    name = "List"

    def __init__(self):
        self.scalars = []

    def scalar(self, tag, value, step):
        self.scalars.append((tag, step))

    def image(self, *args):
        pass

    points = image


def test_a_failing_logger_never_stops_training(gpu, tmp_path, caplog):
    from brushpy.train.experiment_logs import ExperimentLogs
    from brushpy.train.stream import RunOutputs, TrainStream
    from brushpy.train.trainer import Trainer

    scene = tiny_scene(max_frames=4, resolution=16)
    process = ProcessConfig(eval_every=5, export_every=0, export_path=str(tmp_path / "out"), log_dir="none", log_every=2)
    trainer = Trainer(scene, tiny_config(total_steps=10), process)
    outputs = RunOutputs(trainer, process, scene.name)
    broken, good = _BrokenSink(), _ListSink()
    outputs.logs = ExperimentLogs(trainer, [broken, good], log_every=2)
    with caplog.at_level(logging.WARNING, logger="brushpy"):
        events = list(TrainStream(trainer, outputs))
    assert trainer.step_count == 10 and type(events[-1]).__name__ == "DoneEvent"
    assert broken.calls == 1  # dropped at its first failure
    assert outputs.logs.sinks == [good] and len(outputs.logs.warnings) == 1
    assert "Broken logging stopped" in outputs.logs.warnings[0] and "No space left" in outputs.logs.warnings[0]
    assert sum("logging stopped" in r.getMessage() for r in caplog.records) == 1  # warned once
    assert [s for t, s in good.scalars if t == "train/loss"] == [2, 4, 6, 8, 10]
    assert [s for t, s in good.scalars if t == "eval/psnr"] == [5, 10]


def test_side_by_side_and_log_dir_placeholders(tmp_path):
    from brushpy.train.experiment_logs import resolve_log_dir, side_by_side

    gt, render = np.zeros((600, 1000, 3), np.float32), np.ones((600, 1000, 3), np.float32)
    img = side_by_side(gt, render)
    assert img.dtype == np.uint8 and img.shape == (307, 1024, 3)  # each half at most 512 px long
    assert img[:, :512].max() == 0 and img[:, 512:].min() == 255  # ground truth left, render right
    assert resolve_log_dir("{export_path}/logs", tmp_path / "exp", "lego") == tmp_path / "exp" / "logs"
    assert resolve_log_dir("runs/{dataset}", tmp_path, "lego").as_posix() == "runs/lego"
    assert resolve_log_dir(None, tmp_path, "lego") is None and resolve_log_dir("none", tmp_path, "lego") is None


# --------------------------------------------------------------------------- LPIPS


def _lpips_problem():
    from brushpy.train.perceptual import lpips_status

    return lpips_status("alex")


def test_lpips_missing_says_how_to_get_it(monkeypatch, tmp_path):
    from brushpy.train.perceptual import LpipsMetric, lpips_status

    monkeypatch.setitem(sys.modules, "torch", None)  # as on a machine without torch
    msg = lpips_status("alex")
    assert "torch" in msg and "pip install 'brushpy[lpips]'" in msg
    with pytest.raises(OptionError, match="--eval-lpips"):
        LpipsMetric("alex")
    monkeypatch.undo()
    if lpips_status("alex") is None or "not installed" not in lpips_status("alex"):
        # torch is here: a weights file that is not there is named, with how to get it
        msg = lpips_status("alex", tmp_path / "nope.pth")
        assert str(tmp_path / "nope.pth") in msg and "alexnet-owt-7be5be79.pth" in msg and "never" in msg


@pytest.mark.skipif(_lpips_problem() is not None, reason=f"LPIPS cannot run here: {_lpips_problem()}")
def test_lpips_in_evaluation_metrics_and_logs(gpu, tmp_path):
    from brushpy.train.perceptual import LpipsMetric

    metric = LpipsMetric("alex")
    a = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)
    assert metric(a, a) < 1e-6 and metric(a, 1.0 - a) > 0.1
    _, out = _train(tmp_path, total=10, resolution=64, eval_lpips=True, eval_every=5)
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(0.0 <= m["lpips"] < 1.0 for m in metrics)
    if HAS_TENSORBOARD:
        assert [e.step for e in _accumulator(out / "logs").Scalars("eval/lpips")] == [5, 10]


class _StandInLpips:
    """Scores every view 0.25 except those of one size it cannot score (None), as LpipsMetric.score_or_none."""

    def __init__(self):
        self.calls = 0

    def score_or_none(self, render, gt):
        assert render.shape == gt.shape and render.dtype == np.float32 and 0 <= render.min() <= render.max() <= 1
        self.calls += 1
        return None if self.calls == 2 else 0.25


@requires_tensorboard
def test_lpips_reaches_metrics_jsonl_and_logs(gpu, tmp_path):
    """The --eval-lpips path from evaluation to metrics.jsonl and TensorBoard, with a stand-in for the torch model."""
    from brushpy.train.stream import RunOutputs, TrainStream
    from brushpy.train.trainer import Trainer

    scene = tiny_scene(max_frames=6, resolution=16)
    process = ProcessConfig(eval_every=3, export_every=0, export_path=str(tmp_path / "out"), log_every=3)
    trainer = Trainer(scene, tiny_config(total_steps=6), process)
    outputs = RunOutputs(trainer, process, scene.name)
    outputs.lpips = _StandInLpips()
    list(TrainStream(trainer, outputs))
    outputs.logs.close()
    metrics = [json.loads(x) for x in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert [m["lpips"] for m in metrics] == [0.25, 0.25]  # a view it could not score is left out of the mean
    assert outputs.lpips.calls == 2 * len(scene.eval_views)
    assert [e.step for e in _accumulator(tmp_path / "out" / "logs").Scalars("eval/lpips")] == [3, 6]


def test_lpips_score_or_none_warns_once(caplog):
    from brushpy.train.perceptual import LpipsMetric

    metric = LpipsMetric.__new__(LpipsMetric)  # no torch needed: the size check comes first
    small = np.zeros((16, 16, 3), np.float32)
    with pytest.raises(ValueError, match="at least 32x32"):
        metric(small, small)
    with caplog.at_level(logging.WARNING, logger="brushpy"):
        assert metric.score_or_none(small, small) is None and metric.score_or_none(small, small) is None
    assert sum("LPIPS left out" in r.getMessage() for r in caplog.records) == 1
