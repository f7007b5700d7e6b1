"""Structure from motion (``brushpy sfm``, ``brushpy train PHOTOS``): photos or a video in, a
COLMAP project brushpy's loader reads out; bad input as one ``Error:`` line.

Inputs are small and made here: the first 12 photos of ``../shared/datasets/beer_colmap`` (a
phone orbit around a can, 720x1280; features found at ``--max-image-size 320``), a video written
from them at 180x320 with OpenCV, synthetic noise images. The photo SfM runs once per module
(about 6 s on 2 busy cores). Tests that need
pycolmap skip without it; the "pycolmap missing" message is tested either way.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from brushpy.cli import main
from brushpy.data.pose_compare import read_poses
from tests.conftest import SHARED, requires_shared

BEER = SHARED / "datasets" / "beer_colmap"
needs_pycolmap = pytest.mark.skipif(importlib.util.find_spec("pycolmap") is None,
                                    reason="pycolmap is not installed (pip install 'brushpy[sfm]')")
needs_beer = requires_shared("datasets", "beer_colmap", "images")
SIZE = (180, 320)  # width, height of the video frames (the photos are 720x1280 portrait)


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def beer12(tmp_path_factory) -> Path:
    """The beer photos 0000-0011 (copies) in a folder of their own."""
    import shutil

    if not (BEER / "images").is_dir():
        pytest.skip(f"{BEER / 'images'} not found (the ../shared folder beside the checkout)")
    folder = tmp_path_factory.mktemp("sfm") / "beer12"
    folder.mkdir()
    for k in range(12):
        shutil.copyfile(BEER / "images" / f"{k:04d}.jpg", folder / f"{k:04d}.jpg")
    return folder


@pytest.fixture(scope="module")
def project(beer12) -> tuple[Path, str]:
    """``brushpy sfm beer12`` (default -o: beer12_sfm beside it); returns (folder, CLI output)."""
    if importlib.util.find_spec("pycolmap") is None:
        pytest.skip("pycolmap is not installed (pip install 'brushpy[sfm]')")
    res = cli("sfm", beer12, "--max-image-size", 320, "-q")
    assert res.exit_code == 0, res.output
    return beer12.parent / "beer12_sfm", res.output


# ------------------------------------------------------------------ photos -> COLMAP project


@needs_pycolmap
@needs_beer
def test_photo_folder_becomes_a_colmap_project(project):
    from brushpy.data import LoadConfig, load_dataset
    from brushpy.data import colmap
    from brushpy.data.source import DatasetSource

    out, output = project
    assert "registered 12/12 images" in output or "registered 11/12 images" in output, output
    assert "mean reprojection error" in output and "features" in output and "mapping" in output
    for rel in ("images", "sparse/0/cameras.bin", "sparse/0/images.bin", "sparse/0/points3D.bin", "database.db"):
        assert (out / rel).exists(), rel
    record = json.loads((out / "sfm.json").read_text())
    assert record["complete"] and record["matcher"] == "exhaustive" and record["registered"] >= 11
    assert set(record["stage_seconds"]) == {"features", "matching", "mapping", "undistortion"}
    model = colmap.read_model(DatasetSource(out), "sparse/0", True)
    assert {c.model for c in model.cameras.values()} == {"PINHOLE"}  # undistorted
    assert len(model.cameras) == 1  # one camera per folder
    scene = load_dataset(out, LoadConfig(progress=False, num_workers=1))
    assert len(scene.views) == record["registered"]
    assert scene.init_points is not None and len(scene.init_points) >= 50
    v = scene.views[0]
    assert v.image.shape[:2] == (v.camera.height, v.camera.width)


@needs_pycolmap
@needs_beer
def test_poses_match_the_shipped_model(project):
    from brushpy.data.pose_compare import compare_poses

    out, _ = project
    cmp = compare_poses(read_poses(out), read_poses(BEER))
    assert len(cmp.names) >= 11
    # 12 neighbouring frames lie on a short arc, which leaves the similarity's rotation about the arc
    # loosely fitted (median 1.1 deg measured); the relative rotations do not depend on it (0.23 deg)
    assert cmp.median_relative_rotation_deg < 1.0, cmp.relative_rotation_error_deg
    assert cmp.median_centre_error_fraction < 0.03, cmp.centre_error / cmp.extent


@needs_pycolmap
@needs_beer
def test_train_reuses_the_sfm_beside_the_photos(project, beer12):
    from brushpy.data.sfm_cache import cached_sfm, ensure_sfm, needs_sfm

    out, _ = project
    assert needs_sfm(beer12) and not needs_sfm(out)
    lines, stages = [], []
    folder, result = ensure_sfm(beer12, log_fn=lines.append, progress=False,
                                on_progress=lambda *a: stages.append(a))
    assert folder == out and result is None and "reusing" in lines[0] and not stages, lines
    photo = beer12 / "0003.jpg"
    st = photo.stat()
    os.utime(photo, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a rewritten photo: the cache is stale
    try:
        assert cached_sfm(beer12, out) is None
    finally:
        os.utime(photo, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cached_sfm(beer12, out) is not None


@needs_pycolmap
@needs_beer
def test_train_cli_on_photos_uses_the_sfm(project, beer12, gpu, tmp_path):
    res = cli("train", beer12, "--total-steps", 2, "--max-resolution", 64, "--export-path", tmp_path / "run", "-q")
    assert res.exit_code == 0, res.output
    assert "reusing the structure from motion" in res.output, res.output
    assert "12 training views" in res.output or "11 training views" in res.output, res.output
    assert (tmp_path / "run" / "export_2.ply").is_file()


@needs_pycolmap
@needs_beer
def test_viewer_opens_photos_through_the_sfm(project, beer12, gpu, tmp_path):
    from brushpy.train.config import ProcessConfig
    from brushpy.viewer.session import ViewerSession
    from tests.test_viewer_session import StubHost

    host = StubHost()
    session = ViewerSession(host)
    session.dataset_configs = (None, None, ProcessConfig(export_path=str(tmp_path / "exports")))
    assert session.open(beer12, wait=True), session.error  # no splat files there: photos, reused SfM
    assert session.dataset is not None and session.dataset.name == "beer12_sfm"
    assert any(c[0] == "training" for c in host.calls if isinstance(c, tuple))


@needs_pycolmap
@needs_beer
def test_rerun_needs_overwrite_and_foreign_folders_are_refused(project, beer12, tmp_path):
    out, _ = project
    res = cli("sfm", beer12, "-o", out, "-q")
    assert res.exit_code == 2 and "--overwrite" in res.output and "Traceback" not in res.output, res.output
    other = tmp_path / "other"
    other.mkdir()
    (other / "thesis.tex").write_text("keep me")
    res = cli("sfm", beer12, "-o", other, "-q")
    assert res.exit_code == 2 and "holds other files" in res.output, res.output
    assert (other / "thesis.tex").read_text() == "keep me"
    res = cli("sfm", beer12, "-o", beer12 / "out", "-q")
    assert res.exit_code == 2 and "inside it" in res.output, res.output


@needs_pycolmap
@needs_beer
def test_global_mapper(beer12, tmp_path):
    from brushpy.data.sfm import mappers_available

    if "global" not in mappers_available():
        pytest.skip("this pycolmap has no global_mapping")
    small = tmp_path / "small"
    small.mkdir()
    for k in range(12):
        with Image.open(beer12 / f"{k:04d}.jpg") as im:
            im.resize(SIZE, Image.LANCZOS).save(small / f"{k:04d}.jpg", quality=95)
    res = cli("sfm", small, "-o", tmp_path / "out", "--mapper", "global", "-q")
    assert res.exit_code == 0, res.output
    record = json.loads((tmp_path / "out" / "sfm.json").read_text())
    assert record["mapper"] == "global" and record["registered"] >= 9, record


# ------------------------------------------------------------------ video


def _write_video(path: Path, frames: list[np.ndarray], fps: float) -> Path:
    import cv2

    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        pytest.skip("this OpenCV cannot write mp4v video")
    for f in frames:
        writer.write(f)
    writer.release()
    return path


@pytest.fixture(scope="module")
def beer_video(beer12) -> Path:
    """24 frames at 10 fps, 180x320: each beer photo, then a blurred copy of it."""
    import cv2

    frames = []
    for k in range(12):
        sharp = cv2.resize(cv2.imread(str(beer12 / f"{k:04d}.jpg")), SIZE, interpolation=cv2.INTER_AREA)
        frames += [sharp, cv2.GaussianBlur(sharp, (9, 9), 3.0)]
    return _write_video(beer12.parent / "beer.mp4", frames, 10.0)


@needs_beer
def test_video_frames_keep_the_sharpest_of_each_window(beer_video, tmp_path):
    from brushpy.data.video_frames import extract_frames, sharpness

    got = extract_frames(beer_video, tmp_path / "f", fps=5.0, progress=False)  # windows of 2 frames
    assert got.frames_read == 24 and len(got.frames) == 12 and got.window == 2.0
    assert [p.name for p in got.frames][:2] == ["frame_00001.jpg", "frame_00002.jpg"]
    assert np.allclose(got.times_s, np.arange(12) * 0.2)  # the sharp frame of each pair (even index)
    import cv2

    blurred = cv2.GaussianBlur(cv2.imread(str(got.frames[0])), (9, 9), 3.0)
    assert got.sharpness[0] > 2 * sharpness(blurred)
    few = extract_frames(beer_video, tmp_path / "g", target=6, progress=False)  # default: about `target` frames
    assert len(few.frames) == 6 and few.window == 4.0


@needs_pycolmap
@needs_beer
def test_video_is_reconstructed_with_sequential_matching(beer_video, tmp_path):
    out = tmp_path / "video_sfm"
    res = cli("sfm", beer_video, "-o", out, "--fps", 5, "--max-image-size", 320, "-q")
    assert res.exit_code == 0, res.output
    assert "kept 12 of 24 frames" in res.output, res.output
    record = json.loads((out / "sfm.json").read_text())
    assert record["matcher"] == "sequential" and record["frames"] == 12
    assert record["registered"] >= 9, record
    assert len(list((out / "frames").glob("frame_*.jpg"))) == 12
    assert len(list((out / "images").glob("frame_*.jpg"))) == record["registered"]


def test_unreadable_video_is_one_error_line(tmp_path):
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    pytest.importorskip("pycolmap", reason="pycolmap is not installed (pip install 'brushpy[sfm]')")
    res = cli("sfm", bad, "-o", tmp_path / "out", "-q")
    assert res.exit_code == 2 and "Error:" in res.output and "clip.mp4" in res.output, res.output
    assert "Traceback" not in res.output


# ------------------------------------------------------------------ bad input


@needs_pycolmap
def test_folder_without_images(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "notes.txt").write_text("no photos here")
    res = cli("sfm", folder, "-o", tmp_path / "out")
    assert res.exit_code == 2 and "no images found" in res.output and str(folder) in res.output, res.output
    assert "Traceback" not in res.output


@needs_pycolmap
def test_two_unrelated_images_do_not_register(tmp_path):
    folder = tmp_path / "unrelated"
    folder.mkdir()
    for seed in (1, 2):
        rng = np.random.default_rng(seed)
        noise = rng.integers(0, 256, (240, 320), dtype=np.uint8)
        Image.fromarray(noise).resize((320, 240)).save(folder / f"noise{seed}.png")
    res = cli("sfm", folder, "-o", tmp_path / "out", "-q")
    assert res.exit_code == 1 and "Error:" in res.output, res.output
    assert "of 2 images could be placed" in res.output and "Try:" in res.output, res.output
    assert "--camera-model" in res.output and "Traceback" not in res.output
    from brushpy.data.sfm import SfmError, SfmOptions, run_sfm

    stages = []
    with pytest.raises(SfmError):
        run_sfm(folder, tmp_path / "again", SfmOptions(progress=False, on_progress=lambda *a: stages.append(a)))
    assert {s[0] for s in stages} == {"checking", "features", "matching", "mapping"}
    assert ("features", 2, 2) in stages and ("matching", 1, 1) in stages


@needs_pycolmap
@needs_beer
def test_corrupt_images_are_named_and_skipped(beer12, tmp_path):
    import shutil

    folder = tmp_path / "mixed"
    shutil.copytree(beer12, folder)
    (folder / "garbage.jpg").write_bytes(os.urandom(3000))
    data = (folder / "0005.jpg").read_bytes()
    (folder / "0005.jpg").write_bytes(data[: len(data) * 2 // 5])  # truncated
    res = cli("sfm", folder, "-o", tmp_path / "out", "--max-image-size", 320, "-q")
    assert res.exit_code == 0, res.output
    assert "garbage.jpg: skipped: not an image" in res.output, res.output
    assert "0005.jpg: skipped: damaged image data" in res.output and "truncated" in res.output, res.output
    record = json.loads((tmp_path / "out" / "sfm.json").read_text())
    assert set(record["skipped"]) == {"garbage.jpg", "0005.jpg"} and record["registered"] >= 9
    assert not (tmp_path / "out" / "images" / "0005.jpg").exists()


def test_missing_pycolmap_says_how_to_install(monkeypatch, tmp_path):
    from brushpy.data.sfm import SfmUnavailableError, require_pycolmap

    monkeypatch.setitem(sys.modules, "pycolmap", None)  # import pycolmap -> ImportError
    with pytest.raises(SfmUnavailableError, match=r"pip install 'brushpy\[sfm\]'"):
        require_pycolmap()
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("RGB", (32, 32)).save(folder / "a.jpg")
    res = cli("sfm", folder, "-o", tmp_path / "out")
    assert res.exit_code == 1 and "pip install 'brushpy[sfm]'" in res.output and "Traceback" not in res.output


def test_which_inputs_need_sfm(tmp_path):
    from brushpy.data.sfm_cache import default_sfm_dir, needs_sfm

    lego = Path(__file__).resolve().parent.parent / "assets" / "lego_small"
    assert not needs_sfm(lego)  # transforms_train.json: posed
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not needs_sfm(empty)  # nothing to reconstruct: the loader's own error
    photos = tmp_path / "photos"
    (photos / "masks").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(photos / "masks" / "a.png")
    assert not needs_sfm(photos)  # masks are not photos
    Image.new("RGB", (8, 8)).save(photos / "a.jpg")
    assert needs_sfm(photos) and default_sfm_dir(photos) == tmp_path / "photos_sfm"
    clip = tmp_path / "clip.MOV"
    clip.write_bytes(b"x")
    assert needs_sfm(clip) and default_sfm_dir(clip) == tmp_path / "clip_sfm"


def test_path_jumps_find_a_folded_segment():
    from types import SimpleNamespace

    from brushpy.data.pose_compare import path_jumps
    from brushpy.data.sfm import _looks_folded, _path_jumps

    angle = np.linspace(0, 1.5 * np.pi, 40)
    orbit = np.stack([np.cos(angle), np.sin(angle), np.zeros_like(angle)], 1)
    assert path_jumps(orbit) == []
    folded = orbit.copy()
    folded[15:22, :2] *= -1  # a segment put on the far side of the object
    assert path_jumps(folded) == [14, 21]
    shuffled = orbit[np.random.default_rng(0).permutation(40)]
    assert path_jumps(shuffled) == []  # unordered: no jump stands out

    def model(centres):
        images = {i: SimpleNamespace(name=f"{i:04d}.jpg", projection_center=lambda c=c: c)
                  for i, c in enumerate(centres)}
        return SimpleNamespace(images=images, reg_image_ids=lambda: list(images))

    jumps = _path_jumps(model(folded))
    assert jumps == ["0014.jpg -> 0015.jpg", "0021.jpg -> 0022.jpg"]
    assert _looks_folded(jumps, 40)
    assert not _looks_folded(_path_jumps(model(orbit)), 40)
    assert not _looks_folded(jumps, 8)  # too few cameras to tell
    assert not _looks_folded(["a -> b"] * 9, 40)  # jumps everywhere: unordered photos, nothing folded


def test_auto_keeps_a_sequential_retry_only_when_it_is_better():
    from brushpy.data.sfm import _prefer_sequential

    assert _prefer_sequential(71, 3, 71, 0, 36)  # the beer orbit
    assert not _prefer_sequential(71, 3, 71, 3, 36)  # no fewer jumps
    assert not _prefer_sequential(71, 3, 60, 0, 36)  # loses more than 5% of the cameras
    assert not _prefer_sequential(40, 2, 30, 0, 36)  # under --min-registered


@needs_pycolmap
@needs_beer
def test_auto_retries_sequential_matching_when_the_path_folds(beer12, tmp_path, monkeypatch, caplog):
    """The exhaustive model is reported folded (one jump); the retry's path is smooth, so it is kept."""
    from brushpy.data import sfm

    calls = []
    real = sfm._path_jumps

    def fake(model):
        calls.append(model.num_reg_images())
        return ["0005.jpg -> 0006.jpg"] if len(calls) == 1 else real(model)

    monkeypatch.setattr(sfm, "_path_jumps", fake)
    out = tmp_path / "proj"
    lines = []
    with caplog.at_level("WARNING", logger="brushpy.data"):
        res = sfm.run_sfm(beer12, out, sfm.SfmOptions(max_image_size=320, progress=False), log_fn=lines.append)
    assert len(calls) == 2
    assert res.matcher == "sequential" and res.registered == 12
    assert "matching (sequential retry)" in res.stage_seconds and "mapping (sequential retry)" in res.stage_seconds
    record = json.loads((out / "sfm.json").read_text())
    assert record["complete"] and record["matcher"] == "sequential"
    assert record["auto_retry"]["kept"] == "sequential"
    assert record["auto_retry"]["exhaustive"]["path_jumps"] == ["0005.jpg -> 0006.jpg"]
    assert record["auto_retry"]["sequential"]["path_jumps"] == []
    assert any("trying sequential matching" in ln for ln in lines)
    assert "jumps" not in caplog.text  # the kept model is not folded: no warning
    assert len(read_poses(out)) == 12
    assert not (out / "sparse_sequential").exists() and not list(out.glob("**/features.db"))
