"""Fused L1 + SSIM loss: float64 reference vs finite differences, GPU vs reference."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import SHARED, requires_shared
from tests.reference import loss as ref

MODES = ("opaque", "transparent", "masked")


def _inputs(h, w, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.random((h, w, 4))
    gt = rng.random((h, w, 4))
    mask = rng.random((h, w))
    return image, gt, mask


# -- the reference itself ------------------------------------------------------

@pytest.mark.parametrize("mode,use_mask", [(m, False) for m in MODES] + [("masked", True)])
def test_reference_gradient_matches_finite_differences(mode, use_mask):
    image, gt, mask = _inputs(13, 11, seed=3)
    kw = dict(ssim_weight=0.3, match_alpha_weight=0.25, background=(0.2, 0.5, 0.9), alpha_mode=mode,
              mask=mask if use_mask else None)
    _, v = ref.image_loss(image, gt, **kw)
    rng = np.random.default_rng(1)
    eps = 1e-6
    for _ in range(25):
        i, j, c = rng.integers(13), rng.integers(11), rng.integers(4)
        xp, xm = image.copy(), image.copy()
        xp[i, j, c] += eps
        xm[i, j, c] -= eps
        fd = (ref.image_loss(xp, gt, **kw)[0] - ref.image_loss(xm, gt, **kw)[0]) / (2 * eps)
        assert abs(fd - v[i, j, c]) <= 1e-7 + 1e-5 * abs(fd), (i, j, c, fd, v[i, j, c])


def test_reference_ssim_map_gradient_full_directional():
    rng = np.random.default_rng(5)
    x, y = rng.random((9, 14, 3)), rng.random((9, 14, 3))
    v_s = rng.standard_normal(x.shape)
    d = rng.standard_normal(x.shape)
    g = ref.ssim_backward(x, y, v_s)
    eps = 1e-6
    f = lambda z: float((v_s * ref.ssim_map(z, y)[0]).sum())  # noqa: E731
    fd = (f(x + eps * d) - f(x - eps * d)) / (2 * eps)
    assert fd == pytest.approx(float((g * d).sum()), rel=1e-6, abs=1e-9)


# -- GPU vs reference -------------------------------------------------------------

def _run_gpu(image, gt, gt_format="f32", premultiplied=False, **kw):
    from brushpy.gpu import GpuTensor
    from brushpy.loss import l1_ssim_loss, pack_rgba8

    if gt_format == "packed":
        gt8 = np.round(np.clip(gt, 0, 1) * 255).astype(np.uint8)
        gt_t = GpuTensor.from_numpy(pack_rgba8(gt8))
        gt_used = gt8 / 255.0
    elif gt_format == "f32rgb":
        gt_t = GpuTensor.from_numpy(gt[..., :3].astype(np.float32))
        gt_used = gt[..., :3].astype(np.float32)
    else:
        gt_t = GpuTensor.from_numpy(gt.astype(np.float32))
        gt_used = gt.astype(np.float32)
    mask = kw.pop("mask", None)
    mask_t = GpuTensor.from_numpy(mask.astype(np.float32)) if mask is not None else None
    img32 = image.astype(np.float32)
    loss, v = l1_ssim_loss(GpuTensor.from_numpy(img32), gt_t, mask=mask_t, gt_premultiplied=premultiplied, **kw)
    rl, rv = ref.image_loss(img32, gt_used, premultiplied=premultiplied,
                            mask=None if mask is None else mask.astype(np.float32), **kw)
    return loss, v.numpy(), rl, rv


def _assert_close(loss, v, rl, rv, grad_tol=2e-5):
    """Loss to f32 precision; gradient to ``grad_tol`` of the largest gradient entry."""
    assert loss == pytest.approx(rl, rel=2e-6, abs=1e-7)
    scale = np.abs(rv).max()
    np.testing.assert_allclose(v, rv, rtol=0, atol=grad_tol * scale + 1e-12)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("gt_format", ["packed", "f32", "f32rgb"])
def test_gpu_loss_matches_reference(gpu, mode, gt_format):
    image, gt, _ = _inputs(37, 29, seed=7)  # not a multiple of the 16-pixel tile
    out = _run_gpu(image, gt, gt_format, alpha_mode=mode, background=(0.1, 0.6, 0.3),
                   ssim_weight=0.2, match_alpha_weight=0.1)
    _assert_close(*out)


def test_gpu_loss_masked_with_mask_buffer_and_premultiplied(gpu):
    image, gt, mask = _inputs(21, 34, seed=8)
    _assert_close(*_run_gpu(image, gt, "f32", alpha_mode="masked", mask=mask))
    gt_pm = gt.copy()
    gt_pm[..., :3] *= gt_pm[..., 3:]
    _assert_close(*_run_gpu(image, gt_pm, "f32", premultiplied=True, alpha_mode="transparent",
                            background=(0.9, 0.8, 0.7), match_alpha_weight=0.5))


def test_gpu_loss_image_smaller_than_window(gpu):
    image, gt, _ = _inputs(5, 3, seed=9)
    _assert_close(*_run_gpu(image, gt, "f32", alpha_mode="transparent"))


@pytest.mark.parametrize("ssim_weight", [0.0, 1.0])
def test_gpu_loss_weight_extremes(gpu, ssim_weight):
    image, gt, _ = _inputs(18, 17, seed=10)
    _assert_close(*_run_gpu(image, gt, "f32", ssim_weight=ssim_weight))


def test_gpu_gradient_directional_finite_difference(gpu):
    """The GPU loss itself (f32) against its own gradient, SSIM term only (smooth)."""
    from brushpy.gpu import GpuTensor
    from brushpy.loss import ImageLoss
    from brushpy.gpu import Recorder

    rng = np.random.default_rng(11)
    image = (0.25 + 0.5 * rng.random((24, 20, 4))).astype(np.float32)
    gt = GpuTensor.from_numpy(rng.random((24, 20, 4)).astype(np.float32))
    d = rng.standard_normal(image.shape).astype(np.float32)
    d[..., 3] = 0
    fn = ImageLoss(ssim_weight=1.0)

    def loss_at(x):
        rec = Recorder()
        v = fn.record(rec, GpuTensor.from_numpy(x), gt)
        rec.submit()
        return fn.read_loss(), v.numpy()

    _, v = loss_at(image)
    h = 1e-2
    lp, _ = loss_at((image + h * d).astype(np.float32))
    lm, _ = loss_at((image - h * d).astype(np.float32))
    fd = (lp - lm) / (2 * h)
    assert fd == pytest.approx(float((v.astype(np.float64) * d).sum()), rel=2e-3)


def _windows_with_zero_ssim_covariance_term(n=256, spacing=12):
    """An image/gt pair on which ``b = 2 s_xy + C2`` of the SSIM rounds to exactly 0 in float32
    at some pixels (issue 14: the gradient there was NaN while the loss stayed finite).

    Black image and white gt except isolated impulses (one per 11x11 window, never a tile's
    first pixel, so every tile shifts its moments by image 0 / gt 1 and the windows' blurred
    sums are single products, rounded the same with or without fused multiply-add): at an
    impulse the image is X and the gt ``v/255``, Y = v/255 - 1, and at its own pixel
    ``s_xy = G(1-G) X Y`` with ``G = g5²`` (the centre tap squared). For each of 30 values of Y,
    41 consecutive float32 values of X around ``-C2 / (2 G (1-G) Y)`` are used: some of them give
    s_xy == -C2/2 exactly. Returns (image f32 [n,n,4], gt u8 [n,n,4], number of such candidates
    by a float32 emulation of the sums, with and without FMA).
    """
    from brushpy.loss.image_loss import gaussian_window

    f32 = np.float32
    g5 = gaussian_window().astype(f32)[5]
    G = f32(g5 * g5)
    c2 = f32(ref.C2)
    image = np.zeros((n, n, 4), f32)
    image[..., 3] = 1
    gt = np.full((n, n, 4), 255, np.uint8)
    slots = [(r, c, ch) for r in range(6, n - 5, spacing) for c in range(6, n - 5, spacing) for ch in range(3)]
    hits = 0
    k = 0
    for v in range(0, 240, 8):
        y = f32(f32(v / 255) - f32(1))
        x = f32(-float(c2) / (2 * float(G) * (1 - float(G)) * float(y)))
        for _ in range(20):
            x = np.nextafter(x, f32(-1), dtype=f32)
        for _ in range(41):
            r, c, ch = slots[k]
            k += 1
            image[r, c, ch], gt[r, c, ch] = x, v
            blur = lambda a: f32(g5 * f32(g5 * a))  # noqa: E731 - one impulse in the window
            mx, my, exy = blur(x), blur(y), blur(f32(x * y))
            for s_xy in (f32(np.float64(exy) - np.float64(mx) * np.float64(my)), f32(exy - f32(mx * my))):
                hits += f32(f32(2) * s_xy + c2) == 0
            x = np.nextafter(x, f32(1), dtype=f32)
    return image, gt, hits


def test_gradient_finite_where_ssim_covariance_term_is_zero(gpu):
    """Issue 14 regression: where 2 s_xy + C2 is exactly 0 the SSIM is 0 and its gradient is
    finite; the old ``S · (2 μy / b)`` and ``2 S / b`` gave 0·inf and 0/0 = NaN over the 11x11
    pixels the backward blurs that pixel into (seen in a real 7-Scenes step: 121 NaN entries of
    one channel, loss finite), which then reached every splat blended there."""
    from brushpy.gpu import GpuTensor
    from brushpy.loss import l1_ssim_loss, pack_rgba8

    image, gt8, hits = _windows_with_zero_ssim_covariance_term()
    assert hits > 0  # the construction does hit b == 0 in float32
    loss, v = l1_ssim_loss(GpuTensor.from_numpy(image), GpuTensor.from_numpy(pack_rgba8(gt8)))
    v = v.numpy()
    assert np.isfinite(loss)
    assert np.isfinite(v).all(), f"{int((~np.isfinite(v)).sum())} non-finite gradient entries"
    rl, rv = ref.image_loss(image, gt8 / 255.0)
    _assert_close(loss, v, rl, rv)


def test_identical_images_give_zero_loss_and_gradient(gpu):
    from brushpy.gpu import GpuTensor
    from brushpy.loss import l1_ssim_loss

    rng = np.random.default_rng(12)
    img = rng.random((33, 40, 4)).astype(np.float32)
    loss, v = l1_ssim_loss(GpuTensor.from_numpy(img), GpuTensor.from_numpy(img))
    assert abs(loss) < 1e-6
    assert np.abs(v.numpy()).max() < 1e-9


def test_composited_gt_equal_to_render_gives_zero_gradient(gpu):
    """A render that equals the gt composited over the step's background has zero loss gradient."""
    from brushpy.gpu import GpuTensor
    from brushpy.loss import l1_ssim_loss

    rng = np.random.default_rng(13)
    gt = rng.random((20, 19, 4)).astype(np.float32)
    bg = np.array([0.3, 0.1, 0.7], np.float32)
    render = gt.copy()
    render[..., :3] = gt[..., :3] * gt[..., 3:] + (1 - gt[..., 3:]) * bg
    loss, v = l1_ssim_loss(GpuTensor.from_numpy(render), GpuTensor.from_numpy(gt), alpha_mode="transparent",
                           background=bg)
    assert abs(loss) < 1e-5
    assert np.abs(v.numpy()).max() < 1e-7


def test_loss_reuses_scratch_and_handles_size_change(gpu):
    from brushpy.gpu import GpuTensor, Recorder
    from brushpy.loss import ImageLoss

    fn = ImageLoss()
    for h, w in [(16, 16), (16, 16), (9, 30)]:
        image, gt, _ = _inputs(h, w, seed=h + w)
        rec = Recorder()
        v = fn.record(rec, GpuTensor.from_numpy(image.astype(np.float32)), GpuTensor.from_numpy(gt.astype(np.float32)))
        rec.submit()
        rl, rv = ref.image_loss(image.astype(np.float32), gt.astype(np.float32))
        _assert_close(fn.read_loss(), v.numpy(), rl, rv)


def test_loss_rejects_bad_inputs(gpu):
    from brushpy.gpu import GpuTensor, Recorder
    from brushpy.loss import ImageLoss

    fn = ImageLoss()
    rec = Recorder()
    img = GpuTensor.empty((8, 8, 4))
    with pytest.raises(ValueError, match="alpha_mode"):
        fn.record(rec, img, GpuTensor.empty((8, 8, 4)), alpha_mode="bogus")
    with pytest.raises(ValueError, match="ground truth|gt must be"):
        fn.record(rec, img, GpuTensor.empty((8, 9, 4)))
    with pytest.raises(ValueError, match="image"):
        fn.record(rec, GpuTensor.empty((8, 8, 3)), GpuTensor.empty((8, 8, 4)))
    with pytest.raises(ValueError, match="mask"):
        fn.record(rec, img, GpuTensor.empty((8, 8, 4)), alpha_mode="masked", mask=GpuTensor.empty((8, 7)))
    with pytest.raises(ValueError, match="ssim-weight"):
        ImageLoss(ssim_weight=1.5)


def test_noisy_background_convention():
    from brushpy.loss import noisy_background

    rng = np.random.default_rng(0)
    draws = np.stack([noisy_background((0.2, 0.4, 0.6), 0.1, rng) for _ in range(2000)])
    assert draws.dtype == np.float32 and draws.shape == (2000, 3)
    lo, hi = draws.min(axis=0), draws.max(axis=0)
    np.testing.assert_allclose(lo, [0.2, 0.4, 0.6], atol=1e-3)
    np.testing.assert_allclose(hi, [0.3, 0.5, 0.7], atol=1e-3)
    assert np.all(draws >= np.array([0.2, 0.4, 0.6], np.float32))
    np.testing.assert_array_equal(noisy_background((0.5, 0.5, 0.5), 0.0, rng), np.float32([0.5, 0.5, 0.5]))


def _load_png(name):
    from PIL import Image

    return np.asarray(Image.open(SHARED / "datasets" / "lego_400" / "train" / name).convert("RGBA"))


@requires_shared("datasets", "lego_400", "train", "r_0.png")
@pytest.mark.parametrize("mode", ["transparent", "masked"])
def test_gpu_loss_on_real_image(gpu, mode):
    from brushpy.gpu import GpuTensor
    from brushpy.loss import l1_ssim_loss, pack_rgba8

    gt8 = _load_png("r_0.png")
    h, w = gt8.shape[:2]
    gt = gt8 / 255.0
    bg = np.array([0.05, 0.02, 0.08])
    # a plausible "render": the gt over the background, shifted by 2 pixels and with noise
    rng = np.random.default_rng(0)
    comp = gt.copy()
    comp[..., :3] = gt[..., :3] * gt[..., 3:] + (1 - gt[..., 3:]) * bg
    render = np.roll(comp, (2, -1), axis=(0, 1))
    render = np.clip(render + 0.02 * rng.standard_normal(render.shape), 0, 1).astype(np.float32)
    loss, v = l1_ssim_loss(GpuTensor.from_numpy(render), GpuTensor.from_numpy(pack_rgba8(gt8)),
                           alpha_mode=mode, background=bg)
    rl, rv = ref.image_loss(render, gt, alpha_mode=mode, background=bg)
    assert h == w == 400
    # flat regions: the SSIM gradient there is a difference of terms ~1/C2 larger than
    # itself, so f32 keeps ~1e-4 of the largest entry (the float64 reference is exact)
    _assert_close(loss, v.numpy(), rl, rv, grad_tol=1e-4)
