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
