"""``brushpy render SCENE --path orbit|dataset|FILE.json -o out.mp4``: videos decoded independently of the
writer (PyAV's decoder), compared with ``brushpy render``'s PNG of the same camera; bad input."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from brushpy import cli
from brushpy.io.camera_path import write_camera_path
from brushpy.render.camera import Camera
from tests.conftest import REPO, SHARED, requires_shared

EXAMPLE = REPO / "assets" / "example_scene.ply"
GUITAR = SHARED / "splats" / "guitar_inria_sh0.ply"
requires_av = pytest.mark.skipif(importlib.util.find_spec("av") is None,
                                 reason="PyAV not installed (pip install 'brushpy[video]')")
requires_forward = pytest.mark.skipif(importlib.util.find_spec("brushpy.render.forward") is None,
                                      reason="brushpy.render.forward (the rasterizer) is not in this checkout")


def run(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args])


def decode(path) -> tuple[list[np.ndarray], float]:
    """All frames (uint8 [H,W,3]) and the frame rate, read by PyAV's decoder."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        return frames, float(stream.average_rate)


def psnr(a, b) -> float:
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-12)))


@requires_shared("splats", "guitar_inria_sh0.ply")
@requires_av
@requires_forward
def test_guitar_orbit_video_matches_the_png(gpu, tmp_path):
    video, png = tmp_path / "orbit.mp4", tmp_path / "first.png"
    res = run("render", GUITAR, "--path", "orbit", "--frames", 4, "--fps", 10, "--width", 160, "--height", 120,
              "--crf", 12, "-o", video)
    assert res.exit_code == 0, res.output
    assert "wrote" in res.output and "4 frames, 160x120, 10 fps" in res.output
    res = run("render", GUITAR, "--width", 160, "--height", 120, "-o", png)
    assert res.exit_code == 0, res.output
    frames, fps = decode(video)
    assert len(frames) == 4 and fps == 10.0
    assert frames[0].shape == (120, 160, 3)
    ref = np.asarray(Image.open(png).convert("RGB"))
    assert (ref.astype(int).sum(-1) > 60).mean() > 0.02  # the guitar is in the picture
    assert psnr(frames[0], ref) > 35.0
    # the orbit turns: a quarter turn later the picture differs a lot
    assert psnr(frames[1], ref) < 25.0


@requires_av
@requires_forward
def test_camera_path_file_plays_back(gpu, tmp_path):
    """A JSON path (as the viewer records) renders its own frames at its size and fps; each
    frame is the PNG render of that camera."""
    cams = [Camera.look_at([np.sin(a) * 0.4, -0.1, -np.cos(a) * 0.4], [0, 0, 0], [0, -1, 0], 50.0, 64, 48)
            for a in (0.0, 0.3, 0.6)]
    path = write_camera_path(tmp_path / "path.json", cams, 12.0)
    video = tmp_path / "path.mp4"
    res = run("render", EXAMPLE, "--path", path, "--crf", 10, "-o", video)
    assert res.exit_code == 0, res.output
    frames, fps = decode(video)
    assert len(frames) == 3 and fps == 12.0 and frames[0].shape == (48, 64, 3)
    pos = " ".join(f"{v:.9f}" for v in cams[2].position)
    res = run("render", EXAMPLE, "--width", 64, "--height", 48, "--position", *pos.split(),
              "--look-at", 0, 0, 0, "--up", 0, -1, 0, "-o", tmp_path / "last.png")
    assert res.exit_code == 0, res.output
    assert psnr(frames[2], np.asarray(Image.open(tmp_path / "last.png"))) > 35.0


def _tiny_nerfstudio_dataset(folder, cams):
    folder.mkdir()
    frames = []
    for i, cam in enumerate(cams):
        Image.fromarray(np.zeros((cam.height, cam.width, 3), np.uint8)).save(folder / f"{i:03d}.png")
        c2w = cam.camera_to_world @ np.diag([1.0, -1.0, -1.0, 1.0])  # OpenCV -> OpenGL camera axes
        frames.append({"file_path": f"{i:03d}.png", "transform_matrix": c2w.tolist()})
    cam = cams[0]
    (folder / "transforms.json").write_text(json.dumps({
        "fl_x": cam.fx, "fl_y": cam.fy, "cx": cam.cx, "cy": cam.cy, "w": cam.width, "h": cam.height,
        "frames": frames}))


def test_dataset_path_runs_through_the_dataset_cameras(tmp_path):
    from brushpy.cli.video import build_path
    from brushpy.io.ply import read_ply

    cams = [Camera.look_at([np.sin(a) * 3, -0.5, -np.cos(a) * 3], [0, 0, 0], [0, -1, 0], 40.0, 40, 30)
            for a in np.linspace(0, 1.2, 4)]
    _tiny_nerfstudio_dataset(tmp_path / "ds", cams)
    data = read_ply(EXAMPLE)
    path = build_path(data, "dataset", width=800, height=60, fov=50.0, position=None, look_at=None, up=(0, -1, 0),
                      dataset_path=tmp_path / "ds", frames=None, seconds=None, fps=None, turns=1.0,
                      explicit={"height"})
    assert len(path.cameras) == 16 and path.fps == 30.0  # 5 frames per camera step, both ends
    assert (path.cameras[0].width, path.cameras[0].height) == (80, 60)  # the dataset's aspect at --height
    for i, cam in enumerate(cams):
        np.testing.assert_allclose(path.cameras[5 * i].world_to_camera, cam.world_to_camera, atol=1e-6)
    assert path.cameras[0].fy == pytest.approx(cams[0].fy * 2)  # the view's own field of view
    again = build_path(data, "dataset", width=64, height=60, fov=30.0, position=None, look_at=None, up=(0, -1, 0),
                       dataset_path=tmp_path / "ds", frames=None, seconds=2, fps=5, turns=1.0,
                       explicit={"width", "height", "fov"})
    assert len(again.cameras) == 10 and (again.cameras[3].width, again.cameras[3].height) == (64, 60)
    assert again.cameras[3].fy == pytest.approx(0.5 * 60 / np.tan(np.deg2rad(15.0)))


@pytest.mark.parametrize("args, message", [
    (["--path", "spiral", "-o", "v.mp4"], "'spiral' is not a camera path; use orbit, dataset, or a nerfstudio"),
    (["--path", "orbit", "-o", "v.png"], "--path renders a video; name the output OUT.mp4"),
    (["-o", "v.mp4"], "choose its camera path with --path orbit|dataset|FILE.json"),
    (["--path", "dataset", "-o", "v.mp4"], "name it with --dataset FOLDER"),
    (["--path", "orbit", "--frames", "3", "--seconds", "1", "-o", "v.mp4"], "as --frames or as --seconds, not both"),
    (["--frames", "3", "-o", "v.png"], "describe a video; add --path"),
    (["--crf", "3", "-o", "v.png"], "describe a video; add --path"),
    (["--path", "orbit", "--alpha", "-o", "v.mp4"], "videos have no alpha or depth"),
    (["--path", "p.json", "--frames", "3", "-o", "v.mp4"], "sets its own frames"),
    (["--path", "p.json", "--position", "0", "0", "1", "-o", "v.mp4"], "--position place the orbit's camera"),
    (["--path", "dataset", "--dataset", ".", "--turns", "2", "-o", "v.mp4"], "--path dataset brings its own cameras"),
])
def test_bad_video_options(tmp_path, args, message):
    res = run("render", EXAMPLE, *[str(tmp_path / a) if a.startswith(("v.", "p.")) else a for a in args])
    assert res.exit_code == 2, res.output
    assert message in res.output


@requires_av
def test_bad_camera_path_files(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{ not json")
    res = run("render", EXAMPLE, "--path", broken, "-o", tmp_path / "v.mp4")
    assert res.exit_code == 2, res.output
    assert f"Error: {broken}: not valid JSON (line 1 column 3" in res.output
    lacking = tmp_path / "lacking.json"
    lacking.write_text(json.dumps({"render_width": 64, "render_height": 48, "camera_path": [{"fov": 50}]}))
    res = run("render", EXAMPLE, "--path", lacking, "-o", tmp_path / "v.mp4")
    assert res.exit_code == 2 and f"{lacking}: camera_path[0] has no 'camera_to_world'" in res.output, res.output
    odd = tmp_path / "odd.json"
    cam = Camera.look_at([0, 0, -1], [0, 0, 0], [0, -1, 0], 50.0, 63, 48)
    write_camera_path(odd, [cam], 30)
    res = run("render", EXAMPLE, "--path", odd, "-o", tmp_path / "v.mp4")
    assert res.exit_code == 2 and "render_width/render_height; or pass --width/--height" in res.output, res.output
    assert "width 63 must be even" in res.output
    assert not (tmp_path / "v.mp4").exists()


def test_missing_pyav_says_how_to_install(monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "av", None)
    res = run("render", EXAMPLE, "--path", "orbit", "-o", tmp_path / "v.mp4")
    assert res.exit_code == 2, res.output
    assert "pip install 'brushpy[video]'" in res.output
