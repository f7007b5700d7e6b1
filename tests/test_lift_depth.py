"""Pixel-aligned initial splats from RGB-D views (brushpy.lift_depth, --init depth)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest

from brushpy.errors import InputError
from brushpy.io.ply import SH_C0
from brushpy.render.camera import Camera


def _camera(position, target, w=64, h=48, fov=60.0):
    return Camera.look_at(position, target, (0.0, 0.0, 1.0), fov, w, h)


def _plane_depth(cam: Camera, n, c):
    """Depth (along the optical axis) of the plane n·p = c seen by cam, per pixel centre (float64)."""
    j, i = np.mgrid[0:cam.height, 0:cam.width]
    ray_cam = np.stack([(i + 0.5 - cam.cx) / cam.fx, (j + 0.5 - cam.cy) / cam.fy, np.ones(i.shape)], -1)
    rot, t = cam.world_to_camera[:3, :3], cam.world_to_camera[:3, 3]
    ray_world = ray_cam @ rot  # Rᵀ ray (z = 1 along the axis)
    origin = -rot.T @ t
    return (c - n @ origin) / (ray_world @ n)


def _project(cam: Camera, p):
    q = p @ cam.world_to_camera[:3, :3].T + cam.world_to_camera[:3, 3]
    return cam.fx * q[:, 0] / q[:, 2] + cam.cx, cam.fy * q[:, 1] / q[:, 2] + cam.cy, q[:, 2]


def _image(h, w, seed=0, channels=3):
    return np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8)


def test_unprojection_is_exact_on_a_plane():
    from brushpy import lift_depth

    cam = _camera((0.3, -1.5, 3.0), (0.0, 0.0, 0.2))
    n = np.array([0.1, 0.2, 1.0]) / np.linalg.norm([0.1, 0.2, 1.0])
    depth = _plane_depth(cam, n, 0.15)
    assert (depth > 0).all()
    img = _image(cam.height, cam.width)
    out = lift_depth([img], [depth.astype(np.float32)], [cam], voxel_size=1e-4)  # no merging
    p = out["means"].astype(np.float64)
    assert len(p) == cam.width * cam.height
    np.testing.assert_allclose(p @ n, 0.15, atol=2e-6)  # on the plane
    u, v, z = _project(cam, p)  # back to the pixel centres
    assert (z > 0).all()
    pix = set(zip(np.round(u - 0.5).astype(int), np.round(v - 0.5).astype(int)))
    assert len(pix) == len(p)
    np.testing.assert_allclose(u - np.floor(u), 0.5, atol=1e-4)
    np.testing.assert_allclose(v - np.floor(v), 0.5, atol=1e-4)
    for k in ("means", "rotations", "log_scales", "sh_coeffs", "raw_opacities"):
        assert out[k].dtype == np.float32 and len(out[k]) == len(p), k
    assert out["sh_coeffs"].shape == (len(p), 1, 3)
    np.testing.assert_array_equal(out["rotations"], np.tile([1.0, 0, 0, 0], (len(p), 1)))
    np.testing.assert_array_equal(out["raw_opacities"], 0.0)


def test_colour_and_scale_per_pixel():
    from brushpy import lift_depth

    cam = _camera((0.0, -3.0, 0.0), (0.0, 0.0, 0.0), w=20, h=10)
    depth = np.full((10, 20), 2.5, np.float32)  # fronto-parallel: one column of pixels per x
    img = _image(10, 20, seed=3)
    out = lift_depth([img], [depth], [cam], voxel_size=1e-4)
    u, v, _ = _project(cam, out["means"].astype(np.float64))
    i, j = np.floor(u).astype(int), np.floor(v).astype(int)
    rgb = out["sh_coeffs"][:, 0, :] * SH_C0 + 0.5
    np.testing.assert_allclose(rgb, img[j, i] / 255.0, atol=1e-6)
    sigma = 2.5 / np.sqrt(cam.fx * cam.fy)
    np.testing.assert_allclose(out["log_scales"], np.log(sigma), atol=1e-6)
    # neighbouring samples on a fronto-parallel plane are one footprint apart
    out2 = lift_depth([img], [depth], [cam], stride=2, voxel_size=1e-4)
    np.testing.assert_allclose(out2["log_scales"], np.log(2 * sigma), atol=1e-6)


def test_stride_samples_block_centres():
    from brushpy import lift_depth

    cam = _camera((0.0, -3.0, 0.0), (0.0, 0.0, 0.0), w=31, h=17)
    depth = np.full((17, 31), 2.0, np.float32)
    for s in (1, 2, 3, 5):
        out = lift_depth([_image(17, 31)], [depth], [cam], stride=s, voxel_size=1e-4)
        u, v, _ = _project(cam, out["means"].astype(np.float64))
        cols = np.unique(np.floor(u).astype(int))
        rows = np.unique(np.floor(v).astype(int))
        np.testing.assert_array_equal(cols, np.arange(s // 2, 31, s))
        np.testing.assert_array_equal(rows, np.arange(s // 2, 17, s))
        assert len(out["means"]) == len(cols) * len(rows)


def test_invalid_pixels_are_skipped():
    from brushpy import lift_depth

    cam = _camera((0.0, -3.0, 0.0), (0.0, 0.0, 0.0), w=8, h=6)
    depth = np.full((6, 8), 2.0, np.float32)
    depth[0, :] = 0.0
    depth[1, 0] = np.nan
    depth[1, 1] = np.inf
    depth[1, 2] = -1.0
    img = _image(6, 8, channels=4)
    img[..., 3] = 255
    img[2, 3, 3] = 0  # transparent pixel: background, skipped
    out = lift_depth([img], [depth], [cam], voxel_size=1e-4)
    assert len(out["means"]) == 48 - 8 - 3 - 1
    assert np.isfinite(out["means"]).all() and np.isfinite(out["log_scales"]).all()
    u, v, _ = _project(cam, out["means"].astype(np.float64))
    assert (3, 2) not in set(zip(np.floor(u).astype(int), np.floor(v).astype(int)))
    empty = lift_depth([img], [np.zeros((6, 8), np.float32)], [cam])
    assert {k: a.shape for k, a in empty.items()} == {"means": (0, 3), "rotations": (0, 4), "log_scales": (0, 3),
                                                       "sh_coeffs": (0, 1, 3), "raw_opacities": (0,)}


def test_voxel_merge_across_two_views_of_one_plane():
    """Two views of the plane z = c: merged, they do not pile up (about one view's count), and
    each kept splat is the mean of its voxel's samples (on the plane, colour averaged)."""
    from brushpy import lift_depth

    n, c = np.array([0.0, 0.0, 1.0]), 0.0123
    cams = [Camera.look_at(p, (0, 0, 0), (0.0, 1.0, 0.0), 40.0, 64, 48) for p in ((0.05, -0.02, 3.0), (-0.05, 0.03, 3.02))]
    depths = [_plane_depth(cam, n, c).astype(np.float32) for cam in cams]
    white = np.full((48, 64, 3), 255, np.uint8)
    black = np.zeros((48, 64, 3), np.uint8)
    one = lift_depth([white], depths[:1], cams[:1])
    both = lift_depth([white, black], depths, cams)
    apart = lift_depth([white, black], depths, cams, voxel_size=1e-5)
    assert len(apart["means"]) == 2 * 64 * 48
    assert len(one["means"]) == 64 * 48  # the default voxel (the median footprint) keeps one view's samples
    assert len(both["means"]) < 1.1 * len(one["means"])  # no pile-up
    np.testing.assert_allclose(both["means"][:, 2], c, atol=1e-5)  # averages of points on the plane
    grey = both["sh_coeffs"][:, 0, 0] * SH_C0 + 0.5
    assert ((grey > 0.01) & (grey < 0.99)).mean() > 0.5  # most voxels hold samples of both views
    # an explicit voxel size: coarser grid, fewer splats
    coarse = lift_depth([white, black], depths, cams, voxel_size=0.2)
    assert len(coarse["means"]) < len(both["means"]) / 4


def test_voxel_merge_of_a_tilted_plane_seen_three_times():
    """A plane oblique to the grid: the merge keeps 3 views to well under 3x one view's count
    (measured 1.42x; a grid cell of one footprint cannot hold every pair of samples)."""
    from brushpy import lift_depth

    n = np.array([0.3, 0.5, 1.0]) / np.linalg.norm([0.3, 0.5, 1.0])
    cams = [Camera.look_at(p, (0, 0, 0), (0.0, 1.0, 0.0), 40.0, 64, 48)
            for p in ((0.05, -0.02, 3.0), (-0.05, 0.03, 3.02), (0.4, 0.3, 2.9))]
    depths = [_plane_depth(cam, n, 0.0123).astype(np.float32) for cam in cams]
    img = [np.full((48, 64, 3), 200, np.uint8)] * 3
    one = len(lift_depth(img[:1], depths[:1], cams[:1])["means"])
    three = lift_depth(img, depths, cams)
    assert len(three["means"]) < 1.6 * one
    np.testing.assert_allclose(three["means"].astype(np.float64) @ n, 0.0123, atol=1e-5)


def test_depth_map_smaller_than_the_image():
    """A half-resolution depth map uses the camera scaled to it and samples the image at the nearest pixel."""
    from brushpy import lift_depth

    cam = _camera((0.0, -3.0, 0.0), (0.0, 0.0, 0.0), w=40, h=20)
    img = _image(20, 40, seed=5)
    out = lift_depth([img], [np.full((10, 20), 2.0, np.float32)], [cam], voxel_size=1e-4)
    assert len(out["means"]) == 200
    u, v, _ = _project(cam, out["means"].astype(np.float64))  # full-resolution camera
    np.testing.assert_allclose(u % 2, 1.0, atol=1e-4)  # centres of 2x2 blocks
    i, j = 2 * np.floor(u / 2).astype(int) + 1, 2 * np.floor(v / 2).astype(int) + 1  # floor((k + 0.5) * 2)
    np.testing.assert_allclose(out["sh_coeffs"][:, 0, :] * SH_C0 + 0.5, img[j, i] / 255.0, atol=1e-6)


def test_bad_input():
    from brushpy import lift_depth

    cam = _camera((0.0, -3.0, 0.0), (0.0, 0.0, 0.0), w=8, h=6)
    d = np.ones((6, 8), np.float32)
    with pytest.raises(InputError, match="one of each per view"):
        lift_depth([_image(6, 8)], [d, d], [cam])
    with pytest.raises(InputError, match="stride"):
        lift_depth([_image(6, 8)], [d], [cam], stride=0)
    with pytest.raises(InputError, match="uint8"):
        lift_depth([np.zeros((6, 8, 3))], [d], [cam])
    with pytest.raises(InputError, match="voxel_size"):
        lift_depth([_image(6, 8)], [d], [cam], voxel_size=0.0)


def _sphere_depth(cam: Camera, radius: float, rng):
    """Depth of the sphere |p| = radius per pixel (0 where the ray misses), with 0.1% noise."""
    j, i = np.mgrid[0:cam.height, 0:cam.width]
    ray = np.stack([(i + 0.5 - cam.cx) / cam.fx, (j + 0.5 - cam.cy) / cam.fy, np.ones(i.shape)], -1)
    ray = ray @ cam.world_to_camera[:3, :3]  # world direction, z_cam = 1
    o = cam.position
    a, b, c = (ray**2).sum(-1), 2 * ray @ o, o @ o - radius**2
    disc = b * b - 4 * a * c
    t = np.where(disc > 0, (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a), 0.0)
    return (t * (1 + 0.001 * rng.standard_normal(t.shape))).astype(np.float32)


@pytest.mark.parametrize("scene", ["sphere", "noise"])
def test_lift_speed_640x480_40_views(scene):
    """40 views of 640x480 at stride 1: a sphere (4.0 M samples, merged to 1.1 M splats) and the
    worst case, a shell of random depths (12.3 M samples, almost every one its own voxel) lift
    without running out of memory; the time is printed (measured 1.3 and 6.7 s CPU at load 6 on
    2 cores), not asserted."""
    from brushpy import lift_depth

    rng = np.random.default_rng(0)
    cams = [Camera.look_at((3 * np.cos(a), 3 * np.sin(a), 0.5), (0, 0, 0), (0, 0, 1), 50.0, 640, 480)
            for a in np.linspace(0, 2 * np.pi, 40, endpoint=False)]
    if scene == "sphere":
        depths = [_sphere_depth(c, 1.0, rng) for c in cams]
    else:
        depths = [(3.0 + 0.5 * rng.random((480, 640))).astype(np.float32) for _ in cams]
    images = [_image(480, 640, seed=k) for k in range(4)] * 10
    samples = sum(int((d > 0).sum()) for d in depths)
    t0, w0 = time.process_time(), time.perf_counter()
    out = lift_depth(images, depths, cams)
    cpu, wall = time.process_time() - t0, time.perf_counter() - w0
    print(f"\nlift {scene}: 40 x 640x480, {samples / 1e6:.1f} M samples -> {len(out['means']):,} splats "
          f"in {cpu:.2f} s CPU ({wall:.2f} s wall)")
    assert len(out["means"]) > 100_000
    # No time limit here (speed belongs in benchmarks; CPU time too grows on a loaded machine:
    # 8.5 s once at load 8 where 6.7 s was measured at load 6): the figures are printed only.


# -- --init in scene_initial_splats ---------------------------------------------------------

def _scene(depth=True, points=None):
    cams = [_camera((0.3 * k, -3.0, 0.2), (0.0, 0.0, 0.0)) for k in range(3)]
    views = [SimpleNamespace(camera=c, image=_image(c.height, c.width, seed=k),
                             depth=np.full((c.height, c.width), 3.0, np.float32) if depth else None)
             for k, c in enumerate(cams)]
    return SimpleNamespace(name="rgbd", train_views=views, init_points=points)


def test_scene_initial_splats_init_modes():
    from brushpy.data import InitPoints
    from brushpy.train.init import scene_initial_splats
    from brushpy.train.lift import lift_depth

    s = _scene()
    got = scene_initial_splats(s, init="depth", stride=4)
    want = lift_depth([v.image for v in s.train_views], [v.depth for v in s.train_views],
                      [v.camera for v in s.train_views], stride=4)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])
    # views without depth are left out; none at all is an error naming the option
    s.train_views[1].depth = None
    assert len(scene_initial_splats(s, init="depth")["means"]) > 0
    with pytest.raises(InputError, match=r"--init depth: dataset 'rgbd' has no depth maps"):
        scene_initial_splats(_scene(depth=False), init="depth")
    with pytest.raises(InputError, match="no valid pixel"):
        sc = _scene()
        for v in sc.train_views:
            v.depth = np.zeros_like(v.depth)
        scene_initial_splats(sc, init="depth")
    # auto / random / points
    pts = InitPoints(np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32),
                     np.full((50, 3), 0.5, np.float32))
    assert len(scene_initial_splats(_scene(points=pts))["means"]) == 50
    assert len(scene_initial_splats(_scene(points=pts), init="points")["means"]) == 50
    assert len(scene_initial_splats(_scene(points=pts), init="random")["means"]) == 10_000
    with pytest.raises(InputError, match="--init points: dataset 'rgbd' has no point cloud"):
        scene_initial_splats(_scene(), init="points")
    with pytest.raises(InputError, match="--init must be one of"):
        scene_initial_splats(_scene(), init="lidar")
