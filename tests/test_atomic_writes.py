"""Atomic writes (brushpy.io.atomic): a file brushpy writes is the old one or the whole new one.

* a write that fails half-way (ENOSPC from the file's ``write``, or from ``fsync``)
  keeps the previous file and leaves no temp file, for the PLY export, the
  checkpoint, the MIP model and the PNGs;
* SIGKILL of a process writing a large PLY over and over never leaves a
  truncated file under the final name;
* an export folder that cannot be made fails before training with ``Error:
  --export-path ...``, no traceback.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from brushpy.io import atomic
from brushpy.io.atomic import WriteError, append_line, atomic_write, read_jsonl
from brushpy.io.ply import SplatData, read_ply, write_ply
from tests.test_train import LEGO, tiny_config, tiny_scene

REPO = Path(__file__).resolve().parent.parent


def _splats(n, seed=0) -> SplatData:
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, 4)).astype(np.float32)
    return SplatData(
        means=rng.normal(size=(n, 3)).astype(np.float32),
        rotations=q / np.linalg.norm(q, axis=1, keepdims=True),
        log_scales=rng.uniform(-4, -1, size=(n, 3)).astype(np.float32),
        sh_coeffs=rng.normal(size=(n, 1, 3)).astype(np.float32),
        raw_opacities=rng.normal(size=n).astype(np.float32),
    )


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


class _FailingFile:
    """A file object whose ``write`` runs out of space after ``limit`` bytes (writing the part that fits)."""

    def __init__(self, f, limit):
        self._f, self._left = f, limit

    def write(self, data):
        data = memoryview(data).cast("B") if not isinstance(data, str) else data
        if len(data) > self._left:
            self._f.write(data[: self._left])
            self._left = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._left -= len(data)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


@pytest.fixture(params=["write", "fsync"])
def disk_full(request, monkeypatch):
    """Make the next atomic write fail with ENOSPC half-way through its bytes, or at its fsync."""

    def arm():
        if request.param == "write":
            real = os.fdopen
            monkeypatch.setattr(atomic.os, "fdopen", lambda *a, **k: _FailingFile(real(*a, **k), 100))
        else:
            def fsync(fd):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            monkeypatch.setattr(atomic.os, "fsync", fsync)

    return arm


def _assert_kept(path: Path, before: bytes, exc_info):
    assert path.read_bytes() == before, "the previous file was changed"
    assert _temps(path.parent) == [], "a temp file was left behind"
    msg = str(exc_info.value)
    assert str(path) in msg and "no space left on device" in msg, msg


# ------------------------------------------------------------------ the helper itself


def test_atomic_write_replaces_whole_file_and_keeps_mode(tmp_path):
    path = tmp_path / "sub" / "a.bin"
    with atomic_write(path) as f:
        f.write(b"one")
    assert path.read_bytes() == b"one"
    os.chmod(path, 0o640)
    with atomic_write(path) as f:
        f.write(b"two")
    assert path.read_bytes() == b"two" and (path.stat().st_mode & 0o777) == 0o640
    assert _temps(path.parent) == []


def test_atomic_write_error_in_block_keeps_old_file(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")
    with pytest.raises(ZeroDivisionError):
        with atomic_write(path, "w") as f:
            f.write("new, half")
            1 / 0
    assert path.read_text() == "old" and _temps(tmp_path) == []


def test_atomic_write_names_option_and_cause(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(WriteError) as exc_info:
        with atomic_write(blocker / "out" / "a.ply", option="--export-path") as f:
            f.write(b"x")
    msg = str(exc_info.value)
    assert str(blocker / "out" / "a.ply") in msg and "--export-path" in msg and "is a file" in msg, msg


def test_stale_temps_of_dead_writers_are_removed(tmp_path):
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(proc.stdout)
    stale = tmp_path / f".export_1.ply.tmp-{dead}-abcd1234"
    stale.write_bytes(b"half")
    mine = tmp_path / f".export_1.ply.tmp-{os.getpid()}-live0000"  # a live writer's: kept
    mine.write_bytes(b"busy")
    write_ply(tmp_path / "export_1.ply", _splats(10))
    assert not stale.exists() and mine.exists()


def test_metrics_append_survives_a_torn_last_line(tmp_path):
    from brushpy.train.stream import read_metrics

    path = tmp_path / "metrics.jsonl"
    append_line(path, '{"step": 1}')
    with open(path, "a") as f:
        f.write('{"step": 2, "ps')  # a crash mid-append
    assert read_metrics(path) == [{"step": 1}]
    append_line(path, '{"step": 3}')
    assert read_jsonl(path) == [{"step": 1}, {"step": 3}]


# ------------------------------------------------------------------ every writer, disk full


def test_ply_export_disk_full_keeps_previous(tmp_path, disk_full):
    path = tmp_path / "export_10.ply"
    write_ply(path, _splats(500, seed=1))
    before = path.read_bytes()
    disk_full()
    with pytest.raises(WriteError) as exc_info:
        write_ply(path, _splats(500, seed=2))
    _assert_kept(path, before, exc_info)
    assert read_ply(path).num_splats == 500


def test_checkpoint_and_export_disk_full_keep_previous(gpu, tmp_path, disk_full):
    from brushpy.train.config import ProcessConfig
    from brushpy.train.stream import RunOutputs
    from brushpy.train.trainer import Trainer

    scene = tiny_scene(max_frames=2, resolution=16)
    process = ProcessConfig(export_path=str(tmp_path / "out"), export_name="export.ply")
    trainer = Trainer(scene, tiny_config(total_steps=5), process)
    outputs = RunOutputs(trainer, process, scene.name)
    ply = outputs.export()
    ckpt = tmp_path / "out" / "checkpoint.npz"
    ply_before, ckpt_before = ply.read_bytes(), ckpt.read_bytes()
    trainer.step()
    disk_full()
    with pytest.raises(WriteError) as exc_info:
        trainer.save_checkpoint(ckpt)
    _assert_kept(ckpt, ckpt_before, exc_info)
    assert "--export-path" in str(exc_info.value)
    with pytest.raises(WriteError) as exc_info:
        outputs.export()  # export_name without {iter}: the only export must survive
    _assert_kept(ply, ply_before, exc_info)
    Trainer(scene, tiny_config(total_steps=5), process).load_checkpoint(ckpt)  # still a whole checkpoint


def test_eval_png_disk_full_keeps_previous(gpu, tmp_path, disk_full):
    from brushpy.train.config import ProcessConfig
    from brushpy.train.trainer import Trainer

    scene = tiny_scene(max_frames=4, resolution=16)
    trainer = Trainer(scene, tiny_config(total_steps=5), ProcessConfig())
    trainer.evaluate(save_dir=tmp_path / "eval")
    pngs = sorted((tmp_path / "eval").iterdir())
    assert pngs and all(p.suffix == ".png" for p in pngs)
    before = pngs[0].read_bytes()
    disk_full()
    with pytest.raises(WriteError) as exc_info:
        trainer.evaluate(save_dir=tmp_path / "eval")
    _assert_kept(pngs[0], before, exc_info)


def test_mip_model_disk_full_keeps_previous(gpu, tmp_path, disk_full):
    from brushpy.mip.model import MipGaussians

    rng = np.random.default_rng(0)
    k = 64
    q = rng.normal(size=(k, 4))
    model = MipGaussians.from_numpy(means=rng.uniform(-0.5, 0.5, (k, 3)), log_scales=np.full((k, 3), -3.0),
                                    rotations=q / np.linalg.norm(q, axis=1, keepdims=True), log_amplitudes=np.zeros(k))
    path = model.save(tmp_path / "model.npz", iteration=np.array(1))
    before = path.read_bytes()
    disk_full()
    with pytest.raises(WriteError) as exc_info:
        model.save(path, iteration=np.array(2))
    _assert_kept(path, before, exc_info)
    assert int(MipGaussians.load(path)[1]["iteration"]) == 1


def test_render_png_disk_full_keeps_previous(tmp_path, monkeypatch, disk_full):
    from brushpy import cli
    from tests.test_cli import EXAMPLE, reference_rasterize

    monkeypatch.setattr(cli, "_load_rasterize", lambda: reference_rasterize)
    out = tmp_path / "r.png"
    args = ["render", str(EXAMPLE), "-o", str(out), "--width", "40", "--height", "30"]
    assert CliRunner().invoke(cli.main, args).exit_code == 0
    before = out.read_bytes()
    disk_full()
    result = CliRunner().invoke(cli.main, [*args, "--background", "white"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert "Error: cannot write" in result.output and "no space left on device" in result.output, result.output
    assert out.read_bytes() == before and _temps(tmp_path) == []


def test_viewer_training_shows_a_failed_export(gpu, tmp_path, monkeypatch):
    """A scheduled export that hits a full disk stops the viewer's run with the message, not a crash."""
    pytest.importorskip("brushpy.viewer.training")
    from brushpy.viewer.training import LiveTraining
    from tests.test_viewer_training import tiny_configs, tiny_scene as viewer_scene

    tc, pc = tiny_configs(tmp_path / "out", total_steps=2)

    def fsync(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    tr = LiveTraining(viewer_scene(), tc, pc)
    monkeypatch.setattr(atomic.os, "fsync", fsync)
    for _ in range(5):
        tr.run_for(10.0)
    assert tr.error and "no space left on device" in tr.error and not tr.running, tr.error
    assert _temps(tmp_path / "out") == []


# ------------------------------------------------------------------ SIGKILL mid-write

_WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from brushpy.io.ply import write_ply
    from tests.test_atomic_writes import _splats

    data = _splats(200_000, seed=7)
    print("ready", flush=True)
    while True:
        write_ply(sys.argv[1], data)
        print("wrote", flush=True)
""")


def test_sigkill_never_leaves_a_truncated_ply(tmp_path):
    """Kill a process that rewrites a 200k-splat PLY at 10 seeded random moments: the file is
    absent or whole each time; the only leftovers are hidden temps, removed by the next write."""
    path = tmp_path / "export_1.ply"
    expected = _splats(200_000, seed=7)
    rng = np.random.default_rng(20)
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    whole = 0
    for _ in range(10):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.0, 1.0))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL
        if path.exists():
            got = read_ply(path)
            assert got.num_splats == 200_000
            np.testing.assert_array_equal(got.means, expected.means)
            np.testing.assert_array_equal(got.rotations, expected.rotations)
            whole += 1
        others = [p.name for p in tmp_path.iterdir() if p != path]
        assert all(n.startswith(".export_1.ply.tmp-") for n in others), others
    assert whole >= 1, "no write finished in 10 tries: the kills tested nothing"
    from brushpy.viewer.scene import list_splat_files

    assert [s.path for s in list_splat_files(tmp_path)] == [path]  # temps are not offered as splat files
    write_ply(path, _splats(10))  # the next write of the name removes temps of killed writers
    assert _temps(tmp_path) == []


# ------------------------------------------------------------------ an export folder that cannot be made


def test_unwritable_export_path_fails_before_training(gpu, tmp_path):
    from brushpy import cli

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    out = blocker / "exports"
    result = CliRunner().invoke(cli.main, ["train", str(LEGO), "--export-path", str(out), "--total-steps", "5",
                                           "--max-frames", "2", "--max-resolution", "16"])
    assert result.exit_code in (1, 2) and isinstance(result.exception, SystemExit), result.output
    assert "Error:" in result.output and f"--export-path {out}" in result.output, result.output
    assert "Traceback" not in result.output and blocker.read_text() == "not a folder"


def test_unwritable_mip_output_is_one_error_line(gpu, tmp_path):
    from brushpy import cli
    from brushpy.mip.model import MipGaussians

    k = 8
    model = MipGaussians.from_numpy(means=np.zeros((k, 3)), log_scales=np.full((k, 3), -3.0),
                                    rotations=np.tile([1.0, 0, 0, 0], (k, 1)), log_amplitudes=np.zeros(k))
    path = model.save(tmp_path / "model.npz")
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    for args in (["export", "-o", str(blocker / "m.ply")], ["render", "-o", str(blocker / "pngs")]):
        result = CliRunner().invoke(cli.main, ["mip", args[0], str(path), *args[1:]])
        assert result.exit_code in (1, 2) and isinstance(result.exception, SystemExit), result.output
        assert "Error:" in result.output and str(blocker) in result.output and "is a file" in result.output, \
            result.output
    assert blocker.read_text() == "not a folder"
