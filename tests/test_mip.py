"""MIP mode: soft-MIP kernels vs the float64 reference, gradients, cameras vs true MIPs, training, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import requires_shared
from tests.reference import mip as ref

SMALL_TIF = ("datasets", "neuron_tiff", "test-small.tif")


def _random_params(rng, k, scale=(-3.2, -2.2), amp=(-1.5, 0.5)):
    return (rng.uniform(0.2, 0.8, (k, 3)).astype(np.float32),
            rng.uniform(*scale, (k, 3)).astype(np.float32),
            rng.normal(size=(k, 4)).astype(np.float32),
            rng.uniform(*amp, k).astype(np.float32))


def _camera(h, w, perspective, angle=30.0):
    from brushpy.mip.camera import orbit_cameras

    return orbit_cameras([1.0, 0.8, 0.5], [angle], (h, w), "y", perspective)[0]


# -- reference ---------------------------------------------------------------------

@pytest.mark.parametrize("perspective", [False, True])
def test_reference_vjp_matches_finite_differences(perspective):
    rng = np.random.default_rng(3)
    params = [a.astype(np.float64) for a in _random_params(rng, 4)]
    h, w = 14, 16
    cam = _camera(h, w, perspective).as_dict()
    v = rng.normal(size=(h, w))
    grads = ref.render_vjp(*params, cam, w, h, 8.0, v)
    eps = 1e-6
    for ai in range(4):
        num = np.zeros_like(params[ai])
        for idx in np.ndindex(params[ai].shape):
            hi = [p.copy() for p in params]
            lo = [p.copy() for p in params]
            hi[ai][idx] += eps
            lo[ai][idx] -= eps
            num[idx] = ((ref.render(*hi, cam, w, h, 8.0) - ref.render(*lo, cam, w, h, 8.0)) * v).sum() / (2 * eps)
        np.testing.assert_allclose(grads[ai], num, rtol=1e-5, atol=1e-6 * max(1.0, np.abs(num).max()))


def test_reference_soft_max_bounds_and_hard_limit():
    rng = np.random.default_rng(4)
    params = [a.astype(np.float64) for a in _random_params(rng, 12)]
    h, w = 20, 24
    cam = _camera(h, w, False).as_dict()
    hard = ref.hard_mip(*params, cam, w, h)
    m2, con, la, valid, _ = ref.project(*params, cam)
    n = ref._pixel_terms(m2, con, la, valid, w, h)[3].sum(axis=0)
    for p in (4.0, 10.0, 100.0):
        soft = ref.render(*params, cam, w, h, p)
        assert np.all(soft >= hard - 1e-12)
        assert np.all(soft <= hard * np.maximum(n, 1) ** (1 / p) + 1e-12)
    assert np.abs(ref.render(*params, cam, w, h, 1000.0) - hard).max() < 0.01 * hard.max()


# -- GPU vs reference ----------------------------------------------------------------

@pytest.mark.parametrize("perspective", [False, True])
def test_gpu_forward_and_vjp_match_reference(gpu, perspective):
    from brushpy.mip.model import MipGaussians
    from brushpy.mip.render import MipRenderer

    rng = np.random.default_rng(1)
    params = _random_params(rng, 40)
    h, w = 40, 48  # several tiles, partial edge tiles
    cam = _camera(h, w, perspective)
    model = MipGaussians.from_numpy(*params)
    r = MipRenderer(40, h, w, temperature=0.1)
    img = r.render(model, cam)
    want = ref.render(*params, cam.as_dict(), w, h, 10.0)
    assert (want > 0).mean() > 0.2
    np.testing.assert_allclose(img, want, atol=1e-5, rtol=1e-5)
    v = rng.normal(size=(h, w))
    got = r.render_vjp(model, cam, v)
    exp = ref.render_vjp(*params, cam.as_dict(), w, h, 10.0, v)
    for name, e in zip(("means", "log_scales", "rotations", "log_amplitudes"), exp):
        scale = np.abs(e).max()
        assert scale > 0
        np.testing.assert_allclose(got[name], e, atol=2e-6 * scale, rtol=1e-3, err_msg=name)


def test_render_op_on_the_autodiff_tape(gpu):
    """Two views chained through the tape: gradients add up to the reference VJPs."""
    from brushpy.autodiff import Tape
    from brushpy.gpu import GpuTensor, Recorder
    from brushpy.mip.model import MipGaussians
    from brushpy.mip.render import MipRenderer, MipRenderOp

    rng = np.random.default_rng(8)
    params = _random_params(rng, 30)
    h, w = 32, 40
    cams = [_camera(h, w, False, 10.0), _camera(h, w, True, 70.0)]
    model = MipGaussians.from_numpy(*params)
    r = MipRenderer(30, h, w)
    tape = Tape()
    rec = Recorder()
    ops = [tape.record(MipRenderOp(r, rec, model, c)) for c in cams]
    seeds = [rng.normal(size=(h, w, 4)).astype(np.float32) for _ in cams]
    grads = tape.backward(rec, {op.outputs["image"]: GpuTensor.from_numpy(s) for op, s in zip(ops, seeds)})
    rec.submit()
    for op, c in zip(ops, cams):
        np.testing.assert_allclose(op.outputs["image"].numpy()[..., 0], ref.render(*params, c.as_dict(), w, h, 10.0), atol=1e-5)
    want = [sum(parts) for parts in zip(*[ref.render_vjp(*params, c.as_dict(), w, h, 10.0, s[..., :3].sum(-1))
                                          for c, s in zip(cams, seeds)])]
    for name, e in zip(("means", "log_scales", "rotations", "log_amplitudes"), want):
        np.testing.assert_allclose(grads[getattr(model, name)].numpy(), e, atol=2e-6 * np.abs(e).max(), rtol=1e-3, err_msg=name)


def test_gpu_low_temperature_approaches_hard_max(gpu):
    from brushpy.mip.model import MipGaussians
    from brushpy.mip.render import MipRenderer

    rng = np.random.default_rng(2)
    params = _random_params(rng, 30)
    h, w = 32, 32
    cam = _camera(h, w, False)
    img = MipRenderer(30, h, w, temperature=0.005).render(MipGaussians.from_numpy(*params), cam)
    hard = ref.hard_mip(*params, cam.as_dict(), w, h)
    assert np.abs(img - hard).max() < 0.02 * hard.max()
    assert np.all(img >= hard * (1 - 1e-5) - 1e-6)


def test_gpu_cas_fallback_matches_float_atomics(gpu):
    from brushpy.gpu import create_context, get_context, set_context
    from brushpy.mip.model import MipGaussians
    from brushpy.mip.render import MipRenderer

    rng = np.random.default_rng(5)
    params = _random_params(rng, 25)
    h, w = 32, 32
    cam = _camera(h, w, False)
    v = rng.normal(size=(h, w))
    base = MipRenderer(25, h, w).render_vjp(MipGaussians.from_numpy(*params), cam, v)
    old = get_context()
    ctx = create_context(disable={"shader-float32-atomic", "subgroup"})
    assert not ctx.has_float_atomics
    set_context(ctx)
    try:
        alt = MipRenderer(25, h, w).render_vjp(MipGaussians.from_numpy(*params), cam, v)
    finally:
        set_context(old)
    for name in base:
        np.testing.assert_allclose(alt[name], base[name], rtol=1e-4, atol=1e-5 * np.abs(base[name]).max())


# -- cameras vs true MIPs -------------------------------------------------------------

@pytest.mark.parametrize("axis,perspective,voxel_size", [("y", False, (1, 1, 1)), ("x", False, (1, 1, 1)),
                                                        ("y", True, (1, 1, 1)), ("y", False, (2.5, 1, 1))])
def test_blob_volume_mip_matches_rendered_gaussian(gpu, axis, perspective, voxel_size):
    """A Gaussian blob volume's true MIP peaks where the same Gaussian renders."""
    from brushpy.mip.camera import box_extents, orbit_cameras
    from brushpy.mip.model import MipGaussians
    from brushpy.mip.render import MipRenderer
    from brushpy.mip.volume import normalise_volume, true_mip

    shape = (20, 36, 30)  # Z, Y, X
    centre_u = np.array([0.62, 0.35, 0.4])  # box (x, y, z)
    sigma_vox = 2.0
    zz, yy, xx = np.meshgrid(*[np.arange(n) + 0.5 for n in shape], indexing="ij")
    n = np.array([shape[2], shape[1], shape[0]], np.float64)
    c_vox = centre_u * n
    vol = np.exp(-0.5 * ((xx - c_vox[0]) ** 2 + (yy - c_vox[1]) ** 2 + (zz - c_vox[2]) ** 2) / sigma_vox**2)
    vol = normalise_volume(vol)
    E = box_extents(shape, voxel_size)
    h = w = 48
    # isotropic physical sigma: sigma_vox voxels; in box units per axis divide by the axis' voxel count
    log_scales = np.log(sigma_vox / n)[None].astype(np.float32)
    model = MipGaussians.from_numpy(centre_u[None], log_scales, [[1, 0, 0, 0]], [0.0])
    for angle in (0.0, 35.0, 90.0):
        cam = orbit_cameras(E, [angle], (h, w), axis, perspective)[0]
        gt = true_mip(vol, cam, step=0.25)
        img = MipRenderer(1, h, w, temperature=0.1).render(model, cam)
        ri = np.unravel_index(np.argmax(img), img.shape)
        # the render peaks where the true MIP does (trilinear sampling of coarse
        # voxels can flatten the true peak over two pixels: compare values)
        assert gt[ri] >= gt.max() - 1e-3, (angle, ri, np.unravel_index(np.argmax(gt), gt.shape))
        # ... which is the pixel where the camera projects the blob centre
        px = cam.project(centre_u)[0]
        assert abs(px[0] - (ri[1] + 0.5)) <= 0.5 and abs(px[1] - (ri[0] + 0.5)) <= 0.5
        # same image up to the trilinear sampling and the 0.3 px² blur
        assert np.abs(img - gt).max() < 0.08


def test_axis_aligned_true_mip_is_max_along_z():
    from brushpy.mip.camera import box_extents, orbit_cameras
    from brushpy.mip.volume import true_mip

    rng = np.random.default_rng(0)
    vol = rng.uniform(0, 1, (6, 10, 12)).astype(np.float32)
    cam = orbit_cameras(box_extents(vol.shape), [0.0], (10, 12))[0]
    # the square field of view is sized for all angles; centre crop matches the array
    cam.fx = cam.fy = 12.0 / box_extents(vol.shape)[0]
    np.testing.assert_allclose(true_mip(vol, cam, step=0.25), vol.max(axis=0), atol=1e-6)


def test_ply_shapes_are_the_physical_covariance():
    from brushpy.mip.model import physical_shapes

    rng = np.random.default_rng(0)
    ls = rng.uniform(-4, -1, (20, 3))
    q = rng.normal(size=(20, 4))
    E = np.array([0.98, 1.0, 0.29])
    pl, pq = physical_shapes(ls, q, E)
    R, R2 = ref.quat_to_rotmat(q), ref.quat_to_rotmat(pq)
    L = E[None, :, None] * (R * np.exp(ls)[:, None, :])
    L2 = R2 * np.exp(pl)[:, None, :]
    np.testing.assert_allclose(L2 @ np.swapaxes(L2, 1, 2), L @ np.swapaxes(L, 1, 2), atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(pq, axis=1), 1.0)


# -- volumes: errors -------------------------------------------------------------------

def test_volume_errors_name_the_file(tmp_path):
    from brushpy.mip.volume import VolumeError, load_volume

    nan = np.ones((4, 5, 6), np.float32)
    nan[1, 2, 3] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    np.save(tmp_path / "empty.npy", np.zeros((4, 5, 6), np.uint8))
    np.save(tmp_path / "flat.npy", np.zeros((4, 5), np.float32))
    (tmp_path / "vol.raw").write_bytes(b"\0" * 8)
    for name, needle in [("nan.npy", "NaN"), ("empty.npy", "empty"), ("flat.npy", "3D"), ("vol.raw", "extension"),
                         ("missing.npy", "does not exist")]:
        with pytest.raises(VolumeError, match=needle) as info:
            load_volume(tmp_path / name)
        assert name in str(info.value)


def test_tiff_volume_loads_normalised(tmp_path):
    import tifffile

    from brushpy.mip.volume import load_volume

    arr = (np.arange(4 * 5 * 6) % 200).reshape(4, 5, 6).astype(np.uint8) + 10
    tifffile.imwrite(tmp_path / "v.tif", arr, photometric="minisblack")
    vol = load_volume(tmp_path / "v.tif")
    assert vol.shape == (4, 5, 6) and vol.dtype == np.float32
    assert vol.min() == 0.0 and vol.max() == 1.0


# -- training -----------------------------------------------------------------------------

def test_gradient_clip_and_clamps(gpu):
    from brushpy.gpu import Recorder
    from brushpy.mip.camera import orbit_cameras
    from brushpy.mip.model import MipGaussians, init_random
    from brushpy.mip.train import MipTrainConfig, MipTrainer

    K = 300
    p = init_random(K, seed=1)
    model = MipGaussians.from_numpy(**p)
    cams = orbit_cameras([1, 1, 1], [0.0], (16, 16))
    tr = MipTrainer(model, cams, [np.zeros((16, 16), np.float32)], MipTrainConfig(max_grad_norm=1.0))
    rng = np.random.default_rng(0)
    g = {n: rng.normal(size=t.shape).astype(np.float32) for n, t in tr.grads.items()}
    for n, arr in g.items():
        tr.grads[n].write(arr)
    norm = np.sqrt(sum((a.astype(np.float64) ** 2).sum() for a in g.values()))
    rec = Recorder()
    tr.record_clip(rec)
    rec.submit()
    got_norm, scale = tr.norm_out.numpy()[:2]
    assert got_norm == pytest.approx(norm, rel=1e-4)
    assert scale == pytest.approx(1.0 / norm, rel=1e-4)
    clipped = np.sqrt(sum((tr.grads[n].numpy().astype(np.float64) ** 2).sum() for n in g))
    assert clipped == pytest.approx(1.0, rel=1e-4)
    # clamps
    means = p["means"].copy()
    means[0] = [-0.5, 1.5, 0.5]
    ls = p["log_scales"].copy()
    ls[1] = [-9.0, 0.5, -2.0]
    la = p["log_amplitudes"].copy()
    la[2], la[3] = -20.0, 9.0
    model.means.write(means)
    model.log_scales.write(ls)
    model.log_amplitudes.write(la)
    rec = Recorder()
    tr.record_clamp(rec)
    rec.submit()
    np.testing.assert_array_equal(model.means.numpy()[0], [0.0, 1.0, 0.5])
    np.testing.assert_array_equal(model.log_scales.numpy()[1], [-6.0, 0.0, -2.0])
    np.testing.assert_array_equal(model.log_amplitudes.numpy()[2:4], [-10.0, 6.0])


def test_loss_matches_numpy(gpu):
    """The step's loss = λ_MSE·MSE + λ_SSIM·(1-SSIM) of the rendered MIP (before the update)."""
    from brushpy.loss import ssim as gpu_ssim
    from brushpy.gpu import GpuTensor
    from brushpy.mip.model import MipGaussians
    from brushpy.mip.render import MipRenderer
    from brushpy.mip.train import MipTrainConfig, MipTrainer, grey_to_rgba

    rng = np.random.default_rng(7)
    params = _random_params(rng, 30)
    h, w = 32, 32
    cam = _camera(h, w, False)
    target = rng.uniform(0, 1, (h, w)).astype(np.float32)
    img = MipRenderer(30, h, w).render(MipGaussians.from_numpy(*params), cam)
    s = gpu_ssim(GpuTensor.from_numpy(grey_to_rgba(img)), GpuTensor.from_numpy(grey_to_rgba(target)))
    want = 1.0 * np.mean((img.astype(np.float64) - target) ** 2) + 0.5 * (1 - s)
    tr = MipTrainer(MipGaussians.from_numpy(*params), [cam], [target], MipTrainConfig(lambda_mse=1.0, lambda_ssim=0.5))
    got = tr.step()
    assert got["loss"] == pytest.approx(want, rel=1e-4)


@requires_shared(*SMALL_TIF)
def test_training_on_small_neuron_loss_falls(gpu):
    from tests.conftest import SHARED
    from brushpy.mip.camera import box_extents, orbit_cameras
    from brushpy.mip.model import MipGaussians, init_from_volume
    from brushpy.mip.train import MipTrainConfig, MipTrainer, evaluate
    from brushpy.mip.volume import load_volume, true_mips

    vol = load_volume(SHARED.joinpath(*SMALL_TIF))
    E = box_extents(vol.shape)
    cams = orbit_cameras(E, [0.0, 60.0, 120.0], (48, 48))
    gts = true_mips(vol, cams)
    model = MipGaussians.from_numpy(**init_from_volume(vol, 400, extents=E))
    before, _ = evaluate(model, cams, gts, 0.1)
    tr = MipTrainer(model, cams, gts, MipTrainConfig(iterations=60, lr=1e-2))
    first = tr.step()["loss"]
    for _ in range(58):
        tr.step(read_loss=False)
    last = tr.step()["loss"]
    tr.check()
    assert last < 0.6 * first, (first, last)
    after, _ = evaluate(model, cams, gts, 0.1)
    assert np.mean([r["psnr"] for r in after]) > np.mean([r["psnr"] for r in before]) + 2.0


# -- files and CLI ---------------------------------------------------------------------------

def test_cli_train_render_export(gpu, tmp_path):
    from click.testing import CliRunner
    from plyfile import PlyData

    from brushpy.cli.mip import mip_group
    from brushpy.mip.model import MipGaussians

    zz, yy, xx = np.meshgrid(np.arange(12), np.arange(16), np.arange(14), indexing="ij")
    vol = np.exp(-((xx - 6) ** 2 + (yy - 9) ** 2 + (zz - 5) ** 2) / 8.0) + 0.8 * np.exp(-((xx - 10) ** 2 + (yy - 4) ** 2 + (zz - 7) ** 2) / 4.0)
    np.save(tmp_path / "vol.npy", vol.astype(np.float32))
    out = tmp_path / "out"
    runner = CliRunner()
    res = runner.invoke(mip_group, ["train", str(tmp_path / "vol.npy"), "--iterations", "4", "--resolution", "24", "24",
                                    "--num-gaussians", "50", "--checkpoint-every", "2", "--num-views", "2",
                                    "--eval-views", "1", "-o", str(out)])
    assert res.exit_code == 0, res.output
    for name in ("checkpoint_iter2.npz", "checkpoint_iter4.npz", "model.npz", "model.ply", "eval.json"):
        assert (out / name).exists(), name
    model, extra = MipGaussians.load(out / "model.npz")
    assert model.num_gaussians == 50 and extra["resolution"].tolist() == [24, 24]
    _, ck = MipGaussians.load(out / "checkpoint_iter2.npz")
    assert int(ck["adam.t"]) == 2 and ck["adam.means.exp_avg"].shape == (50, 3)
    # resume from a checkpoint
    res = runner.invoke(mip_group, ["train", str(tmp_path / "vol.npy"), "--iterations", "1", "--resolution", "24", "24",
                                    "--checkpoint", str(out / "checkpoint_iter2.npz"), "--eval-views", "0",
                                    "-o", str(tmp_path / "out2")])
    assert res.exit_code == 0, res.output
    # user-supplied projections (the eval PNG used as a training image at two angles)
    png = next(out.glob("eval_*_gt.png"))
    res = runner.invoke(mip_group, ["train", str(tmp_path / "vol.npy"), "--iterations", "2", "--resolution", "24", "24",
                                    "--num-gaussians", "30", "--projection", "10", str(png), "--projection", "100", str(png),
                                    "--eval-views", "1", "-o", str(tmp_path / "out3")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "out3" / "eval.json").read_text())["train_angles"] == [10.0, 100.0]
    res = runner.invoke(mip_group, ["render", str(out / "model.npz"), "--angles", "0,45", "-o", str(tmp_path / "png")])
    assert res.exit_code == 0, res.output
    from PIL import Image

    img = np.asarray(Image.open(tmp_path / "png" / "mip_45.png"))
    assert img.shape == (24, 24) and img.max() > 0
    res = runner.invoke(mip_group, ["export", str(out / "model.npz"), "-o", str(tmp_path / "m.ply")])
    assert res.exit_code == 0, res.output
    v = PlyData.read(str(tmp_path / "m.ply"))["vertex"]
    assert v.count == 50
    assert {"x", "f_dc_0", "opacity", "scale_2", "rot_3"} <= set(v.data.dtype.names)
    # the main CLI finds the group
    from brushpy.cli import main

    res = runner.invoke(main, ["mip", "--help"])
    assert res.exit_code == 0 and "train" in res.output and "render" in res.output
    # errors name the file
    np.save(tmp_path / "zeros.npy", np.zeros((4, 4, 4), np.float32))
    res = runner.invoke(mip_group, ["train", str(tmp_path / "zeros.npy"), "--iterations", "1"])
    assert res.exit_code != 0 and "zeros.npy" in res.output and "empty" in res.output
