"""``brushpy render`` and the viewer read every splat format and frame a scene by its vertical axis.

The vertical axis reaches a :class:`SplatData` from the file (a PLY's ``Vertical axis`` comment,
...); tests that need a file to carry it skip where this checkout's writer does not write it yet,
and the others hand the reader's result a vertical axis directly.
"""

from __future__ import annotations

import zipfile
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner

import brushpy.io.formats as formats
from brushpy import cli
from brushpy.io.edit import extension_for
from brushpy.io.formats import WRITE_FORMATS, read_splats
from brushpy.io.framing import (DEFAULT_UP, axis_vector, default_forward, framing_camera, nearest_axis,
                                scene_up)
from brushpy.io.ply import SplatData, write_ply
from tests.test_cli import reference_rasterize
from tests.test_convert import write_or_skip


def run(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args])


def z_up_object(n=80, seed=0) -> SplatData:
    """A flat object standing upright in a z-up world: wide in x, tall in z, thin in y."""
    rng = np.random.default_rng(seed)
    return SplatData(
        means=rng.uniform([-1.0, -0.05, 0.0], [1.0, 0.05, 1.5], size=(n, 3)),
        rotations=np.tile([1.0, 0, 0, 0], (n, 1)),
        log_scales=np.full((n, 3), np.log(0.08)),
        sh_coeffs=rng.normal(size=(n, 1, 3)) * 0.3,
        raw_opacities=np.full(n, 3.0),
    )


@pytest.fixture
def camera_spy(monkeypatch):
    """The render command's rasterizer replaced by the NumPy reference, recording each camera."""
    cams = []

    def fake(*args, **kwargs):
        cams.append(np.asarray(args[5], np.float64))
        return reference_rasterize(*args, **kwargs)

    monkeypatch.setattr(cli, "_load_rasterize", lambda: fake)
    return cams


def image_up(world_to_camera) -> np.ndarray:
    """The world direction a camera shows upwards (its -y axis, OpenCV)."""
    return -np.asarray(world_to_camera)[1, :3]


# --------------------------------------------------------------------------- axes and framing


def test_axis_helpers():
    np.testing.assert_array_equal(axis_vector("+z"), [0, 0, 1])
    np.testing.assert_array_equal(axis_vector(" -Y "), [0, -1, 0])
    np.testing.assert_allclose(axis_vector("0 0 2"), [0, 0, 1])
    np.testing.assert_allclose(axis_vector("[0, 3, 4]"), [0, 0.6, 0.8])
    np.testing.assert_allclose(axis_vector((1, 0, 0)), [1, 0, 0])
    for bad in (None, "up", "0 0 0", "1 2", "nan 0 1", "z", "y"):
        assert axis_vector(bad) is None
    assert nearest_axis([0.1, -0.2, 0.9]) == "+z" and nearest_axis([0.1, -0.7, 0.5]) == "-y"
    assert nearest_axis([0, 0, 0]) is None
    assert scene_up("+z") == (0.0, 0.0, 1.0) and scene_up(None) == DEFAULT_UP and scene_up("sideways") == DEFAULT_UP


def test_z_up_scene_is_framed_upright_from_minus_y():
    d = z_up_object()
    forward = default_forward(d.means, (0, 0, 1))
    np.testing.assert_allclose(forward, [0, 1, 0], atol=0.02)  # at its broad face, Blender's front view
    cam = framing_camera(d.means, 64, 48, up=scene_up("+z"))
    np.testing.assert_allclose(image_up(cam.world_to_camera), [0, 0, 1], atol=1e-9)
    assert cam.position[1] < -1.0
    # a round horizontal spread looks along the reference (+y for z-up, +z otherwise), as before
    ring = np.stack([np.cos(np.arange(40)), np.sin(np.arange(40)), np.zeros(40)], 1)
    np.testing.assert_allclose(default_forward(ring, (0, 0, 1)), [0, 1, 0], atol=1e-6)
    np.testing.assert_allclose(default_forward(ring[:, [0, 2, 1]], (0, -1, 0)), [0, 0, 1], atol=1e-6)


# --------------------------------------------------------------------------- brushpy render


def test_render_uses_the_files_vertical_axis(tmp_path, camera_spy, monkeypatch):
    d = z_up_object()
    write_ply(tmp_path / "s.ply", d)
    # a plain PLY: -y up, as before
    r = run("render", tmp_path / "s.ply", "-o", tmp_path / "a.png", "--width", 32, "--height", 24)
    assert r.exit_code == 0, r.output
    np.testing.assert_allclose(image_up(camera_spy[-1]), DEFAULT_UP, atol=1e-9)
    # the same file saying "+z": the default camera has +z up
    monkeypatch.setattr(formats, "read_splats", lambda path: replace(read_splats(path), vertical_axis="+z"))
    r = run("render", tmp_path / "s.ply", "-o", tmp_path / "b.png", "--width", 32, "--height", 24)
    assert r.exit_code == 0, r.output
    np.testing.assert_allclose(image_up(camera_spy[-1]), [0, 0, 1], atol=1e-9)
    # --up wins over the file
    r = run("render", tmp_path / "s.ply", "-o", tmp_path / "c.png", "--width", 32, "--height", 24, "--up", 0, 0, -1)
    assert r.exit_code == 0, r.output
    np.testing.assert_allclose(image_up(camera_spy[-1]), [0, 0, -1], atol=1e-9)


def test_render_ply_with_vertical_axis_comment(tmp_path, camera_spy):
    d = z_up_object()
    d.vertical_axis = "+z"
    write_ply(tmp_path / "s.ply", d)
    if read_splats(tmp_path / "s.ply").vertical_axis is None:
        pytest.skip("the PLY writer does not write a Vertical axis comment in this checkout yet")
    r = run("render", tmp_path / "s.ply", "-o", tmp_path / "a.png", "--width", 32, "--height", 24)
    assert r.exit_code == 0, r.output
    np.testing.assert_allclose(image_up(camera_spy[-1]), [0, 0, 1], atol=1e-9)


def test_render_unknown_format(tmp_path):
    bad = tmp_path / "thing.bin"
    bad.write_bytes(b"\x00\x01 definitely not splats")
    r = run("render", bad, "-o", tmp_path / "o.png")
    assert r.exit_code == 2
    assert r.output.startswith("Error: ") and "thing.bin is not a splat file brushpy reads (it reads" in r.output
    assert ".ply" in r.output and ".spz" in r.output and not (tmp_path / "o.png").exists()


def test_render_corrupt_file_of_a_known_extension(tmp_path):
    # the extension's own reader claims it and says what is wrong with it
    bad = tmp_path / "thing.spz"
    bad.write_bytes(b"\x00\x01 definitely not splats")
    r = run("render", bad, "-o", tmp_path / "o.png")
    assert r.exit_code == 2
    assert r.output.startswith("Error: ") and "thing.spz is not an SPZ file" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("fmt", WRITE_FORMATS)
def test_render_every_format(tmp_path, fmt, camera_spy):
    path = tmp_path / f"s{extension_for(fmt)}"
    write_or_skip(path, z_up_object(), fmt)
    r = run("render", path, "-o", tmp_path / "o.png", "--width", 32, "--height", 24)
    assert r.exit_code == 0, r.output
    assert "80 splats" in r.output and (tmp_path / "o.png").exists()


# --------------------------------------------------------------------------- viewer


def test_viewer_lists_every_splat_format(tmp_path):
    from brushpy.viewer.scene import SceneLoadError, list_splat_files

    names = ["a.ply", "b.spz", "c.splat", "d.compressed.ply", "e.sog", "meta.json", "notes.txt", "x.webp"]
    for n in names:
        (tmp_path / n).write_bytes(b"x")
    assert [s.name for s in list_splat_files(tmp_path)] == ["a.ply", "b.spz", "c.splat", "d.compressed.ply",
                                                            "e.sog", "meta.json"]
    with zipfile.ZipFile(tmp_path / "set.zip", "w") as zf:
        for n in names:
            zf.writestr(f"run/{n}", b"x")
    assert [s.member for s in list_splat_files(tmp_path / "set.zip")] == [
        "run/a.ply", "run/b.spz", "run/c.splat", "run/d.compressed.ply", "run/e.sog", "run/meta.json"]
    assert [s.path for s in list_splat_files(tmp_path / "b.spz")] == [tmp_path / "b.spz"]
    with pytest.raises(SceneLoadError, match="unsupported file type"):
        list_splat_files(tmp_path / "notes.txt")
    # a file without a splat extension is accepted when its content is one
    write_ply(tmp_path / "scene.bin", z_up_object(5))
    assert [s.name for s in list_splat_files(tmp_path / "scene.bin")] == ["scene.bin"]


def test_viewer_reads_every_format_from_zips(tmp_path):
    from brushpy.viewer.scene import SplatSource, read_splat_file

    for fmt in WRITE_FORMATS:
        path = tmp_path / f"s{extension_for(fmt)}"
        try:
            write_splats_quiet(path, z_up_object(), fmt)
        except RuntimeError:
            continue
        with zipfile.ZipFile(tmp_path / f"{fmt}.zip", "w") as zf:
            zf.write(path, f"exports/{path.name}")
        assert read_splat_file(SplatSource(tmp_path / f"{fmt}.zip", f"exports/{path.name}")).num_splats == 80
        assert read_splat_file(SplatSource(path)).num_splats == 80


def write_splats_quiet(path, data, fmt):
    """write_splats; RuntimeError where this checkout cannot write ``fmt`` yet."""
    try:
        formats.write_splats(path, data, format=fmt)
    except NotImplementedError as exc:
        raise RuntimeError(str(exc)) from exc
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("brushpy.io."):
            raise
        raise RuntimeError(str(exc)) from exc


def test_controller_orient():
    from brushpy.viewer.camera import CameraController

    c = CameraController()
    c.orient((0, 0, 1), forward=(0.3, 1.0, 0.5))  # the forward is made horizontal
    np.testing.assert_allclose(c.down, [0, 0, -1], atol=1e-12)
    np.testing.assert_allclose(c.forward, np.array([0.3, 1.0, 0]) / np.hypot(0.3, 1.0), atol=1e-12)
    np.testing.assert_allclose(np.cross(c.right, c.down), c.forward, atol=1e-12)  # right-handed, no roll
    c.orient((0, 0, 1), forward=(0, 0, 1))  # along up: some horizontal direction
    assert abs(c.forward @ [0, 0, 1]) < 1e-12 and np.isclose(np.linalg.det(c.rotation), 1.0)
    np.testing.assert_allclose(c.up, [0, 0, 1])


def test_viewer_frames_by_the_vertical_axis(gpu, tmp_path, monkeypatch):
    pytest.importorskip("imgui_bundle", reason="viewer extras (imgui-bundle) not installed")
    pytest.importorskip("rendercanvas", reason="viewer extras (rendercanvas) not installed")
    pytest.importorskip("brushpy.render.forward")
    from types import SimpleNamespace

    from brushpy.viewer.offscreen import OffscreenViewer

    write_ply(tmp_path / "plain.ply", z_up_object(60, seed=1))
    write_ply(tmp_path / "zup.ply", z_up_object(60, seed=2))
    real = formats.read_splats

    def with_axis(path):  # the reader's result for a file that says "Vertical axis: +z"
        d = real(path)
        return replace(d, vertical_axis="+z") if "zup" in str(path) else d

    monkeypatch.setattr(formats, "read_splats", with_axis)
    viewer = OffscreenViewer(tmp_path / "plain.ply", size=(48, 32))
    app = viewer.app
    try:
        np.testing.assert_allclose(app.controller.up, [0, -1, 0])
        assert app.open(tmp_path / "zup.ply", wait=True) and app.scene.vertical_axis == "+z"
        assert "Vertical axis: +z" in app.scene.info_lines()
        np.testing.assert_allclose(app.controller.up, [0, 0, 1])
        cam = app.controller.camera(48, 32)
        np.testing.assert_allclose(image_up(cam.world_to_camera), [0, 0, 1], atol=1e-9)
        np.testing.assert_allclose(app.controller.forward, [0, 1, 0], atol=0.02)  # its broad face, from -y
        assert viewer.render()[..., :3].std() > 1  # something is in view
        assert app.open(tmp_path / "plain.ply", wait=True)  # a file without an axis: -y up again
        np.testing.assert_allclose(app.controller.up, [0, -1, 0])
        np.testing.assert_allclose(app.controller.down, [0, 1, 0], atol=1e-9)
        # live training orbits about the dataset's up
        fake = SimpleNamespace(config=SimpleNamespace(background_color=(1.0, 1.0, 1.0)),
                               trainer=SimpleNamespace(vertical_axis="+z"))
        app.training_started(fake)
        np.testing.assert_allclose(app.controller.up, [0, 0, 1])
    finally:
        viewer.close()
