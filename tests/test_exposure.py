"""Per-image exposure compensation (``--exposure``, brushpy/train/exposure.py): the GPU transform and
its gradients against the float64 reference (tests/reference/exposure.py, itself checked by finite
differences), the identity start, the split-half evaluation protocol, checkpoints, and a tiny
training run on images whose brightness was changed per image."""

from __future__ import annotations

import numpy as np
import pytest

from brushpy.train.config import ProcessConfig, TrainConfig
from tests.reference import exposure as ref
from tests.test_train import tiny_scene


def _random_case(seed=0, h=19, w=37):
    rng = np.random.default_rng(seed)
    image = rng.uniform(0, 1, size=(h, w, 4))
    p = ref.IDENTITY + rng.normal(scale=0.2, size=12)
    v_out = rng.normal(size=(h, w, 4))
    return image, p, v_out


def test_reference_backward_matches_finite_differences():
    image, p, v_out = _random_case(h=5, w=6)
    reg = 0.7

    def loss(img, pp):
        return float((ref.forward(img, pp) * v_out).sum() + reg * ((pp - ref.IDENTITY) ** 2).sum())

    v_image, v_p = ref.backward(image, p, v_out, reg)
    eps = 1e-6
    for k in range(12):
        d = np.zeros(12)
        d[k] = eps
        assert abs((loss(image, p + d) - loss(image, p - d)) / (2 * eps) - v_p[k]) < 1e-6
    for idx in [(0, 0, 0), (2, 3, 1), (4, 5, 2), (1, 1, 3)]:
        d = np.zeros_like(image)
        d[idx] = eps
        assert abs((loss(image + d, p) - loss(image - d, p)) / (2 * eps) - v_image[idx]) < 1e-6


def test_gpu_forward_and_backward_match_reference(gpu):
    from brushpy.gpu import GpuTensor, Recorder
    from brushpy.train.exposure import Exposure, identity_transforms

    image, p, v_out = _random_case(h=23, w=41)  # 943 pixels: 4 workgroups, the last one partial
    ex = Exposure(3, reg_weight=0.3)
    params = identity_transforms(3)
    params[1] = p
    params[2] += 0.5  # another image's transform: must not be read
    ex.params.write(params.astype(np.float32))
    img_t = GpuTensor.from_numpy(image.astype(np.float32))
    rec = Recorder()
    out = ex.forward(rec, img_t, 1)
    v_image, grad = ex.backward(rec, img_t, 1, GpuTensor.from_numpy(v_out.astype(np.float32)))
    rec.submit()
    x32 = image.astype(np.float32).astype(np.float64)
    p32 = params[1].astype(np.float64)
    v32 = v_out.astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(out.numpy(), ref.forward(x32, p32), rtol=1e-5, atol=1e-6)
    exp_v_image, exp_v_p = ref.backward(x32, p32, v32, 0.3)
    np.testing.assert_allclose(v_image.numpy(), exp_v_image, rtol=1e-5, atol=1e-5)
    g = grad.numpy()
    np.testing.assert_allclose(g[1], exp_v_p, rtol=1e-4, atol=1e-3)  # sums over 943 pixels in float32
    assert not np.any(g[[0, 2]]), "only the rendered image's row gets a gradient"


def test_identity_start_leaves_the_render_unchanged(gpu):
    """A fresh transform returns the image bit for bit, so --exposure changes nothing at step 0."""
    from brushpy.gpu import GpuTensor, Recorder
    from brushpy.train.exposure import Exposure
    from brushpy.train.trainer import Trainer

    image = np.random.default_rng(2).uniform(-0.2, 1.3, size=(9, 14, 4)).astype(np.float32)
    ex = Exposure(2)
    rec = Recorder()
    out = ex.forward(rec, GpuTensor.from_numpy(image), 1)
    rec.submit()
    np.testing.assert_array_equal(out.numpy(), image)

    scene = tiny_scene(max_frames=4, resolution=32)
    cfg = TrainConfig(total_steps=20, background_color=(1.0, 1.0, 1.0), sh_degree=1)
    plain = Trainer(scene, cfg, ProcessConfig(seed=4))
    comp = Trainer(scene, TrainConfig(**{**cfg.__dict__, "exposure": True}), ProcessConfig(seed=4))
    assert plain.step().loss == comp.step().loss
    assert comp.last_ops == ("filter3d", "render", "exposure", "loss")


def test_least_squares_fit_inverts_a_known_transform():
    from brushpy.train.exposure import apply_affine_colour, fit_affine_colour

    rng = np.random.default_rng(5)
    gt = rng.uniform(0.1, 0.9, size=(16, 24, 3))
    m = np.array([[0.8, 0.05, 0.0, 0.03], [0.0, 0.7, 0.1, -0.02], [0.02, 0.0, 0.9, 0.05]])
    render = apply_affine_colour(gt, m)  # a render off by an affine colour change
    a, b = m[:, :3], m[:, 3]
    inverse = np.concatenate([np.linalg.inv(a), (-np.linalg.inv(a) @ b)[:, None]], axis=1)
    np.testing.assert_allclose(fit_affine_colour(render, gt), inverse, atol=1e-9)


def test_split_protocol_scores_the_right_half(gpu):
    from brushpy.train.exposure import apply_affine_colour, split_fit_metrics

    rng = np.random.default_rng(6)
    gt = rng.uniform(0.1, 0.9, size=(20, 30, 3)).astype(np.float32)
    render = apply_affine_colour(gt, [[0.6, 0, 0, 0.1], [0, 0.6, 0, 0.1], [0, 0, 0.6, 0.1]]).astype(np.float32)
    render[:, 15:] += rng.normal(scale=0.01, size=(20, 15, 3)).astype(np.float32)  # noise the fit cannot remove
    res = split_fit_metrics(render, gt)
    expected_fit = -10 * np.log10(np.mean((apply_affine_colour(render[:, 15:], res["transform"]) - gt[:, 15:]) ** 2))
    expected_plain = -10 * np.log10(np.mean((render[:, 15:].astype(np.float64) - gt[:, 15:]) ** 2))
    assert res["psnr_fit"] == pytest.approx(expected_fit, abs=0.01)
    assert res["psnr_right"] == pytest.approx(expected_plain, abs=0.01)
    assert 30 < res["psnr_fit"] < 60 and res["psnr_right"] < 25


def _brightness_altered_scene(factors):
    """The tiny lego scene with opaque training images (over white), each scaled by its factor."""
    scene = tiny_scene(max_frames=8, resolution=24)
    for view, f in zip(scene.train_views, factors):
        img = view.load().image.astype(np.float64) / 255.0
        if img.shape[2] == 4:
            img = img[..., :3] * img[..., 3:] + (1.0 - img[..., 3:])
        view._image = np.clip(np.round(img * f * 255.0), 0, 255).astype(np.uint8)  # a test-only edit of the pixels
    return scene


def test_exposure_recovers_per_image_brightness(gpu):
    """Training images darkened by per-image factors: with --exposure the learned transforms follow
    the factors and the held-out views (scored with the split protocol) come out better."""
    from brushpy.train.trainer import Trainer

    factors = np.random.default_rng(7).uniform(0.45, 1.0, size=8)
    scene = _brightness_altered_scene(factors)
    n = len(scene.train_views)
    cfg = dict(total_steps=150, background_color=(1.0, 1.0, 1.0), refine_every=50, growth_stop_iter=100,
               sh_degree=0, lr_exposure=0.02, lr_exposure_end=0.005)
    results = {}
    for exposure in (False, True):
        tr = Trainer(scene, TrainConfig(**cfg, exposure=exposure), ProcessConfig(seed=8, eval_exposure_fit=True),
                     log_every=50)
        for _ in range(cfg["total_steps"]):
            tr.step()
        results[exposure] = (tr.evaluate(), tr.exposure.numpy() if exposure else None)
    (plain, _), (comp, transforms) = results[False], results[True]
    gain = transforms[:, [0, 5, 10]].mean(axis=1)  # mean diagonal of A per training image
    assert np.corrcoef(gain, factors[:n])[0, 1] > 0.9, (gain, factors[:n])
    # (uncompensated PSNR says little here: the images' common brightness is free with --exposure)
    assert comp["psnr_fit"] > plain["psnr_fit"] + 0.5, (plain["psnr_fit"], comp["psnr_fit"])


def test_checkpoint_keeps_the_transforms(gpu, tmp_path):
    from brushpy.train.trainer import Trainer

    scene = tiny_scene(max_frames=4, resolution=32)
    cfg = TrainConfig(total_steps=20, background_color=(1.0, 1.0, 1.0), sh_degree=0, exposure=True)
    a = Trainer(scene, cfg, ProcessConfig(seed=9))
    for _ in range(6):
        a.step()
    saved = a.exposure.numpy()
    assert not np.array_equal(saved, np.tile(ref.IDENTITY, (len(scene.train_views), 1)).astype(np.float32))
    ckpt = a.save_checkpoint(tmp_path / "ckpt.npz")
    b = Trainer(scene, cfg, ProcessConfig(seed=9))
    b.load_checkpoint(ckpt)
    np.testing.assert_array_equal(b.exposure.numpy(), saved)
    assert b.exposure.adam.t == a.exposure.adam.t == 6
    for name in ("exp_avg", "exp_avg_sq"):
        np.testing.assert_array_equal(b.exposure.adam.state["exposure"][name].numpy(),
                                      a.exposure.adam.state["exposure"][name].numpy())
