"""GPU Adam against a float64 NumPy implementation of the same rules; LR schedule; state ops."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.reference.adam import AdamRef
from tests.reference.adam import mean_lr as ref_mean_lr

N = 700
SHAPES = {"means": (N, 3), "rotations": (N, 4), "log_scales": (N, 3), "sh_coeffs": (N, 16, 3), "raw_opacities": (N,)}


def _params(rng):
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in SHAPES.items()}


def _upload(d):
    from brushpy.gpu import GpuTensor

    return {k: GpuTensor.from_numpy(v, label=k) for k, v in d.items()}


def _step(opt, P, grads, step):
    from brushpy.gpu import Recorder

    rec = Recorder()
    lrs = opt.step(rec, P, _upload(grads), step)
    rec.submit()
    return lrs


# -- LR schedule --------------------------------------------------------------------

def test_mean_lr_schedule_values():
    from brushpy.optim import mean_lr

    assert mean_lr(0, 30000, 2e-5, 2e-7, 1.0) == pytest.approx(2e-5, rel=1e-12)
    assert mean_lr(15000, 30000, 2e-5, 2e-7, 1.0) == pytest.approx(2e-6, rel=1e-12)  # geometric mean
    assert mean_lr(30000, 30000, 2e-5, 2e-7, 1.0) == pytest.approx(2e-7, rel=1e-12)
    assert mean_lr(30000, 30000, 2e-5, 2e-7, 3.5) == pytest.approx(7e-7, rel=1e-12)
    assert mean_lr(99999, 30000, 2e-5, 2e-7, 1.0) == pytest.approx(2e-7, rel=1e-12)  # clamped
    assert mean_lr(-5, 30000, 2e-5, 2e-7, 2.0) == pytest.approx(4e-5, rel=1e-12)
    # constant per-step factor (Brush's exponential scheduler)
    r1 = mean_lr(101, 1000, 1e-3, 1e-5, 1.0) / mean_lr(100, 1000, 1e-3, 1e-5, 1.0)
    assert r1 == pytest.approx((1e-2) ** (1 / 1000), rel=1e-12)
    for s in (0, 1, 777, 1000):
        assert mean_lr(s, 1000, 1e-3, 1e-5, 0.7) == pytest.approx(ref_mean_lr(s, 1000, 1e-3, 1e-5, 0.7), rel=1e-12)
    with pytest.raises(ValueError, match="total-steps"):
        mean_lr(0, 0, 1e-3, 1e-5, 1.0)


def test_learning_rates_per_group(gpu):
    from brushpy.optim import Adam, AdamConfig

    cfg = AdamConfig(lr_coeffs_dc=3e-3, lr_coeffs_sh_scale=20.0, total_steps=100)
    opt = Adam(cfg, scene_extent=2.0)
    lrs = opt.learning_rates(0)
    assert lrs["means"] == pytest.approx(2 * cfg.lr_mean)
    assert lrs["sh_coeffs"] == 3e-3
    assert lrs["sh_coeffs_rest"] == pytest.approx(1.5e-4)
    assert (lrs["rotations"], lrs["log_scales"], lrs["raw_opacities"]) == (cfg.lr_rotation, cfg.lr_scale, cfg.lr_opac)
    assert opt.learning_rates(100)["means"] == pytest.approx(2 * cfg.lr_mean_end)


def test_config_from_options():
    from types import SimpleNamespace

    from brushpy.optim import AdamConfig

    opts = SimpleNamespace(lr_mean=1e-4, lr_opac=0.05, total_steps=123, ssim_weight=0.2)
    cfg = AdamConfig.from_options(opts, shared_sh_second_moment=True)
    assert (cfg.lr_mean, cfg.lr_opac, cfg.total_steps, cfg.shared_sh_second_moment) == (1e-4, 0.05, 123, True)
    assert cfg.lr_scale == AdamConfig().lr_scale
    with pytest.raises(ValueError, match="lr-coeffs-sh-scale"):
        AdamConfig(lr_coeffs_sh_scale=0)


# -- the update ------------------------------------------------------------------------

@pytest.mark.parametrize("shared", [False, True])
def test_ten_steps_match_numpy(gpu, shared):
    from brushpy.optim import Adam, AdamConfig

    rng = np.random.default_rng(0)
    p32 = _params(rng)
    P = _upload(p32)
    p64 = {k: v.astype(np.float64) for k, v in p32.items()}
    peak = {k: np.abs(v.copy()) for k, v in p64.items()}  # largest |p| along the trajectory
    opt = Adam(AdamConfig(total_steps=10, shared_sh_second_moment=shared, lr_mean=1e-2, lr_mean_end=1e-4),
               scene_extent=1.7)
    ref = AdamRef(shared_sh=shared)
    for s in range(10):
        grads = {k: (rng.standard_normal(sh) * 10.0 ** rng.uniform(-3, 1)).astype(np.float32) for k, sh in SHAPES.items()}
        lrs = _step(opt, P, grads, s)
        ref.step(p64, grads, lrs)
        peak = {k: np.maximum(peak[k], np.abs(p64[k])) for k in peak}
    assert opt.t == 10
    for k in SHAPES:
        got = P[k].numpy().astype(np.float64)
        # relative to the element's scale: f32 storage rounds p at its largest |p| so far
        err = np.abs(got - p64[k]) / peak[k]
        assert err.max() < 1e-6, (k, err.max())
        st = opt.state[k]
        np.testing.assert_allclose(st["exp_avg"].numpy(), ref.m[k], rtol=1e-6, atol=1e-6 * np.abs(ref.m[k]).max())
        np.testing.assert_allclose(st["exp_avg_sq"].numpy(), ref.v[k], rtol=1e-6)
    assert opt.state["sh_coeffs"]["exp_avg_sq"].shape == ((N,) if shared else (N, 16, 3))
    # parameters moved by about lr per step (sanity: the test can fail)
    moved = np.abs(P["raw_opacities"].numpy() - p32["raw_opacities"]).mean()
    assert 0.01 < moved < 10 * 0.012 * 10


def test_sh_bands_use_their_learning_rates(gpu):
    """First step of Adam moves every element by exactly lr·sign(g) (m̂/√v̂ = ±1)."""
    from brushpy.optim import Adam, AdamConfig

    rng = np.random.default_rng(1)
    sh = rng.standard_normal((50, 9, 3)).astype(np.float32)
    g = rng.standard_normal((50, 9, 3)).astype(np.float32)
    P = _upload({"sh_coeffs": sh})
    opt = Adam(AdamConfig(lr_coeffs_dc=1e-2, lr_coeffs_sh_scale=4.0))
    _step(opt, P, {"sh_coeffs": g}, 0)
    delta = (P["sh_coeffs"].numpy() - sh) * -np.sign(g)
    np.testing.assert_allclose(delta[:, 0], 1e-2, rtol=1e-4)
    np.testing.assert_allclose(delta[:, 1:], 2.5e-3, rtol=1e-4)


def test_step_rejects_bad_input(gpu):
    from brushpy.gpu import GpuTensor, Recorder
    from brushpy.optim import Adam

    opt = Adam()
    rec = Recorder()
    p = GpuTensor.empty((10, 3))
    with pytest.raises(ValueError, match="unknown parameter group"):
        opt.step(rec, {"colours": p}, {"colours": p}, 0)
    with pytest.raises(ValueError, match="equal shapes"):
        opt.step(rec, {"means": p}, {"means": GpuTensor.empty((10, 4))}, 0)
    opt.step(rec, {"means": p}, {"means": GpuTensor.empty((10, 3))}, 0)
    rec.submit()
    with pytest.raises(ValueError, match="gather"):
        opt.step(Recorder(), {"means": GpuTensor.empty((12, 3))}, {"means": GpuTensor.empty((12, 3))}, 1)


# -- state operations ------------------------------------------------------------------------

def _filled_optimizer(shared=False, steps=2, seed=2):
    from brushpy.optim import Adam, AdamConfig

    rng = np.random.default_rng(seed)
    P = _upload(_params(rng))
    opt = Adam(AdamConfig(shared_sh_second_moment=shared))
    for s in range(steps):
        _step(opt, P, {k: rng.standard_normal(sh).astype(np.float32) for k, sh in SHAPES.items()}, s)
    return opt, P


@pytest.mark.parametrize("shared", [False, True])
def test_gather_matches_numpy_take(gpu, shared):
    from brushpy.gpu import GpuTensor, Recorder

    opt, _ = _filled_optimizer(shared)
    before = opt.state_dict()
    rng = np.random.default_rng(3)
    idx = np.concatenate([rng.permutation(N)[: N - 100], rng.integers(0, N, 150), [N, 0xFFFFFFFF]]).astype(np.uint32)
    rec = Recorder()
    opt.gather(rec, GpuTensor.from_numpy(idx))
    rec.submit()
    after = opt.state_dict()
    valid = idx < N
    for key, arr in before.items():
        if key == "t":
            assert int(after["t"]) == int(arr)
            continue
        got = after[key]
        assert got.shape == (len(idx),) + arr.shape[1:]
        np.testing.assert_array_equal(got[valid], arr[idx[valid]])
        assert np.all(got[~valid] == 0)


def test_gather_round_trip_with_inverse_permutation(gpu):
    from brushpy.gpu import GpuTensor, Recorder

    opt, _ = _filled_optimizer()
    before = opt.state_dict()
    perm = np.random.default_rng(4).permutation(N).astype(np.uint32)
    rec = Recorder()
    opt.gather(rec, GpuTensor.from_numpy(perm))
    opt.gather(rec, GpuTensor.from_numpy(np.argsort(perm).astype(np.uint32)))
    rec.submit()
    after = opt.state_dict()
    for key in before:
        np.testing.assert_array_equal(after[key], before[key])


@pytest.mark.parametrize("shared", [False, True])
def test_zero_rows_and_mask(gpu, shared):
    from brushpy.gpu import GpuTensor, Recorder

    opt, _ = _filled_optimizer(shared)
    before = opt.state_dict()
    rows = np.zeros(N, np.uint32)  # a mask of a few rows first, then a random one on top
    rows[[0, 5, N - 1]] = 7  # any nonzero value marks a row
    rec = Recorder()
    opt.zero_mask(rec, GpuTensor.from_numpy(rows))
    rec.submit()
    mid = opt.state_dict()
    mask = (np.random.default_rng(5).random(N) < 0.3).astype(np.uint32)
    rec = Recorder()
    opt.zero_mask(rec, GpuTensor.from_numpy(mask))
    rec.submit()
    after = opt.state_dict()
    zero_a = np.zeros(N, bool)
    zero_a[[0, 5, N - 1]] = True
    for key, arr in before.items():
        if key == "t":
            continue
        exp = arr.copy()
        exp[zero_a] = 0
        np.testing.assert_array_equal(mid[key], exp)
        exp[mask != 0] = 0
        np.testing.assert_array_equal(after[key], exp)
    with pytest.raises(ValueError, match="mask has"):
        opt.zero_mask(Recorder(), GpuTensor.from_numpy(np.zeros(N + 1, np.uint32)))


@pytest.mark.parametrize("shared", [False, True])
def test_save_restore_is_exact(gpu, shared):
    from brushpy.optim import Adam, AdamConfig

    opt, P = _filled_optimizer(shared, steps=3)
    saved = opt.state_dict()
    snapshot = {k: v.numpy() for k, v in P.items()}
    restored = Adam(AdamConfig(shared_sh_second_moment=shared))
    restored.load_state_dict(saved)
    assert restored.t == 3
    P2 = _upload(snapshot)
    rng = np.random.default_rng(6)
    for s in range(3, 5):
        grads = {k: rng.standard_normal(sh).astype(np.float32) for k, sh in SHAPES.items()}
        _step(opt, P, grads, s)
        _step(restored, P2, grads, s)
    for k in SHAPES:
        np.testing.assert_array_equal(P[k].numpy(), P2[k].numpy())
    a, b = opt.state_dict(), restored.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    # a shared-layout checkpoint does not load into an unshared optimizer and vice versa
    with pytest.raises(ValueError, match="exp_avg_sq"):
        Adam(AdamConfig(shared_sh_second_moment=not shared)).load_state_dict(saved)
    with pytest.raises(ValueError, match="'t'"):
        Adam().load_state_dict({k: v for k, v in saved.items() if k != "t"})


def test_large_dispatch_is_folded(gpu):
    """More than 65535 workgroups (2D dispatch) still updates every element."""
    from brushpy.gpu import GpuTensor
    from brushpy.optim import Adam, AdamConfig

    n = 65536 * 256 // 3 + 1000  # > 65535 * 256 elements as [n, 3]
    p = np.zeros((n, 3), np.float32)
    g = np.ones((n, 3), np.float32)
    P = {"log_scales": GpuTensor.from_numpy(p)}
    opt = Adam(AdamConfig(lr_scale=0.5))
    _step(opt, P, {"log_scales": g}, 0)
    out = P["log_scales"].numpy()
    assert math.isclose(float(out.min()), -0.5, rel_tol=1e-6) and math.isclose(float(out.max()), -0.5, rel_tol=1e-6)


def test_adam_params_fast_path_matches_the_layout():
    """Adam.step packs its uniform positionally; the bytes equal packing the layout by field name."""
    from brushpy.optim.adam import ADAM_PARAMS, _adam_params
    from brushpy.optim import AdamConfig

    c = AdamConfig(beta1=0.8, beta2=0.99, eps=1e-9)
    got = _adam_params(123, 48, 3, 2e-3, 2e-4, c, 1.25, 7.5).data
    want = ADAM_PARAMS.pack_bytes(count=123, row_len=48, first_cols=3, lr_first=2e-3, lr_rest=2e-4, beta1=0.8,
                                  beta2=0.99, inv_bc1=1.25, inv_bc2=7.5, eps=1e-9, one_minus_beta1=1.0 - 0.8,
                                  one_minus_beta2=1.0 - 0.99)
    assert got == want and len(got) == ADAM_PARAMS.size == 64
