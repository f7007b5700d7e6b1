"""Mip-Splatting's 3D filter (brushpy/train/filter3d.py) against the float64 reference
(tests/reference/filter3d.py): floors from known cameras, the fold, its GPU VJP, and a
PLY exported with the filter rendering like the training-time render."""

from __future__ import annotations

import numpy as np
import pytest

from brushpy.render.camera import Camera
from tests.reference import filter3d as ref


def _look_down_z(position, f=100.0, w=64, h=48, fy=None):
    """A camera at ``position`` looking along +z (identity rotation)."""
    w2c = np.eye(4)
    w2c[:3, 3] = -np.asarray(position, np.float64)
    return Camera(w2c, f, f if fy is None else fy, w / 2, h / 2, w, h)


def test_reference_floors_from_known_cameras():
    cams = [_look_down_z((0, 0, 0), f=100.0), _look_down_z((0, 0, -3), f=50.0, fy=150.0)]
    # cam 0 at the origin, focal 100; cam 1 at z = -3, focal (50 + 150) / 2 = 100;
    # both 64x48, principal point (32, 24): a view sees u in [-9.6, 73.6], v in [-7.2, 55.2]
    means = np.array([
        [0.0, 0.0, 2.0],    # depths 2 and 5: 0.02
        [0.0, 0.0, 10.0],   # depths 10 and 13: 0.1
        [50.0, 0.0, 2.0],   # u = 2532 (cam 0), 532 (cam 1): unseen -> the largest floor, 0.1
        [0.0, 0.0, -1.0],   # behind cam 0; depth 2 in cam 1: 0.02
        [0.0, 0.0, -5.0],   # behind both: unseen -> 0.1
        [0.5, 0.0, 1.0],    # u = 82 in cam 0 (outside); cam 1: depth 4, u = 38.25: 0.04
    ])
    got = ref.min_scale(means, cams, factor=0.1)
    s = np.sqrt(0.1)
    expected = np.array([0.02, 0.1, np.nan, 0.02, np.nan, 0.04]) * s
    expected[2] = expected[4] = 0.1 * s
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_gpu_floors_match_reference(gpu):
    from brushpy.gpu import GpuTensor
    from brushpy.train.filter3d import Filter3D

    rng = np.random.default_rng(0)
    cams = []
    for i in range(7):
        yaw = 0.9 * i
        R = np.array([[np.cos(yaw), 0, -np.sin(yaw)], [0, 1, 0], [np.sin(yaw), 0, np.cos(yaw)]])
        w2c = np.eye(4)
        w2c[:3, :3] = R
        w2c[:3, 3] = (0.1 * i, -0.2, 4.0 + 0.3 * i)
        cams.append(Camera(w2c, 80.0 + 5 * i, 90.0 - 3 * i, 30.0 + i, 25.0, 64 + 8 * i, 48))
    means = rng.normal(size=(1000, 3)) * 2.0
    means[:5] = [0, 0, 1000.0]  # far outside every view: unseen
    expected = ref.min_scale(means, cams)
    f = Filter3D(cams)
    got = f.update(GpuTensor.from_numpy(means.astype(np.float32))).numpy()
    assert (expected[:5] == expected[5:].max()).all()
    np.testing.assert_allclose(got, expected, rtol=2e-5)
    # a second update (fewer splats) reuses nothing stale
    got2 = f.update(GpuTensor.from_numpy(means[500:].astype(np.float32))).numpy()
    np.testing.assert_allclose(got2, ref.min_scale(means[500:], cams), rtol=2e-5)


def test_fold_matches_mip_splatting_formula():
    from brushpy.train.filter3d import fold_min_scale

    rng = np.random.default_rng(1)
    n = 500
    ls = rng.uniform(-7, 1, size=(n, 3))
    raw = rng.uniform(-8, 8, size=n)
    f = np.exp(rng.uniform(-6, -1, size=n))
    f[:10] = 0.0
    got_ls, got_raw = fold_min_scale(ls, raw, f)
    exp_ls, exp_raw = ref.fold(ls, raw, f)
    np.testing.assert_allclose(got_ls, exp_ls, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got_raw, exp_raw, rtol=1e-5, atol=1e-5)
    # f = 0 is the identity; s' >= f and s' >= s; the opacity only drops
    np.testing.assert_array_equal(got_ls[:10], ls[:10].astype(np.float32))
    np.testing.assert_array_equal(got_raw[:10], raw[:10].astype(np.float32))
    s1 = np.exp(got_ls.astype(np.float64))
    assert (s1 >= f[:, None] * (1 - 1e-6)).all() and (s1 >= np.exp(ls) * (1 - 1e-6)).all()
    assert (got_raw <= raw + 1e-6).all()
    # extremes stay finite: tiny scales (the floor dominates), near-certain opacities
    e_ls, e_raw = fold_min_scale(np.array([[-60.0, -60.0, -60.0], [5.0, 5.0, 5.0]]), np.array([30.0, -30.0]), np.array([0.01, 0.01]))
    assert np.isfinite(e_ls).all() and np.isfinite(e_raw).all()
    np.testing.assert_allclose(e_ls[0], np.log(0.01), rtol=1e-6)
    with pytest.raises(ValueError, match="min_scale"):
        fold_min_scale(ls, raw, f[:3])


def _random_splats(rng, n, k=4):
    return dict(
        means=rng.normal(size=(n, 3)) * 0.5 + [0, 0, 4.0],
        rotations=rng.normal(size=(n, 4)),
        log_scales=rng.uniform(-6, -1.5, size=(n, 3)),
        sh_coeffs=rng.normal(size=(n, k, 3)) * 0.3,
        raw_opacities=rng.uniform(-4, 6, size=n),
    )


def test_gpu_apply_and_vjp_match_reference(gpu):
    from brushpy.gpu import GpuTensor, Recorder
    from brushpy.render.splats import Splats
    from brushpy.train.filter3d import Filter3D, fold_min_scale

    rng = np.random.default_rng(2)
    n = 300
    p = _random_splats(rng, n)
    p["log_scales"][:3] = [-40.0, -1.0, -3.0]  # huge u: the stable form must hold
    splats = Splats.from_numpy(*(p[k] for k in ("means", "rotations", "log_scales", "sh_coeffs", "raw_opacities")))
    f = Filter3D([_look_down_z((0, 0, 0))])
    floors = np.exp(rng.uniform(-5, -2, size=n)).astype(np.float32)
    floors[:5] = 0.0
    f.load(floors)
    rec = Recorder()
    filtered = f.apply(rec, splats)
    rec.submit()
    ls32 = p["log_scales"].astype(np.float32)
    raw32 = p["raw_opacities"].astype(np.float32)
    exp_ls, exp_raw = fold_min_scale(ls32, raw32, floors)
    np.testing.assert_allclose(filtered.log_scales.numpy(), exp_ls, rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(filtered.raw_opacities.numpy(), exp_raw, rtol=1e-4, atol=1e-4)
    assert filtered.means is splats.means and filtered.sh_coeffs is splats.sh_coeffs

    # VJP vs central differences of the float64 reference fold
    v_ls = rng.normal(size=(n, 3))
    v_raw = rng.normal(size=n)
    g_ls = GpuTensor.from_numpy(v_ls.astype(np.float32))
    g_raw = GpuTensor.from_numpy(v_raw.astype(np.float32))
    rec = Recorder()
    f.backward(rec, splats, g_ls, g_raw)
    rec.submit()
    ls64, raw64, fl64 = ls32.astype(np.float64), raw32.astype(np.float64), floors.astype(np.float64)

    def loss(ls, raw):
        a, b = ref.fold(ls, raw, fl64)
        return (a * v_ls).sum(-1) + b * v_raw  # per splat (the map is per splat)

    eps = 1e-6
    fd_ls = np.zeros((n, 3))
    for k in range(3):
        d = np.zeros((n, 3))
        d[:, k] = eps
        fd_ls[:, k] = (loss(ls64 + d, raw64) - loss(ls64 - d, raw64)) / (2 * eps)
    fd_raw = (loss(ls64, raw64 + eps) - loss(ls64, raw64 - eps)) / (2 * eps)
    ok = np.isfinite(fd_ls).all(-1) & np.isfinite(fd_raw)
    ok[:3] = False  # exp(80) overflows the naive reference there
    assert ok.sum() > n - 5
    np.testing.assert_allclose(g_ls.numpy()[ok], fd_ls[ok], rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(g_raw.numpy()[ok], fd_raw[ok], rtol=2e-4, atol=2e-5)
    np.testing.assert_array_equal(g_ls.numpy()[3:5], v_ls[3:5].astype(np.float32))  # f = 0: identity
    assert np.isfinite(g_ls.numpy()).all() and np.isfinite(g_raw.numpy()).all()


def test_exported_ply_renders_like_training(gpu, tmp_path):
    """A trainer with the 3D filter: its evaluation render equals a plain render of the exported PLY."""
    from brushpy.io.ply import read_ply
    from brushpy.render.forward import render_forward
    from brushpy.train.config import ProcessConfig
    from tests.test_train import tiny_config, tiny_scene

    from brushpy.train.trainer import Trainer

    scene = tiny_scene(max_frames=4, resolution=32)
    tr = Trainer(scene, tiny_config(total_steps=30, refine_every=10), ProcessConfig(seed=1))
    assert tr.filter3d is not None
    for _ in range(12):  # one refine: the floors follow the new splat set
        tr.step()
    assert tr.filter3d.min_scale.shape[0] == tr.splats.num_splats
    path = tr.export_ply(tmp_path / "f.ply")
    data = read_ply(path)
    assert data.num_splats == tr.splats.num_splats
    assert "SplatRenderMode: default" in path.read_bytes()[:2000].decode("ascii", "replace")
    raw = tr.splats.numpy()
    assert (data.log_scales >= raw["log_scales"] - 1e-6).all() and (data.raw_opacities <= raw["raw_opacities"] + 1e-5).all()
    assert (data.log_scales > raw["log_scales"] + 1e-4).any()
    view = scene.train_views[0]
    from brushpy.gpu import Recorder

    rec = Recorder()
    state = render_forward(tr.filter3d.apply(rec, tr.splats), view.camera, (1.0, 1.0, 1.0), sh_degree=1, rec=rec)
    rec.submit()
    trained = state.image.numpy()
    exported = render_forward(data.to_gpu(), view.camera, (1.0, 1.0, 1.0), sh_degree=1).image.numpy()
    unfiltered = render_forward(tr.splats, view.camera, (1.0, 1.0, 1.0), sh_degree=1).image.numpy()
    assert np.abs(exported - trained).max() < 2e-3, np.abs(exported - trained).max()
    assert np.abs(unfiltered - trained).max() > 1e-3  # the filter changed the render


def test_mip_mode_trains_and_exports_its_mode(gpu, tmp_path):
    """--render-mode mip is accepted, trains (loss falls), renders in mip mode and says so in the PLY."""
    from brushpy.io.ply import read_ply, write_ply
    from brushpy.train.config import ProcessConfig
    from brushpy.train.trainer import Trainer
    from tests.test_train import tiny_config, tiny_scene

    cfg = tiny_config(total_steps=60, render_mode="mip")
    cfg.validate()
    scene = tiny_scene(max_frames=4, resolution=32)
    tr = Trainer(scene, cfg, ProcessConfig(seed=2))
    before = tr.evaluate()["psnr"]
    losses = [tr.step().loss for _ in range(40)]
    assert np.isfinite(losses).all() and np.mean(losses[-5:]) < np.mean(losses[:5])
    assert tr.evaluate()["psnr"] > before
    path = tr.export_ply(tmp_path / "mip.ply")
    data = read_ply(path)
    assert data.render_mode == "mip"
    write_ply(tmp_path / "again.ply", data)  # the mode survives a rewrite
    assert read_ply(tmp_path / "again.ply").render_mode == "mip"
    assert read_ply(tmp_path / "again.ply").num_splats == data.num_splats


def test_filter_floors_saved_in_checkpoints(gpu, tmp_path):
    from brushpy.train.config import ProcessConfig
    from brushpy.train.trainer import Trainer
    from tests.test_train import tiny_config, tiny_scene

    scene = tiny_scene(max_frames=4, resolution=32)
    cfg = tiny_config(total_steps=40, refine_every=10)
    a = Trainer(scene, cfg, ProcessConfig(seed=4))
    for _ in range(15):
        a.step()
    floors = a.filter3d.min_scale.numpy()
    ckpt = a.save_checkpoint(tmp_path / "c.npz")
    b = Trainer(scene, cfg, ProcessConfig(seed=4))
    b.load_checkpoint(ckpt)
    np.testing.assert_array_equal(b.filter3d.min_scale.numpy(), floors)
    # the floors were computed at the last refine, from the means of that moment
    assert not np.array_equal(ref.min_scale(a.splats.numpy()["means"], [v.camera for v in scene.train_views]).astype(np.float32), floors)
    off = Trainer(scene, tiny_config(total_steps=40, min_scale_factor=0.0), ProcessConfig(seed=4))
    assert off.filter3d is None
    with pytest.raises(ValueError, match="--min-scale-factor"):
        tiny_config(min_scale_factor=-1.0).validate()
