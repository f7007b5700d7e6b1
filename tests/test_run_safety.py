"""Nothing lost, nothing silent (issue 20): divergence caught, stop signals, one run per folder,
checkpoints that match their dataset, --max-splats from the start.

Training here is tiny (lego_small at 16-32 px, a handful of steps); the signal tests run
``brushpy train`` in a subprocess and signal it once it has trained a few steps.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from tests.conftest import REPO

from tests.test_train import LEGO
from tests.test_train import tiny_config as _train_config
from tests.test_train import tiny_scene as _train_scene


def tiny_scene(max_frames=4, resolution=16):
    """test_train's tiny lego, smaller still (4 views at 16 px)."""
    return _train_scene(max_frames=max_frames, resolution=resolution)


def tiny_config(**kw):
    """test_train's config with a short schedule (30 steps, refine every 10)."""
    return _train_config(**{"total_steps": 30, "refine_every": 10, "growth_stop_iter": 20, **kw})


def run_cli(*args):
    from brushpy.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


# ------------------------------------------------------------------------------ health check


@pytest.mark.parametrize("seed", [0, 1])
def test_health_check_counts_non_finite_values_per_tensor(gpu, seed):
    """The GPU counts equal a NumPy count of NaN/±inf per tensor and per splat."""
    from brushpy.gpu import Recorder
    from brushpy.render.splats import Splats
    from brushpy.train.health import HealthCheck, count_non_finite

    rng = np.random.default_rng(seed)
    n, k = 1000, 9
    arrays = {"means": rng.normal(size=(n, 3)), "rotations": rng.normal(size=(n, 4)),
              "log_scales": rng.normal(size=(n, 3)), "sh_coeffs": rng.normal(size=(n, k, 3)),
              "raw_opacities": rng.normal(size=n)}
    arrays = {name: a.astype(np.float32) for name, a in arrays.items()}
    for a in arrays.values():
        flat = a.reshape(-1)
        idx = rng.choice(flat.size, size=int(rng.integers(1, 30)), replace=False)
        flat[idx] = rng.choice([np.nan, np.inf, -np.inf], size=idx.size)
    # large finite values and subnormals are finite
    arrays["means"][0] = [3e38, -3e38, 1e-45]
    splats = Splats.from_numpy(*(arrays[name] for name in Splats.PARAM_NAMES))
    check = HealthCheck()
    rec = Recorder()
    check.record(rec, splats)
    rec.submit()
    report = check.read()
    bad_rows = {name: ~np.isfinite(a.reshape(n, -1)).all(axis=1) for name, a in arrays.items()}
    assert report.num_splats == n
    assert report.non_finite == {name: int(bad_rows[name].sum()) for name in Splats.PARAM_NAMES}
    assert report.bad_splats == int(np.logical_or.reduce(list(bad_rows.values())).sum())
    assert not report.ok
    assert count_non_finite(arrays) == report  # the host-side count agrees


def test_diverged_run_stops_with_step_tensor_and_option(gpu, tmp_path):
    """Huge learning rates: the loss stays finite but the splats do not; the trainer says so."""
    from brushpy.train.config import ProcessConfig
    from brushpy.train.health import HEALTH_EVERY, DivergedError, NonFiniteSplatsError
    from brushpy.train.trainer import Trainer

    tr = Trainer(tiny_scene(), tiny_config(lr_mean=1e38, lr_scale=1e38, total_steps=60), ProcessConfig())
    for _ in range(3):
        tr.step()
    with pytest.raises(NonFiniteSplatsError) as err:  # checked before every write, whatever the cadence
        tr.export_ply(tmp_path / "x.ply")
    assert "training diverged at step 3" in str(err.value) and "--lr-" in str(err.value)
    tr = Trainer(tiny_scene(), tiny_config(lr_mean=1e38, lr_scale=1e38, total_steps=60), ProcessConfig())
    with pytest.raises(DivergedError) as err:
        for _ in range(60):
            tr.step()
    msg = str(err.value)
    assert f"training diverged at step {tr.step_count}" in msg and "--lr-" in msg
    assert tr.step_count <= HEALTH_EVERY
    with pytest.raises(DivergedError):  # and nothing diverged is ever written, even once refine pruned it
        tr.export_ply(tmp_path / "x.ply")
    with pytest.raises(DivergedError):
        tr.save_checkpoint(tmp_path / "c.npz")
    assert not list(tmp_path.iterdir())


def _file_values_finite(path) -> bool:
    """Every vertex value in the PLY file is finite (read raw: read_ply repairs or drops non-finite ones)."""
    from plyfile import PlyData

    data = PlyData.read(str(path))["vertex"].data
    return all(np.isfinite(data[name]).all() for name in data.dtype.names)


def test_a_few_non_finite_splats_are_left_out_not_fatal(gpu, tmp_path, caplog):
    """Below DIVERGED_FRACTION non-finite splats are inert: training goes on with a warning, the
    checkpoint keeps them (a resume is exact), exports leave them out."""
    import logging

    from brushpy.io.ply import read_ply
    from brushpy.train.config import ProcessConfig
    from brushpy.train.health import HEALTH_EVERY, count_non_finite
    from brushpy.train.trainer import Trainer

    tr = Trainer(tiny_scene(), tiny_config(total_steps=60, refine_every=1000), ProcessConfig())
    n = tr.splats.num_splats
    means = tr.splats.means.numpy()
    means[[3, 700]] = np.nan
    tr.splats.means.write(means)
    with caplog.at_level(logging.WARNING, logger="brushpy"):
        for _ in range(HEALTH_EVERY + 1):
            tr.step()
    assert any(f"2 of {n:,} splats have non-finite parameters" in r.message for r in caplog.records)
    assert tr.divergence is None
    tr.save_checkpoint(tmp_path / "c.npz")
    path = tr.export_ply(tmp_path / "x.ply")
    assert _file_values_finite(path)  # read_ply would repair or drop non-finite values: look at the file itself
    data = read_ply(path)
    assert data.num_splats == n - 2 and count_non_finite(data).ok


def test_run_whose_splats_all_left_the_views_stops(gpu):
    """`--lr-mean 1e9`: every value stays finite but the means fly out of the cameras' views (the run
    exited 0 with the background's 9.64 dB); with nothing visible no gradient can bring them back."""
    from brushpy.train.config import ProcessConfig
    from brushpy.train.health import NothingVisibleError, blind_steps_limit
    from brushpy.train.trainer import Trainer

    scene = tiny_scene()
    tr = Trainer(scene, tiny_config(lr_mean=1e9, total_steps=200), ProcessConfig())
    with pytest.raises(NothingVisibleError) as err:
        for _ in range(200):
            tr.step()
    assert tr.step_count < 100
    assert f"no splat was visible in the last {blind_steps_limit(len(scene.train_views))} training views" in str(err.value)
    assert "--lr-mean" in str(err.value)
    # a healthy run of the same length never trips it
    ok = Trainer(scene, tiny_config(total_steps=200), ProcessConfig())
    assert min(ok.step().num_visible for _ in range(tr.step_count + 5)) > 0


def test_diverged_run_is_a_cli_error_and_keeps_the_last_good_export(gpu, tmp_path):
    """`brushpy train` with a diverging LR: exit 1, one `Error:` line, no traceback, the earlier export kept."""
    from brushpy.io.ply import read_ply
    from brushpy.train.health import count_non_finite

    out = tmp_path / "out"
    # a healthy run first: its export and checkpoint must survive the diverged one
    base = ["train", LEGO, "--max-frames", 4, "--max-resolution", 16, "--sh-degree", 0, "--eval-every", 0,
            "--export-path", out, "--quiet"]
    ok = run_cli(*base, "--total-steps", 5)
    assert ok.exit_code == 0, ok.output
    before = (out / "export_5.ply").read_bytes()
    res = run_cli(*base, "--total-steps", 40, "--lr-mean", 1e38, "--lr-scale", 1e38, "--export-every", 2,
                  "--resume", out / "checkpoint.npz")
    assert res.exit_code == 1, res.output
    assert "Error: training diverged at step" in res.output and "Traceback" not in res.output
    assert (out / "export_5.ply").read_bytes() == before
    for ply in out.glob("export_*.ply"):  # whatever was written is finite
        assert _file_values_finite(ply) and count_non_finite(read_ply(ply)).ok, ply


# ------------------------------------------------------------------------------ run folders


def test_second_run_into_a_folder_is_refused_then_overwrite_and_resume(gpu, tmp_path):
    from brushpy.errors import InputError
    from brushpy.train.config import ProcessConfig
    from brushpy.train.run import run_training

    scene = tiny_scene()
    out = tmp_path / "out"
    process = ProcessConfig(eval_every=2, export_every=4, export_path=str(out))
    run_training(scene, tiny_config(total_steps=6), process, progress=False, log=lambda *_: None)
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [2, 4, 6]

    with pytest.raises(InputError) as err:  # another run into the same folder
        run_training(scene, tiny_config(total_steps=6), process, progress=False, log=lambda *_: None)
    assert "--resume" in str(err.value) and "--overwrite" in str(err.value) and str(out) in str(err.value)
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3  # untouched

    # the checkpoint is from step 6; pretend the run was killed after an eval at 8 that it never checkpointed
    with (out / "metrics.jsonl").open("a") as f:
        f.write(json.dumps({**lines[-1], "step": 8}) + "\n" + '{"step": 1')  # and a torn line
    run_training(scene, tiny_config(total_steps=10), process, resume=out / "checkpoint.npz", progress=False,
                 log=lambda *_: None)
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6, 8, 10]  # continued: the stale step-8 line and the torn line are gone

    run_training(scene, tiny_config(total_steps=4), process, overwrite=True, progress=False, log=lambda *_: None)
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4]


def test_cli_refuses_a_folder_with_another_run(gpu, tmp_path):
    out = tmp_path / "out"
    base = ["train", LEGO, "--max-frames", 4, "--max-resolution", 16, "--sh-degree", 0, "--total-steps", 3,
            "--eval-every", 0, "--export-path", out, "--quiet"]
    assert run_cli(*base).exit_code == 0
    res = run_cli(*base)
    assert res.exit_code == 2 and "Error: --export-path" in res.output and "--overwrite" in res.output
    assert "Traceback" not in res.output
    assert run_cli(*base, "--overwrite").exit_code == 0


def test_resume_with_another_datasets_checkpoint_is_refused(gpu, tmp_path):
    from brushpy.train.config import ProcessConfig
    from brushpy.train.errors import CheckpointError
    from brushpy.train.trainer import Trainer

    a = Trainer(tiny_scene(max_frames=4), tiny_config(), ProcessConfig())
    a.step()
    ckpt = a.save_checkpoint(tmp_path / "c.npz")
    b = Trainer(tiny_scene(max_frames=3), tiny_config(), ProcessConfig())  # same name, other training views
    with pytest.raises(CheckpointError) as err:
        b.load_checkpoint(ckpt)
    assert "4 training views" in str(err.value) and "3 training views" in str(err.value)
    assert err.value.exit_code == 2
    Trainer(tiny_scene(max_frames=4), tiny_config(), ProcessConfig()).load_checkpoint(ckpt)  # the same: fine


def test_max_splats_caps_the_initial_splats_with_a_note(gpu, tmp_path):
    from brushpy.train.config import ProcessConfig
    from brushpy.train.trainer import Trainer

    tr = Trainer(tiny_scene(), tiny_config(max_splats=1), ProcessConfig())
    assert tr.splats.num_splats == 1
    assert any("--max-splats 1:" in n and "of the 10,000 initial splats" in n for n in tr.notes)
    for _ in range(12):  # through a refine
        tr.step()
    assert tr.splats.num_splats <= 1


# ------------------------------------------------------------------------------ signals


def _start_training(tmp_path, *extra):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "brushpy", "train", str(LEGO), "--max-frames", "4", "--max-resolution", "16",
           "--sh-degree", "0", "--total-steps", "100000", "--eval-every", "0", "--export-every", "100000",
           "--export-path", str(out), *extra]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc, out


def _wait_for_steps(proc, seconds=240):
    """Read the progress bar until a few steps have run."""
    deadline = time.time() + seconds
    seen = ""
    while time.time() < deadline:
        ch = proc.stdout.read(1)
        if not ch:
            break
        seen += ch
        if "step/s" in seen[-200:] or "s/step" in seen[-200:]:
            if any(f"| {k}/100000" in seen for k in range(3, 50)):
                return seen
    raise AssertionError(f"training did not start: {seen[-2000:]}")


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_stop_signal_saves_and_exits_non_zero(gpu, tmp_path, sig, code):
    from brushpy.io.ply import read_ply

    proc, out = _start_training(tmp_path)
    try:
        _wait_for_steps(proc)
        proc.send_signal(sig)
        rest, _ = proc.communicate(timeout=240)
    finally:
        proc.kill()
    assert proc.returncode == code, rest
    assert "Traceback" not in rest
    assert "--resume" in rest
    (ply,) = out.glob("export_*.ply")
    assert read_ply(ply).num_splats > 0 and (out / "checkpoint.npz").is_file()
    assert not [p for p in out.iterdir() if "tmp" in p.name]
