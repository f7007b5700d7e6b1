"""Training loop tests on a tiny version of the embedded lego scene (no ../shared needed)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from brushpy.train.config import ProcessConfig, TrainConfig

REPO = Path(__file__).resolve().parent.parent
LEGO = REPO / "assets" / "lego_small"


def tiny_scene(max_frames=12, resolution=48):
    from brushpy.data import LoadConfig, load_dataset

    return load_dataset(LEGO, LoadConfig(max_frames=max_frames, max_resolution=resolution, progress=False))


def tiny_config(**kw):
    base = dict(total_steps=400, background_color=(1.0, 1.0, 1.0), refine_every=20, growth_stop_iter=200, sh_degree=1)
    base.update(kw)
    return TrainConfig(**base)


def test_loss_falls_and_psnr_rises(gpu):
    from brushpy.train.trainer import Trainer

    scene = tiny_scene()
    tr = Trainer(scene, tiny_config(), ProcessConfig(seed=3))
    before = tr.evaluate()["psnr"]
    losses = [tr.step().loss for _ in range(80)]
    after = tr.evaluate()["psnr"]
    assert np.mean(losses[-10:]) < 0.85 * np.mean(losses[:10]), (losses[:10], losses[-10:])
    assert after > before + 1.5, (before, after)
    assert tr.splats.num_splats != 10_000  # refine ran (grew or pruned)


def test_same_seed_same_metrics_and_resume(gpu, tmp_path):
    """Two runs with one seed agree; a run resumed from a checkpoint equals the uninterrupted run.

    Float atomics in the backward add in a GPU-dependent order, so agreement is
    checked to a tolerance, not bit for bit. A resume that lost the Adam moments, the
    step counter or the view order would differ on most elements.
    """
    from brushpy.train.trainer import Trainer

    scene = tiny_scene(max_frames=6, resolution=32)
    cfg = tiny_config(total_steps=60)
    a = Trainer(scene, cfg, ProcessConfig(seed=5))
    for _ in range(25):
        a.step()
    ckpt = a.save_checkpoint(tmp_path / "ckpt.npz")
    for _ in range(25):
        a.step()

    b = Trainer(scene, cfg, ProcessConfig(seed=5))
    b.load_checkpoint(ckpt)
    assert b.step_count == 25
    for _ in range(25):
        b.step()
    pa, pb = a.splats.numpy(), b.splats.numpy()
    assert a.splats.num_splats == b.splats.num_splats
    for k in pa:
        # Adam's tiny epsilon turns a near-zero gradient whose sign differs (atomic summation
        # order) into a full learning-rate step, so a handful of elements may differ.
        close = np.isclose(pb[k], pa[k], rtol=1e-3, atol=1e-4)
        assert close.mean() > 0.999, (k, close.mean())
    ea, eb = a.evaluate(), b.evaluate()
    assert abs(ea["psnr"] - eb["psnr"]) < 0.05


_BIT_EXACT_SCRIPT = r"""
import sys
import numpy as np
from brushpy.data import LoadConfig, load_dataset
from brushpy.train.config import ProcessConfig, TrainConfig
from brushpy.train.trainer import Trainer

scene = load_dataset(sys.argv[1], LoadConfig(max_frames=8, max_resolution=40, progress=False))
cfg = TrainConfig(total_steps=100, background_color=(1.0, 1.0, 1.0), refine_every=15, growth_stop_iter=60, sh_degree=1)

def fresh():
    return Trainer(scene, cfg, ProcessConfig(seed=11))

a = fresh()
for _ in range(20):
    a.step()
a.save_checkpoint(sys.argv[2])
for _ in range(25):
    a.step()
b = fresh()
for _ in range(45):
    b.step()
c = fresh()
c.load_checkpoint(sys.argv[2])
for _ in range(25):
    c.step()
pa, pb, pc = a.splats.numpy(), b.splats.numpy(), c.splats.numpy()
same = lambda p, q: all(p[k].shape == q[k].shape and np.array_equal(p[k], q[k]) for k in p)
ea, eb, ec = a.evaluate(), b.evaluate(), c.evaluate()
print("RESULT", same(pa, pb), same(pa, pc), ea["psnr"] == eb["psnr"] == ec["psnr"], a.splats.num_splats)
"""


def test_single_threaded_lavapipe_runs_are_bit_exact(gpu, tmp_path):
    """Same seed: identical splats and metrics; a resumed run equals the uninterrupted one, bit for bit.

    Float atomics add in the order the GPU runs its workgroups, so only a device that
    runs them in a fixed order can show this: lavapipe with one thread
    (``LP_NUM_THREADS=1``, read when the driver starts, hence the subprocess). Every
    random draw (init, view order, background noise, position noise, refine
    sampling) must come from the seed and the checkpoint for this to hold.
    """
    import os
    import subprocess
    import sys

    if str(gpu.adapter.info.get("device", "")).lower().find("llvmpipe") < 0:
        pytest.skip("needs lavapipe (LP_NUM_THREADS=1 orders its workgroups)")
    env = dict(os.environ, LP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", _BIT_EXACT_SCRIPT, str(LEGO), str(tmp_path / "c.npz")],
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    result = [line for line in out.stdout.splitlines() if line.startswith("RESULT")][-1].split()
    assert result[1:4] == ["True", "True", "True"], result
    assert int(result[4]) > 0


def test_run_training_writes_exports_and_metrics(gpu, tmp_path):
    from brushpy.io.ply import read_ply
    from brushpy.train.run import run_training

    scene = tiny_scene(max_frames=6, resolution=32)
    process = ProcessConfig(eval_every=10, export_every=15, export_path=str(tmp_path / "{dataset}_out"))
    logged = []
    summary = run_training(scene, tiny_config(total_steps=30), process, progress=False, log=logged.append)
    out = tmp_path / "lego_small_out"
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [10, 20, 30]
    assert set(lines[0]) == {"step", "psnr", "ssim", "num_splats", "elapsed_s", "steps_per_s"}
    assert (out / "export_15.ply").is_file() and (out / "export_30.ply").is_file()
    assert read_ply(out / "export_30.ply").num_splats == summary.num_splats
    assert summary.psnr == lines[-1]["psnr"]
    assert (out / "checkpoint.npz").is_file()
    # the summary line: time, final metrics, splats, peak memory, the file written
    n = summary.num_splats
    # at least the parameters and their two Adam moments (SH degree 1: 3 x 23 floats a splat)
    assert summary.peak_gpu_mib >= n * 69 * 4 / 2**20
    assert summary.peak_rss_mib is None or summary.peak_rss_mib > 10
    text = logged[-1]
    for part in ("trained 30 steps", f"{n:,} splats", "eval PSNR", "peak GPU buffers", "export_30.ply"):
        assert part in text, (part, text)


def test_non_finite_loss_stops_with_step(gpu):
    """A NaN loss stops training with a message naming the step (NaN parameters are culled by
    the renderer, so the NaN is injected through the loss weight)."""
    from brushpy.train.trainer import Trainer, TrainingError

    scene = tiny_scene(max_frames=4, resolution=32)
    tr = Trainer(scene, tiny_config(total_steps=20), ProcessConfig())
    tr.step()
    tr.loss_fn.ssim_weight = float("nan")
    with pytest.raises(TrainingError, match=r"at step 2;"):
        tr.step()


def test_too_many_initial_splats_names_option(gpu):
    from brushpy.train.trainer import Trainer, TrainingError, max_splats_for_device

    scene = tiny_scene(max_frames=2, resolution=16)
    cap = max_splats_for_device(3)
    init = {
        "means": np.zeros((cap + 1, 3), np.float32),
        "rotations": np.tile(np.float32([1, 0, 0, 0]), (cap + 1, 1)),
        "log_scales": np.zeros((cap + 1, 3), np.float32),
        "sh_coeffs": np.zeros((cap + 1, 1, 3), np.float32),
        "raw_opacities": np.zeros(cap + 1, np.float32),
    }
    with pytest.raises(TrainingError, match="--subsample-points"):
        Trainer(scene, tiny_config(sh_degree=3), ProcessConfig(), initial=init)


def test_cli_train_embedded_help_and_args_txt(tmp_path):
    from click.testing import CliRunner

    from brushpy.cli import main

    res = CliRunner().invoke(main, ["train", "--help"])
    assert res.exit_code == 0
    for section in ("Training options", "Dataset options", "Process options"):
        assert section in res.output
    assert "--growth-grad-threshold" in res.output and "--eval-split-every" in res.output


def test_cli_args_txt_precedence(tmp_path):
    from brushpy.cli.train import _build_configs, train

    (tmp_path / "args.txt").write_text("--total-steps 123 --lr-opac 0.5 --max-resolution 64\n")
    parser_ctx = train.make_context("train", [str(tmp_path), "--lr-opac", "0.25"])
    t, load, p, user_set = _build_configs(parser_ctx, tmp_path, dict(parser_ctx.params))
    assert t.total_steps == 123  # from args.txt
    assert t.lr_opac == 0.25  # command line beats args.txt
    assert load.max_resolution == 64
    assert p.seed == 42
    assert replace(t, total_steps=30000, lr_opac=TrainConfig().lr_opac) == TrainConfig()
    assert user_set == {"total_steps", "lr_opac", "max_resolution"}


def test_nerf_synthetic_implies_white_background_unless_set():
    from brushpy.train.config import dataset_train_defaults

    scene = tiny_scene(max_frames=2, resolution=16)
    assert scene.kind == "nerf-synthetic"
    assert dataset_train_defaults(scene) == {"background_color": (1.0, 1.0, 1.0)}
    scene.kind = "colmap"
    assert dataset_train_defaults(scene) == {}


def test_args_txt_background_is_not_overridden(tmp_path):
    """A --background-color from the dataset's args.txt counts as set by the user."""
    from brushpy.cli.train import _build_configs, train

    (tmp_path / "args.txt").write_text("--background-color 0.5,0.5,0.5\n")
    ctx = train.make_context("train", [str(tmp_path)])
    t, _, _, user_set = _build_configs(ctx, tmp_path, dict(ctx.params))
    assert t.background_color == (0.5, 0.5, 0.5) and "background_color" in user_set


def test_embedded_defaults_respect_flags(tmp_path):
    from brushpy.cli.train import EMBEDDED_DEFAULTS, _build_configs, _embedded_defaults, train

    def configs(args):
        ctx = train.make_context("train", args)
        t, _, p, user_set = _build_configs(ctx, tmp_path, dict(ctx.params))
        return _embedded_defaults(user_set, t, p)

    t, p = configs([])
    assert (t.total_steps, t.refine_every, t.growth_stop_iter) == (
        EMBEDDED_DEFAULTS["total_steps"], EMBEDDED_DEFAULTS["refine_every"], EMBEDDED_DEFAULTS["growth_stop_iter"])
    assert p.export_every == t.total_steps
    t, p = configs(["--total-steps", "3000", "--refine-every", "50"])
    assert (t.total_steps, t.refine_every) == (3000, 50)
    assert t.growth_stop_iter == TrainConfig().growth_stop_iter  # a chosen length keeps the usual growth stop
    assert p.export_every == ProcessConfig().export_every


def test_step_goes_through_the_tape(gpu):
    """Trainer.step records filter3d -> render -> loss on a tape (no filter op when the 3D filter is off)."""
    from brushpy.train.trainer import Trainer

    scene = tiny_scene(max_frames=4, resolution=32)
    tr = Trainer(scene, tiny_config(total_steps=20, min_scale_factor=0.1), ProcessConfig())
    tr.step()
    assert tr.last_ops == ("filter3d", "render", "loss")
    tr = Trainer(scene, tiny_config(total_steps=20, min_scale_factor=0.0), ProcessConfig())
    tr.step()
    assert tr.last_ops == ("render", "loss")


def test_image_loss_op_needs_its_unit_seed(gpu):
    """The fused loss's gradient holds for a seed of 1 only: another seed tensor raises."""
    from brushpy.autodiff import Tape
    from brushpy.gpu import GpuTensor, Recorder
    from brushpy.loss import ImageLoss, ImageLossOp

    rng = np.random.default_rng(0)
    img = GpuTensor.from_numpy(rng.random((16, 16, 4)).astype(np.float32))
    gt = GpuTensor.from_numpy(rng.random((16, 16, 3)).astype(np.float32))
    fn = ImageLoss()
    rec = Recorder()
    tape = Tape()
    op = tape.record(ImageLossOp(fn, rec, img, gt))
    grads = tape.backward(rec, op.seed)
    rec.submit()
    assert grads[img] is not None and np.abs(grads[img].numpy()).sum() > 0
    with pytest.raises(ValueError, match="seed of 1"):
        tape.backward(Recorder(), {op.outputs["loss"]: GpuTensor.from_numpy(np.full(1, 2.0, np.float32))})
