"""GPU refine against the NumPy model of the same rules (tests/reference/refine.py)."""

from __future__ import annotations

import math
import warnings
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from brushpy.gpu import GpuTensor, Recorder
from brushpy.gpu.rows import gather_rows, zero_rows
from brushpy.optim.adam import Adam, AdamConfig
from brushpy.render.splats import Splats
from brushpy.train.config import TrainConfig
from brushpy.train.refine import RefineStats, SceneBounds, refine, scene_bounds, stream_key
from tests.reference import refine as ref

FIELDS = ("means", "rotations", "log_scales", "sh_coeffs", "raw_opacities")


def adam_with_random_moments(splats: Splats, rng, shared_sh: bool) -> Adam:
    """The GPU Adam with random moments for every parameter (as after some training)."""
    adam = Adam(AdamConfig(shared_sh_second_moment=shared_sh))
    state = {"t": np.array(17, np.int64)}
    for f in FIELDS:
        shape = getattr(splats, f).shape
        state[f"{f}.exp_avg"] = rng.normal(size=shape).astype(np.float32)
        v_shape = shape[:1] if (shared_sh and f == "sh_coeffs") else shape
        state[f"{f}.exp_avg_sq"] = rng.random(v_shape).astype(np.float32)
    adam.load_state_dict(state)
    return adam


def random_splats(rng, n, sh_k=4, bad=True, vis_frac=0.85):
    p = {
        "means": rng.normal(size=(n, 3)).astype(np.float32),
        "rotations": rng.normal(size=(n, 4)).astype(np.float32),
        "log_scales": rng.normal(-2.5, 0.8, size=(n, 3)).astype(np.float32),
        "sh_coeffs": rng.normal(size=(n, sh_k, 3)).astype(np.float32),
        "raw_opacities": rng.normal(-1.0, 3.0, size=n).astype(np.float32),
    }
    if not bad:
        p["raw_opacities"] = np.abs(p["raw_opacities"]) - 2.0  # all above 1/255
    if bad and n >= 40:
        p["means"][3, 1] = np.nan
        p["sh_coeffs"][7, 2, 0] = np.inf
        p["rotations"][11, 0] = -np.inf
        p["raw_opacities"][13] = np.nan
        p["log_scales"][17, 2] = 8.0  # huge: e^8 > 100 x extent (~1.3)
        p["means"][19, 0] = 1e4  # far from the centre
        p["raw_opacities"][23] = -7.0  # opacity < 1/255
    stat = np.abs(rng.normal(0.0, 0.004, n)).astype(np.float32)
    vis = (rng.random(n) < vis_frac).astype(np.uint32) * rng.integers(1, 5, n).astype(np.uint32)
    screen = (rng.random(n) ** 6).astype(np.float32)
    return p, stat, vis, screen


def upload(p, stat, vis, screen):
    splats = Splats.from_numpy(**p)
    stats = RefineStats(len(stat))
    stats.refine_stat.write(stat)
    stats.visible_count.write(vis)
    stats.max_screen_frac.write(screen)
    return splats, stats


def run_both(p, stat, vis, screen, cfg, step, seed, optimizer_rng=None, bounds=None, shared_sh=False):
    splats, stats = upload(p, stat, vis, screen)
    bounds = bounds or scene_bounds(p["means"])
    opt = adam_with_random_moments(splats, optimizer_rng, shared_sh) if optimizer_rng is not None else None
    old_moments = opt.state_dict() if opt else None
    res = refine(Recorder(), splats, stats, opt, cfg, step, bounds, seed)
    model = ref.refine_reference(
        p, stat, vis, screen, max_splats=cfg.max_splats, growth_grad_threshold=cfg.growth_grad_threshold,
        growth_select_fraction=cfg.growth_select_fraction, growth_stop_iter=cfg.growth_stop_iter,
        split_at_screen_size=cfg.split_at_screen_size, opac_decay=cfg.opac_decay, total_steps=cfg.total_steps,
        step=step, center=bounds.center, half_extent=bounds.half_extent, seed=seed)
    return res, model, opt, old_moments


def assert_matches_model(res, model):
    assert res.num_pruned == model["num_pruned"]
    assert res.num_pruned_nonfinite == model["num_pruned_nonfinite"]
    assert res.num_pruned_transparent == model["num_pruned_transparent"]
    assert res.num_pruned_huge == model["num_pruned_huge"]
    assert res.num_refilled == model["num_refilled"]
    assert res.num_force_split == model["num_force_split"]
    assert res.num_grown == model["num_grown"]
    np.testing.assert_array_equal(res.src_rows.numpy(), model["src_rows"])
    np.testing.assert_array_equal(res.zero_mask.numpy(), model["zero_mask"])
    got = res.splats.numpy()
    # Rows copied unchanged must be bit-exact; split maths and decay within float32 rounding.
    np.testing.assert_array_equal(got["rotations"], model["rotations"].astype(np.float32))
    np.testing.assert_array_equal(got["sh_coeffs"], model["sh_coeffs"].astype(np.float32))
    np.testing.assert_allclose(got["means"], model["means"], rtol=1e-5, atol=2e-6)
    np.testing.assert_allclose(got["log_scales"], model["log_scales"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got["raw_opacities"], model["raw_opacities"], rtol=1e-4, atol=2e-4)
    assert res.stats.num_splats == res.num_splats == len(model["src_rows"])


CONFIGS = {
    # growth with a loose threshold, force split on, within a generous max_splats
    "grow": (dict(growth_grad_threshold=0.001, growth_select_fraction=0.5), 1000),
    # max_splats binds: force split and growth are capped
    "capped": (dict(growth_grad_threshold=0.001, growth_select_fraction=0.5, max_splats=1350), 400),
    # growth stopped, force split off: only prune, re-fill and decay
    "late": (dict(split_at_screen_size=0.0), 16000),
    # end of training: no decay left
    "no_decay": (dict(growth_grad_threshold=0.001, total_steps=2000), 2000),
    # few visible splats, few growth candidates: candidates are packed before sorting
    "sparse": (dict(growth_grad_threshold=0.003, growth_select_fraction=1.0), 300),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_refine_matches_numpy_model(gpu, name):
    overrides, step = CONFIGS[name]
    rng = np.random.default_rng(sorted(CONFIGS).index(name) + 100)
    p, stat, vis, screen = random_splats(rng, 1200, vis_frac=0.3 if name == "sparse" else 0.85)
    cfg = replace(TrainConfig(), **overrides)
    res, model, opt, old = run_both(p, stat, vis, screen, cfg, step, seed=7, optimizer_rng=rng,
                                    shared_sh=name == "capped")
    assert_matches_model(res, model)
    assert res.num_pruned >= 7
    if name == "grow":
        assert res.num_grown > 0 and res.num_force_split > 0 and res.num_refilled == res.num_pruned
    if name == "capped":
        assert res.num_splats == cfg.max_splats
    if name == "sparse":
        assert 0 < res.num_grown and 0 < res.num_refilled == res.num_pruned
    if name == "late":
        assert res.num_grown == 0 and res.num_force_split == 0
    # Adam moments moved with their rows and restart for both halves of every split.
    src = model["src_rows"]
    zero = model["zero_mask"].astype(bool)
    after_all = opt.state_dict()
    assert set(after_all) == set(old) and int(after_all["t"]) == 17
    for key, before in old.items():
        if key == "t":
            continue
        after = after_all[key]
        expect = before[src].copy()
        expect[zero] = 0
        np.testing.assert_array_equal(after, expect, err_msg=str(key))
    assert res.zero_mask.numpy().sum() == 2 * res.num_split


def test_refine_deterministic_per_seed(gpu):
    rng = np.random.default_rng(3)
    p, stat, vis, screen = random_splats(rng, 800)
    cfg = replace(TrainConfig(), growth_grad_threshold=0.001, growth_select_fraction=0.5)
    splats, stats = upload(p, stat, vis, screen)
    b = scene_bounds(p["means"])
    a = refine(Recorder(), splats, stats, None, cfg, 600, b, seed=1).src_rows.numpy()
    a2 = refine(Recorder(), splats, stats, None, cfg, 600, b, seed=1).src_rows.numpy()
    c = refine(Recorder(), splats, stats, None, cfg, 600, b, seed=2).src_rows.numpy()
    np.testing.assert_array_equal(a, a2)
    assert not np.array_equal(a, c)
    assert stream_key(1, 600, 1) == ref.stream_key(1, 600, 1)


def test_prune_rules(gpu):
    n = 10
    p = {
        "means": np.zeros((n, 3), np.float32),
        "rotations": np.tile(np.array([1, 0, 0, 0], np.float32), (n, 1)),
        "log_scales": np.full((n, 3), -2.0, np.float32),
        "sh_coeffs": np.zeros((n, 1, 3), np.float32),
        "raw_opacities": np.zeros(n, np.float32),
    }
    p["means"][:, 0] = np.linspace(-1, 1, n)
    p["means"][1, 2] = np.nan  # non-finite
    p["sh_coeffs"][2, 0, 1] = -np.inf  # non-finite
    p["raw_opacities"][3] = -5.6  # opacity 0.0037 < 1/255
    p["raw_opacities"][4] = -5.5  # opacity 0.0041: kept
    p["log_scales"][5, 1] = math.log(150.0)  # scale 150 > 100 x half-extent 1
    p["means"][6, 1] = -101.0  # 101 from the centre along y
    p["means"][7, 2] = 99.0  # 99: kept
    bounds = SceneBounds(np.zeros(3), np.ones(3))
    stats = RefineStats(n)  # nothing visible: no re-fill, no growth
    cfg = replace(TrainConfig(), opac_decay=0.0)
    res = refine(Recorder(), Splats.from_numpy(**p), stats, None, cfg, 100, bounds, 0)
    np.testing.assert_array_equal(res.src_rows.numpy(), [0, 4, 7, 8, 9])
    assert (res.num_pruned, res.num_pruned_nonfinite, res.num_pruned_transparent, res.num_pruned_huge) == (5, 2, 1, 2)
    assert res.num_split == 0 and not res.zero_mask.numpy().any()
    got = res.splats.numpy()
    for f in FIELDS:
        np.testing.assert_array_equal(got[f], p[f][[0, 4, 7, 8, 9]])


def test_refill_replaces_pruned_budget(gpu):
    rng = np.random.default_rng(11)
    p, stat, vis, screen = random_splats(rng, 500, bad=False)
    p["raw_opacities"][:40] = -8.0  # 40 transparent
    vis[:] = 1
    cfg = replace(TrainConfig(), split_at_screen_size=0.0, growth_stop_iter=0)
    res, model, _, _ = run_both(p, stat, vis, screen, cfg, 100, seed=5)
    assert_matches_model(res, model)
    assert res.num_pruned == 40 and res.num_refilled == 40 and res.num_splats == 500
    # Re-fill favours opaque splats: the sampled parents are more opaque than average.
    parents = model["selected"]
    assert ref.sigmoid(p["raw_opacities"][parents]).mean() > ref.sigmoid(p["raw_opacities"][40:]).mean()


def test_small_sample_of_many_candidates(gpu):
    """take << candidates (> 4096): the sort sees only keys below a histogram cut; same picks as a full sort."""
    rng = np.random.default_rng(21)
    n = 9000
    p, stat, vis, screen = random_splats(rng, n, bad=False)
    p["raw_opacities"][rng.choice(n, 300, replace=False)] = -9.0  # 300 pruned -> 300 re-filled of ~8700
    vis[:] = 1
    stat = rng.random(n).astype(np.float32) * 0.01  # ~3/4 above the threshold
    cfg = replace(TrainConfig(), growth_select_fraction=0.1, split_at_screen_size=0.0)
    res, model, _, _ = run_both(p, stat, vis, screen, cfg, 100, seed=13)
    assert_matches_model(res, model)
    assert res.num_refilled == 300 and res.num_grown > 300


def test_force_split_lands_children_at_limit(gpu):
    n = 4
    p = {
        "means": np.zeros((n, 3), np.float32),
        "rotations": np.tile(np.array([1, 0, 0, 0], np.float32), (n, 1)),
        "log_scales": np.log(np.array([[0.1, 0.4, 0.2]] * n, np.float32)),
        "sh_coeffs": np.zeros((n, 1, 3), np.float32),
        "raw_opacities": np.zeros(n, np.float32),
    }
    screen = np.array([2.0, 0.6, 0.1, 0.0], np.float32)  # splat 0: 4x the limit; 1: just over
    vis = np.array([1, 1, 1, 0], np.uint32)
    cfg = replace(TrainConfig(), opac_decay=0.0, growth_stop_iter=0, split_at_screen_size=0.5)
    splats, stats = upload(p, np.zeros(n, np.float32), vis, screen)
    res = refine(Recorder(), splats, stats, None, cfg, 100, SceneBounds(np.zeros(3), np.ones(3)), 0)
    assert res.num_force_split == 2 and res.num_splats == 6
    got = res.splats.numpy()
    np.testing.assert_array_equal(res.src_rows.numpy(), [0, 1, 2, 3, 0, 1])
    # Longest axis (y, 0.4): splat 0 shrinks by 0.5/2 = 0.25, splat 1 by 1/sqrt(2).
    np.testing.assert_allclose(np.exp(got["log_scales"][[0, 4], 1]), 0.1, rtol=1e-5)
    np.testing.assert_allclose(np.exp(got["log_scales"][[1, 5], 1]), 0.4 / math.sqrt(2), rtol=1e-5)
    np.testing.assert_allclose(np.exp(got["log_scales"][[0, 1, 4, 5]][:, [0, 2]]), [[0.1, 0.2]] * 4, rtol=1e-5)
    off0 = math.sqrt(1 - 0.25**2) * 0.4
    np.testing.assert_allclose(got["means"][[0, 4]], [[0, -off0, 0], [0, off0, 0]], atol=1e-6)
    off1 = math.sqrt(0.5) * 0.4
    np.testing.assert_allclose(got["means"][[1, 5]], [[0, -off1, 0], [0, off1, 0]], atol=1e-6)
    o = 1 - 0.5 ** (1 / math.sqrt(2))
    np.testing.assert_allclose(got["raw_opacities"][[0, 1, 4, 5]], math.log(o / (1 - o)), atol=1e-5)


def test_max_splats_respected(gpu):
    rng = np.random.default_rng(5)
    p, stat, vis, screen = random_splats(rng, 300, bad=False)
    stat[:] = 1.0
    vis[:] = 1
    screen[:] = 0.0
    cfg = replace(TrainConfig(), max_splats=310, growth_select_fraction=1.0)
    res, model, _, _ = run_both(p, stat, vis, screen, cfg, 10, seed=9)
    assert_matches_model(res, model)
    assert res.num_pruned == 0 and res.num_grown == 10 and res.num_splats == 310
    # Already over the cap: no growth, no force split.
    cfg = replace(cfg, max_splats=100)
    screen[:] = 1.0
    res, model, _, _ = run_both(p, stat, vis, screen, cfg, 10, seed=9)
    assert_matches_model(res, model)
    assert res.num_split == 0 and res.num_splats == 300


def test_nothing_to_do_is_identity(gpu):
    rng = np.random.default_rng(8)
    p, _, _, _ = random_splats(rng, 100, bad=False)
    p["raw_opacities"] = np.abs(p["raw_opacities"])
    splats = Splats.from_numpy(**p)
    cfg = replace(TrainConfig(), opac_decay=0.0)
    res = refine(Recorder(), splats, RefineStats(100), None, cfg, 50, scene_bounds(p["means"]), 0)
    assert res.num_splats == 100 and res.num_pruned == 0 and res.num_split == 0
    np.testing.assert_array_equal(res.src_rows.numpy(), np.arange(100))
    got = res.splats.numpy()
    for f in FIELDS:
        np.testing.assert_array_equal(got[f], p[f])


def test_all_pruned_keeps_everything(gpu):
    rng = np.random.default_rng(2)
    p, stat, vis, screen = random_splats(rng, 50, bad=False)
    p["raw_opacities"][:] = -9.0
    cfg = replace(TrainConfig(), opac_decay=0.0, split_at_screen_size=0.0, growth_stop_iter=0)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        res, model, _, _ = run_both(p, stat, vis, screen, cfg, 10, seed=1)
    assert any("keeping them all" in str(x.message) for x in w)
    assert_matches_model(res, model)
    assert res.num_splats == 50 and res.num_pruned == 0


def test_zero_splats(gpu):
    p = {"means": np.zeros((0, 3)), "rotations": np.zeros((0, 4)), "log_scales": np.zeros((0, 3)),
         "sh_coeffs": np.zeros((0, 1, 3)), "raw_opacities": np.zeros(0)}
    res = refine(Recorder(), Splats.from_numpy(**p), RefineStats(0), None, TrainConfig(), 10,
                 SceneBounds(np.zeros(3), np.ones(3)), 0)
    assert res.num_splats == 0 and res.src_rows.shape == (0,) and res.splats.sh_coeffs.shape == (0, 1, 3)


def test_stats_size_mismatch_raises(gpu):
    rng = np.random.default_rng(1)
    p, *_ = random_splats(rng, 10, bad=False)
    with pytest.raises(ValueError, match="RefineStats"):
        refine(Recorder(), Splats.from_numpy(**p), RefineStats(9), None, TrainConfig(), 1,
               SceneBounds(np.zeros(3), np.ones(3)), 0)


def test_gather_and_zero_rows(gpu):
    rng = np.random.default_rng(4)
    for shape, dtype in (((57,), np.float32), ((57, 3), np.float32), ((57, 16, 3), np.float32), ((57, 2), np.uint32)):
        src = (rng.normal(size=shape) * 100).astype(dtype)
        rows = rng.integers(0, 57, 80).astype(np.uint32)
        mask = (rng.random(80) < 0.3).astype(np.uint32)
        rec = Recorder()
        out = gather_rows(rec, GpuTensor.from_numpy(src), GpuTensor.from_numpy(rows), 80)
        zero_rows(rec, out, GpuTensor.from_numpy(mask))
        fused = gather_rows(rec, GpuTensor.from_numpy(src), GpuTensor.from_numpy(rows), 80,
                            zero_mask=GpuTensor.from_numpy(mask))
        rec.submit()
        expect = src[rows].copy()
        expect[mask.astype(bool)] = 0
        np.testing.assert_array_equal(out.numpy(), expect)
        np.testing.assert_array_equal(fused.numpy(), expect)
    with pytest.raises(ValueError):
        gather_rows(Recorder(), GpuTensor.from_numpy(src), GpuTensor.from_numpy(rows.astype(np.int32)), 80)


def test_stats_accumulate(gpu):
    rng = np.random.default_rng(6)
    n, width, height = 300, 64, 48
    stats = RefineStats(n)
    rec = Recorder()
    stats.reset(rec)
    exp_stat = np.zeros(n)
    exp_vis = np.zeros(n, np.int64)
    exp_screen = np.zeros(n)
    for step in range(3):
        v = int(rng.integers(100, 250))
        gfc = rng.permutation(n)[:v].astype(np.uint32)
        proj = np.zeros((v, 9), np.float32)
        sx, sy = rng.uniform(0.5, 30, v), rng.uniform(0.5, 30, v)
        rho = rng.uniform(-0.8, 0.8, v)
        cov = np.stack([sx * sx, rho * sx * sy, sy * sy], 1)
        det = cov[:, 0] * cov[:, 2] - cov[:, 1] ** 2
        proj[:, 2], proj[:, 3], proj[:, 4] = cov[:, 2] / det, -cov[:, 1] / det, cov[:, 0] / det
        proj[:, 8] = rng.uniform(0.001, 1.0, v)
        compact = step == 1
        w = np.abs(rng.normal(0, 0.01, v if compact else n)).astype(np.float32)
        if not compact:
            w[gfc[0]] = np.nan  # ignored
        state = SimpleNamespace(global_from_compact=GpuTensor.from_numpy(gfc), projected=GpuTensor.from_numpy(proj),
                                num_visible=v, camera=SimpleNamespace(width=width, height=height))
        stats.accumulate(rec, state, GpuTensor.from_numpy(w), compact_weights=compact)
        wv = w if compact else w[gfc]
        ok = np.isfinite(wv)
        np.maximum.at(exp_stat, gfc[ok], wv[ok])
        exp_vis[gfc] += 1
        o = proj[:, 8].astype(np.float64)
        t = 2 * np.log(np.maximum(255 * o, 1.0))
        frac = np.maximum(np.sqrt(t * cov[:, 0]) / width, np.sqrt(t * cov[:, 2]) / height)
        np.maximum.at(exp_screen, gfc, frac)
    rec.submit()
    np.testing.assert_array_equal(stats.refine_stat.numpy(), exp_stat.astype(np.float32))
    np.testing.assert_array_equal(stats.visible_count.numpy(), exp_vis)
    np.testing.assert_allclose(stats.max_screen_frac.numpy(), exp_screen, rtol=1e-4, atol=1e-6)
    restored = RefineStats.from_state_dict(stats.state_dict())
    for k, v in stats.state_dict().items():
        np.testing.assert_array_equal(restored.state_dict()[k], v)
    with pytest.raises(ValueError, match="missing"):
        RefineStats.from_state_dict({"refine_stat": exp_stat})
    rec = Recorder()
    stats.reset(rec)
    rec.submit()
    assert not stats.visible_count.numpy().any() and not stats.refine_stat.numpy().any()


def test_scene_bounds(gpu):
    rng = np.random.default_rng(12)
    m = rng.normal(size=(1001, 3)).astype(np.float32) * np.array([1, 2, 3], np.float32)
    m[5, 0] = np.nan
    b = scene_bounds(GpuTensor.from_numpy(m))
    c, h = ref.scene_bounds(m)
    np.testing.assert_allclose(b.center, c)
    np.testing.assert_allclose(b.half_extent, h)
    assert b.median_size == pytest.approx(2 * h[1])
    # 10-90% of N(0, 2) spans 2 * 1.2816 * 2 on y.
    assert b.median_size == pytest.approx(2 * 1.2816 * 2, rel=0.1)
