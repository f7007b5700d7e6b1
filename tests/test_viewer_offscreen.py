"""Viewer rendering without a window: blit shader, splat scale, offscreen frames, loading errors."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import wgpu

from brushpy.gpu import GpuTensor
from brushpy.render.camera import Camera

pytest.importorskip("imgui_bundle", reason="viewer extras (imgui-bundle) not installed")
pytest.importorskip("rendercanvas", reason="viewer extras (rendercanvas) not installed")
pytest.importorskip("brushpy.render.forward", reason="the rasterizer (brushpy.render.forward) is not in this checkout yet")


def requires_ply_reader():
    pytest.importorskip("brushpy.io.ply", reason="the PLY reader (brushpy.io.ply) is not in this checkout yet")


def synthetic_arrays(n: int = 1500, seed: int = 0) -> dict:
    """A colourful ball of splats of radius ~1 around the origin (sh degree 1)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(n, 3)) * 0.5
    rot = rng.normal(size=(n, 4))
    log_scales = np.log(rng.uniform(0.03, 0.08, size=(n, 3)))
    sh = np.zeros((n, 4, 3))
    sh[:, 0, :] = (np.clip(means * 0.8 + 0.5, 0, 1) - 0.5) / 0.28209479177387814
    sh[:, 1:, :] = rng.normal(size=(n, 3, 3)) * 0.05
    opac = rng.uniform(0.5, 3.0, size=n)
    return dict(means=means, rotations=rot, log_scales=log_scales, sh_coeffs=sh, raw_opacities=opac)


def synthetic_splats(n: int = 1500, seed: int = 0):
    from brushpy.render.splats import Splats

    return Splats.from_numpy(**synthetic_arrays(n, seed))


def front_camera(width=96, height=64) -> Camera:
    return Camera.look_at([0.3, -0.4, -3.0], [0.0, 0.0, 0.0], [0.0, -1.0, 0.0], 50.0, width, height)


def to_u8(image: np.ndarray) -> np.ndarray:
    """How a [H,W,4] float image lands in an 8-bit unorm target (RGB)."""
    return np.round(np.clip(image[..., :3], 0, 1) * 255).astype(np.int32)


def write_inria_ply(path, arrays: dict):
    """A binary INRIA-layout PLY (as written by 3DGS / Brush) of the given arrays."""
    from plyfile import PlyData, PlyElement

    n = arrays["means"].shape[0]
    sh = arrays["sh_coeffs"]
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    rest = sh[:, 1:, :].transpose(0, 2, 1).reshape(n, -1)  # channel-major, as INRIA
    names += [f"f_rest_{i}" for i in range(rest.shape[1])]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    cols = np.concatenate(
        [arrays["means"], np.zeros((n, 3)), sh[:, 0, :], rest, arrays["raw_opacities"][:, None], arrays["log_scales"], arrays["rotations"]],
        axis=1,
    ).astype(np.float32)
    rec = np.empty(n, dtype=[(k, "f4") for k in names])
    for i, k in enumerate(names):
        rec[k] = cols[:, i]
    PlyData([PlyElement.describe(rec, "vertex")]).write(str(path))


# -- blit shader against a NumPy reference ---------------------------------------------------


def bilinear_reference(img: np.ndarray, tw: int, th: int) -> np.ndarray:
    """What viewer_blit.wgsl computes: bilinear sample at target pixel centres, texel centres at +0.5, clamp to edge."""
    h, w = img.shape[:2]
    ys = (np.arange(th) + 0.5) * h / th - 0.5
    xs = (np.arange(tw) + 0.5) * w / tw - 0.5
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    ty, tx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    cy = lambda v: np.clip(v, 0, h - 1)
    cx = lambda v: np.clip(v, 0, w - 1)
    a = img[cy(y0)][:, cx(x0)]
    b = img[cy(y0)][:, cx(x0 + 1)]
    c = img[cy(y0 + 1)][:, cx(x0)]
    d = img[cy(y0 + 1)][:, cx(x0 + 1)]
    top = a + (b - a) * tx
    bottom = c + (d - c) * tx
    return np.clip(top + (bottom - top) * ty, 0, 1)


def blit_to_texture(image: np.ndarray, fmt: str, tw: int, th: int) -> np.ndarray:
    from brushpy.gpu import get_context
    from brushpy.viewer.view import Blitter

    device = get_context().device
    blitter = Blitter(fmt, device)
    tex = device.create_texture(size=(tw, th, 1), format=fmt, usage=wgpu.TextureUsage.RENDER_ATTACHMENT | wgpu.TextureUsage.COPY_SRC)
    t = GpuTensor.from_numpy(image.astype(np.float32), "blit_test")
    enc = device.create_command_encoder()
    rp = enc.begin_render_pass(
        color_attachments=[{"view": tex.create_view(), "clear_value": (1, 0, 1, 1), "load_op": "clear", "store_op": "store"}]
    )
    blitter.draw(rp, t, (tw, th))
    rp.end()
    device.queue.submit([enc.finish()])
    data = device.queue.read_texture({"texture": tex}, {"bytes_per_row": 4 * tw, "rows_per_image": th}, (tw, th, 1))
    return np.frombuffer(data, np.uint8).reshape(th, tw, 4).astype(np.int32)


def test_blit_same_size_is_exact(gpu):
    rng = np.random.default_rng(1)
    img = rng.uniform(-0.2, 1.2, size=(13, 21, 4))  # out-of-range values are clamped
    out = blit_to_texture(img, "rgba8unorm", 21, 13)
    np.testing.assert_array_less(np.abs(out[..., :3] - to_u8(img)), 1.01)
    assert (out[..., 3] == 255).all()


def test_blit_upsamples_bilinearly(gpu):
    rng = np.random.default_rng(2)
    img = rng.uniform(0, 1, size=(5, 7, 4))
    out = blit_to_texture(img, "rgba8unorm", 17, 11)
    ref = np.round(bilinear_reference(img[..., :3], 17, 11) * 255)
    np.testing.assert_array_less(np.abs(out[..., :3] - ref), 1.01)


def test_blit_to_srgb_target_keeps_the_stored_colours(gpu):
    img = np.zeros((4, 64, 4))
    img[..., :3] = np.linspace(0, 1, 64)[None, :, None]
    out = blit_to_texture(img, "rgba8unorm-srgb", 64, 4)
    # the shader decodes, the target encodes: the bytes are the original values
    np.testing.assert_array_less(np.abs(out[..., :3] - to_u8(img)), 1.01)


# -- splat view: scale setting and caching ------------------------------------------------


def test_splat_scale_matches_scaled_log_scales(gpu):
    from brushpy.render.forward import render_forward
    from brushpy.render.splats import Splats
    from brushpy.viewer.view import RenderSettings, SplatView

    arrays = synthetic_arrays(800)
    splats = Splats.from_numpy(**arrays)
    cam = front_camera()
    view = SplatView()
    got = view.render(splats, cam, RenderSettings(splat_scale=1.7)).numpy()
    assert view.renders == 1
    scaled = dict(arrays, log_scales=arrays["log_scales"] + np.log(1.7))
    ref = render_forward(Splats.from_numpy(**scaled), cam).image.numpy()
    np.testing.assert_allclose(got, ref, atol=2e-5)
    # the same request again is served from the cache; a changed setting renders again
    view.render(splats, cam, RenderSettings(splat_scale=1.7))
    assert view.last_was_cached and view.renders == 1
    view.render(splats, cam, RenderSettings(splat_scale=1.7, background=(0.2, 0.3, 0.4)))
    assert not view.last_was_cached and view.renders == 2
    with pytest.raises(ValueError, match="splat_scale"):
        view.render(splats, cam, RenderSettings(splat_scale=0.0))


# -- offscreen viewer -------------------------------------------------------------------


def test_offscreen_frame_equals_the_rasterizer(gpu):
    from brushpy.render.forward import render_forward
    from brushpy.viewer.offscreen import OffscreenViewer
    from brushpy.viewer.view import RenderSettings

    splats = synthetic_splats()
    cam = Camera(front_camera().world_to_camera, 90.0, 80.0, 50.0, 30.0, 96, 64)  # off-centre, fx != fy
    bg = (0.1, 0.2, 0.3)
    viewer = OffscreenViewer(splats, size=(64, 64), settings=RenderSettings(background=bg))
    try:
        img = viewer.render(cam)
        assert img.shape == (64, 96, 4)
        ref = render_forward(splats, cam, background=bg).image.numpy()
        assert np.abs(img[..., :3].astype(np.int32) - to_u8(ref)).max() <= 1
        assert (np.abs(to_u8(ref) - np.round(np.array(bg) * 255)).sum(-1) > 30).mean() > 0.05  # the ball is there
        # moving the camera leaves the exact camera and changes the picture
        viewer.app.controller.orbit(40.0, 0.0)
        viewer.app.controller.settings.damping = 0.0
        moved = viewer.render()
        assert np.abs(moved[..., :3].astype(int) - img[..., :3]).mean() > 2
    finally:
        viewer.close()


def test_offscreen_panels_are_drawn(gpu):
    from brushpy.viewer.offscreen import OffscreenViewer

    splats = synthetic_splats(300)
    plain = OffscreenViewer(splats, size=(480, 320), show_panels=False)
    panels = OffscreenViewer(splats, size=(480, 320), show_panels=True)
    try:
        cam = front_camera(480, 320)
        a, b = plain.render(cam), panels.render(cam)
        corner = np.abs(a[:60, :150, :3].astype(int) - b[:60, :150, :3]).mean()
        assert corner > 10  # the panel's title bar and text
        assert np.abs(a[:, 360:, :3].astype(int) - b[:, 360:, :3]).max() == 0  # outside the panel
    finally:
        plain.close()
        panels.close()


def test_render_camera_path_writes_pngs(gpu, tmp_path):
    from PIL import Image

    from brushpy.render.forward import render_forward
    from brushpy.viewer.offscreen import orbit_path, render_camera_path

    splats = synthetic_splats(600)
    cams = orbit_path([0, 0, 0], 3.0, 3, 80, 60)
    paths = render_camera_path(splats, cams, tmp_path / "shots")
    assert [p.name for p in paths] == ["frame_00000.png", "frame_00001.png", "frame_00002.png"]
    frames = [np.asarray(Image.open(p)) for p in paths]
    assert all(f.shape == (60, 80, 3) for f in frames)
    ref = to_u8(render_forward(splats, cams[1]).image.numpy())
    assert np.abs(frames[1].astype(np.int32) - ref).max() <= 1
    assert np.abs(frames[0].astype(int) - frames[1]).mean() > 1  # different views
    with pytest.raises(ValueError, match="no cameras"):
        render_camera_path(splats, [], tmp_path / "none")


# -- loading ---------------------------------------------------------------------------------


def test_open_paths_and_errors_keep_the_scene(gpu, tmp_path):
    requires_ply_reader()
    from brushpy.viewer.offscreen import OffscreenViewer
    from brushpy.viewer.scene import SceneLoadError, list_splat_files

    a = synthetic_arrays(200, seed=3)
    write_inria_ply(tmp_path / "a.ply", a)
    write_inria_ply(tmp_path / "b.ply", synthetic_arrays(300, seed=4))
    viewer = OffscreenViewer(tmp_path / "a.ply", size=(64, 48))
    app = viewer.app
    try:
        assert app.scene.num_splats == 200 and app.scene.sh_degree == 1 and app.error is None
        np.testing.assert_allclose(app.scene.extent[0], a["means"].min(axis=0), rtol=1e-6)
        first = app.scene

        bad = tmp_path / "broken.ply"
        bad.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 5\nend_header\n\x00")
        assert not app.open(bad, wait=True)
        assert "broken.ply" in app.error and app.scene is first
        assert not app.open(tmp_path / "missing.ply")
        assert "no such file" in app.error and app.scene is first
        empty = tmp_path / "empty"
        empty.mkdir()
        assert not app.open(empty)
        assert "without .ply" in app.error
        assert not app.open(tmp_path / "notes.txt") and app.scene is first
        viewer.render()  # the error is drawn in the window, not raised

        # a folder of PLYs is a sequence of frames
        assert app.open(tmp_path, wait=True)
        assert [s.name for s in app.scene.sources] == ["a.ply", "b.ply", "broken.ply"]
        assert app.show_frame(1, wait=True) and app.scene.num_splats == 300 and app.error is None
        # a zip of PLYs too
        with zipfile.ZipFile(tmp_path / "set.zip", "w") as zf:
            zf.write(tmp_path / "b.ply", "exports/b.ply")
        assert app.open(tmp_path / "set.zip", wait=True) and app.scene.num_splats == 300
        assert app.scene.source.member == "exports/b.ply"
        with pytest.raises(SceneLoadError, match="holds no .ply"):
            with zipfile.ZipFile(tmp_path / "none.zip", "w") as zf:
                zf.writestr("readme.txt", "x")
            list_splat_files(tmp_path / "none.zip")
    finally:
        viewer.close()


def test_background_load_finishes_on_the_next_frame(gpu, tmp_path):
    import time

    requires_ply_reader()

    from brushpy.viewer.offscreen import OffscreenViewer

    write_inria_ply(tmp_path / "c.ply", synthetic_arrays(100, seed=5))
    viewer = OffscreenViewer(synthetic_splats(50), size=(32, 32))
    try:
        assert viewer.app.open(tmp_path / "c.ply")  # worker thread
        deadline = time.time() + 30
        while viewer.app.scene.num_splats != 100 and time.time() < deadline:
            time.sleep(0.05)
            viewer.render()
        assert viewer.app.scene.num_splats == 100 and not viewer.app.loading
    finally:
        viewer.close()


def test_lower_resolution_only_while_moving(gpu):
    import time

    from brushpy.viewer.offscreen import OffscreenViewer
    from brushpy.viewer.view import RenderSettings

    viewer = OffscreenViewer(synthetic_splats(300), size=(64, 48), settings=RenderSettings(moving_render_scale=0.5))
    app = viewer.app
    try:
        viewer.render()
        assert app.view.image.shape == (48, 64, 4)
        app.controller.orbit(30.0, 0.0)  # damped: still moving after one frame
        frame = viewer.render()
        assert app.controller.is_moving and app.view.image.shape == (24, 32, 4)
        assert frame.shape == (48, 64, 4)  # the window keeps its size; the image is stretched
        deadline = time.time() + 30
        while app.controller.is_moving and time.time() < deadline:
            time.sleep(0.02)
            viewer.render()
        assert not app.controller.is_moving and app.view.image.shape == (48, 64, 4)
        with pytest.raises(ValueError, match="moving_render_scale"):
            RenderSettings(moving_render_scale=0.0).validate()
    finally:
        viewer.close()


def test_mip_ply_is_viewed_in_mip_mode(gpu, tmp_path):
    """A PLY whose header says ``SplatRenderMode: mip`` is drawn with the MIP-mode renderer."""
    requires_ply_reader()
    from brushpy.io.ply import SplatData, write_ply
    from brushpy.render.forward import render_forward
    from brushpy.viewer.offscreen import OffscreenViewer

    arrays = synthetic_arrays(400, seed=5)
    arrays["log_scales"] = np.log(np.full((400, 3), 0.004))  # sub-pixel splats: the modes differ most
    data = SplatData(**{k: np.asarray(v, np.float32) for k, v in arrays.items()}, render_mode="mip")
    write_ply(tmp_path / "mip.ply", data)
    write_inria_ply(tmp_path / "plain.ply", arrays)
    cam = front_camera()
    from brushpy.render.splats import Splats

    splats = Splats.from_numpy(**arrays)
    refs = {m: to_u8(render_forward(splats, cam, render_mode=m).image.numpy()) for m in ("default", "mip")}
    assert np.abs(refs["mip"] - refs["default"]).max() > 20  # the test can tell the modes apart
    for name, mode in (("mip.ply", "mip"), ("plain.ply", "default")):
        viewer = OffscreenViewer(tmp_path / name, size=(96, 64))
        try:
            assert viewer.app.scene.render_mode == mode
            img = viewer.render(cam)
            assert np.abs(img[..., :3].astype(np.int32) - refs[mode]).max() <= 1, name
        finally:
            viewer.close()
