"""Camera paths (brushpy.io.camera_path): orbit, spline + slerp interpolation, nerfstudio JSON, the recorder;
the MP4 writer's checks (brushpy.io.video). No GPU; the renders are in tests/test_render_video.py."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from brushpy.errors import InputError
from brushpy.io.camera_path import (
    GL_FROM_CV, CameraPathError, PathRecorder, camera_path_json, cameras_from_json, interpolate_poses,
    orbit_cameras, read_camera_path, smooth_path, vertical_fov_deg, write_camera_path,
)
from brushpy.io.framing import framing_camera
from brushpy.render.camera import Camera


def _cam(position, target=(0.0, 0.0, 0.0), up=(0.0, -1.0, 0.0), fov=50.0, w=80, h=60) -> Camera:
    return Camera.look_at(position, target, up, fov, w, h)


# -- orbit ----------------------------------------------------------------------------------


def test_orbit_starts_at_the_framing_camera_and_circles_the_up_axis():
    rng = np.random.default_rng(0)
    means = rng.normal(size=(500, 3)) * [1.0, 0.5, 0.2] + [0.3, -0.2, 2.0]
    up = np.array([0.0, -1.0, 0.0])
    start = framing_camera(means, 80, 60, 40.0, up=up)
    lo, hi = np.percentile(means, [2, 98], axis=0)
    target = 0.5 * (lo + hi)
    cams = orbit_cameras(start.position, target, up, 8, 40.0, 80, 60)
    assert len(cams) == 8
    np.testing.assert_allclose(cams[0].world_to_camera, start.world_to_camera, atol=1e-12)
    rel = np.stack([c.position for c in cams]) - target
    heights = rel @ up
    radii = np.linalg.norm(rel - heights[:, None] * up, axis=1)
    np.testing.assert_allclose(heights, heights[0], atol=1e-9)
    np.testing.assert_allclose(radii, radii[0], rtol=1e-9)
    # each looks at the target, and consecutive frames are 45 degrees apart about up
    for c in cams:
        p = c.world_to_camera[:3, :3] @ target + c.world_to_camera[:3, 3]
        np.testing.assert_allclose(p[:2], 0.0, atol=1e-9)
    flat = rel - heights[:, None] * up
    cosines = [np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b) for a, b in zip(flat, flat[1:])]
    np.testing.assert_allclose(cosines, np.cos(np.pi / 4), atol=1e-9)
    # right-handed about up; turns=-1 goes the other way
    assert np.dot(np.cross(flat[0], flat[1]), up) > 0
    back = orbit_cameras(start.position, target, up, 8, 40.0, 80, 60, turns=-1.0)
    np.testing.assert_allclose(back[1].position, cams[7].position, atol=1e-9)


def test_orbit_bad_arguments():
    with pytest.raises(ValueError, match="at least 1 frame"):
        orbit_cameras([0, 0, -3], [0, 0, 0], [0, -1, 0], 0, 50.0, 8, 8)
    with pytest.raises(ValueError, match="coincide"):
        orbit_cameras([0, 0, 0], [0, 0, 0], [0, -1, 0], 3, 50.0, 8, 8)
    with pytest.raises(ValueError, match="zero"):
        orbit_cameras([0, 0, -3], [0, 0, 0], [0, 0, 0], 3, 50.0, 8, 8)


# -- interpolation --------------------------------------------------------------------------


def test_interpolation_passes_through_keyframes_and_slerps_between():
    keys = [_cam([np.sin(a) * 4, 0.5 * a, -np.cos(a) * 4]) for a in np.linspace(0, 1.5, 5)]
    c2w = np.stack([k.camera_to_world for k in keys])
    t = np.array([0.0, 1.0, 2.5, 3.0, 4.0])
    at_keys = interpolate_poses(c2w, t, t)
    np.testing.assert_allclose(at_keys, c2w, atol=1e-9)
    mid = interpolate_poses(c2w, t, [0.5])[0]
    from scipy.spatial.transform import Rotation

    r0, r1 = Rotation.from_matrix(c2w[0, :3, :3]), Rotation.from_matrix(c2w[1, :3, :3])
    half = r0 * Rotation.from_rotvec(0.5 * (r0.inv() * r1).as_rotvec())
    np.testing.assert_allclose(mid[:3, :3], half.as_matrix(), atol=1e-9)
    np.testing.assert_allclose(mid[:3, :3].T @ mid[:3, :3], np.eye(3), atol=1e-9)
    # clamped outside the key times; one keyframe gives copies of it
    np.testing.assert_allclose(interpolate_poses(c2w, t, [-1.0, 9.0]), c2w[[0, -1]], atol=1e-9)
    np.testing.assert_allclose(interpolate_poses(c2w[:1], t[:1], [0.0, 2.0]), c2w[[0, 0]], atol=1e-12)
    with pytest.raises(ValueError, match="increase"):
        interpolate_poses(c2w, [0, 1, 1, 2, 3], t)


def test_smooth_path_positions_follow_a_smooth_curve():
    # keyframes on a helix: the spline path stays near it between keyframes (a straight-segment
    # path would cut the corners by up to r(1 - cos(step/2)) = 0.12)
    angles = np.linspace(0.0, 2.0, 5)
    keys = [_cam([2 * np.cos(a), 0.1 * a, 2 * np.sin(a)], fov=40 + 5 * i) for i, a in enumerate(angles)]
    cams = smooth_path(keys, 41, 64, 48)
    assert len(cams) == 41 and all((c.width, c.height) == (64, 48) for c in cams)
    pos = np.stack([c.position for c in cams])
    np.testing.assert_allclose(pos[0], keys[0].position, atol=1e-9)
    np.testing.assert_allclose(pos[-1], keys[-1].position, atol=1e-9)
    np.testing.assert_allclose(pos[10], keys[1].position, atol=1e-9)
    radius = np.linalg.norm(pos[:, [0, 2]], axis=1)
    assert np.abs(radius - 2.0).max() < 0.01
    fovs = [vertical_fov_deg(c) for c in cams]
    np.testing.assert_allclose(fovs[::10], [40, 45, 50, 55, 60], atol=1e-9)
    np.testing.assert_allclose(fovs[5], 42.5, atol=1e-9)
    assert all(c.cx == 32 and c.cy == 24 and c.fx == c.fy for c in cams)


# -- nerfstudio JSON --------------------------------------------------------------------------


def test_json_round_trip_and_opengl_axes(tmp_path):
    cams = [_cam([1.0, -0.5, -3.0], fov=45.0, w=96, h=64), _cam([2.0, -0.5, -2.0], fov=60.0, w=96, h=64)]
    out = write_camera_path(tmp_path / "path.json", cams, 24.0)
    data = json.loads(out.read_text())
    assert data["render_width"] == 96 and data["render_height"] == 64 and data["fps"] == 24.0
    assert data["seconds"] == pytest.approx(2 / 24.0) and data["camera_type"] == "perspective"
    entry = data["camera_path"][0]
    assert len(entry["camera_to_world"]) == 16 and entry["fov"] == pytest.approx(45.0)
    assert entry["aspect"] == pytest.approx(1.5)
    # nerfstudio's camera looks along its -z and has +y up: brushpy's forward / down negated
    c2w = np.asarray(entry["camera_to_world"]).reshape(4, 4)
    np.testing.assert_allclose(-c2w[:3, 2], cams[0].world_to_camera[2, :3], atol=1e-12)
    np.testing.assert_allclose(-c2w[:3, 1], cams[0].world_to_camera[1, :3], atol=1e-12)
    np.testing.assert_allclose(c2w[:3, 3], cams[0].position, atol=1e-12)
    back = read_camera_path(out)
    assert back.fps == 24.0 and len(back.cameras) == 2
    for a, b in zip(cams, back.cameras):
        np.testing.assert_allclose(b.world_to_camera, a.world_to_camera, atol=1e-9)
        assert (b.width, b.height) == (96, 64)
        assert b.intrinsics == pytest.approx(a.intrinsics)
    resized = read_camera_path(out, width=48, height=32)
    assert (resized.cameras[1].width, resized.cameras[1].height) == (48, 32)
    assert vertical_fov_deg(resized.cameras[1]) == pytest.approx(60.0)


def test_json_identity_camera_looks_down_minus_z():
    data = {"render_width": 8, "render_height": 6, "fps": 30,
            "camera_path": [{"camera_to_world": list(np.eye(4).reshape(-1)), "fov": 90.0}]}
    cam = cameras_from_json(data).cameras[0]
    p = cam.world_to_camera @ [0.0, 1.0, -5.0, 1.0]  # in front of the camera, above its axis
    assert p[2] == pytest.approx(5.0) and p[1] == pytest.approx(-1.0)  # OpenCV: +z forward, -y up
    assert cam.fy == pytest.approx(3.0)  # 0.5 * 6 / tan(45 deg)
    np.testing.assert_allclose(GL_FROM_CV @ GL_FROM_CV, np.eye(4))


def _good() -> dict:
    return {"render_width": 8, "render_height": 6, "fps": 30,
            "camera_path": [{"camera_to_world": list(np.eye(4).reshape(-1)), "fov": 50.0, "aspect": 8 / 6}]}


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.pop("camera_path"), "no 'camera_path' field"),
    (lambda d: d.update(camera_path=[]), "non-empty list"),
    (lambda d: d.pop("render_width"), "no 'render_width' field"),
    (lambda d: d.update(render_height=-3), "'render_height' is -3; expected a positive integer"),
    (lambda d: d.update(fps="fast"), "'fps' is 'fast'"),
    (lambda d: d.update(camera_type="fisheye"), "camera_type 'fisheye' is not supported"),
    (lambda d: d["camera_path"][0].pop("fov"), r"camera_path\[0\] has no 'fov'"),
    (lambda d: d["camera_path"][0].update(fov=200), r"camera_path\[0\] has fov 200"),
    (lambda d: d["camera_path"][0].pop("camera_to_world"), r"camera_path\[0\] has no 'camera_to_world'"),
    (lambda d: d["camera_path"][0].update(camera_to_world=[1, 2, 3]), "16 finite numbers"),
    (lambda d: d["camera_path"][0].update(camera_to_world=list(np.diag([2, 1, 1, 1.0]).reshape(-1))), "not a rigid"),
    (lambda d: d["camera_path"].append("x"), r"camera_path\[1\] is str"),
])
def test_bad_json_fields_name_the_file_and_the_field(tmp_path, edit, message):
    data = _good()
    edit(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(CameraPathError, match=message) as info:
        read_camera_path(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, InputError)


def test_unreadable_json_files(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text('{"camera_path": [')
    with pytest.raises(CameraPathError, match=r"broken.json: not valid JSON \(line 1 column"):
        read_camera_path(bad)
    with pytest.raises(CameraPathError, match="missing.json: no such camera-path file"):
        read_camera_path(tmp_path / "missing.json")
    lst = tmp_path / "list.json"
    lst.write_text("[1, 2]")
    with pytest.raises(CameraPathError, match="list.json: expected a JSON object"):
        read_camera_path(lst)


def test_fps_from_seconds_when_missing():
    data = _good()
    data.pop("fps")
    data["camera_path"] *= 10
    data["seconds"] = 2.0
    assert cameras_from_json(data).fps == pytest.approx(5.0)
    data.pop("seconds")
    assert cameras_from_json(data).fps == 30.0


# -- recorder ---------------------------------------------------------------------------------


def test_recorder_resamples_at_a_fixed_rate_and_round_trips(tmp_path):
    rec = PathRecorder(fps=10.0)
    rec.add(0.0, _cam([0, 0, -3]))  # not recording: ignored
    assert rec.samples == []
    rec.start()
    times = [5.0, 5.013, 5.1, 5.35, 5.36, 5.36, 5.61]  # uneven, one repeated time (dropped)
    for i, t in enumerate(times):
        rec.add(t, _cam([np.sin(0.3 * i) * 3, -0.2 * i, -np.cos(0.3 * i) * 3], fov=50.0 + i))
    rec.stop()
    rec.add(9.0, _cam([0, 0, -3]))  # stopped: ignored
    assert len(rec.samples) == 6 and rec.duration_s == pytest.approx(0.61)
    path = rec.path()
    assert path.fps == 10.0 and len(path.cameras) == 7  # t = 0, 0.1, ..., 0.6
    np.testing.assert_allclose(path.cameras[0].world_to_camera, rec.samples[0][1].world_to_camera, atol=1e-9)
    np.testing.assert_allclose(path.cameras[1].position, rec.samples[2][1].position, atol=1e-9)  # t = 5.1
    saved = rec.save(tmp_path / "rec.json", width=40, height=30)
    back = read_camera_path(tmp_path / "rec.json")
    assert back.fps == 10.0 and len(back.cameras) == 7
    for a, b in zip(saved.cameras, back.cameras):
        np.testing.assert_allclose(b.world_to_camera, a.world_to_camera, atol=1e-9)
        assert (b.width, b.height) == (40, 30)
    with pytest.raises(ValueError, match="nothing recorded"):
        PathRecorder().path()


def test_camera_path_json_needs_cameras():
    with pytest.raises(ValueError, match="at least one camera"):
        camera_path_json([], 30)


# -- video writer checks ------------------------------------------------------------------------


def test_mp4_writer_needs_even_sizes_and_pyav(monkeypatch, tmp_path):
    from brushpy.io import video

    with pytest.raises(InputError, match="--width/--height: width 161 must be even .* use 160 or 162"):
        video.check_even_size(161, 120)
    monkeypatch.setitem(sys.modules, "av", None)  # import av raises ImportError
    with pytest.raises(video.VideoUnavailableError, match=r"pip install 'brushpy\[video\]'"):
        video.Mp4Writer(tmp_path / "x.mp4", 16, 16, 30)
    assert not (tmp_path / "x.mp4").exists()


def test_mp4_writer_round_trip_is_atomic(tmp_path):
    av = pytest.importorskip("av", reason="PyAV not installed (pip install 'brushpy[video]')")
    from brushpy.io.video import Mp4Writer

    frames = [np.full((32, 48, 3), 40 * i, np.uint8) for i in range(5)]
    out = tmp_path / "clip.mp4"
    with Mp4Writer(out, 48, 32, 12.0) as w:
        for f in frames:
            w.write(f)
        assert not out.exists()  # appears only when complete
    with av.open(str(out)) as c:
        s = c.streams.video[0]
        assert (s.codec_context.name, s.width, s.height, s.codec_context.pix_fmt) == ("h264", 48, 32, "yuv420p")
        assert s.average_rate == 12
        decoded = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(decoded) == 5
    assert all(np.abs(d.astype(int) - f).mean() < 3 for d, f in zip(decoded, frames))
    # an error inside the block keeps the previous file and leaves no temp file behind
    before = out.read_bytes()
    with pytest.raises(RuntimeError, match="boom"):
        with Mp4Writer(out, 48, 32, 12.0) as w:
            w.write(frames[0])
            raise RuntimeError("boom")
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]
    with pytest.raises(ValueError, match="expected uint8"):
        with Mp4Writer(tmp_path / "y.mp4", 48, 32, 12.0) as w:
            w.write(np.zeros((32, 48, 3), np.float32))
