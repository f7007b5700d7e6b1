"""Depth maps in datasets (``View.depth``, ``Scene.has_depth``; ``brushpy/data/depth.py``).

Every source: ``depth/`` folders beside COLMAP images (16-bit PNG, .npy, TIFF), nerfstudio's
``depth_file_path`` and ``depth_unit_scale_factor``, the 7-Scenes RGB-D layout (poses checked
by reprojecting depth between frames), sparse depth from COLMAP points (``--depth-from-points``,
checked against the points' own reprojection); ``--depth-scale``; resizing and undistortion with
the image; bad depth maps (docs/robustness.md, "Depth maps").
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from brushpy.data import LoadConfig, load_dataset
from brushpy.data import colmap
from brushpy.data.depth import DepthMapError, sparse_depth
from brushpy.data.source import DatasetSource
from tests.conftest import SHARED, requires_shared
from tests.test_bad_input import assert_input_error, cli
from tests.test_data_colmap import _write_fixture

LEGO = Path(__file__).resolve().parent.parent / "assets" / "lego_small"
SEVEN = SHARED / "datasets" / "rgbd_7scenes"
BEER = SHARED / "datasets" / "beer_colmap"
FAST = LoadConfig(progress=False, num_workers=1)
W, H = 64, 48


def _depth_mm(w=W, h=H, seed=0) -> np.ndarray:
    """uint16 [h,w] millimetres, 500..4000, distinct per pixel row/column."""
    rng = np.random.default_rng(seed)
    return rng.integers(500, 4000, (h, w)).astype(np.uint16)


def _png16(path: Path, mm: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mm).save(path)
    assert Image.open(path).mode in ("I;16", "I")


def _colmap(root: Path, model="PINHOLE", params=(50.0, 50.0, 32.0, 24.0)) -> Path:
    _write_fixture(root, model, list(params), w=W, h=H)
    return root


def _views(root, **cfg):
    return load_dataset(root, FAST.replace(**cfg)).train_views


# ------------------------------------------------------------ depth/ folders


def test_colmap_depth_folder_png_in_millimetres(tmp_path):
    root = _colmap(tmp_path)
    mm = {i: _depth_mm(seed=i) for i in range(3)}
    mm[0][0, 0] = 0
    for i in range(3):
        _png16(root / "depth" / f"img_{i:02d}.png", mm[i])
    scene = load_dataset(root, FAST)
    assert scene.has_depth
    for i, v in enumerate(scene.train_views):
        d = v.depth
        assert d.dtype == np.float32 and d.shape == v.image.shape[:2] == (H, W)
        np.testing.assert_allclose(d, mm[i] * np.float32(0.001), rtol=1e-6)
    assert scene.train_views[0].depth[0, 0] == 0.0


def test_no_depth_is_none(tmp_path):
    scene = load_dataset(_colmap(tmp_path), FAST)
    assert not scene.has_depth and scene.train_views[0].depth is None


@pytest.mark.parametrize("ext", [".npy", ".tiff"])
def test_depths_folder_float_in_metres(tmp_path, ext):
    root = _colmap(tmp_path)
    m = {i: _depth_mm(seed=i).astype(np.float32) / 7.0 for i in range(3)}
    (root / "depths").mkdir()
    for i in range(3):
        p = root / "depths" / f"img_{i:02d}{ext}"
        np.save(p, m[i]) if ext == ".npy" else tifffile.imwrite(p, m[i])
    for i, v in enumerate(_views(root)):
        np.testing.assert_array_equal(v.depth, m[i])


def test_depth_scale_option_overrides_the_format(tmp_path):
    root = _colmap(tmp_path)
    mm = _depth_mm()
    for i in range(3):
        _png16(root / "depth" / f"img_{i:02d}.png", mm)
    v = _views(root, depth_scale=0.01)[0]
    np.testing.assert_allclose(v.depth, mm * np.float32(0.01), rtol=1e-6)
    # and from the command line's conversion
    assert LoadConfig().with_overrides({"--depth-scale": "0.5"}).depth_scale == 0.5


def test_depth_resized_with_the_image(tmp_path):
    """--max-resolution: the depth map is resized with the image, nearest (values kept, not blended)."""
    root = _colmap(tmp_path)
    mm = np.repeat(np.repeat(_depth_mm(W // 2, H // 2), 2, 0), 2, 1)  # 2x2 blocks
    for i in range(3):
        _png16(root / "depth" / f"img_{i:02d}.png", mm)
    v = _views(root, max_resolution=W // 2)[0]
    assert v.image.shape[:2] == v.depth.shape == (H // 2, W // 2)
    np.testing.assert_allclose(v.depth, mm[::2, ::2] * np.float32(0.001), rtol=1e-6)


def test_depth_of_same_aspect_other_scale_is_resized_with_a_warning(tmp_path, caplog):
    """A 32x24 depth map for a 64x48 image (a 320x240 Kinect depth for a 640x480 image)."""
    root = _colmap(tmp_path)
    small = _depth_mm(W // 2, H // 2)
    for i in range(3):
        _png16(root / "depth" / f"img_{i:02d}.png", small)
    with caplog.at_level(logging.WARNING, logger="brushpy.data"):
        scene = load_dataset(root, FAST)
    lines = [r.message for r in caplog.records if "depth map(s) differ in size" in r.message]
    assert len(lines) == 1 and "3 depth map(s)" in lines[0] and "32x24" in lines[0], caplog.text
    d = scene.train_views[0].depth
    assert d.shape == (H, W)
    np.testing.assert_allclose(d, np.repeat(np.repeat(small, 2, 0), 2, 1) * np.float32(0.001), rtol=1e-6)


def test_depth_undistorted_with_the_image(tmp_path):
    """A distorted camera: the depth is remapped with the image's maps, nearest (every output
    value is one of the input's), and lines up with the undistorted image."""
    root = _colmap(tmp_path, "SIMPLE_RADIAL", (50.0, 32.0, 24.0, -0.15))
    # Encode each pixel's column in the depth and in the image's red channel.
    cols = np.tile(np.arange(W, dtype=np.uint16), (H, 1))
    for i in range(3):
        _png16(root / "depth" / f"img_{i:02d}.png", 1000 + 10 * cols)
        rgb = np.zeros((H, W, 3), np.uint8)
        rgb[..., 0] = (cols * 4).astype(np.uint8)
        Image.fromarray(rgb).save(root / "images" / f"img_{i:02d}.png")
    v = _views(root)[0]
    assert v.spec.undistort is not None
    d = v.depth
    assert d.shape == v.image.shape[:2] == (v.camera.height, v.camera.width)
    col_from_depth = np.round((d * 1000 - 1000) / 10)
    assert set(np.unique(col_from_depth)) <= set(range(W))
    col_from_image = v.image[..., 0].astype(np.float64) / 4  # bilinear: may fall between columns
    assert np.abs(col_from_depth - col_from_image).max() <= 1.0
    expected = v.spec.undistort.apply(np.asarray(1000 + 10 * cols, np.float32), 0) * np.float32(0.001)
    np.testing.assert_allclose(d, expected, rtol=1e-6)


def test_depth_folder_beside_nerfstudio_images_and_in_a_zip(tmp_path):
    root = _nerfstudio(tmp_path, with_paths=False)
    mm = _depth_mm(100, 100)
    for name in _names(root):
        _png16(root / "train" / "depth" / f"{name}.png", mm)
    scene = load_dataset(root, FAST)
    assert scene.has_depth and all(v.depth is not None for v in scene.train_views)
    archive = shutil.make_archive(str(tmp_path / "lego"), "zip", root)
    v = load_dataset(archive, FAST).train_views[0]
    np.testing.assert_allclose(v.depth, mm * np.float32(0.001), rtol=1e-6)


# ------------------------------------------------------------ nerfstudio


def _nerfstudio(tmp_path: Path, with_paths=True, factor=None, ext=".png") -> Path:
    """lego_small's first 2 train frames as a nerfstudio transforms.json (+ depth_file_path)."""
    root = tmp_path / "ns"
    (root / "train").mkdir(parents=True)
    data = json.loads((LEGO / "transforms_train.json").read_text())
    data["frames"] = data["frames"][:2]
    for f in data["frames"]:
        name = f["file_path"].rsplit("/", 1)[-1]
        shutil.copy(LEGO / "train" / f"{name}.png", root / "train" / f"{name}.png")
        f["file_path"] = f"train/{name}.png"
        if with_paths:
            f["depth_file_path"] = f"depth_maps/{name}{ext}"
    if factor is not None:
        data["depth_unit_scale_factor"] = factor
    (root / "transforms.json").write_text(json.dumps(data))
    return root


def _names(root: Path) -> list[str]:
    return [f["file_path"].rsplit("/", 1)[-1][:-4] for f in json.loads((root / "transforms.json").read_text())["frames"]]


def test_nerfstudio_depth_file_path(tmp_path):
    root = _nerfstudio(tmp_path)
    mm = {n: _depth_mm(100, 100, seed=k) for k, n in enumerate(_names(root))}
    for n, d in mm.items():
        _png16(root / "depth_maps" / f"{n}.png", d)
    scene = load_dataset(root, FAST)
    assert scene.kind == "nerfstudio" and scene.has_depth
    for v in scene.train_views:
        np.testing.assert_allclose(v.depth, mm[v.name[:-4]] * np.float32(0.001), rtol=1e-6)


def test_nerfstudio_depth_unit_scale_factor_and_the_flag(tmp_path):
    """nerfstudio's convention: raw x depth_unit_scale_factor = metres, for npy too; --depth-scale wins."""
    root = _nerfstudio(tmp_path, factor=0.25, ext=".npy")
    raw = np.full((100, 100), 8.0, np.float32)
    (root / "depth_maps").mkdir()
    for n in _names(root):
        np.save(root / "depth_maps" / f"{n}.npy", raw)
    assert np.all(load_dataset(root, FAST).train_views[0].depth == 2.0)
    assert np.all(load_dataset(root, FAST.replace(depth_scale=0.5)).train_views[0].depth == 4.0)


# ------------------------------------------------------------ 7-Scenes


needs_seven = requires_shared("datasets", "rgbd_7scenes")


def _reprojection_error(va, vb) -> tuple[float, int]:
    """Median |z_b - depth_b| / depth_b of view a's depth unprojected, moved to view b, projected."""
    ca, cb = va.camera, vb.camera
    da, db = va.depth, vb.depth
    v, u = np.nonzero(da > 0)
    z = da[v, u].astype(np.float64)
    p = np.stack([(u + 0.5 - ca.cx) / ca.fx * z, (v + 0.5 - ca.cy) / ca.fy * z, z, np.ones_like(z)], 1)
    q = p @ (cb.world_to_camera @ ca.camera_to_world).T
    front = q[:, 2] > 0
    q = q[front]
    col = np.floor(cb.fx * q[:, 0] / q[:, 2] + cb.cx).astype(int)
    row = np.floor(cb.fy * q[:, 1] / q[:, 2] + cb.cy).astype(int)
    inside = (col >= 0) & (col < cb.width) & (row >= 0) & (row < cb.height)
    ref = db[row[inside], col[inside]]
    ok = ref > 0
    rel = np.abs(q[inside, 2][ok] - ref[ok]) / ref[ok]
    return float(np.median(rel)), int(ok.sum())


@needs_seven
def test_7scenes_loads_with_depth_and_consistent_poses():
    scene = load_dataset(SEVEN, FAST.replace(eval_split_every=5))
    assert scene.kind == "rgbd" and scene.has_depth and scene.init_points is None
    assert len(scene.train_views) == 40 and len(scene.eval_views) == 10
    by_name = {v.name: v for v in scene.views}
    a = by_name["frame-000150.color.png"]
    assert (a.camera.width, a.camera.height) == (640, 480) and a.camera.intrinsics == (585.0, 585.0, 320.5, 240.5)
    d = a.depth
    assert d.dtype == np.float32 and d.shape == (480, 640) and 0.3 < d[d > 0].min() and d.max() < 3.0
    # Pose consistency (OpenCV axes): 0.50% median relative error 150 -> 160, 0.89% 150 -> 199.
    for other, bound in (("frame-000160.color.png", 0.01), ("frame-000199.color.png", 0.015)):
        err, n = _reprojection_error(a, by_name[other])
        assert n > 100_000 and err < bound, (other, err, n)


@needs_seven
def test_7scenes_from_the_command_line_refuses_bad_depth(tmp_path):
    """The CLI detects the layout (a bad depth file is then reported at load, naming it)."""
    root = tmp_path / "seven"
    shutil.copytree(SEVEN, root)
    for p in sorted((root / "rgbd-frames").glob("*"))[12:]:
        p.unlink()  # 4 frames left
    (root / "rgbd-frames" / "frame-000151.depth.png").write_bytes(b"not a png")
    assert_input_error(cli("train", root), "frame-000151.depth.png")


def test_rgbd_layout_without_intrinsics_is_an_error(tmp_path):
    d = tmp_path / "frames"
    d.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(d / "frame-000000.color.png")
    (d / "frame-000000.pose.txt").write_text("1 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n")
    assert_input_error(cli("train", tmp_path), "camera-intrinsics.txt")


# ------------------------------------------------------------ --depth-from-points


def test_sparse_depth_keeps_the_nearest_point():
    from brushpy.render.camera import Camera

    cam = Camera(np.eye(4), 10.0, 10.0, 2.0, 2.0, 4, 4)
    xyz = np.array([[0.0, 0.0, 2.0], [0.0, 0.0, 1.0], [0.0, 0.0, 3.0],  # one pixel, three points
                    [0.1, 0.1, 1.0], [0.0, 0.0, -1.0], [5.0, 0.0, 1.0]])  # (2,3); behind; outside
    d = sparse_depth(cam, xyz)
    assert d[2, 2] == 1.0 and d[3, 3] == 1.0 and np.count_nonzero(d) == 2


def test_depth_from_points_on_a_fixture(tmp_path):
    root = _colmap(tmp_path)
    folder = root / "sparse" / "0"
    model = colmap.read_model(DatasetSource(folder), "", True)
    model.points.xyz = np.array([[0.0, 0.0, 1.0], [0.2, 0.1, 1.5], [-0.3, 0.0, 2.0], [0.0, 0.2, 0.5], [0, 0, 1.2]])
    im = model.images[1]
    im.xys = np.zeros((3, 2))
    im.point3d_ids = np.array([0, 2, -1])
    colmap.write_model(folder, model, True)
    scene = load_dataset(root, FAST.replace(depth_from_points=True))
    v = scene.train_views[0]
    assert scene.has_depth and v.depth.shape == (H, W)
    expected = sparse_depth(v.camera, model.points.xyz[[0, 2]])
    np.testing.assert_array_equal(v.depth, expected)
    assert np.count_nonzero(expected) == 2
    assert np.count_nonzero(scene.train_views[1].depth) == 0  # observes nothing
    assert not load_dataset(root, FAST).has_depth  # off by default


needs_beer = requires_shared("datasets", "beer_colmap")


@needs_beer
def test_depth_from_points_on_beer_matches_the_reprojection():
    """Every observed point that lands in the (undistorted, downscaled) image is at its pixel
    with its camera z (the nearest where two collide), and nothing else is. The observations
    are the tracks of points3D read from the image side: the two agree."""
    cfg = FAST.replace(depth_from_points=True, max_resolution=400)
    scene = load_dataset(BEER, cfg, decode=False)
    model = colmap.read_model(DatasetSource(BEER), "sparse/0", True)
    full = colmap.read_points3d_binary((BEER / "sparse/0/points3D.bin").read_bytes())
    by_name = {im.name: im for im in model.images.values()}
    row_of = {int(i): k for k, i in enumerate(full.ids)}
    counts, pixels = [], []
    for view in scene.train_views:
        im = by_name[view.name]
        from_tracks = {int(full.ids[k]) for k, t in enumerate(full.tracks) if (t[:, 0] == im.id).any()}
        assert from_tracks == set(int(i) for i in im.point3d_ids[im.point3d_ids >= 0])
        xyz = full.xyz[[row_of[i] for i in sorted(from_tracks)]]
        c = view.camera
        p = xyz @ c.world_to_camera[:3, :3].T + c.world_to_camera[:3, 3]
        col = np.floor(c.fx * p[:, 0] / p[:, 2] + c.cx).astype(int)
        row = np.floor(c.fy * p[:, 1] / p[:, 2] + c.cy).astype(int)
        ok = (p[:, 2] > 0) & (col >= 0) & (col < c.width) & (row >= 0) & (row < c.height)
        expected = {}
        for r, k, z in zip(row[ok], col[ok], p[ok, 2]):
            expected[(r, k)] = min(expected.get((r, k), np.inf), np.float32(z))
        d = view.depth
        assert d.shape == view.image.shape[:2]
        got = {(int(r), int(k)): d[r, k] for r, k in zip(*np.nonzero(d))}
        assert got.keys() == expected.keys()
        assert all(got[key] == expected[key] for key in got)
        counts.append(len(from_tracks))
        pixels.append(len(got))
    # 71 views: 88..902 observed points per view (median 370), 83..772 depth pixels (median 324) at 400 px.
    assert len(counts) == 71 and np.median(counts) > 300 and np.median(pixels) > 250, (
        np.median(counts), np.median(pixels))


def test_depth_from_points_on_a_nerfstudio_dataset_warns(tmp_path, caplog):
    root = _nerfstudio(tmp_path, with_paths=False)
    with caplog.at_level(logging.WARNING, logger="brushpy.data"):
        scene = load_dataset(root, FAST.replace(depth_from_points=True))
    assert not scene.has_depth and "--depth-from-points needs a COLMAP model" in caplog.text


# ------------------------------------------------------------ bad depth maps


def _colmap_with_depth(tmp_path: Path, first: np.ndarray | None = None, first_name="img_00.png") -> Path:
    root = _colmap(tmp_path)
    for i in range(1, 3):
        _png16(root / "depth" / f"img_{i:02d}.png", _depth_mm(seed=i))
    if first is not None:
        p = root / "depth" / first_name
        np.save(p, first) if first_name.endswith(".npy") else _png16(p, first)
    return root


def test_depth_of_another_aspect_names_both_files(tmp_path):
    root = _colmap_with_depth(tmp_path, _depth_mm(40, 40))
    assert_input_error(cli("train", root), "img_00.png", "40x40", "64x48", "images")
    with pytest.raises(DepthMapError, match="another aspect ratio"):
        load_dataset(root, FAST)


@pytest.mark.parametrize("content", [b"garbage", b"\x89PNG\r\n\x1a\n broken"])
def test_unreadable_depth_names_the_file(tmp_path, content):
    root = _colmap_with_depth(tmp_path)
    (root / "depth" / "img_00.png").write_bytes(content)
    assert_input_error(cli("train", root), "depth", "img_00.png")


def test_unreadable_npy_and_8bit_png_name_the_file(tmp_path):
    root = _colmap_with_depth(tmp_path)
    (root / "depth" / "img_00.npy").write_bytes(b"\x93NUMPY garbage")
    assert_input_error(cli("train", root), "img_00.npy")
    (root / "depth" / "img_00.npy").unlink()
    Image.fromarray(np.zeros((H, W), np.uint8)).save(root / "depth" / "img_00.png")
    assert_input_error(cli("train", root), "img_00.png", "16-bit")


def test_missing_depth_file_path_names_the_frame(tmp_path):
    root = _nerfstudio(tmp_path)
    assert_input_error(cli("train", root), "transforms.json", "depth_file_path", "r_0")


def test_all_invalid_depth_warns_naming_the_file(tmp_path, caplog):
    root = _colmap_with_depth(tmp_path, np.zeros((H, W), np.uint16))
    with caplog.at_level(logging.WARNING, logger="brushpy.data"):
        scene = load_dataset(root, FAST)
    assert "img_00.png: no valid depth" in caplog.text
    assert not scene.train_views[0].depth.any() and scene.train_views[1].depth.all()


def test_nan_inf_negative_depth_are_invalid_with_a_count(tmp_path, caplog):
    m = np.full((H, W), 2.0, np.float32)
    m[0, :3] = [np.nan, np.inf, -1.0]
    m[1, 0] = -np.inf
    root = _colmap_with_depth(tmp_path, m, "img_00.npy")
    with caplog.at_level(logging.WARNING, logger="brushpy.data"):
        d = load_dataset(root, FAST).train_views[0].depth
    assert "img_00.npy: 4 value(s) are NaN, infinite or negative" in caplog.text
    assert np.isfinite(d).all() and (d == 0).sum() == 4 and (d[d > 0] == 2.0).all()


def test_depth_scale_zero_is_refused():
    res = cli("train", "--depth-scale", "0")
    assert res.exit_code == 2 and "--depth-scale" in res.output and "Traceback" not in res.output
