"""The viewer's depth view (issue 14, item 5): a two-plane scene through the colormap with fixed
and automatic near / far, the colour view unchanged, the settings' checks, the panel drawn."""

from __future__ import annotations

import numpy as np
import pytest

from brushpy.render.camera import Camera

pytest.importorskip("imgui_bundle", reason="viewer extras (imgui-bundle) not installed")
pytest.importorskip("rendercanvas", reason="viewer extras (rendercanvas) not installed")

W, H = 96, 64
NEAR_Z, FAR_Z = 2.0, 4.0
BG = (0.1, 0.2, 0.3)


def plane(z: float, x0: float, x1: float, half_h: float, step: float) -> np.ndarray:
    xs = np.arange(x0 + step / 2, x1, step)
    ys = np.arange(-half_h + step / 2, half_h, step)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel(), np.full(gx.size, z)], axis=1)


def two_planes():
    """Opaque flat splats: the left half of the view at z = 2, the right half at z = 4
    (world = camera frame of :func:`camera`, looking down +z)."""
    from brushpy.render.splats import Splats

    a = plane(NEAR_Z, -2.0, -0.05, 1.5, 0.05)
    b = plane(FAR_Z, 0.1, 4.0, 3.0, 0.1)
    means = np.concatenate([a, b])
    n = len(means)
    sig = np.concatenate([np.full(len(a), 0.04), np.full(len(b), 0.08)])
    log_scales = np.log(np.stack([sig, sig, np.full(n, 1e-3)], axis=1))
    rot = np.tile([1.0, 0.0, 0.0, 0.0], (n, 1))
    sh = np.zeros((n, 1, 3))
    sh[:, 0, :] = (np.array([0.8, 0.5, 0.2]) - 0.5) / 0.28209479177387814
    return Splats.from_numpy(means=means, rotations=rot, log_scales=log_scales, sh_coeffs=sh, raw_opacities=np.full(n, 6.0))


def camera() -> Camera:
    return Camera.look_at([0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0], 50.0, W, H)


def to_u8(rgb: np.ndarray) -> np.ndarray:
    return np.round(np.clip(rgb[..., :3], 0, 1) * 255).astype(np.int32)


def halves(img):
    """Mean colour of the centre of the left (near plane) and right (far plane) half."""
    return img[H // 4: 3 * H // 4, 8: W // 2 - 8, :3].reshape(-1, 3).mean(0), img[H // 4: 3 * H // 4, W // 2 + 8: W - 8, :3].reshape(-1, 3).mean(0)


def test_depth_view_two_planes_fixed_near_far(gpu):
    from brushpy.viewer.mip_view import colormap_numpy
    from brushpy.viewer.offscreen import OffscreenViewer
    from brushpy.viewer.view import RenderSettings

    settings = RenderSettings(background=BG, view_mode="depth", depth_near=1.0, depth_far=5.0, depth_colormap="grey")
    viewer = OffscreenViewer(two_planes(), size=(W, H), settings=settings)
    try:
        img = viewer.render(camera())
        assert viewer.app.error is None
        view = viewer.app.view
        assert view.depth_range == (1.0, 5.0)
        depth = view.state.depth.numpy()
        # the renderer's expected depth: the two planes
        left, right = depth[H // 4: 3 * H // 4, 8: W // 2 - 8], depth[H // 4: 3 * H // 4, W // 2 + 8: W - 8]
        assert np.abs(left - NEAR_Z).max() < 1e-3 and np.abs(right - FAR_Z).max() < 1e-3
        # the frame is the colormap of that depth (GPU kernel == NumPy twin), empty pixels the background
        want = to_u8(colormap_numpy(depth, 1.0 / 4.0, "grey", BG, offset=1.0))
        assert np.abs(img[..., :3].astype(np.int32) - want).max() <= 1
        ln, rn = halves(img.astype(np.float64))
        assert np.allclose(ln, 255 * 0.25, atol=1.5) and np.allclose(rn, 255 * 0.75, atol=1.5)  # near dark, far bright
        # another colormap: two distinct colours in the colormap's order
        settings.depth_colormap = "inferno"
        img2 = viewer.render()
        l2, r2 = halves(img2.astype(np.float64))
        want_l, want_r = (colormap_numpy(np.array([d]), 0.25, "inferno", BG, offset=1.0)[0] * 255 for d in (NEAR_Z, FAR_Z))
        assert np.abs(l2 - want_l).max() < 2 and np.abs(r2 - want_r).max() < 2
        assert np.abs(want_l - want_r).sum() > 100
    finally:
        viewer.close()


def test_depth_view_auto_near_far_covers_the_scene(gpu):
    from brushpy.viewer.offscreen import OffscreenViewer
    from brushpy.viewer.view import RenderSettings, auto_depth_range

    settings = RenderSettings(background=BG, view_mode="depth", depth_colormap="grey")
    viewer = OffscreenViewer(two_planes(), size=(W, H), settings=settings)
    try:
        img = viewer.render(camera())
        near, far = viewer.app.view.depth_range
        assert NEAR_Z - 0.05 <= near <= NEAR_Z + 0.05 and FAR_Z - 0.05 <= far <= FAR_Z + 0.05
        assert (near, far) == auto_depth_range(viewer.app.view.state.depth.numpy())
        ln, rn = halves(img.astype(np.float64))
        assert ln.max() < 10 and rn.min() > 245  # the scene spans the whole colormap
        # one fixed end, the other automatic
        settings.depth_far = 10.0
        viewer.render()
        near2, far2 = viewer.app.view.depth_range
        assert far2 == 10.0 and abs(near2 - near) < 1e-6
    finally:
        viewer.close()


def test_auto_depth_range_edge_cases():
    from brushpy.viewer.view import RenderSettings, auto_depth_range, depth_range

    assert auto_depth_range(np.zeros((4, 4))) is None
    near, far = auto_depth_range(np.full((4, 4), 3.0))
    assert near == 3.0 and far > near
    d = np.zeros((100, 100), np.float32)
    d[:, :50] = np.linspace(1.0, 2.0, 50)
    n, f = auto_depth_range(d)
    assert 1.0 < n < 1.1 and 1.9 < f < 2.0
    assert depth_range(RenderSettings(depth_near=0.5, depth_far=0.7), None) == (0.5, 0.7)
    n2, f2 = depth_range(RenderSettings(depth_near=5.0), d)  # a fixed near beyond the automatic far
    assert n2 == 5.0 and f2 > 5.0


def test_settings_validate_the_depth_options():
    from brushpy.viewer.view import RenderSettings

    for kw, word in [({"view_mode": "normals"}, "view_mode"), ({"depth_colormap": "jet"}, "depth_colormap"),
                     ({"depth_near": -1.0}, "depth_near"), ({"depth_near": 2.0, "depth_far": 1.0}, "depth_far")]:
        with pytest.raises(ValueError, match=word):
            RenderSettings(**kw).validate()
    RenderSettings(view_mode="depth", depth_near=1.0, depth_far=2.0).validate()


def test_colour_view_is_unchanged(gpu):
    """Colour view renders plain "RGB" exactly as before: frame == rasterizer, whatever the depth
    options say, and switching to depth and back gives the same frame bit for bit."""
    from brushpy.render.forward import render_forward
    from brushpy.viewer.offscreen import OffscreenViewer
    from brushpy.viewer.view import RenderSettings

    splats = two_planes()
    settings = RenderSettings(background=BG, depth_near=1.0, depth_far=5.0, depth_colormap="fire")
    viewer = OffscreenViewer(splats, size=(W, H), settings=settings)
    try:
        img = viewer.render(camera())
        assert viewer.app.view.state.depth is None  # no depth outputs were asked for
        ref = render_forward(splats, camera(), background=BG).image.numpy()
        assert np.array_equal(img[..., :3].astype(np.int32), to_u8(ref))
        settings.view_mode = "depth"
        depth_img = viewer.render()
        assert np.abs(depth_img[..., :3].astype(np.int32) - img[..., :3]).max() > 50
        settings.view_mode = "color"
        assert np.array_equal(viewer.render(), img)
        # the V key toggles the view (handled on the next frame)
        for expected in ("depth", "color"):
            viewer.app.input.handle({"event_type": "key_down", "key": "v", "modifiers": ()})
            viewer.app.input.handle({"event_type": "key_up", "key": "v", "modifiers": ()})
            frame = viewer.render()
            assert settings.view_mode == expected
            assert np.array_equal(frame, depth_img if expected == "depth" else img)
    finally:
        viewer.close()


def test_depth_panel_is_drawn(gpu):
    """The settings panel with the depth widgets (auto and fixed ends) draws without errors; the
    clicks themselves are a manual check (see the report)."""
    from brushpy.viewer.offscreen import OffscreenViewer
    from brushpy.viewer.view import RenderSettings

    settings = RenderSettings(background=BG, view_mode="depth", depth_far=6.0)
    plain = OffscreenViewer(two_planes(), size=(480, 320), settings=RenderSettings(background=BG, view_mode="depth", depth_far=6.0))
    viewer = OffscreenViewer(two_planes(), size=(480, 320), show_panels=True, settings=settings)
    try:
        cam = Camera.look_at([0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0], 50.0, 480, 320)
        a, b = plain.render(cam), viewer.render(cam)
        assert viewer.app.error is None
        assert np.abs(a[:60, :150, :3].astype(int) - b[:60, :150, :3]).mean() > 10  # the panel is there
        assert settings.view_mode == "depth" and settings.depth_near is None and settings.depth_far == 6.0
    finally:
        plain.close()
        viewer.close()
