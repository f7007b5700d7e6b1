"""The float64 layer references of brushpy.nn against central finite differences (CPU only).

Each ``*_vjp`` is checked as a directional derivative: for random ``g`` and direction ``d``,
``<vjp(g), d>`` equals ``(f(x + εd) - f(x - εd)) / 2ε`` of ``f(x) = <g, forward(x)>``.
"""

from __future__ import annotations

import numpy as np
import pytest

from brushpy.nn import reference as R

EPS = 1e-6


def _fd(f, x, d):
    return (f(x + EPS * d) - f(x - EPS * d)) / (2 * EPS)


def _check(f, x, grad, rng):
    d = rng.standard_normal(x.shape)
    fd = _fd(f, x, d)
    assert fd == pytest.approx(float((grad * d).sum()), rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("k,stride", [(1, 1), (1, 2), (3, 1), (3, 2)])
def test_conv2d_vjp(k, stride):
    rng = np.random.default_rng(k * 10 + stride)
    x = rng.standard_normal((2, 3, 7, 6))
    w = rng.standard_normal((4, 3, k, k))
    b = rng.standard_normal(4)
    y = R.conv2d(x, w, b, stride)
    assert y.shape == (2, 4, R.conv_out_size(7, k, stride), R.conv_out_size(6, k, stride))
    g = rng.standard_normal(y.shape)
    gx, gw, gb = R.conv2d_vjp(x, w, stride, g)
    _check(lambda z: (g * R.conv2d(z, w, b, stride)).sum(), x, gx, rng)
    _check(lambda z: (g * R.conv2d(x, z, b, stride)).sum(), w, gw, rng)
    _check(lambda z: (g * R.conv2d(x, w, z, stride)).sum(), b, gb, rng)


def test_conv2d_matches_a_direct_sum():
    """One output element written out as the definition's sum (zero padding K//2)."""
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((1, 2, 5, 5)), rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)
    y = R.conv2d(x, w, b, 2)
    o, i, j = 2, 1, 0  # output row 1 -> input rows 1..3; col 0 -> cols -1..1 (col -1 is padding)
    want = b[o] + sum(w[o, c, ky, kx] * x[0, c, 2 * i + ky - 1, 2 * j + kx - 1]
                      for c in range(2) for ky in range(3) for kx in range(3) if 2 * j + kx - 1 >= 0)
    assert y[0, o, i, j] == pytest.approx(want)


@pytest.mark.parametrize("kind", ["relu", "gelu"])
def test_activation_vjp(kind):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 4, 4)) * 2
    g = rng.standard_normal(x.shape)
    f, vjp = getattr(R, kind), getattr(R, f"{kind}_vjp")
    _check(lambda z: (g * f(z)).sum(), x, vjp(x, g), rng)


def test_gelu_tanh_form_values():
    # 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))) at 1: 0.8411919906 (PyTorch approximate="tanh")
    assert R.gelu(np.array([1.0]))[0] == pytest.approx(0.8411919906082768, abs=1e-12)
    assert R.gelu(np.array([0.0]))[0] == 0.0


@pytest.mark.parametrize("factor", [2, 4])
def test_upsample_vjp_and_values(factor):
    rng = np.random.default_rng(factor)
    x = rng.standard_normal((1, 2, 3, 5))
    y = R.upsample_bilinear(x, factor)
    assert y.shape == (1, 2, 3 * factor, 5 * factor)
    g = rng.standard_normal(y.shape)
    _check(lambda z: (g * R.upsample_bilinear(z, factor)).sum(), x, R.upsample_bilinear_vjp(x.shape, factor, g), rng)
    # align_corners=False: a constant stays constant, and the first output of a ramp is clamped to it
    ramp = np.arange(4.0)[None, None, None, :].repeat(2, axis=2)
    up = R.upsample_bilinear(ramp, 2)[0, 0, 0]
    np.testing.assert_allclose(up, [0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0])


def test_group_norm_vjp():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 6, 3, 4)) * 2 + 1
    gamma, beta = rng.standard_normal(6), rng.standard_normal(6)
    y = R.group_norm(x, 3, gamma, beta)
    g = rng.standard_normal(y.shape)
    gx, gg, gb = R.group_norm_vjp(x, 3, gamma, g)
    _check(lambda z: (g * R.group_norm(z, 3, gamma, beta)).sum(), x, gx, rng)
    _check(lambda z: (g * R.group_norm(x, 3, z, beta)).sum(), gamma, gg, rng)
    _check(lambda z: (g * R.group_norm(x, 3, gamma, z)).sum(), beta, gb, rng)
    # with unit affine, every group has mean 0 and (biased) variance 1 - eps-ish
    yn = R.group_norm(x, 3, np.ones(6), np.zeros(6)).reshape(2, 3, -1)
    np.testing.assert_allclose(yn.mean(-1), 0, atol=1e-12)
    np.testing.assert_allclose(yn.var(-1), 1, atol=1e-4)


def test_softmax_vjp():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 5, 3, 4)) * 3
    y = R.softmax_depth(x)
    np.testing.assert_allclose(y.sum(axis=1), 1.0)
    g = rng.standard_normal(y.shape)
    _check(lambda z: (g * R.softmax_depth(z)).sum(), x, R.softmax_depth_vjp(y, g), rng)


def test_concat_vjp_splits():
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((2, 2, 3, 3)), rng.standard_normal((2, 3, 3, 3))
    y = R.concat_channels([a, b])
    ga, gb = R.concat_channels_vjp([2, 3], y * 2)
    np.testing.assert_array_equal(ga, 2 * a)
    np.testing.assert_array_equal(gb, 2 * b)


def test_mse_gradient():
    rng = np.random.default_rng(7)
    x, t = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    _, g = R.mse(x, t)
    _check(lambda z: R.mse(z, t)[0], x, g, rng)


def _rot(axis, angle):
    c, s = np.cos(angle), np.sin(angle)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def warp_cameras(seed=0):
    """A reference camera and a source camera 0.3 to its right, turned a little: intrinsics at a
    10x12 feature map, world_to_camera 4x4 (shared with tests/test_nn_layers.py)."""
    rng = np.random.default_rng(seed)
    k_ref = np.array([[11.0, 0, 6.1], [0, 10.5, 4.9], [0, 0, 1]])
    k_src = np.array([[10.0, 0, 5.8], [0, 10.2, 5.2], [0, 0, 1]])
    w2c_ref = np.eye(4)
    w2c_ref[:3, :3] = _rot(1, 0.1 * rng.standard_normal())
    w2c_ref[:3, 3] = 0.1 * rng.standard_normal(3)
    c2w_src = np.linalg.inv(w2c_ref)
    c2w_src[:3, :3] = c2w_src[:3, :3] @ _rot(1, -0.08) @ _rot(0, 0.05)
    c2w_src[:3, 3] += c2w_src[:3, :3] @ np.array([0.3, 0.02, 0.05])
    return k_ref, w2c_ref, k_src, np.linalg.inv(c2w_src)


def test_plane_sweep_identity_and_disparity():
    rng = np.random.default_rng(0)
    feat = rng.standard_normal((3, 6, 8))
    k = np.array([[8.0, 0, 4], [0, 8, 3], [0, 0, 1]])
    warped, mask = R.plane_sweep_warp(feat, k, np.eye(4), k, np.eye(4), [0.5, 2.0])
    np.testing.assert_allclose(warped, np.repeat(feat[:, None], 2, axis=1), atol=1e-12)
    assert mask.min() == 1.0
    # source camera centre at +b on x (world_to_camera translation -b): a point at depth d moves
    # by the disparity fx·b/d to the left in the source image
    b, d = 0.25, 2.0
    w2c_src = np.eye(4)
    w2c_src[0, 3] = -b
    u, v, z = R.plane_sweep_samples((6, 8), k, np.eye(4), k, w2c_src, [d])
    np.testing.assert_allclose(u[0], (np.arange(8) + 0.5)[None, :] - 8 * b / d + 0 * v[0])
    np.testing.assert_allclose(z, d)
    warped, mask = R.plane_sweep_warp(feat, k, np.eye(4), k, w2c_src, [d])  # disparity 1 px
    np.testing.assert_allclose(warped[:, 0, :, 1:], feat[:, :, :-1], atol=1e-12)
    # column 0 lands at u = -0.5, left of the source image: invalid and 0; the rest is valid
    assert mask[0, :, 0].max() == 0.0 and mask[0, :, 1:].min() == 1.0
    assert not warped[:, 0, :, 0].any()
    # behind the source camera: invalid
    w2c_back = np.diag([1.0, 1, 1, 1])
    w2c_back[2, 3] = -5.0
    _, mask = R.plane_sweep_warp(feat, k, np.eye(4), k, w2c_back, [1.0])
    assert mask.max() == 0.0


def test_plane_sweep_vjp_is_the_adjoint():
    """The warp is linear in the features: <g, warp(f)> = <warp_vjp(g), f>, and a finite
    difference of a random direction agrees."""
    rng = np.random.default_rng(2)
    cams = warp_cameras()
    feat = rng.standard_normal((4, 10, 12))
    depths = [0.8, 1.5, 3.0, 6.0]
    warped, mask = R.plane_sweep_warp(feat, *cams, depths, ref_size=(9, 11))
    assert warped.shape == (4, 4, 9, 11) and mask.shape == (4, 9, 11)
    assert 0 < mask.mean() < 1  # some samples fall outside the source
    g = rng.standard_normal(warped.shape)
    vjp = R.plane_sweep_warp_vjp(feat.shape, *cams, depths, g, ref_size=(9, 11))
    assert float((g * warped).sum()) == pytest.approx(float((vjp * feat).sum()), rel=1e-10)
    _check(lambda f: (g * R.plane_sweep_warp(f, *cams, depths, ref_size=(9, 11))[0]).sum(), feat, vjp, rng)
