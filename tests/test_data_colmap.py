"""COLMAP loading: readers/writers, undistortion geometry, reprojection on a real capture."""

from __future__ import annotations

import logging
import cv2
import numpy as np
import pytest
from PIL import Image

from brushpy.data import LoadConfig, load_dataset
from brushpy.data import colmap
from brushpy.data.source import DatasetSource
from brushpy.data.undistort import UnsupportedCameraModel, colmap_camera_intrinsics
from tests.conftest import SHARED, requires_shared

BEER = SHARED / "datasets" / "beer_colmap"
needs_beer = requires_shared("datasets", "beer_colmap")


def _beer_model():
    return colmap.read_model(DatasetSource(BEER), "sparse/0", True)


def _project(cam, xyz):
    p = xyz @ cam.world_to_camera[:3, :3].T + cam.world_to_camera[:3, 3]
    return np.stack([cam.fx * p[:, 0] / p[:, 2] + cam.cx, cam.fy * p[:, 1] / p[:, 2] + cam.cy], 1), p[:, 2]


def _observed_in_output(colmap_cam, view, xys):
    """Observed (distorted) pixels mapped into the loader's pinhole image with OpenCV, independently."""
    fx, fy, cx, cy, dist = colmap_camera_intrinsics(colmap_cam.model, colmap_cam.params)
    K = np.array([[fx, 0, cx - 0.5], [0, fy, cy - 0.5], [0, 0, 1]])
    c = view.camera
    P = np.array([[c.fx, 0, c.cx - 0.5], [0, c.fy, c.cy - 0.5], [0, 0, 1]])
    out = cv2.undistortPoints(xys.reshape(-1, 1, 2) - 0.5, K, np.array(dist.coeffs), P=P)
    return out.reshape(-1, 2) + 0.5


@needs_beer
def test_beer_loads_71_undistorted_views(caplog):
    with caplog.at_level(logging.INFO, logger="brushpy.data"):
        scene = load_dataset(BEER, LoadConfig(max_resolution=200, progress=False), decode=False)
    assert len(scene.train_views) == 71 and scene.eval_views == []
    assert [v.name for v in scene.train_views] == sorted(v.name for v in scene.train_views)
    assert any("SIMPLE_RADIAL" in r.message and "undistorted" in r.message for r in caplog.records)
    assert all(v.spec.undistort is not None for v in scene.train_views)
    assert scene.init_points is not None and len(scene.init_points) == 4414
    v = scene.train_views[0]
    assert max(v.camera.width, v.camera.height) <= 200
    img = v.image
    assert img.dtype == np.uint8 and img.shape == (v.camera.height, v.camera.width, 3)


@needs_beer
def test_beer_reprojection_under_one_pixel():
    """COLMAP's 3D points land on their recorded 2D observations through our cameras (all 71 views)."""
    model = _beer_model()
    scene = load_dataset(BEER, LoadConfig(progress=False), decode=False)
    id_to_row = {int(i): k for k, i in enumerate(model.points.ids)}
    by_name = {im.name: im for im in model.images.values()}
    errors = []
    for view in scene.train_views:
        im = by_name[view.name]
        sel = im.point3d_ids >= 0
        xyz = model.points.xyz[[id_to_row[int(i)] for i in im.point3d_ids[sel]]]
        proj, depth = _project(view.camera, xyz)
        assert (depth > 0).all(), "points behind the camera: pose convention is wrong"
        obs = _observed_in_output(model.cameras[im.camera_id], view, im.xys[sel])
        errors.append(np.linalg.norm(proj - obs, axis=1))
    err = np.concatenate(errors)
    assert len(err) > 10000
    assert err.mean() < 1.0, err.mean()
    assert np.median(err) < 1.0
    # COLMAP's own figure: points3D errors weighted by track length (0.847 px here).
    full = colmap.read_points3d_binary((BEER / "sparse/0/points3D.bin").read_bytes())
    lengths = np.array([len(t) for t in full.tracks])
    recorded = (full.errors * lengths).sum() / lengths.sum()
    assert abs(err.mean() - recorded) < 0.05, (err.mean(), recorded)


def _blob_image(w, h, centres, sigma):
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    img = np.zeros((h, w))
    for x, y in centres:
        img += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return np.clip(img * 255, 0, 255).astype(np.uint8)


def _centroid(gray, x, y, r):
    x0, y0 = int(x) - r, int(y) - r
    patch = gray[y0:y0 + 2 * r + 1, x0:x0 + 2 * r + 1].astype(np.float64)
    patch = np.where(patch > 10, patch, 0)
    yy, xx = np.mgrid[y0:y0 + 2 * r + 1, x0:x0 + 2 * r + 1] + 0.5
    return (patch * xx).sum() / patch.sum(), (patch * yy).sum() / patch.sum()


@needs_beer
@pytest.mark.parametrize("max_resolution", [1920, 640])
def test_undistorted_pixels_match_camera(tmp_path, max_resolution):
    """Dots drawn at distorted positions appear where our pinhole camera says (checks the warp,
    the crop, the resize and the half-pixel convention together)."""
    model = _beer_model()
    im = sorted(model.images.values(), key=lambda i: i.name)[0]
    cam = model.cameras[im.camera_id]
    rng = np.random.default_rng(0)
    cand = im.xys[(im.xys[:, 0] > 40) & (im.xys[:, 0] < cam.width - 40) & (im.xys[:, 1] > 40) & (im.xys[:, 1] < cam.height - 40)]
    chosen = []
    for p in cand[rng.permutation(len(cand))]:
        if all(np.linalg.norm(p - q) > 40 for q in chosen):
            chosen.append(p)
        if len(chosen) == 25:
            break
    chosen = np.array(chosen)
    (tmp_path / "images").mkdir()
    Image.fromarray(_blob_image(cam.width, cam.height, chosen, 3.0)).convert("RGB").save(tmp_path / "images" / "dots.png")
    one = colmap.ColmapImage(1, im.qvec, im.tvec, cam.id, "dots.png")
    colmap.write_model(tmp_path / "sparse" / "0", colmap.ColmapModel({cam.id: cam}, {1: one}, None, "", True), binary=True)
    scene = load_dataset(tmp_path, LoadConfig(max_resolution=max_resolution, progress=False))
    view = scene.train_views[0]
    gray = view.image[..., 0]
    expected = _observed_in_output(cam, view, chosen)
    scale = view.camera.width / cam.width
    r = int(np.ceil(12 * scale)) + 2
    found = np.array([_centroid(gray, x, y, r) for x, y in expected])
    err = np.linalg.norm(found - expected, axis=1)
    assert err.max() < 0.25, err


@needs_beer
def test_text_and_binary_models_load_identically(tmp_path):
    model = _beer_model()
    full = colmap.read_model(DatasetSource(BEER), "sparse/0", True, with_points=False)
    full.points = colmap.read_points3d_binary((BEER / "sparse/0/points3D.bin").read_bytes())
    scenes = []
    for binary in (True, False):
        root = tmp_path / ("bin" if binary else "txt")
        (root / "sparse" / "0").mkdir(parents=True)
        (root / "images").symlink_to(BEER / "images")
        colmap.write_model(root / "sparse" / "0", full, binary=binary)
        scenes.append(load_dataset(root, LoadConfig(progress=False), decode=False))
    # The text reader agrees with the binary reader on every field.
    src = DatasetSource(tmp_path / "txt")
    txt = colmap.read_model(src, "sparse/0", False)
    for cid, cam in model.cameras.items():
        assert txt.cameras[cid].model == cam.model and np.array_equal(txt.cameras[cid].params, cam.params)
    for iid, im in model.images.items():
        t = txt.images[iid]
        assert t.name == im.name and np.array_equal(t.qvec, im.qvec) and np.array_equal(t.tvec, im.tvec)
        assert np.array_equal(t.xys, im.xys) and np.array_equal(t.point3d_ids, im.point3d_ids)
    pts_txt = colmap.read_points3d_text((tmp_path / "txt/sparse/0/points3D.txt").read_text())
    assert np.array_equal(pts_txt.xyz, full.points.xyz) and np.array_equal(pts_txt.rgb, full.points.rgb)
    assert all(np.array_equal(a, b) for a, b in zip(pts_txt.tracks, full.points.tracks))
    a, b = scenes
    assert len(a.train_views) == len(b.train_views) == 71
    for va, vb in zip(a.train_views, b.train_views):
        assert va.name == vb.name
        assert np.array_equal(va.camera.world_to_camera, vb.camera.world_to_camera)
        assert va.camera.intrinsics == vb.camera.intrinsics
        assert (va.camera.width, va.camera.height) == (vb.camera.width, vb.camera.height)
    assert np.array_equal(a.init_points.positions, b.init_points.positions)
    assert np.array_equal(a.init_points.colors, b.init_points.colors)


# ---------------------------------------------------------------- fixtures


def _write_fixture(root, model_name, params, w=64, h=48, n_images=3, binary=True, folder="sparse/0"):
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    images = {}
    for i in range(n_images):
        name = f"img_{i:02d}.png"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / "images" / name)
        images[i + 1] = colmap.ColmapImage(i + 1, np.array([1.0, 0, 0, 0]), np.array([0.1 * i, 0, 2.0]), 1, name)
    cams = {1: colmap.ColmapCamera(1, model_name, w, h, np.array(params, float))}
    pts = colmap.ColmapPoints(np.arange(5), rng.normal(size=(5, 3)), rng.integers(0, 255, (5, 3)).astype(np.uint8),
                              np.zeros(5), [np.zeros((0, 2), np.int64)] * 5)
    colmap.write_model(root / folder, colmap.ColmapModel(cams, images, pts, folder, binary), binary=binary)


def test_pinhole_used_as_is(tmp_path):
    _write_fixture(tmp_path, "PINHOLE", [50.0, 52.0, 31.0, 25.0])
    scene = load_dataset(tmp_path, LoadConfig(progress=False))
    v = scene.train_views[0]
    assert v.spec.undistort is None
    assert v.camera.intrinsics == (50.0, 52.0, 31.0, 25.0) and (v.camera.width, v.camera.height) == (64, 48)
    assert np.allclose(v.camera.position, [0, 0, -2.0])
    assert np.array_equal(v.image, np.asarray(Image.open(tmp_path / "images" / "img_00.png")))
    assert np.allclose(scene.init_points.colors * 255, np.round(scene.init_points.colors * 255))


def test_simple_pinhole_and_text_at_root(tmp_path):
    _write_fixture(tmp_path, "SIMPLE_PINHOLE", [40.0, 32.0, 24.0], binary=False, folder="")
    v = load_dataset(tmp_path, LoadConfig(progress=False), decode=False).train_views[0]
    assert v.camera.intrinsics == (40.0, 40.0, 32.0, 24.0)


def test_fisheye_undistorted(tmp_path, caplog):
    _write_fixture(tmp_path, "OPENCV_FISHEYE", [40.0, 40.0, 32.0, 24.0, 0.05, 0.01, 0.0, 0.0])
    with caplog.at_level(logging.INFO, logger="brushpy.data"):
        scene = load_dataset(tmp_path, LoadConfig(progress=False))
    v = scene.train_views[0]
    assert v.spec.undistort is not None and v.spec.undistort.distortion.model == "fisheye"
    assert v.image.shape == (v.camera.height, v.camera.width, 3)
    assert any("OPENCV_FISHEYE" in r.message for r in caplog.records)


def test_unsupported_model_lists_supported(tmp_path):
    _write_fixture(tmp_path, "FOV", [40.0, 40.0, 32.0, 24.0, 0.1])
    with pytest.raises(UnsupportedCameraModel, match="FOV.*SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL, RADIAL, OPENCV"):
        load_dataset(tmp_path, LoadConfig(progress=False), decode=False)


def test_model_with_most_images_is_chosen(tmp_path):
    _write_fixture(tmp_path, "PINHOLE", [50.0, 50.0, 32.0, 24.0], n_images=2, folder="sparse/0")
    _write_fixture(tmp_path, "PINHOLE", [60.0, 60.0, 32.0, 24.0], n_images=4, folder="sparse/1", binary=False)
    scene = load_dataset(tmp_path, LoadConfig(progress=False), decode=False)
    assert len(scene.train_views) == 4 and scene.train_views[0].camera.fx == 60.0


def test_missing_and_corrupt_images(tmp_path, caplog):
    _write_fixture(tmp_path, "PINHOLE", [50.0, 50.0, 32.0, 24.0], n_images=4)
    (tmp_path / "images" / "img_01.png").unlink()
    (tmp_path / "images" / "img_02.png").unlink()
    with caplog.at_level(logging.WARNING, logger="brushpy.data"):
        scene = load_dataset(tmp_path, LoadConfig(progress=False), decode=False)
    assert [v.name for v in scene.train_views] == ["img_00.png", "img_03.png"]
    warns = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warns) == 1 and "skipped 2 frame(s)" in warns[0]
    (tmp_path / "images" / "img_03.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ValueError, match="img_03.png"):
        load_dataset(tmp_path, LoadConfig(progress=False))


def test_size_mismatch_rescales_intrinsics(tmp_path, caplog):
    _write_fixture(tmp_path, "PINHOLE", [50.0, 50.0, 32.0, 24.0], w=64, h=48, n_images=1)
    Image.new("RGB", (128, 96)).save(tmp_path / "images" / "img_00.png")
    with caplog.at_level(logging.WARNING, logger="brushpy.data"):
        v = load_dataset(tmp_path, LoadConfig(progress=False)).train_views[0]
    assert v.camera.intrinsics == (100.0, 100.0, 64.0, 48.0) and v.image.shape == (96, 128, 3)
    assert any("differ in size" in r.message for r in caplog.records)


def test_no_cameras_error_names_folder(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(ValueError, match=f"{tmp_path}.*COLMAP.*transforms.json.*transforms_train.json"):
        load_dataset(tmp_path, LoadConfig(progress=False))


def test_truncated_binary_names_file(tmp_path):
    _write_fixture(tmp_path, "PINHOLE", [50.0, 50.0, 32.0, 24.0])
    p = tmp_path / "sparse" / "0" / "images.bin"
    p.write_bytes(p.read_bytes()[:30])
    with pytest.raises(colmap.ColmapFormatError, match="images.bin"):
        load_dataset(tmp_path, LoadConfig(progress=False))
