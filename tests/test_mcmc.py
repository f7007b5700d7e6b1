"""``--strategy mcmc`` (brushpy/train/mcmc.py) against its NumPy model (brushpy/train/mcmc_reference.py).

GPU relocation / addition with a fixed sampling against the model (parameters, eq. 9 values,
Adam moments), the eq. 9 correction against its closed form for two copies, the refine's
counts and cap, the noise's statistics, the regularisers' gradients by finite differences,
checkpoint / resume, and a short training run on the embedded lego scene.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from brushpy.train import mcmc_reference as ref

from tests.reference.refine import random_unit


def _params(n: int, seed: int = 0, sh_k: int = 4) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "means": rng.normal(size=(n, 3)).astype(np.float32),
        "rotations": rng.normal(size=(n, 4)).astype(np.float32),
        "log_scales": rng.normal(-2.0, 0.5, size=(n, 3)).astype(np.float32),
        "sh_coeffs": rng.normal(size=(n, sh_k, 3)).astype(np.float32),
        "raw_opacities": rng.normal(0.0, 3.0, size=n).astype(np.float32),
    }


def _upload(p: dict):
    from brushpy.render.splats import Splats

    return Splats.from_numpy(*(p[k] for k in Splats.PARAM_NAMES))


def _adam_with_state(splats, seed: int = 1):
    """An Adam whose moments are non-zero everywhere (one step on random gradients)."""
    from brushpy.gpu import GpuTensor, Recorder
    from brushpy.optim import Adam

    rng = np.random.default_rng(seed)
    adam = Adam()
    grads = {k: GpuTensor.from_numpy(rng.normal(size=t.shape).astype(np.float32)) for k, t in splats.params().items()}
    rec = Recorder()
    adam.step(rec, splats, grads, 0)
    rec.submit()
    return adam


def _assert_params(got: dict, want: dict) -> None:
    for k in want:
        assert got[k].shape == want[k].shape, k
        np.testing.assert_allclose(got[k], want[k], rtol=2e-5, atol=2e-5, err_msg=k)


def test_correction_matches_closed_form():
    """Eq. 9 for n = 2: o' = 1 − √(1 − o), s' = s·o / (2o' − o'²/√2); n copies of o' composite to o."""
    o = np.array([0.02, 0.3, 0.7, 0.95])
    s = np.ones((4, 3))
    new_o, new_s = ref.relocation_correction(o, s, np.full(4, 2), min_opacity=0.005)
    op = 1.0 - np.sqrt(1.0 - o)
    np.testing.assert_allclose(new_o, op, rtol=1e-12)
    np.testing.assert_allclose(new_s[:, 0], o / (2 * op - op**2 / math.sqrt(2)), rtol=1e-12)
    for n in (1, 3, 7):
        new_o, _ = ref.relocation_correction(o, s, np.full(4, n), min_opacity=1e-9)
        np.testing.assert_allclose(1.0 - (1.0 - new_o) ** n, o, rtol=1e-9)
    table = ref.binomial_table()
    assert table.shape == (51, 51) and table[50, 25] == np.float32(math.comb(50, 25)) and table[3, 4] == 0


def test_relocation_matches_model(gpu):
    """Dead rows become corrected copies of their sources (sources sampled 1–3 times), moments of both reset."""
    from brushpy.gpu import Recorder
    from brushpy.train.mcmc import relocate_gpu

    p = _params(40)
    dead = np.array([3, 7, 8, 20, 31, 39])
    sampled = np.array([5, 5, 5, 11, 12, 12])  # ratios 4, 4, 4, 2, 3, 3
    splats = _upload(p)
    adam = _adam_with_state(splats)
    p = splats.numpy()  # (the Adam step moved them)
    before = adam.state_dict()
    rec = Recorder()
    relocate_gpu(rec, splats, adam, dead, sampled, 0.005)
    rec.submit()
    want, reset = ref.relocate(p, dead, sampled, 0.005)
    _assert_params(splats.numpy(), want)
    # the corrected values are what eq. 9 gives
    o = ref.sigmoid(p["raw_opacities"][[5, 11, 12]])
    new_o, new_s = ref.relocation_correction(o, np.exp(p["log_scales"][[5, 11, 12]].astype(np.float64)), [4, 2, 3])
    np.testing.assert_allclose(ref.sigmoid(splats.numpy()["raw_opacities"][[8, 5, 20, 31, 12]]),
                               new_o[[0, 0, 1, 2, 2]], rtol=1e-5)
    np.testing.assert_allclose(np.exp(splats.numpy()["log_scales"][[7, 11]]), new_s[[0, 1]], rtol=1e-5)
    assert reset.sum() == len(dead) + 3
    after = adam.state_dict()
    for key, v in after.items():
        if key == "t":
            continue
        rows = v.reshape(v.shape[0], -1)
        assert not rows[reset].any(), key
        np.testing.assert_array_equal(rows[~reset], before[key].reshape(v.shape[0], -1)[~reset], err_msg=key)


def test_addition_matches_model(gpu):
    from brushpy.gpu import Recorder
    from brushpy.train.mcmc import add_gpu

    p = _params(30, seed=2)
    sampled = np.array([4, 9, 9, 17, 4, 4, 25])
    splats = _upload(p)
    adam = _adam_with_state(splats)
    p = splats.numpy()  # (the Adam step moved them)
    before = adam.state_dict()
    rec = Recorder()
    new = add_gpu(rec, splats, adam, sampled, 0.005)
    rec.submit()
    want, reset = ref.add(p, sampled, 0.005)
    assert new.num_splats == 37
    _assert_params(new.numpy(), want)
    after = adam.state_dict()
    for key, v in after.items():
        if key == "t":
            continue
        rows = v.reshape(v.shape[0], -1)
        assert rows.shape[0] == 37 and not rows[reset].any(), key
        np.testing.assert_array_equal(rows[~reset], before[key].reshape(30, -1)[~reset[:30]], err_msg=key)


def test_refine_counts_cap_and_determinism(gpu):
    """Every dead splat is relocated, int(1.05·N) − N are added up to the cap, and a second run draws the same."""
    from brushpy.gpu import Recorder
    from brushpy.train.mcmc import mcmc_refine

    p = _params(200, seed=3)
    p["raw_opacities"] = np.maximum(p["raw_opacities"], -4.0)  # opacity ≥ 0.018: alive
    p["raw_opacities"][:17] = -8.0  # opacity 3e-4: dead
    cfg = SimpleNamespace(mcmc_min_opacity=0.005, mcmc_cap_growth=1.05, max_splats=205)
    runs = []
    for _ in range(2):
        rec = Recorder()
        res = mcmc_refine(rec, _upload(p), None, cfg, step=600, seed=4)
        runs.append(res)
    res = runs[0]
    assert res.num_relocated == 17 and res.num_added == 5 and res.num_splats == 205
    got = res.splats.numpy()
    assert (ref.sigmoid(got["raw_opacities"]) >= 0.005 * (1 - 1e-6)).all()
    for k, v in runs[1].splats.numpy().items():
        np.testing.assert_array_equal(v, got[k])
    # the model with the same draws gives the same splats
    dead, sampled = ref.sample_relocation(p["raw_opacities"], 0.005, ref.sample_rng(4, 600, ref.STREAM_RELOCATE))
    mid, _ = ref.relocate(p, dead, sampled)
    picks = ref.sample_addition(mid["raw_opacities"], 5, ref.sample_rng(4, 600, ref.STREAM_ADD))
    want, _ = ref.add(mid, picks)
    _assert_params(got, want)
    cfg.max_splats = 1000
    assert mcmc_refine(Recorder(), _upload(p), None, cfg, step=600, seed=4).num_added == int(1.05 * 200) - 200


def test_noise_statistics_and_model(gpu):
    """Displacements have mean 0 and covariance (gate·scale)²·Σ²; opaque splats stay; the model agrees per splat."""
    from brushpy.gpu import Recorder
    from brushpy.train.mcmc import noise_key, record_noise

    n = 8192
    q = np.array([0.9, 0.2, -0.3, 0.25], np.float32)
    p = {
        "means": np.zeros((n, 3), np.float32),
        "rotations": np.tile(q, (n, 1)),
        "log_scales": np.tile(np.log(np.array([0.5, 0.2, 0.1], np.float32)), (n, 1)),
        "sh_coeffs": np.zeros((n, 1, 3), np.float32),
        "raw_opacities": np.full(n, -6.0, np.float32),
    }
    p["raw_opacities"][-64:] = 2.0  # opaque: gate sigmoid(-100·(0.88 − 0.005)) ≈ 1e-38
    splats = _upload(p)
    key = noise_key(9, 123)
    rec = Recorder()
    record_noise(rec, splats, 3.0, key, clamp_to=100.0)
    rec.submit()
    d = splats.numpy()["means"].astype(np.float64)
    assert np.abs(d[-64:]).max() < 1e-20
    live = d[:-64]
    gate = ref.noise_gate(np.float32(-6.0))
    sigma = ref.covariances(p["rotations"][:1], p["log_scales"][:1])[0]
    want_cov = (gate * 3.0) ** 2 * sigma @ sigma
    np.testing.assert_allclose(live.mean(0), 0.0, atol=4 * np.sqrt(np.diag(want_cov).max() / live.shape[0]))
    np.testing.assert_allclose(np.cov(live.T), want_cov, atol=0.06 * np.abs(want_cov).max())
    # per splat: the model with the same uniforms (Box–Muller on the kernel's hash RNG)
    idx = np.arange(n, dtype=np.uint64)
    u = [random_unit(key, 4 * idx + j).astype(np.float64) for j in range(4)]
    r01, r23 = np.sqrt(-2 * np.log(u[0])), np.sqrt(-2 * np.log(u[2]))
    eps = np.stack([r01 * np.cos(2 * np.pi * u[1]), r01 * np.sin(2 * np.pi * u[1]), r23 * np.cos(2 * np.pi * u[3])], 1)
    want = ref.position_noise(p["rotations"], p["log_scales"], p["raw_opacities"], eps, 3.0, 100.0)
    np.testing.assert_allclose(d, want, rtol=2e-3, atol=2e-6 * np.abs(want).max())


def test_regularizer_gradients_by_finite_differences(gpu):
    """The tape op's gradients (through Tape.backward) match central differences of the model's value."""
    from brushpy.autodiff import Tape
    from brushpy.gpu import Recorder
    from brushpy.train.mcmc import MCMCRegularizer, MCMCRegularizerOp

    p = _params(300, seed=5)
    splats = _upload(p)
    reg = MCMCRegularizer(0.3, 0.7)
    rec = Recorder()
    tape = Tape()
    op = tape.record(MCMCRegularizerOp(reg, rec, splats))
    grads = tape.backward(rec, [op.seed]).of(splats)
    rec.submit()
    assert set(grads) == {"raw_opacities", "log_scales"}
    value, g_o, g_s = ref.regularizer(p["raw_opacities"], p["log_scales"], 0.3, 0.7)
    assert reg.read() == pytest.approx(value, rel=1e-5)
    np.testing.assert_allclose(grads["raw_opacities"].numpy(), g_o, rtol=1e-4, atol=1e-10)
    np.testing.assert_allclose(grads["log_scales"].numpy(), g_s, rtol=1e-4, atol=1e-10)
    raw = p["raw_opacities"].astype(np.float64)
    ls = p["log_scales"].astype(np.float64)
    h = 1e-5
    for i in (0, 17, 299):
        up, down = raw.copy(), raw.copy()
        up[i] += h
        down[i] -= h
        fd = (ref.regularizer(up, ls, 0.3, 0.7)[0] - ref.regularizer(down, ls, 0.3, 0.7)[0]) / (2 * h)
        assert grads["raw_opacities"].numpy()[i] == pytest.approx(fd, rel=1e-4)
        up, down = ls.copy(), ls.copy()
        up[i, 1] += h
        down[i, 1] -= h
        fd = (ref.regularizer(raw, up, 0.3, 0.7)[0] - ref.regularizer(raw, down, 0.3, 0.7)[0]) / (2 * h)
        assert grads["log_scales"].numpy()[i, 1] == pytest.approx(fd, rel=1e-4)


# ------------------------------------------------------------------ training
def _tiny(**kw):
    from brushpy.data import LoadConfig, load_dataset
    from brushpy.train.config import TrainConfig
    from brushpy.train.init import scene_initial_splats

    from tests.test_train import LEGO

    scene = load_dataset(LEGO, LoadConfig(max_frames=8, max_resolution=40, progress=False))
    base = dict(total_steps=100, background_color=(1.0, 1.0, 1.0), sh_degree=1, strategy="mcmc", refine_every=10,
                mcmc_refine_start=10, growth_stop_iter=80, max_splats=3000)
    base.update(kw)
    init = scene_initial_splats(scene, None, 3)
    init = {k: np.asarray(v)[::4] for k, v in init.items()}  # 2,500 splats: fast steps, room to grow
    return scene, TrainConfig(**base), init


def test_mcmc_training_gains_psnr_within_cap(gpu):
    from brushpy.train.config import ProcessConfig
    from brushpy.train.trainer import Trainer

    scene, cfg, init = _tiny()
    tr = Trainer(scene, cfg, ProcessConfig(seed=3), initial=init)
    before = tr.evaluate()["psnr"]
    refines = []
    for _ in range(100):
        info = tr.step()
        assert tr.splats.num_splats <= 3000
        if info.refine:
            refines.append(info.refine)
    after = tr.evaluate()["psnr"]
    assert "mcmc_reg" in tr.last_ops
    assert after > before + 1.5, (before, after)
    assert sum(r["added"] for r in refines) == 500 and tr.splats.num_splats == 3000, refines
    assert sum(r["relocated"] for r in refines) > 0, refines


def test_mcmc_resume_equals_uninterrupted(gpu, tmp_path):
    """A resumed MCMC run (relocation, addition and noise keyed by seed and step) matches the uninterrupted
    one; resuming it with the default strategy is refused."""
    from brushpy.train.config import ProcessConfig
    from brushpy.train.errors import CheckpointError
    from brushpy.train.trainer import Trainer

    scene, cfg, init = _tiny(total_steps=40, refine_every=8, mcmc_refine_start=4, growth_stop_iter=30, max_splats=2800)
    a = Trainer(scene, cfg, ProcessConfig(seed=5), initial=init)
    for _ in range(12):
        a.step()
    ckpt = a.save_checkpoint(tmp_path / "ckpt.npz")
    for _ in range(14):
        a.step()
    b = Trainer(scene, cfg, ProcessConfig(seed=5), initial=init)
    b.load_checkpoint(ckpt)
    for _ in range(14):
        b.step()
    assert a.splats.num_splats == b.splats.num_splats > 2500
    pa, pb = a.splats.numpy(), b.splats.numpy()
    for k in pa:  # (float atomics: a tolerance, as tests/test_train.py's resume test)
        assert np.isclose(pb[k], pa[k], rtol=1e-3, atol=1e-4).mean() > 0.995, k
    from dataclasses import replace

    c = Trainer(scene, replace(cfg, strategy="default"), ProcessConfig(seed=5), initial=init)
    with pytest.raises(CheckpointError, match="--strategy mcmc"):
        c.load_checkpoint(ckpt)
