"""NumPy model of brushpy's GPU refine (``brushpy/train/refine.py``).

Same rules, same random numbers: the PCG hash, the Efraimidis–Spirakis keys
``−ln(u)/w`` (rounded to float32 as the GPU stores them) and the stable sort
of their bits reproduce the GPU's selections exactly (up to a float32 key tie,
which the tests rule out). Parameter maths is float64.
"""

from __future__ import annotations

import math

import numpy as np

M32 = np.uint64(0xFFFFFFFF)
FRAC_1_SQRT_2 = 1.0 / math.sqrt(2.0)


def pcg_hash(v) -> np.ndarray:
    """Vectorised PCG hash on uint32 values (wrapping arithmetic)."""
    v = np.asarray(v, np.uint64) & M32
    state = (v * np.uint64(747796405) + np.uint64(2891336453)) & M32
    word = (((state >> ((state >> np.uint64(28)) + np.uint64(4))) ^ state) * np.uint64(277803737)) & M32
    return ((word >> np.uint64(22)) ^ word) & M32


def stream_key(seed: int, step: int, stream: int) -> int:
    return int(pcg_hash(pcg_hash(pcg_hash(seed) ^ np.uint64(step)) ^ np.uint64(stream)))


def random_unit(key: int, index) -> np.ndarray:
    """Uniform in (0, 1] as float32: ((bits >> 8) + 1) / 2^24."""
    bits = pcg_hash(pcg_hash(index) ^ np.uint64(key))
    return ((bits >> np.uint64(8)).astype(np.float64) + 1.0).astype(np.float32) * np.float32(1.0 / 16777216.0)


def weighted_key_bits(key: int, index, weight) -> np.ndarray:
    """u32 bits of the float32 key −ln(u)/w (0 when −ln(u) is 0)."""
    u = random_unit(key, index)
    e = (-np.log(u.astype(np.float64))).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = (e / np.asarray(weight, np.float32)).astype(np.float32)
    bits = k.view(np.uint32).copy()
    bits[~(e > 0)] = 0
    return bits


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def quat_rotate(q, v):
    """Rotate rows of v [M,3] by unit quaternions q [M,4] (w,x,y,z)."""
    u = q[:, 1:]
    t = 2.0 * np.cross(u, v)
    return v + q[:, :1] * t + np.cross(u, t)


def scene_bounds(means, percentile=0.8):
    """(center, half_extent) of the 10–90% box, Brush's index rule."""
    lo, hi = np.empty(3), np.empty(3)
    for a in range(3):
        v = np.sort(means[:, a][np.isfinite(means[:, a])])
        n = v.size
        il = int((np.float32(1) - np.float32(percentile)) / np.float32(2) * np.float32(n))
        ih = min(n - 1, int((np.float32(1) + np.float32(percentile)) / np.float32(2) * np.float32(n)))
        lo[a], hi[a] = v[il], v[ih]
    return (lo + hi) / 2.0, (hi - lo) / 2.0


def growth_count(num_candidates: int, fraction: float, num_pruned: int) -> int:
    want = int(math.floor(float(np.float32(num_candidates) * np.float32(fraction)) + 0.5))
    return max(0, want - num_pruned)


def refine_reference(p: dict, refine_stat, visible_count, max_screen_frac, *, max_splats: int,
                     growth_grad_threshold: float, growth_select_fraction: float, growth_stop_iter: int,
                     split_at_screen_size: float, opac_decay: float, total_steps: int, step: int,
                     center, half_extent, seed: int) -> dict:
    """One refine on numpy parameters ``p`` (means, rotations, log_scales, sh_coeffs, raw_opacities).

    Returns a dict with the new parameters (float64), ``src_rows``, ``zero_mask``,
    ``selected`` (old indices that split, sorted) and the counts.
    """
    means, rot, ls = p["means"], p["rotations"], p["log_scales"]
    sh, raw = p["sh_coeffs"], p["raw_opacities"].astype(np.float32)
    n = means.shape[0]
    refine_stat = np.asarray(refine_stat, np.float32)
    visible = np.asarray(visible_count) > 0
    screen = np.asarray(max_screen_frac, np.float32)
    force_on = split_at_screen_size > 0
    grow_on = step < growth_stop_iter

    # -- prune (float32 comparisons, as the GPU)
    limit = 100.0 * float(np.max(half_extent))
    log_scale_max = np.float32(math.log(limit) if limit > 0 else -math.inf)
    c32 = np.asarray(center, np.float32)
    finite = (np.isfinite(means).all(1) & np.isfinite(ls).all(1) & np.isfinite(rot).all(1)
              & np.isfinite(sh.reshape(n, -1)).all(1) & np.isfinite(raw))
    transparent = raw < np.float32(-math.log(254.0))
    with np.errstate(invalid="ignore"):
        huge = (ls > log_scale_max).any(1) | (np.abs(means.astype(np.float32) - c32) > np.float32(limit)).any(1)
    prune = ~finite | transparent | huge
    counts = {
        "nonfinite": int((~finite).sum()),
        "transparent": int((finite & transparent).sum()),
        "huge": int((finite & ~transparent & huge).sum()),
    }
    if prune.all():
        prune[:] = False
        counts = {"nonfinite": 0, "transparent": 0, "huge": 0}
    keep = ~prune
    n_kept = int(keep.sum())
    n_pruned = n - n_kept
    idx = np.arange(n, dtype=np.uint64)
    selected = np.zeros(n, bool)

    # -- re-fill by opacity
    elig = keep & visible
    n_refill = min(n_pruned, int(elig.sum()))
    if n_refill:
        w = sigmoid(raw).astype(np.float32)
        keys = np.where(elig, weighted_key_bits(stream_key(seed, step, 1), idx, w), np.uint32(0xFFFFFFFF))
        order = np.argsort(keys.astype(np.uint32), kind="stable")
        selected[order[:n_refill]] = True

    # -- force split in index order
    n_force = 0
    if force_on:
        budget = max(0, max_splats - (n_kept + n_refill))
        cand = np.flatnonzero(elig & (screen > np.float32(split_at_screen_size)) & ~selected)
        take = cand[:budget]
        selected[take] = True
        n_force = len(take)

    # -- growth
    n_grow = 0
    if grow_on:
        cand = elig & (refine_stat > np.float32(growth_grad_threshold))
        want = growth_count(int(cand.sum()), growth_select_fraction, n_pruned)
        headroom = max(0, max_splats - (n_kept + n_refill + n_force))
        free = cand & ~selected
        n_grow = min(want, headroom, int(free.sum()))
        if n_grow:
            with np.errstate(divide="ignore"):
                keys = np.where(free, weighted_key_bits(stream_key(seed, step, 2), idx, refine_stat),
                                np.uint32(0xFFFFFFFF))
            order = np.argsort(keys.astype(np.uint32), kind="stable")
            selected[order[:n_grow]] = True

    # -- layout
    kept_idx = np.flatnonzero(keep)
    split_idx = np.flatnonzero(selected)
    src_rows = np.concatenate([kept_idx, split_idx]).astype(np.uint32)
    zero_mask = np.concatenate([selected[kept_idx], np.ones(len(split_idx), bool)]).astype(np.uint32)
    out = {k: np.asarray(v, np.float64)[src_rows].copy() for k, v in p.items()}

    # -- split maths
    if len(split_idx):
        prow = np.searchsorted(kept_idx, split_idx)
        crow = n_kept + np.arange(len(split_idx))
        ls64 = ls[split_idx].astype(np.float64)
        a = np.argmax(ls[split_idx], axis=1)
        kf = np.full(len(split_idx), FRAC_1_SQRT_2)
        if force_on:
            kf = np.minimum(kf, split_at_screen_size / np.maximum(screen[split_idx].astype(np.float64), 1e-6))
        rows = np.arange(len(split_idx))
        local = np.zeros((len(split_idx), 3))
        local[rows, a] = np.sqrt(np.maximum(1.0 - kf * kf, 0.0)) * np.exp(ls64[rows, a])
        q = rot[split_idx].astype(np.float64)
        qn = np.linalg.norm(q, axis=1, keepdims=True)
        q = np.where(qn > 1e-10, q / np.maximum(qn, 1e-300), np.array([1.0, 0, 0, 0]))
        offset = quat_rotate(q, local)
        new_ls = ls64.copy()
        new_ls[rows, a] += np.log(kf)
        m = means[split_idx].astype(np.float64)
        out["means"][prow] = m - offset
        out["means"][crow] = m + offset
        out["log_scales"][prow] = new_ls
        out["log_scales"][crow] = new_ls
        o = sigmoid(raw[split_idx])
        new_o = np.clip(1.0 - (1.0 - o) ** FRAC_1_SQRT_2, 1.0 / 255.0, 254.0 / 255.0)
        new_raw = np.log(new_o / (1.0 - new_o))
        out["raw_opacities"][prow] = new_raw
        out["raw_opacities"][crow] = new_raw

    # -- opacity decay
    t = min(max(step / max(total_steps, 1), 0.0), 1.0)
    d = opac_decay * (1.0 - t)
    if d > 0:
        o = np.clip(sigmoid(out["raw_opacities"]) - d, 1e-12, 1.0 - 2.0**-24)
        out["raw_opacities"] = np.log(o / (1.0 - o))

    out.update(
        src_rows=src_rows, zero_mask=zero_mask, selected=split_idx, num_kept=n_kept, num_pruned=n_pruned,
        num_refilled=n_refill, num_force_split=n_force, num_grown=n_grow, **{f"num_pruned_{k}": v for k, v in counts.items()},
    )
    return out
