"""Inverse-depth L1 loss (brushpy.loss.depth_loss): float64 reference vs finite differences,
GPU vs reference (loss and gradient), the ε clamp, the alpha mask, no valid pixel, the upload
helper, and chains on the tape (a depth-producing op -> DepthLossOp; image + depth losses
seeded together)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.reference import depth_loss as ref
from tests.reference import loss as ref_image


def _inputs(h, w, seed=0, invalid=0.3):
    rng = np.random.default_rng(seed)
    depth = rng.uniform(0.5, 5.0, (h, w))
    gt = rng.uniform(0.5, 5.0, (h, w))
    gt[rng.random((h, w)) < invalid] = 0.0
    return depth, gt


def _gpu_loss(depth, gt, **kw):
    from brushpy.gpu import GpuTensor, Recorder
    from brushpy.loss import DepthLoss, gt_depth_tensor

    init = {k: kw.pop(k) for k in ("weight", "eps", "alpha_min") if k in kw}
    fn = DepthLoss(**init)
    alpha = kw.pop("alpha", None)
    rec = Recorder()
    v = fn.record(rec, GpuTensor.from_numpy(np.asarray(depth, np.float32)), gt_depth_tensor(gt),
                  alpha=None if alpha is None else GpuTensor.from_numpy(np.asarray(alpha, np.float32)), **kw)
    rec.submit()
    return fn.read(), v.numpy()


# -- the reference itself ------------------------------------------------------------

def test_reference_gradient_matches_finite_differences():
    depth, gt = _inputs(9, 7, seed=1)
    depth[0, 0] = 0.0  # clamped: gradient 0
    depth[0, 1] = 5e-4
    kw = dict(weight=0.7, eps=1e-3)
    _, grad, n = ref.depth_loss(depth, gt, **kw)
    assert n == int((gt > 0).sum())
    eps = 1e-7
    for i in range(9):
        for j in range(7):
            dp, dm = depth.copy(), depth.copy()
            dp[i, j] += eps
            dm[i, j] -= eps
            fd = (ref.depth_loss(dp, gt, **kw)[0] - ref.depth_loss(dm, gt, **kw)[0]) / (2 * eps)
            assert abs(fd - grad[i, j]) <= 1e-8 + 1e-5 * abs(fd), (i, j, fd, grad[i, j])
    assert grad[0, 0] == 0.0 and grad[0, 1] == 0.0


# -- GPU vs reference -------------------------------------------------------------------

@pytest.mark.parametrize("h,w", [(13, 11), (37, 61), (100, 80)])
def test_gpu_matches_reference(gpu, h, w):
    depth, gt = _inputs(h, w, seed=h)
    depth = depth.astype(np.float32).astype(np.float64)
    gt = gt.astype(np.float32).astype(np.float64)
    depth.flat[::17] = 0.0  # rendered nothing: clamped to 1/eps, no gradient
    want, want_g, n = ref.depth_loss(depth, gt, weight=0.3)
    got, got_g = _gpu_loss(depth, gt, weight=0.3)
    assert got["valid_pixels"] == n
    assert got["loss"] == pytest.approx(want, rel=2e-6)
    np.testing.assert_allclose(got_g, want_g, rtol=1e-5, atol=1e-6 * np.abs(want_g).max())
    assert np.all(got_g[depth <= 1e-3] == 0.0)
    assert np.all(got_g[gt == 0] == 0.0)


def test_clamp_of_zero_rendered_depth(gpu):
    """A pixel that renders depth 0 counts |1/eps − 1/gt| with zero gradient; eps is configurable."""
    gt = np.full((4, 4), 2.0)
    depth = np.full((4, 4), 2.0)
    depth[0, 0] = 0.0
    depth[1, 1] = np.nan  # NaN fails d > eps: clamped like 0
    for eps in (1e-3, 0.1):
        got, g = _gpu_loss(depth, gt, eps=eps)
        assert got["loss"] == pytest.approx(2 * (1 / eps - 0.5) / 16, rel=1e-6)
        assert np.all(g == 0.0)
    assert np.isfinite(g).all()


@pytest.mark.parametrize("channels", [None, 4])
def test_alpha_mask(gpu, channels):
    depth, gt = _inputs(20, 24, seed=5)
    rng = np.random.default_rng(6)
    alpha = rng.random((20, 24))
    want, want_g, n = ref.depth_loss(depth, gt, weight=2.0, alpha=alpha, alpha_min=0.4)
    a = alpha if channels is None else np.concatenate([rng.random((20, 24, 3)), alpha[..., None]], -1)
    got, got_g = _gpu_loss(depth, gt, weight=2.0, alpha=a, alpha_min=0.4)
    assert got["valid_pixels"] == n < int((gt > 0).sum())
    assert got["loss"] == pytest.approx(want, rel=2e-6)
    np.testing.assert_allclose(got_g, want_g, rtol=1e-5, atol=1e-7)


def test_no_valid_pixel_gives_zero_loss_and_gradient(gpu):
    from brushpy.gpu import GpuTensor, Recorder
    from brushpy.loss import DepthLoss, gt_depth_tensor

    fn = DepthLoss(weight=1.0)
    depth = GpuTensor.from_numpy(np.full((6, 5), 3.0, np.float32))
    v = GpuTensor.from_numpy(np.full((6, 5), 7.0, np.float32))  # stale values are overwritten
    rec = Recorder()
    fn.record(rec, depth, gt_depth_tensor(np.zeros((6, 5))), v_depth=v)
    rec.submit()
    assert fn.read() == {"loss": 0.0, "abs_sum": 0.0, "valid_pixels": 0}
    np.testing.assert_array_equal(v.numpy(), 0.0)
    # and everything masked out by alpha
    got, g = _gpu_loss(np.ones((3, 3)), np.ones((3, 3)), alpha=np.zeros((3, 3)))
    assert got["loss"] == 0.0 and got["valid_pixels"] == 0 and not g.any()


def test_weight_per_record_and_zero_weight(gpu):
    depth, gt = _inputs(8, 8, seed=9)
    want, want_g, _ = ref.depth_loss(depth, gt, weight=0.05)
    got, _ = _gpu_loss(depth, gt, weight=3.0)
    assert got["loss"] == pytest.approx(ref.depth_loss(depth, gt, weight=3.0)[0], rel=2e-6)
    from brushpy.gpu import GpuTensor, Recorder
    from brushpy.loss import DepthLoss, gt_depth_tensor

    fn = DepthLoss(weight=3.0)
    rec = Recorder()
    v = fn.record(rec, GpuTensor.from_numpy(depth.astype(np.float32)), gt_depth_tensor(gt), weight=0.05)
    rec.submit()
    assert fn.read_loss() == pytest.approx(want, rel=2e-6)
    np.testing.assert_allclose(v.numpy(), want_g, rtol=1e-5, atol=1e-9)
    got0, g0 = _gpu_loss(depth, gt, weight=0.0)
    assert got0["loss"] == 0.0 and not g0.any()


def test_upload_helper_sanitises_and_reuses(gpu):
    from brushpy.loss import DepthTargets, gt_depth_tensor, sanitize_depth

    d = np.array([[1.0, 0.0, -2.0], [np.nan, np.inf, 3.5]])
    np.testing.assert_array_equal(sanitize_depth(d), [[1.0, 0, 0], [0, 0, 3.5]])
    assert sanitize_depth(d[..., None]).shape == (2, 3)
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        sanitize_depth(np.zeros((2, 3, 2)))
    t = gt_depth_tensor(d)
    assert t.dtype == np.float32 and t.shape == (2, 3)
    targets = DepthTargets()
    calls = []
    a = targets.get(0, lambda: calls.append(1) or d)
    assert targets.get(0, lambda: calls.append(1) or d) is a and calls == [1]
    assert targets.get(1, None) is None and len(targets) == 1


def test_shape_checks(gpu):
    from brushpy.gpu import GpuTensor, Recorder
    from brushpy.loss import DepthLoss

    fn = DepthLoss()
    d = GpuTensor.from_numpy(np.ones((4, 5), np.float32))
    with pytest.raises(ValueError, match="gt_depth must be"):
        fn.record(Recorder(), d, GpuTensor.from_numpy(np.ones((5, 4), np.float32)))
    with pytest.raises(ValueError, match="alpha must be"):
        fn.record(Recorder(), d, d, alpha=GpuTensor.from_numpy(np.ones((4, 5, 3), np.float32)))
    with pytest.raises(ValueError, match=r"depth \(rendered\) must be float32"):
        fn.record(Recorder(), GpuTensor.from_numpy(np.ones((4, 5, 4), np.float32)), d)
    with pytest.raises(ValueError, match="--depth-loss-weight"):
        DepthLoss(weight=-1.0)


# -- on the tape ----------------------------------------------------------------------

def _exp_op(x):
    """Test op: depth = exp(x), image = (σ(x), σ(x), σ(x), 1); its backward reads the
    incoming gradients back (a real op never does; fine for checking the chain)."""
    from brushpy.autodiff import Op
    from brushpy.gpu import GpuTensor

    class ExpOp(Op):
        name = "exp"

        def __init__(self, x):
            xn = x.numpy().astype(np.float64)
            self.xn = xn
            sig = 1 / (1 + np.exp(-xn))
            img = np.concatenate([np.repeat(sig[..., None], 3, -1), np.ones(xn.shape + (1,))], -1)
            self.inputs = {"x": x}
            self.outputs = {"depth": GpuTensor.from_numpy(np.exp(xn).astype(np.float32), "depth"),
                            "image": GpuTensor.from_numpy(img.astype(np.float32), "image")}

        def backward(self, rec, grad_outputs):
            rec.submit()
            g = np.zeros_like(self.xn)
            if grad_outputs.get("depth") is not None:
                g += grad_outputs["depth"].numpy() * np.exp(self.xn)
            if grad_outputs.get("image") is not None:
                sig = 1 / (1 + np.exp(-self.xn))
                g += grad_outputs["image"].numpy()[..., :3].sum(-1) * sig * (1 - sig)
            return {"x": GpuTensor.from_numpy(g.astype(np.float32), "grad x")}

    return ExpOp(x)


def test_chain_op_to_depth_loss_on_tape(gpu):
    from brushpy.autodiff import Tape
    from brushpy.gpu import GpuTensor, Recorder
    from brushpy.loss import DepthLoss, DepthLossOp, gt_depth_tensor

    rng = np.random.default_rng(3)
    x = rng.uniform(-0.5, 1.5, (12, 10)).astype(np.float32)
    _, gt = _inputs(12, 10, seed=4)
    xt = GpuTensor.from_numpy(x, "x")
    fn = DepthLoss(weight=0.5)
    tape = Tape()
    rec = Recorder()
    src = tape.record(_exp_op(xt))
    loss = tape.record(DepthLossOp(fn, rec, src.outputs["depth"], gt_depth_tensor(gt)))
    assert loss.inputs == {"depth": src.outputs["depth"]} and loss.name == "depth_loss"
    grads = tape.backward(rec, loss.seed)
    rec.submit()
    depth = np.exp(x.astype(np.float64))
    want, v_depth, _ = ref.depth_loss(depth, gt, weight=0.5)
    assert fn.read_loss() == pytest.approx(want, rel=1e-5)
    np.testing.assert_allclose(grads[xt].numpy(), v_depth * depth, rtol=2e-5, atol=1e-8)
    with pytest.raises(ValueError, match="seed"):
        other = Tape()
        other.record(loss)
        other.backward(Recorder(), {loss.outputs["loss"]: GpuTensor.from_numpy(np.full(1, 2.0, np.float32))})


@pytest.mark.parametrize("seed_form", ["list", "dict"])
def test_image_and_depth_losses_seeded_together(gpu, seed_form):
    """Two fused losses on one tape: the backward gives the gradient of their sum."""
    from brushpy.autodiff import Tape
    from brushpy.gpu import GpuTensor, Recorder
    from brushpy.loss import DepthLoss, DepthLossOp, ImageLoss, ImageLossOp, gt_depth_tensor

    rng = np.random.default_rng(8)
    h, w = 16, 14
    x = rng.uniform(-0.5, 1.5, (h, w)).astype(np.float32)
    _, gt_d = _inputs(h, w, seed=10)
    xn = x.astype(np.float64)
    sig = 1 / (1 + np.exp(-xn))
    image = np.concatenate([np.repeat(sig[..., None], 3, -1), np.ones((h, w, 1))], -1)
    gt_img = np.clip(image[..., :3] + rng.choice([-1.0, 1.0], (h, w, 3)) * rng.uniform(0.05, 0.2, (h, w, 3)), 0, 1)

    xt = GpuTensor.from_numpy(x, "x")
    img_fn, dep_fn = ImageLoss(0.2, 0.0), DepthLoss(weight=0.25)
    tape = Tape()
    rec = Recorder()
    src = tape.record(_exp_op(xt))
    il = tape.record(ImageLossOp(img_fn, rec, src.outputs["image"], GpuTensor.from_numpy(gt_img.astype(np.float32))))
    dl = tape.record(DepthLossOp(dep_fn, rec, src.outputs["depth"], gt_depth_tensor(gt_d)))
    seeds = [il.seed, dl.seed] if seed_form == "list" else {**il.seed, **dl.seed}
    grads = tape.backward(rec, seeds)
    rec.submit()

    li, v_image = ref_image.image_loss(image, gt_img, ssim_weight=0.2, match_alpha_weight=0.0)
    ld, v_depth, _ = ref.depth_loss(np.exp(xn), gt_d, weight=0.25)
    want = v_image[..., :3].sum(-1) * sig * (1 - sig) + v_depth * np.exp(xn)
    assert img_fn.read_loss() == pytest.approx(li, rel=2e-5)
    assert dep_fn.read_loss() == pytest.approx(ld, rel=1e-5)
    np.testing.assert_allclose(grads[xt].numpy(), want, rtol=1e-4, atol=1e-6 * np.abs(want).max())
    np.testing.assert_array_equal(il.unit_seed.numpy(), 1.0)
    np.testing.assert_array_equal(dl.unit_seed.numpy(), 1.0)
