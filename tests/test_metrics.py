"""GPU PSNR / SSIM against known values and the float64 reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.conftest import SHARED, requires_shared
from tests.reference import loss as ref


def _t(a):
    from brushpy.gpu import GpuTensor

    return GpuTensor.from_numpy(np.asarray(a, np.float32))


@pytest.mark.parametrize("offset,expected", [(0.1, 20.0), (0.01, 40.0), (0.5, 10 * math.log10(4))])
def test_psnr_known_values(gpu, offset, expected):
    from brushpy.loss import psnr

    rng = np.random.default_rng(0)
    a = rng.uniform(0.0, 0.4, (23, 31, 3))
    assert psnr(_t(a + offset), _t(a)) == pytest.approx(expected, abs=2e-4)


def test_psnr_identical_is_inf_and_alpha_ignored(gpu):
    from brushpy.loss import psnr, ssim

    rng = np.random.default_rng(1)
    a = rng.random((17, 19, 4))
    b = a.copy()
    b[..., 3] = 0.0  # alpha differs: ignored
    assert psnr(_t(a), _t(b)) == math.inf
    assert ssim(_t(a), _t(b)) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("channels", [3, 4])
def test_psnr_ssim_match_reference_random(gpu, channels):
    from brushpy.loss import evaluate

    rng = np.random.default_rng(2)
    a = rng.random((45, 38, channels)).astype(np.float32)
    b = np.clip(a + 0.1 * rng.standard_normal(a.shape), 0, 1).astype(np.float32)
    r = evaluate(_t(a), _t(b))
    assert r["psnr"] == pytest.approx(ref.psnr(a[..., :3], b[..., :3]), abs=1e-4)
    assert r["ssim"] == pytest.approx(ref.ssim(a[..., :3], b[..., :3]), abs=2e-6)


def test_metrics_accept_packed_ground_truth(gpu):
    from brushpy.gpu import GpuTensor
    from brushpy.loss import pack_rgba8, psnr, ssim

    rng = np.random.default_rng(3)
    gt8 = rng.integers(0, 256, (20, 26, 4), dtype=np.uint8)
    img = rng.random((20, 26, 3)).astype(np.float32)
    gt_t = GpuTensor.from_numpy(pack_rgba8(gt8))
    assert psnr(_t(img), gt_t) == pytest.approx(ref.psnr(img, gt8[..., :3] / 255.0), abs=1e-4)
    assert ssim(_t(img), gt_t) == pytest.approx(ref.ssim(img, gt8[..., :3] / 255.0), abs=2e-6)


def test_batched_metrics(gpu):
    from brushpy.gpu import Recorder
    from brushpy.loss import ImageMetrics

    rng = np.random.default_rng(4)
    pairs = []
    for h, w, s in [(16, 16, 0.05), (30, 12, 0.2), (16, 16, 0.01)]:
        a = rng.random((h, w, 3)).astype(np.float32)
        pairs.append((a, np.clip(a + s * rng.standard_normal(a.shape), 0, 1).astype(np.float32)))
    m = ImageMetrics(capacity=3)
    for _ in range(2):  # the second round reuses the buffers
        rec = Recorder()
        slots = [m.record(rec, _t(a), _t(b)) for a, b in pairs]
        rec.submit()
        assert slots == [0, 1, 2]
        out = m.read()
        for (a, b), r in zip(pairs, out):
            assert r["psnr"] == pytest.approx(ref.psnr(a, b), abs=1e-4)
            assert r["ssim"] == pytest.approx(ref.ssim(a, b), abs=2e-6)
    rec = Recorder()
    for a, b in pairs:
        m.record(rec, _t(a), _t(b))
    with pytest.raises(RuntimeError, match="capacity"):
        m.record(rec, _t(pairs[0][0]), _t(pairs[0][1]))


@requires_shared("datasets", "lego_400", "train", "r_0.png")
def test_ssim_real_images(gpu):
    from PIL import Image

    from brushpy.loss import psnr, ssim

    folder = SHARED / "datasets" / "lego_400" / "train"
    files = sorted(folder.glob("r_*.png"))[:2]
    imgs = []
    for f in files:
        rgba = np.asarray(Image.open(f).convert("RGBA")) / 255.0
        imgs.append(rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:]))  # over white
    a = imgs[0].astype(np.float32)
    b = imgs[-1].astype(np.float32) if len(imgs) > 1 else np.roll(a, 3, axis=1)
    assert ssim(_t(a), _t(b)) == pytest.approx(ref.ssim(a, b), abs=2e-6)
    assert psnr(_t(a), _t(b)) == pytest.approx(ref.psnr(a, b), abs=1e-4)
    assert ssim(_t(a), _t(a)) == pytest.approx(1.0, abs=1e-6)
