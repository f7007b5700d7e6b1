"""``brushpy batch`` on a local Ray cluster (2 CPUs, started by this module and shut down after).

One batch (:func:`batch_run`) trains three tiny scenes (the embedded lego, lego_400 and beer_colmap
from ../shared at a few dozen pixels, a few steps) plus a scene path that does not exist, and kills
the Ray worker training the embedded scene once it has written a checkpoint. The tests read that
batch's results: every scene finished, the summary matches each scene's metrics.jsonl, the killed
scene was retried and resumed, the missing scene was reported; then a rerun through the command
line does no work. The rest (scene lists, option checks, the output parser, errors) needs no training.
"""

from __future__ import annotations

import csv
import os
import signal
import socket
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from brushpy.cli import main
from brushpy.distributed.batch import (LOG_NAME, MARKER_NAME, SUMMARY_NAME, SceneSpec, _OutputWatch, check_train_args,
                                       read_scenes_file, run_batch, scene_specs)
from brushpy.distributed.cluster import ClusterError, RayMissingError, parse_address, require_ray
from brushpy.errors import InputError, OptionError
from brushpy.train.stream import METRICS_NAME, read_metrics
from tests.conftest import REPO, SHARED, requires_shared

EMBEDDED = REPO / "assets" / "lego_small"
LEGO_400 = SHARED / "datasets" / "lego_400"
BEER = SHARED / "datasets" / "beer_colmap"
#: every scene: a few steps at a few dozen pixels, one evaluation at the end, a checkpoint every 3 steps
TRAIN_ARGS = ["--total-steps", "6", "--max-resolution", "32", "--eval-every", "0", "--export-every", "3"]
#: the scene whose worker is killed runs longer, so the kill lands mid-run after its first checkpoint
KILLED = "lego_small"
KILLED_STEPS = 12


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster with 2 CPUs for this module (through brushpy's own connect), shut down after."""
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'brushpy[distributed]')")
    from brushpy.distributed.cluster import connect, shutdown

    info = connect(None, num_cpus=2)
    assert info.started_here and info.resources.get("CPU") == 2
    yield info
    shutdown()


def _specs() -> list[SceneSpec]:
    specs = [SceneSpec(str(EMBEDDED), KILLED, ("--total-steps", str(KILLED_STEPS)))]
    if LEGO_400.exists():  # 10 training and 20 eval views of the 400 px lego
        specs.append(SceneSpec(str(LEGO_400), "lego_400", ("--subsample-frames", "10")))
    if BEER.exists():
        specs.append(SceneSpec(str(BEER), "beer_colmap", ("--eval-split-every", "8")))
    specs.append(SceneSpec("/nonexistent/brushpy-batch-scene", "missing"))
    return specs


@pytest.fixture(scope="module")
def batch_run(ray_cluster, tmp_path_factory):
    """Run the batch once, killing the Ray worker of :data:`KILLED` after its first checkpoint."""
    out = tmp_path_factory.mktemp("batch")
    kills: list[dict] = []

    def watch(statuses):
        s = statuses[KILLED]
        if not kills and s.state in ("running", "resuming") and s.worker_pid and \
                (out / KILLED / "checkpoint.npz").is_file():
            kills.append({"worker": s.worker_pid, "child": s.child_pid, "step": s.step})
            os.kill(s.worker_pid, signal.SIGKILL)

    lines: list[str] = []
    results = run_batch(_specs(), out, TRAIN_ARGS, retries=2, log=lines.append, on_progress=watch, poll_s=0.5,
                        progress_every_s=2.0)
    return {"out": out, "results": {r.scene: r for r in results}, "kills": kills, "lines": lines}


def _summary(out: Path) -> dict:
    with open(out / SUMMARY_NAME, newline="", encoding="utf-8") as f:
        return {row["scene"]: row for row in csv.DictReader(f)}


@requires_shared("datasets", "lego_400")
@requires_shared("datasets", "beer_colmap")
def test_three_scenes_finish_and_summary_matches_their_metrics(batch_run):
    out, results = batch_run["out"], batch_run["results"]
    summary = _summary(out)
    for name in (KILLED, "lego_400", "beer_colmap"):
        assert results[name].state == "done", results[name]
        last = read_metrics(out / name / METRICS_NAME)[-1]
        row = summary[name]
        assert row["state"] == "done"
        assert int(row["step"]) == last["step"] == (KILLED_STEPS if name == KILLED else 6)
        assert float(row["psnr"]) == pytest.approx(last["psnr"], rel=1e-9)
        assert float(row["ssim"]) == pytest.approx(last["ssim"], rel=1e-9)
        assert int(row["num_splats"]) == last["num_splats"]
        assert Path(row["export"]).is_file() and Path(row["export"]).parent == out / name
    # the driver printed a line per scene as it changed and the final table
    text = "\n".join(batch_run["lines"])
    assert "lego_400: done" in text and "| beer_colmap | done |" in text


def test_killed_worker_is_retried_and_resumes_from_its_checkpoint(batch_run):
    out, result, kills = batch_run["out"], batch_run["results"][KILLED], batch_run["kills"]
    assert len(kills) == 1, "the test never saw the scene running with a checkpoint"
    assert result.state == "done" and result.attempts == 2, result
    log = (out / KILLED / LOG_NAME).read_text()
    assert "--- attempt 2" in log and "--resume" in log.split("--- attempt 2", 1)[1]
    assert "resumed from" in log
    # the killed run's child died with its worker: one final evaluation, by the retry
    assert [line["step"] for line in read_metrics(out / KILLED / METRICS_NAME)] == [KILLED_STEPS]
    assert int(_summary(out)[KILLED]["attempts"]) == 2


def test_missing_scene_is_reported_and_the_others_run(batch_run):
    results = batch_run["results"]
    missing = results["missing"]
    assert missing.state == "failed" and "/nonexistent/brushpy-batch-scene" in missing.error
    assert "does not exist" in _summary(batch_run["out"])["missing"]["error"]
    assert missing.attempts == 1  # bad input is not retried
    assert all(r.state == "done" for name, r in results.items() if name != "missing")


def test_rerun_skips_finished_scenes(batch_run):
    """The same batch again, through the command line: nothing trains, the missing scene fails again."""
    out = batch_run["out"]
    names = [s.name for s in _specs() if s.name != "missing"]
    watched = [out / n / f for n in names for f in (METRICS_NAME, "checkpoint.npz", LOG_NAME, MARKER_NAME)]
    before = {p: p.stat().st_mtime_ns for p in watched}
    scenes_file = out.parent / f"{out.name}_scenes.csv"
    with open(scenes_file, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["scene", "name", "args"])
        for s in _specs():
            writer.writerow([s.path, s.name, " ".join(s.args)])
    res = CliRunner().invoke(main, ["batch", "-o", str(out), "--scenes-file", str(scenes_file), "--", *TRAIN_ARGS])
    assert res.exit_code == 1, res.output  # the missing scene
    assert "1 of" in res.output and "(missing)" in res.output
    for name in names:
        assert f"| {name} | skipped |" in res.output
    assert {p: p.stat().st_mtime_ns for p in watched} == before
    summary = _summary(out)
    assert {summary[n]["state"] for n in names} == {"skipped"}
    for name in names:  # the summary still reads the scene's own metrics
        assert float(summary[name]["psnr"]) == pytest.approx(read_metrics(out / name / METRICS_NAME)[-1]["psnr"])


def test_gpus_on_a_cluster_without_gpus_is_a_clear_error(ray_cluster, tmp_path):
    with pytest.raises(ClusterError, match="--gpus-per-scene 1: the local Ray cluster has no GPUs"):
        run_batch([SceneSpec(str(EMBEDDED), "x")], tmp_path, TRAIN_ARGS, gpus_per_scene=1, log=lambda s: None)
    with pytest.raises(ClusterError, match="--cpus-per-scene 3"):
        run_batch([SceneSpec(str(EMBEDDED), "x")], tmp_path, TRAIN_ARGS, cpus_per_scene=3, log=lambda s: None)
    assert not (tmp_path / "x").exists()


def test_unreachable_address_is_a_clear_error():
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'brushpy[distributed]')")
    from brushpy.distributed.cluster import connect

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ClusterError, match=f"--address 127.0.0.1:{port}: cannot reach a Ray cluster"):
        connect(f"127.0.0.1:{port}", timeout_s=2.0)
    res = CliRunner().invoke(main, ["batch", str(EMBEDDED), "-o", "unused", "--address", f"127.0.0.1:{port}"])
    assert res.exit_code == 2 and "cannot reach a Ray cluster" in res.output
    with pytest.raises(ClusterError, match="expected HOST:PORT"):
        parse_address("host:notaport")
    assert parse_address("10.0.0.5") == ("10.0.0.5", 6379)
    assert parse_address("ray://head:10001") == ("head", 10001)
    assert parse_address("auto") is None


def test_without_ray_the_command_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(RayMissingError, match=r"pip install 'brushpy\[distributed\]'"):
        require_ray()
    res = CliRunner().invoke(main, ["batch", str(EMBEDDED), "-o", str(tmp_path / "out")])
    assert res.exit_code == 2
    assert "pip install 'brushpy[distributed]'" in res.output and "Traceback" not in res.output


def test_scene_lists(tmp_path):
    (tmp_path / "sub").mkdir()
    txt = tmp_path / "sub" / "scenes.txt"
    txt.write_text("# scenes\n\nlego --total-steps 10\n/abs/beer.zip --max-resolution 240 --seed 'a b'\n")
    specs = read_scenes_file(txt)
    assert specs == [SceneSpec(str(tmp_path / "sub" / "lego"), "lego", ("--total-steps", "10")),
                     SceneSpec("/abs/beer.zip", "beer", ("--max-resolution", "240", "--seed", "a b"))]
    csv_file = tmp_path / "scenes.csv"
    csv_file.write_text("scene,name,args\nlego,lego_a,--total-steps 5\nlego,lego_b,\n")
    assert [(s.name, s.args) for s in read_scenes_file(csv_file)] == [("lego_a", ("--total-steps", "5")),
                                                                       ("lego_b", ())]
    specs = scene_specs([str(tmp_path / "one")], csv_file)
    assert [s.name for s in specs] == ["one", "lego_a", "lego_b"]
    with pytest.raises(InputError, match="both write OUT/lego"):
        scene_specs(["a/lego", "b/lego"])
    bad = tmp_path / "bad.csv"
    bad.write_text("path,args\nx,\n")
    with pytest.raises(InputError, match="'scene' column"):
        read_scenes_file(bad)
    with pytest.raises(InputError, match="no scenes"):
        scene_specs([])
    with pytest.raises(InputError, match="--scenes-file .*missing.txt: cannot read"):
        read_scenes_file(tmp_path / "missing.txt")


def test_train_flags_are_checked_before_any_cluster_starts(tmp_path):
    with pytest.raises(OptionError, match="--export-path is set by brushpy batch"):
        check_train_args(["--total-steps", "5", "--export-path=x"])
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'brushpy[distributed]')")
    runner = CliRunner()
    res = runner.invoke(main, ["batch", str(EMBEDDED), "-o", str(tmp_path / "o"), "--", "--total-steps", "abc"])
    assert res.exit_code == 2 and "the train flags after --" in res.output and "--total-steps" in res.output
    res = runner.invoke(main, ["batch", str(EMBEDDED), "-o", str(tmp_path / "o"), "--", "--no-such-flag"])
    assert res.exit_code == 2 and "--no-such-flag" in res.output
    scenes = tmp_path / "s.txt"
    scenes.write_text(f"{EMBEDDED} --resume x.npz\n")
    res = runner.invoke(main, ["batch", "-o", str(tmp_path / "o"), "--scenes-file", str(scenes)])
    assert res.exit_code == 2 and "scene lego_small" in res.output and "--resume" in res.output
    assert not (tmp_path / "o").exists()


def test_output_watch_reads_the_bar_and_the_evaluations(tmp_path):
    """The child's merged output as ``brushpy train`` writes it: decoding bar, training bar redraws
    (``\\r``), an evaluation line, the end-of-run line."""
    reports = []
    watch = _OutputWatch(tmp_path / "train.log", lambda **kw: reports.append(kw), every_s=0.0)
    stream = ("decoding lego:  50%|#    | 5/10 [00:00<00:00, 61.2img/s]\rdecoding lego: 100%|##| 10/10 [00:01<00:00]\n"
              "lego: 8 training views\n\r  0%|          | 0/20 [00:00<?, ?step/s]\r 50%|#####     | 10/20 [00:05<00:05,"
              "  2.0step/s, loss=0.1]\r" + " " * 20 + "\rstep 10: PSNR 18.25 dB, SSIM 0.7, 4,414 splats\n"
              "\r100%|##########| 20/20 [00:10<00:00,  1.9s/step]\n"
              "trained 20 steps in 10.0 s; 4,414 splats; eval PSNR 19.5 dB; wrote /x/export_20.ply\n"
              "Error: something\n")
    for i in range(0, len(stream), 7):  # in pieces, as a pipe delivers it
        watch.feed(stream[i:i + 7])
    steps = [r["step"] for r in reports if "step" in r and "psnr" not in r]
    assert steps == [0, 10, 20]  # not the decoding bar's 5/10
    assert {"step": 10, "psnr": 18.25} in reports
    assert watch.export == "/x/export_20.ply" and watch.error == "something"
    log = (tmp_path / "train.log").read_text().splitlines()
    assert log[0].startswith("decoding lego: 100%") and "lego: 8 training views" in log
    assert "step 10: PSNR 18.25 dB, SSIM 0.7, 4,414 splats" in log and any(l.startswith("100%|") for l in log)
    assert not any("50%|" in line for line in log)  # the bar's redraws stay out of the log
