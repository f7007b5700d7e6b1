"""brushpy.nn's WGSL layer ops against the float64 references (forward and backward), on tiny shapes.

Tolerance: ``atol = 1e-5·max|reference| + 1e-6`` (float32 sums of at most a few hundred terms).
The references themselves are checked against finite differences in tests/test_nn_reference.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from brushpy.nn import reference as R


def _close(gpu_tensor, ref, rtol=1e-5):
    got = gpu_tensor.numpy() if hasattr(gpu_tensor, "numpy") else gpu_tensor
    ref = np.asarray(ref)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=0, atol=rtol * max(np.abs(ref).max(), 1e-30) + 1e-6)


def _t(a):
    from brushpy.gpu import GpuTensor

    return GpuTensor.from_numpy(np.asarray(a, np.float32))


def _f32(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


@pytest.mark.parametrize("k,stride,hw", [(1, 1, (8, 8)), (1, 2, (9, 8)), (3, 1, (8, 9)), (3, 2, (9, 10))])
def test_conv2d_forward_backward(gpu, k, stride, hw):
    from brushpy.gpu import Recorder
    from brushpy.nn import Conv2dOp

    rng = np.random.default_rng(k + 3 * stride)
    x, w, b = _f32(rng, 2, 3, *hw), _f32(rng, 5, 3, k, k), _f32(rng, 5)
    rec = Recorder()
    op = Conv2dOp(rec, _t(x), _t(w), _t(b), stride)
    y = R.conv2d(x, w, b, stride)
    g = _f32(rng, *y.shape)
    grads = op.backward(rec, {"y": _t(g)})
    rec.submit()
    _close(op.outputs["y"], y)
    gx, gw, gb = R.conv2d_vjp(x, w, stride, g)
    _close(grads["x"], gx)
    _close(grads["weight"], gw)
    _close(grads["bias"], gb)


def test_conv2d_without_input_grad_and_bad_shapes(gpu):
    from brushpy.gpu import Recorder
    from brushpy.nn import Conv2dOp

    rng = np.random.default_rng(0)
    x, w, b = _f32(rng, 1, 2, 6, 6), _f32(rng, 3, 2, 3, 3), _f32(rng, 3)
    rec = Recorder()
    op = Conv2dOp(rec, _t(x), _t(w), _t(b), 1, input_grad=False)
    assert op.inputs["x"] is None
    grads = op.backward(rec, {"y": _t(np.ones((1, 3, 6, 6)))})
    rec.submit()
    assert set(grads) == {"weight", "bias"}
    _close(grads["weight"], R.conv2d_vjp(x, w, 1, np.ones((1, 3, 6, 6)))[1])
    with pytest.raises(ValueError, match="does not fit input"):
        Conv2dOp(rec, _t(x), _t(_f32(rng, 3, 4, 3, 3)), _t(b))
    with pytest.raises(ValueError, match="bias"):
        Conv2dOp(rec, _t(x), _t(w), _t(_f32(rng, 2)))
    with pytest.raises(ValueError, match=r"\[B, C_in, H, W\]"):
        Conv2dOp(rec, _t(x[0]), _t(w), _t(b))


@pytest.mark.parametrize("kind", ["relu", "gelu"])
def test_activation_forward_backward(gpu, kind):
    from brushpy.gpu import Recorder
    from brushpy.nn import ActivationOp

    rng = np.random.default_rng(2)
    x = _f32(rng, 2, 3, 5, 6, scale=3.0)
    x[0, 0, 0, :3] = [0.0, 40.0, -40.0]  # the kink, and tanh's saturation
    g = _f32(rng, *x.shape)
    rec = Recorder()
    op = ActivationOp(rec, _t(x), kind)
    grads = op.backward(rec, {"y": _t(g)})
    rec.submit()
    _close(op.outputs["y"], getattr(R, kind)(x))
    _close(grads["x"], getattr(R, f"{kind}_vjp")(x, g))


@pytest.mark.parametrize("groups", [1, 2, 6])
def test_group_norm_forward_backward(gpu, groups):
    from brushpy.gpu import Recorder
    from brushpy.nn import GroupNormOp

    rng = np.random.default_rng(groups)
    x = _f32(rng, 2, 6, 9, 7, scale=2.0) + 1.5
    gamma, beta, g = _f32(rng, 6), _f32(rng, 6), _f32(rng, *x.shape)
    rec = Recorder()
    op = GroupNormOp(rec, _t(x), groups, _t(gamma), _t(beta))
    grads = op.backward(rec, {"y": _t(g)})
    rec.submit()
    _close(op.outputs["y"], R.group_norm(x, groups, gamma, beta))
    gx, gg, gb = R.group_norm_vjp(x, groups, gamma, g)
    _close(grads["x"], gx, rtol=3e-5)
    _close(grads["weight"], gg)
    _close(grads["bias"], gb)
    with pytest.raises(ValueError, match="divide"):
        GroupNormOp(rec, _t(x), 4, _t(gamma), _t(beta))


def test_mse_loss_op(gpu):
    from brushpy.gpu import Recorder
    from brushpy.nn import MSELossOp

    rng = np.random.default_rng(3)
    x, t = _f32(rng, 1, 3, 11, 13), _f32(rng, 1, 3, 11, 13)
    rec = Recorder()
    op = MSELossOp(rec, _t(x), _t(t))
    rec.submit()
    loss, grad = R.mse(x, t)
    assert op.outputs["loss"].numpy()[0] == pytest.approx(loss, rel=1e-6)
    _close(op.grad_input, grad)
    with pytest.raises(ValueError, match="element count"):
        MSELossOp(rec, _t(x), _t(t[..., :3]))


@pytest.mark.parametrize("factor,hw", [(2, (5, 4)), (4, (3, 5)), (1, (3, 3))])
def test_upsample_forward_backward(gpu, factor, hw):
    from brushpy.gpu import Recorder
    from brushpy.nn import UpsampleOp

    rng = np.random.default_rng(factor)
    x = _f32(rng, 2, 3, *hw)
    rec = Recorder()
    op = UpsampleOp(rec, _t(x), factor)
    g = _f32(rng, *op.outputs["y"].shape)
    grads = op.backward(rec, {"y": _t(g)})
    rec.submit()
    _close(op.outputs["y"], R.upsample_bilinear(x, factor))
    _close(grads["x"], R.upsample_bilinear_vjp(x.shape, factor, g))
    with pytest.raises(ValueError, match="positive integer"):
        UpsampleOp(rec, _t(x), 1.5)


def test_softmax_depth_forward_backward(gpu):
    from brushpy.gpu import Recorder
    from brushpy.nn import SoftmaxDepthOp

    rng = np.random.default_rng(8)
    x = _f32(rng, 2, 7, 5, 6, scale=4.0)
    x[0, :, 0, 0] += 80.0  # large logits: the max is subtracted first
    g = _f32(rng, *x.shape)
    rec = Recorder()
    op = SoftmaxDepthOp(rec, _t(x))
    grads = op.backward(rec, {"y": _t(g)})
    rec.submit()
    y = R.softmax_depth(x)
    _close(op.outputs["y"], y)
    _close(grads["x"], R.softmax_depth_vjp(y, g))


def test_concat_forward_backward_on_a_tape(gpu):
    """concat -> MSE on a tape: each input gets its channel slice of the gradient; one tensor used
    twice gets the sum of both slices."""
    from brushpy.autodiff import Tape
    from brushpy.gpu import Recorder
    from brushpy.nn import ConcatOp, MSELossOp

    rng = np.random.default_rng(9)
    a, b = _f32(rng, 2, 2, 4, 5), _f32(rng, 2, 3, 4, 5)
    at, bt = _t(a), _t(b)
    rec = Recorder()
    tape = Tape()
    op = tape.record(ConcatOp(rec, [at, bt, at]))
    target = _f32(rng, 2, 7, 4, 5)
    loss = tape.record(MSELossOp(rec, op.outputs["y"], _t(target)))
    grads = tape.backward(rec, loss.seed)
    rec.submit()
    y = R.concat_channels([a, b, a])
    _close(op.outputs["y"], y)
    _, g = R.mse(y, target)
    ga, gb, ga2 = R.concat_channels_vjp([2, 3, 2], g)
    _close(grads[at], ga + ga2)
    _close(grads[bt], gb)
    with pytest.raises(ValueError, match="share B, H, W"):
        ConcatOp(rec, [at, _t(_f32(rng, 2, 3, 4, 4))])


@pytest.mark.parametrize("float_atomics", [True, False])
def test_plane_sweep_warp_forward_backward(gpu, float_atomics):
    from brushpy.gpu import Recorder, create_context, get_context, set_context
    from brushpy.nn import PlaneSweepWarpOp
    from tests.test_nn_reference import warp_cameras

    old = get_context()
    if not float_atomics:  # the compare-and-swap path
        set_context(create_context(disable={"shader-float32-atomic"}))
    try:
        rng = np.random.default_rng(4)
        cams = warp_cameras()
        feat = _f32(rng, 4, 10, 12)
        depths = np.array([0.8, 1.5, 3.0, 6.0])
        rec = Recorder()
        op = PlaneSweepWarpOp(rec, _t(feat), depths, *cams, ref_size=(9, 11))
        warped, mask = R.plane_sweep_warp(feat, *cams, depths.astype(np.float32), ref_size=(9, 11))
        g = _f32(rng, *warped.shape)
        grads = op.backward(rec, {"warped": _t(g), "mask": None})
        rec.submit()
        np.testing.assert_array_equal(op.outputs["mask"].numpy(), mask)
        _close(op.outputs["warped"], warped, rtol=1e-4)
        _close(grads["src"], R.plane_sweep_warp_vjp(feat.shape, *cams, depths.astype(np.float32), g,
                                                    ref_size=(9, 11)), rtol=1e-4)
        with pytest.raises(ValueError, match="depths must be finite and > 0"):
            PlaneSweepWarpOp(rec, _t(feat), [1.0, 0.0], *cams)
    finally:
        set_context(old)
