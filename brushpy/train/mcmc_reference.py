"""Plain NumPy model of the MCMC strategy's rules (``--strategy mcmc``), beside the GPU kernels.

"3D Gaussian Splatting as Markov Chain Monte Carlo" (Kheradmand et al., NeurIPS 2024,
arXiv:2404.09591), as gsplat's ``MCMCStrategy`` implements it (``gsplat/strategy/mcmc.py``,
``gsplat/strategy/ops.py``, the ``relocation`` kernel). :mod:`brushpy.train.mcmc` runs the same
rules on the GPU; ``tests/test_mcmc.py`` checks one against the other.

The sampling functions here (:func:`sample_relocation`, :func:`sample_addition`) are also the
GPU path's: the trainer reads the opacities back at each refine (f32 [N], 4 bytes a splat),
draws the multinomial on the CPU with a generator keyed by (seed, step) and applies the result
on the GPU (:func:`brushpy.train.mcmc.apply_pairs`).

Everything works on a splat set in brushpy's parameterisation (``Splats`` names): ``means``
f32 [N,3], ``rotations`` f32 [N,4] (w,x,y,z, not necessarily unit), ``log_scales`` f32 [N,3]
(natural log), ``sh_coeffs`` f32 [N,K,3], ``raw_opacities`` f32 [N] (logits: opacity =
sigmoid(raw)).
"""

from __future__ import annotations

import math

import numpy as np

#: Size of the binomial table (gsplat's ``n_max``): a splat sampled more than ``n_max − 1``
#: times in one refine gets the correction of ``n_max`` copies.
BINOMIAL_N_MAX = 51
#: Random streams of the two samples (:func:`sample_rng`); refine.py uses 1..2, the noise 7.
STREAM_RELOCATE = 11
STREAM_ADD = 12
#: gsplat's noise gate: sigmoid(−K·(opacity − T)) (``DEFAULT_MCMC_OPACITY_K`` / ``_T``).
NOISE_GATE_K = 100.0
NOISE_GATE_T = 0.005
#: largest f32 opacity below 1 that the correction keeps (gsplat clamps to 1 − FLT_EPSILON)
MAX_OPACITY = 1.0 - float(np.finfo(np.float32).eps)


def sigmoid(x) -> np.ndarray:
    """Logistic function in float64."""
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def binomial_table(n_max: int = BINOMIAL_N_MAX) -> np.ndarray:
    """f32 [n_max, n_max]: ``C(n, k)`` at ``[n, k]`` for ``k ≤ n``, 0 above the diagonal (as gsplat's state)."""
    table = np.zeros((n_max, n_max), np.float64)
    for n in range(n_max):
        for k in range(n + 1):
            table[n, k] = math.comb(n, k)
    return table.astype(np.float32)


def relocation_correction(opacities, scales, ratios, binoms=None, min_opacity: float = 0.005):
    """The paper's eq. 9: opacity and scale of each of ``n`` copies that replace one splat.

    ``o' = 1 − (1 − o)^(1/n)``, clamped to ``[min_opacity, 1 − FLT_EPSILON]`` before the scale
    (as gsplat's kernel); ``s' = s · o / Σ_{i=1..n} Σ_{k=0..i−1} C(i−1, k) (−1)^k o'^(k+1) / √(k+1)``
    (when that sum is not positive the scale is kept, a guard the GPU kernel shares).

    Args:
        opacities: f [M] opacities in (0, 1) of the sampled splats.
        scales: f [M, 3] their scales (not logs).
        ratios: int [M] copies ``n`` after the refine (times sampled + 1), clamped to [1, n_max].
        binoms: :func:`binomial_table` (default: ``n_max`` = :data:`BINOMIAL_N_MAX`).
        min_opacity: ``--mcmc-min-opacity``.

    Returns:
        ``(new_opacities f64 [M], new_scales f64 [M, 3])``, computed in float64.
    """
    binoms = binomial_table() if binoms is None else np.asarray(binoms)
    n_max = binoms.shape[0]
    o = np.asarray(opacities, np.float64).reshape(-1)
    s = np.asarray(scales, np.float64).reshape(-1, 3)
    n = np.clip(np.asarray(ratios, np.int64).reshape(-1), 1, n_max)
    new_o = 1.0 - np.power(np.clip(1.0 - o, 0.0, None), 1.0 / n)
    new_o = np.clip(new_o, min_opacity, MAX_OPACITY)
    denom = np.zeros_like(o)
    for j in range(o.size):
        total = 0.0
        for i in range(1, n[j] + 1):
            for k in range(i):
                total += float(binoms[i - 1, k]) * (-1.0) ** k / math.sqrt(k + 1) * new_o[j] ** (k + 1)
        denom[j] = total
    coeff = np.where(denom > 0, o / np.where(denom > 0, denom, 1.0), 1.0)
    return new_o, s * coeff[:, None]


def sample_rng(seed: int, step: int, stream: int) -> np.random.Generator:
    """The generator of one refine's sample: a function of (seed, step, stream) only, so a
    resumed run draws what the uninterrupted one drew."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(step), int(stream)])


def dead_mask(raw_opacities, min_opacity: float) -> np.ndarray:
    """bool [N]: ``sigmoid(raw) ≤ min_opacity`` (gsplat's rule) or a non-finite logit."""
    o = sigmoid(np.asarray(raw_opacities, np.float32).reshape(-1))
    return ~(o > min_opacity)


def sample_relocation(raw_opacities, min_opacity: float, rng: np.random.Generator):
    """Dead splats and the live splats they move onto.

    Returns:
        ``(dead int64 [D], sampled int64 [D])``: ``sampled[j]`` is drawn with replacement
        among the live splats with probability proportional to opacity. Both are empty when
        nothing is dead, or when every splat is (nothing to copy).
    """
    dead = dead_mask(raw_opacities, min_opacity)
    dead_idx = np.flatnonzero(dead)
    alive_idx = np.flatnonzero(~dead)
    if dead_idx.size == 0 or alive_idx.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    w = sigmoid(np.asarray(raw_opacities, np.float32).reshape(-1)[alive_idx])
    pick = rng.choice(alive_idx.size, size=dead_idx.size, replace=True, p=w / w.sum())
    return dead_idx, alive_idx[pick]


def addition_count(num_splats: int, cap: int, growth: float = 1.05) -> int:
    """New splats of one refine: ``max(0, min(cap, int(growth · N)) − N)`` (gsplat's ``_add_new_gs``)."""
    return max(0, min(int(cap), int(growth * int(num_splats))) - int(num_splats))


def sample_addition(raw_opacities, count: int, rng: np.random.Generator) -> np.ndarray:
    """int64 [count]: splats to copy, drawn with replacement among all by opacity (gsplat's ``sample_add``)."""
    raw = np.asarray(raw_opacities, np.float32).reshape(-1)
    w = np.nan_to_num(sigmoid(raw), nan=0.0)
    if count <= 0 or raw.size == 0 or not w.sum() > 0:
        return np.zeros(0, np.int64)
    return rng.choice(raw.size, size=int(count), replace=True, p=w / w.sum())


def copy_ratios(sampled, n_max: int = BINOMIAL_N_MAX) -> np.ndarray:
    """int64 [M]: for each entry of ``sampled``, the copies its splat ends with: times sampled + 1, ≤ n_max."""
    sampled = np.asarray(sampled, np.int64)
    if sampled.size == 0:
        return np.zeros(0, np.int64)
    return np.minimum(np.bincount(sampled)[sampled] + 1, n_max)


def _apply(params: dict, dst, src, min_opacity: float, binoms) -> tuple[dict, np.ndarray]:
    """Rows ``dst`` become copies of rows ``src``; both get eq. 9's opacity and scale."""
    out = {k: np.array(v, copy=True) for k, v in params.items()}
    n_rows = out["means"].shape[0]
    mask = np.zeros(n_rows, bool)
    if len(src) == 0:
        return out, mask
    src = np.asarray(src, np.int64)
    dst = np.asarray(dst, np.int64)
    raw = np.asarray(params["raw_opacities"], np.float32)
    o = sigmoid(raw[src])
    new_o, new_s = relocation_correction(o, np.exp(np.asarray(params["log_scales"], np.float64)[src]),
                                         copy_ratios(src, binoms.shape[0]), binoms, min_opacity)
    new_raw = np.log(new_o / (1.0 - new_o)).astype(np.float32)
    new_log_s = np.log(new_s).astype(np.float32)
    for name in ("means", "rotations", "sh_coeffs"):
        out[name][dst] = out[name][src]
    for rows in (src, dst):
        out["raw_opacities"][rows] = new_raw
        out["log_scales"][rows] = new_log_s
    mask[src] = True
    mask[dst] = True
    return out, mask


def relocate(params: dict, dead, sampled, min_opacity: float = 0.005, binoms=None) -> tuple[dict, np.ndarray]:
    """Move dead splats onto sampled live ones (gsplat's ``relocate``).

    Row ``dead[j]`` becomes a copy of row ``sampled[j]``; every sampled splat and its copies
    get the opacity and scale of :func:`relocation_correction` with ``n`` = times sampled + 1.

    Returns:
        ``(new params, reset bool [N])``: ``reset`` marks the rows whose Adam moments restart
        (the dead rows and the sampled sources; gsplat zeroes only the sources' and leaves the
        dead rows' old moments, which belong to another splat).
    """
    binoms = binomial_table() if binoms is None else np.asarray(binoms)
    return _apply(params, dead, sampled, min_opacity, binoms)


def add(params: dict, sampled, min_opacity: float = 0.005, binoms=None) -> tuple[dict, np.ndarray]:
    """Append a copy of each ``sampled`` splat (gsplat's ``sample_add``).

    Rows ``N + j`` copy row ``sampled[j]``; sources and copies get the eq. 9 correction.

    Returns:
        ``(new params with N + len(sampled) rows, reset bool [N + len(sampled)])``: the new rows
        start with zero moments, and so do the sources (gsplat keeps the sources' moments).
    """
    binoms = binomial_table() if binoms is None else np.asarray(binoms)
    sampled = np.asarray(sampled, np.int64)
    n = np.asarray(params["means"]).shape[0]
    grown = {k: np.concatenate([np.asarray(v), np.asarray(v)[sampled]]) for k, v in params.items()}
    return _apply(grown, n + np.arange(sampled.size), sampled, min_opacity, binoms)


def covariances(rotations, log_scales) -> np.ndarray:
    """f64 [N,3,3]: ``Σ = R diag(exp(log_scales))² Rᵀ`` with R from the normalised quaternion (w,x,y,z)."""
    q = np.asarray(rotations, np.float64)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    r = np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], 1)
    s2 = np.exp(2.0 * np.asarray(log_scales, np.float64))
    return np.einsum("nij,nj,nkj->nik", r, s2, r)


def noise_gate(raw_opacities) -> np.ndarray:
    """f64 [N]: gsplat's ``sigmoid(−100 · (opacity − 0.005))``: ~1 for dead splats, ~0 for opaque ones."""
    return sigmoid(-NOISE_GATE_K * (sigmoid(raw_opacities) - NOISE_GATE_T))


def position_noise(rotations, log_scales, raw_opacities, normals, scale: float, clamp_to: float) -> np.ndarray:
    """f64 [N,3]: the step added to the means, ``clamp(Σ · ε · gate · scale, ±clamp_to)``.

    ``ε`` = ``normals`` [N,3] (standard normal draws), ``scale`` = ``lr_mean · --mcmc-noise-lr``
    (gsplat's ``inject_noise_to_position``; the clamp to the scene extent is brushpy's guard,
    shared with the default strategy's noise).
    """
    step = np.einsum("nij,nj->ni", covariances(rotations, log_scales), np.asarray(normals, np.float64))
    step *= (noise_gate(raw_opacities) * float(scale))[:, None]
    return np.clip(step, -clamp_to, clamp_to)


def regularizer(raw_opacities, log_scales, opacity_reg: float, scale_reg: float):
    """The two terms gsplat adds to the loss, and their gradients.

    ``opacity_reg · mean(sigmoid(raw))`` and ``scale_reg · mean(exp(log_scales))`` (the mean of
    a positive quantity: an L1 norm over the count; gsplat's ``opacity_reg_loss`` and
    ``scale_reg_loss``).

    Returns:
        ``(value f64, d/d raw_opacities f64 [N], d/d log_scales f64 [N,3])``.
    """
    raw = np.asarray(raw_opacities, np.float64).reshape(-1)
    ls = np.asarray(log_scales, np.float64).reshape(-1, 3)
    n = max(raw.size, 1)
    o = sigmoid(raw)
    e = np.exp(ls)
    value = opacity_reg * o.sum() / n + scale_reg * e.sum() / (3 * n)
    return value, opacity_reg * o * (1.0 - o) / n, scale_reg * e / (3 * n)


__all__ = [
    "BINOMIAL_N_MAX", "MAX_OPACITY", "NOISE_GATE_K", "NOISE_GATE_T", "STREAM_ADD", "STREAM_RELOCATE", "add",
    "addition_count", "binomial_table", "copy_ratios", "covariances", "dead_mask", "noise_gate", "position_noise",
    "regularizer", "relocate", "relocation_correction", "sample_addition", "sample_relocation", "sample_rng",
    "sigmoid",
]
