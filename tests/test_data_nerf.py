"""nerfstudio / instant-ngp (fox) and NeRF-synthetic (lego_400) loading."""

from __future__ import annotations

import json
import logging

import cv2
import numpy as np
import pytest
from PIL import Image

from brushpy.data import LoadConfig, load_dataset
from brushpy.data.nerfstudio import OPENGL_TO_OPENCV
from brushpy.train.init import scene_initial_splats
from tests.conftest import SHARED, requires_shared

LEGO = SHARED / "datasets" / "lego_400"
FOX = SHARED / "datasets" / "fox"


@requires_shared("datasets", "lego_400")
def test_lego_splits_pose_and_rgba():
    scene = load_dataset(LEGO, LoadConfig(progress=False), decode=False)
    assert len(scene.train_views) == 100 and len(scene.eval_views) == 200
    assert scene.train_views[0].name == "r_0.png" and scene.train_views[1].name == "r_1.png"
    assert all("/test/" in v.image_path for v in scene.eval_views)
    meta = json.loads((LEGO / "transforms_train.json").read_text())
    c2w_gl = np.array(meta["frames"][0]["transform_matrix"])
    cam = scene.train_views[0].camera
    assert np.allclose(cam.camera_to_world, c2w_gl @ OPENGL_TO_OPENCV, atol=1e-6)
    # Camera looks at the object at the origin: +z (OpenCV forward) points to the origin.
    fwd = cam.camera_to_world[:3, 2]
    assert np.dot(fwd, -cam.position / np.linalg.norm(cam.position)) > 0.99
    f = 0.5 * 400 / np.tan(0.5 * meta["camera_angle_x"])
    assert cam.intrinsics == pytest.approx((f, f, 200.0, 200.0)) and abs(f - 555.56) < 0.01
    assert (cam.width, cam.height) == (400, 400)
    for v in (scene.train_views[0], scene.eval_views[0]):
        img = v.image
        assert img.shape == (400, 400, 4) and img.dtype == np.uint8
        assert img[..., 3].min() == 0 and img[..., 3].max() == 255
        assert np.array_equal(img, np.asarray(Image.open(v.image_path)))
    assert scene.alpha_mode == "transparent" and scene.eval_views[0].mask is None
    assert scene.init_points is None


@requires_shared("datasets", "lego_400")
def test_lego_val_preference_and_frame_options():
    scene = load_dataset(LEGO, LoadConfig(synthetic_eval_split="val", max_frames=10, subsample_frames=3,
                                          max_resolution=100, progress=False), decode=False)
    assert [v.name for v in scene.train_views] == [f"r_{i}.png" for i in range(0, 30, 3)]
    assert len(scene.eval_views) == 10 and all("/val/" in v.image_path for v in scene.eval_views)
    cam = scene.train_views[0].camera
    assert (cam.width, cam.height) == (100, 100) and cam.fx == pytest.approx(555.5555 / 4, rel=1e-4)
    assert scene.train_views[0].image.shape == (100, 100, 4)


@requires_shared("datasets", "fox")
def test_fox_50_of_67_frames(caplog):
    with caplog.at_level(logging.INFO, logger="brushpy.data"):
        scene = load_dataset(FOX, LoadConfig(max_resolution=480, progress=False), decode=False)
    assert len(scene.train_views) == 50
    warns = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warns) == 1 and "skipped 17 frame(s)" in warns[0]
    assert any("OPENCV" in r.message and "undistorted" in r.message for r in caplog.records)
    v = scene.train_views[0]
    assert v.spec.undistort is not None
    assert v.spec.undistort.distortion.coeffs[:4] == pytest.approx((0.0578421, -0.0805099, -0.000980296, 0.00015575))
    assert max(v.camera.width, v.camera.height) <= 480
    assert scene.init_points is None
    splats = scene_initial_splats(scene)
    assert splats["means"].shape == (10000, 3)


@requires_shared("datasets", "fox")
def test_fox_epipolar_geometry():
    """Features matched between two undistorted views lie on the epipolar lines our cameras predict."""
    scene = load_dataset(FOX, LoadConfig(max_resolution=640, max_frames=6, progress=False), decode=False)
    a, b = scene.train_views[0], scene.train_views[4]
    ga = cv2.cvtColor(a.image, cv2.COLOR_RGB2GRAY)
    gb = cv2.cvtColor(b.image, cv2.COLOR_RGB2GRAY)
    orb = cv2.ORB_create(3000)
    ka, da = orb.detectAndCompute(ga, None)
    kb, db = orb.detectAndCompute(gb, None)
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(da, db)
    pa = np.array([ka[m.queryIdx].pt for m in matches]) + 0.5
    pb = np.array([kb[m.trainIdx].pt for m in matches]) + 0.5
    _F, inl = cv2.findFundamentalMat(pa, pb, cv2.FM_RANSAC, 1.0, 0.999)
    inl = inl.ravel().astype(bool)
    assert inl.sum() > 50
    pa, pb = pa[inl], pb[inl]
    # F from our cameras: x_b^T F x_a = 0 with F = Kb^-T [t]x R Ka^-1, (R, t) = pose of b relative to a.
    rel = b.camera.world_to_camera @ a.camera.camera_to_world
    R, t = rel[:3, :3], rel[:3, 3]
    tx = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])

    def kmat(c):
        return np.array([[c.fx, 0, c.cx], [0, c.fy, c.cy], [0, 0, 1.0]])

    F = np.linalg.inv(kmat(b.camera)).T @ tx @ R @ np.linalg.inv(kmat(a.camera))
    ha = np.c_[pa, np.ones(len(pa))]
    hb = np.c_[pb, np.ones(len(pb))]
    lines = ha @ F.T
    dist = np.abs((hb * lines).sum(1)) / np.linalg.norm(lines[:, :2], axis=1)
    assert np.median(dist) < 1.5, np.median(dist)


def _nerfstudio_fixture(root, frames_extra=None, top=None):
    (root / "imgs").mkdir(parents=True)
    rng = np.random.default_rng(0)
    frames = []
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(root / "imgs" / f"f{i}.jpg")
        m = np.eye(4)
        m[:3, 3] = [i, 0, 3]
        frames.append({"file_path": f"imgs/f{i}.jpg", "transform_matrix": m.tolist()})
    frames.append({"file_path": "imgs/missing.jpg", "transform_matrix": np.eye(4).tolist()})
    if frames_extra:
        for k, v in frames_extra.items():
            frames[k].update(v)
    meta = {"fl_x": 30.0, "cx": 20.0, "cy": 15.0, "w": 40, "h": 30, "frames": frames}
    meta.update(top or {})
    (root / "transforms.json").write_text(json.dumps(meta))


def test_nerfstudio_intrinsics_overrides_and_axes(tmp_path):
    _nerfstudio_fixture(tmp_path, {1: {"fl_x": 60.0, "fl_y": 50.0}, 2: {"camera_angle_x": 1.0}})
    scene = load_dataset(tmp_path, LoadConfig(progress=False, eval_split_every=3), decode=False)
    views = {v.name: v for v in scene.train_views + scene.eval_views}
    assert len(views) == 4 and [v.name for v in scene.eval_views] == ["f0.jpg", "f3.jpg"]
    assert views["f0.jpg"].camera.intrinsics == (30.0, 30.0, 20.0, 15.0)  # fl_y defaults to fl_x
    assert views["f1.jpg"].camera.intrinsics == (60.0, 50.0, 20.0, 15.0)
    assert views["f2.jpg"].camera.fx == pytest.approx(20.0 / np.tan(0.5))
    # Identity OpenGL pose: OpenCV camera has y and z flipped.
    w2c = views["f0.jpg"].camera.world_to_camera
    assert np.allclose(w2c[:3, :3], np.diag([1.0, -1.0, -1.0]))
    assert np.allclose(views["f3.jpg"].camera.position, [3, 0, 3])


def test_nerfstudio_fisheye_and_unsupported(tmp_path):
    _nerfstudio_fixture(tmp_path / "a", top={"camera_model": "OPENCV_FISHEYE", "k1": 0.02, "k2": 0.01})
    v = load_dataset(tmp_path / "a", LoadConfig(progress=False)).train_views[0]
    assert v.spec.undistort.distortion.model == "fisheye" and v.image.shape[:2] == (v.camera.height, v.camera.width)
    _nerfstudio_fixture(tmp_path / "b", top={"camera_model": "EQUIRECTANGULAR"})
    with pytest.raises(ValueError, match="EQUIRECTANGULAR.*OPENCV_FISHEYE"):
        load_dataset(tmp_path / "b", LoadConfig(progress=False), decode=False)


def test_nerfstudio_ply_init(tmp_path):
    from plyfile import PlyData, PlyElement

    _nerfstudio_fixture(tmp_path, top={"ply_file_path": "sparse_pc.ply"})
    v = np.zeros(6, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    v["x"] = np.arange(6)
    v["red"] = 255
    PlyData([PlyElement.describe(v, "vertex")]).write(str(tmp_path / "sparse_pc.ply"))
    scene = load_dataset(tmp_path, LoadConfig(progress=False, subsample_points=2), decode=False)
    assert np.array_equal(scene.init_points.positions[:, 0], [0, 2, 4])
    assert np.allclose(scene.init_points.colors, [1.0, 0.0, 0.0])
    s = scene_initial_splats(scene)
    assert np.allclose(s["sh_coeffs"][:, 0], [0.5 / 0.28209479177387814, -0.5 / 0.28209479177387814, -0.5 / 0.28209479177387814])


def test_embedded_lego_small_loads():
    """The scene shipped in assets/ (no ../shared needed)."""
    from tests.conftest import REPO

    root = REPO / "assets" / "lego_small"
    if not root.exists():
        pytest.skip(f"{root} not in this checkout")
    scene = load_dataset(root, LoadConfig(progress=False))
    assert (len(scene.train_views), len(scene.eval_views)) == (50, 10)
    assert scene.has_alpha and scene.train_views[0].image.shape == (100, 100, 4)
    meta = json.loads((root / "transforms_train.json").read_text())
    first = next(f for f in meta["frames"] if f["file_path"].endswith("r_0"))
    assert np.allclose(scene.train_views[0].camera.camera_to_world,
                       np.array(first["transform_matrix"]) @ OPENGL_TO_OPENCV, atol=1e-6)
    splats = scene_initial_splats(scene)
    assert splats["means"].shape == (10000, 3) and np.isfinite(splats["means"]).all()
