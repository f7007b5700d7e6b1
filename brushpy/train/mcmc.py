"""``--strategy mcmc``: 3D Gaussian Splatting as Markov Chain Monte Carlo, on the GPU.

Kheradmand et al., "3D Gaussian Splatting as Markov Chain Monte Carlo" (NeurIPS 2024,
arXiv:2404.09591), with the rules and defaults of gsplat's ``MCMCStrategy``
(``gsplat/strategy/mcmc.py``, ``ops.relocate`` / ``ops.sample_add`` /
``ops.inject_noise_to_position``, the ``relocation`` kernel; ``examples/simple_trainer.py``'s
``mcmc`` config for the regularisers). The splat count is a budget: nothing is pruned or split.

* **Relocation** (every refine): splats with opacity ≤ ``--mcmc-min-opacity`` are dead; each
  becomes a copy of a live splat drawn with replacement with probability ∝ opacity. A splat
  that ends as ``n`` copies (itself + times drawn) gets eq. 9's opacity ``1 − (1 − o)^(1/n)``
  and scale ``s · o / Σ_{i=1..n} Σ_{k<i} C(i−1,k)(−1)^k o'^(k+1)/√(k+1)`` (binomial table
  precomputed once, ``n ≤ 51`` as gsplat). Adam moments of the copies and the sources restart.
* **Addition** (every refine before ``--growth-stop-iter``): ``max(0, min(cap, int(g·N)) − N)``
  more copies (``g`` = ``--mcmc-cap-growth``, cap = ``--max-splats``), drawn over all splats by
  opacity, same correction, zero moments.
* **Noise** (every step): ``means += Σ ε · sigmoid(−100 (o − 0.005)) · lr_mean · --mcmc-noise-lr``
  with ``Σ = R diag(s)² Rᵀ`` and ``ε ~ N(0, I)``; clamped to the scene extent per axis (brushpy's
  guard, as the default noise).
* **Regularisers** (every step, a tape op): ``--mcmc-opacity-reg · mean(o) +
  --mcmc-scale-reg · mean(s)`` added to the loss (:class:`MCMCRegularizerOp`).

Sampling: at each refine the opacities are read back (f32 [N]; the default strategy reads back
the means, 12 bytes a splat, for its bounds) and the multinomial is drawn on the CPU by
:func:`brushpy.train.mcmc_reference.sample_relocation` / ``sample_addition`` with a generator
keyed by (seed, step, stream), so a resumed run draws the same; the pairs (destination row,
source row, copies) go up as one u32 array and everything else runs on the GPU
(``shaders/mcmc.wgsl``). The NumPy model of every rule is :mod:`brushpy.train.mcmc_reference`.

Differences from gsplat, on purpose: the dead rows' Adam moments restart too (gsplat zeroes
only the sources', leaving a relocated row the moments of the splat it replaced), and so do the
sources' of an addition (gsplat keeps them); a non-finite opacity counts as dead; the noise is
clamped to the scene extent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..autodiff import Op
from ..gpu import GpuTensor, Kernel, Recorder, UniformLayout, workgroups_for
from ..gpu.rows import gather_rows
from ..loss.image_loss import REDUCE_PARAMS, reduce_kernel
from ..render.splats import Splats
from .mcmc_reference import (BINOMIAL_N_MAX, MAX_OPACITY, NOISE_GATE_K, NOISE_GATE_T, STREAM_ADD, STREAM_RELOCATE,
                             addition_count, binomial_table, copy_ratios, sample_addition, sample_relocation,
                             sample_rng)
from .refine import RefineOptimizer, stream_key

_WG = 256
#: Random stream of the MCMC position noise (refine.py uses 1..2, the default noise 7).
NOISE_STREAM = 13

#: shaders/mcmc.wgsl PAIR_COPY and PAIR_SOURCE
PAIR_PARAMS = UniformLayout("Params", [
    ("count", "u32", "pairs"),
    ("sh_width", "u32", "floats per SH row (3K)"),
    ("n_max", "u32", "binomial table size"),
    ("_pad0", "u32"),
    ("min_opacity", "f32"),
    ("max_opacity", "f32"),
    ("_pad1", "f32"),
    ("_pad2", "f32"),
])
#: shaders/mcmc.wgsl NOISE
NOISE_PARAMS = UniformLayout("Params", [
    ("num_splats", "u32"),
    ("key", "u32", "random stream of this step"),
    ("scale", "f32", "lr_mean · --mcmc-noise-lr"),
    ("clamp_to", "f32", "scene extent"),
    ("gate_k", "f32"),
    ("gate_t", "f32"),
    ("_pad0", "f32"),
    ("_pad1", "f32"),
])
#: shaders/mcmc.wgsl REGULARIZE
REG_PARAMS = UniformLayout("Params", [
    ("count", "u32", "splats"),
    ("_pad", "u32"),
    ("opacity_w", "f32", "--mcmc-opacity-reg / N"),
    ("scale_w", "f32", "--mcmc-scale-reg / 3N"),
])


class _Kernels:
    """The MCMC kernels of one context (``ctx.cache(_Kernels, _Kernels)``)."""

    def __init__(self, ctx):
        self.copy = Kernel("mcmc.wgsl", defines={"PAIR_COPY": True}, structs=[PAIR_PARAMS], ctx=ctx)
        self.source = Kernel("mcmc.wgsl", defines={"PAIR_SOURCE": True}, structs=[PAIR_PARAMS], ctx=ctx)
        self.noise = Kernel("mcmc.wgsl", defines={"NOISE": True}, structs=[NOISE_PARAMS], ctx=ctx)
        self.regularize = Kernel("mcmc.wgsl", defines={"REGULARIZE": True}, structs=[REG_PARAMS], ctx=ctx)
        self.reduce = reduce_kernel()
        self.binoms = GpuTensor.from_numpy(binomial_table(BINOMIAL_N_MAX), label="mcmc binomials", ctx=ctx)

    @classmethod
    def get(cls) -> "_Kernels":
        from ..gpu import get_context

        return get_context().cache(cls, cls)


def _sh_width(splats: Splats) -> int:
    """Floats per SH row (3K)."""
    return int(np.prod(splats.sh_coeffs.shape[1:]))


def apply_pairs(rec: Recorder, splats: Splats, dst, src, reset: GpuTensor, min_opacity: float) -> None:
    """Record: row ``dst[j]`` becomes a copy of row ``src[j]``, both with eq. 9's correction.

    ``n`` for a source = times it appears in ``src`` + 1 (:func:`~brushpy.train.mcmc_reference.copy_ratios`).
    ``dst`` rows must not be ``src`` rows. Modifies ``splats`` in place.

    Args:
        dst, src: int arrays [M] of row indices (host side; uploaded as one u32 [M,3] array).
        reset: u32 [N] flags; set to 1 at every ``dst`` and ``src`` row (Adam restarts there).
        min_opacity: the lower clamp of the corrected opacity (``--mcmc-min-opacity``).
    """
    src = np.asarray(src, np.int64)
    m = src.size
    if m == 0:
        return
    k = _Kernels.get()
    pairs = np.stack([np.asarray(dst, np.int64), src, copy_ratios(src, BINOMIAL_N_MAX)], 1).astype(np.uint32)
    pairs_t = GpuTensor.from_numpy(pairs.reshape(-1), label="mcmc pairs", dtype=np.uint32)
    params = PAIR_PARAMS.pack(count=m, sh_width=_sh_width(splats), n_max=BINOMIAL_N_MAX,
                              min_opacity=float(min_opacity), max_opacity=MAX_OPACITY)
    with rec.stage("mcmc.relocate"):
        rec.dispatch(k.copy, {"params": params, "pairs": pairs_t, "binoms": k.binoms, "means": splats.means,
                              "rotations": splats.rotations, "log_scales": splats.log_scales,
                              "sh_coeffs": splats.sh_coeffs, "raw_opacities": splats.raw_opacities,
                              "reset": reset}, workgroups_for(m, _WG))
        rec.dispatch(k.source, {"params": params, "pairs": pairs_t, "log_scales": splats.log_scales,
                                "raw_opacities": splats.raw_opacities}, workgroups_for(m, _WG))


def relocate_gpu(rec: Recorder, splats: Splats, optimizer: RefineOptimizer | None, dead, sampled,
                 min_opacity: float) -> None:
    """Record the relocation of rows ``dead`` onto rows ``sampled`` (in place; moments of both restart).

    The sample itself comes from :func:`~brushpy.train.mcmc_reference.sample_relocation` (or a test).
    """
    if len(dead) == 0:
        return
    reset = GpuTensor.empty((splats.num_splats,), np.uint32, "mcmc reset")
    rec.clear(reset)
    apply_pairs(rec, splats, dead, sampled, reset, min_opacity)
    if optimizer is not None:
        with rec.stage("mcmc.optimizer"):
            optimizer.zero_mask(rec, reset)


def add_gpu(rec: Recorder, splats: Splats, optimizer: RefineOptimizer | None, sampled,
            min_opacity: float) -> Splats:
    """Record appending a copy of each row in ``sampled``; returns the new splat set (N + M rows).

    Rows ``N + j`` copy ``sampled[j]``; sources and copies get eq. 9's correction; the optimizer's
    moments are gathered (new rows zero) and the sources' restart.
    """
    sampled = np.asarray(sampled, np.int64)
    n, m = splats.num_splats, sampled.size
    if m == 0:
        return splats
    src_rows = np.concatenate([np.arange(n, dtype=np.uint32), np.full(m, 0xFFFFFFFF, np.uint32)])
    rows_t = GpuTensor.from_numpy(src_rows, label="mcmc src_rows", dtype=np.uint32)
    with rec.stage("mcmc.gather"):
        new = Splats(*(gather_rows(rec, getattr(splats, f), rows_t, n + m, label=f) for f in Splats.PARAM_NAMES))
    reset = GpuTensor.empty((n + m,), np.uint32, "mcmc reset")
    rec.clear(reset)
    apply_pairs(rec, new, n + np.arange(m), sampled, reset, min_opacity)
    if optimizer is not None:
        with rec.stage("mcmc.optimizer"):
            optimizer.gather(rec, rows_t)
            optimizer.zero_mask(rec, reset)
    return new


@dataclass
class MCMCRefineResult:
    """What :func:`mcmc_refine` did: the splat set after it and the counts."""

    splats: Splats
    num_relocated: int = 0
    num_added: int = 0

    @property
    def num_splats(self) -> int:
        return self.splats.num_splats


def _read_raw_opacities(rec: Recorder, splats: Splats) -> np.ndarray:
    rec.submit()
    return splats.raw_opacities.numpy().reshape(-1)


def mcmc_refine(rec: Recorder, splats: Splats, optimizer: RefineOptimizer | None, config, step: int, seed: int,
                add: bool = True) -> MCMCRefineResult:
    """One MCMC refine: relocate the dead splats, then add ``--mcmc-cap-growth`` more (module docstring).

    Args:
        rec: recorder; it is submitted to read the opacities back (twice: before each sample).
        splats: the splat set (modified in place by the relocation; a new set when splats are added).
        optimizer: its moments are reset / gathered (:class:`~brushpy.train.refine.RefineOptimizer`).
        config: ``mcmc_min_opacity``, ``mcmc_cap_growth``, ``max_splats`` (:class:`TrainConfig`).
        step: training step (a random-stream input).
        seed: run seed (a random-stream input).
        add: whether to add splats (the trainer passes ``step < --growth-stop-iter``).
    """
    min_o = float(config.mcmc_min_opacity)
    dead, sampled = sample_relocation(_read_raw_opacities(rec, splats), min_o, sample_rng(seed, step, STREAM_RELOCATE))
    relocate_gpu(rec, splats, optimizer, dead, sampled, min_o)
    n_add = addition_count(splats.num_splats, config.max_splats, config.mcmc_cap_growth) if add else 0
    if n_add > 0:
        picks = sample_addition(_read_raw_opacities(rec, splats), n_add, sample_rng(seed, step, STREAM_ADD))
        splats = add_gpu(rec, splats, optimizer, picks, min_o)
        n_add = int(picks.size)
    rec.submit()
    return MCMCRefineResult(splats, num_relocated=int(dead.size), num_added=n_add)


def record_noise(rec: Recorder, splats: Splats, scale: float, key: int, clamp_to: float) -> None:
    """Record the MCMC position noise of one step (module docstring) into ``splats.means``.

    Args:
        scale: ``lr_mean · --mcmc-noise-lr`` (the means' learning rate this step, scene units).
        key: the step's random stream (``stream_key(seed, step, NOISE_STREAM)``).
        clamp_to: largest step per axis (scene units).
    """
    n = splats.num_splats
    if n == 0 or not scale > 0:
        return
    k = _Kernels.get()
    params = NOISE_PARAMS.pack(num_splats=n, key=int(key), scale=float(scale), clamp_to=float(clamp_to),
                               gate_k=NOISE_GATE_K, gate_t=NOISE_GATE_T)
    with rec.stage("mcmc.noise"):
        rec.dispatch(k.noise, {"params": params, "raw_opacities": splats.raw_opacities, "rotations": splats.rotations,
                               "log_scales": splats.log_scales, "means": splats.means}, workgroups_for(n, _WG))


def noise_key(seed: int, step: int) -> int:
    """The random stream of step ``step``'s MCMC noise."""
    return stream_key(seed, step, NOISE_STREAM)


class MCMCRegularizer:
    """Buffers of :class:`MCMCRegularizerOp`, reused every step (reallocated when N changes).

    Args:
        opacity_reg, scale_reg: ``--mcmc-opacity-reg``, ``--mcmc-scale-reg``.
    """

    def __init__(self, opacity_reg: float, scale_reg: float):
        self.opacity_reg = float(opacity_reg)
        self.scale_reg = float(scale_reg)
        self.terms = GpuTensor.empty((2,), np.float32, "mcmc reg terms")
        self.unit_seed = GpuTensor.from_numpy(np.ones(2, np.float32), label="mcmc reg seed")
        self._n = -1

    @property
    def enabled(self) -> bool:
        return self.opacity_reg > 0 or self.scale_reg > 0

    def _buffers(self, n: int) -> None:
        if n != self._n:
            self.v_raw_opacities = GpuTensor.empty((n,), np.float32, "v_raw_opacities (reg)")
            self.v_log_scales = GpuTensor.empty((n, 3), np.float32, "v_log_scales (reg)")
            self.partials = GpuTensor.empty((2 * max(1, -(-n // _WG)),), np.float32, "mcmc reg partials")
            self._n = n

    def record(self, rec: Recorder, raw_opacities: GpuTensor, log_scales: GpuTensor) -> None:
        """Record the two terms (into :attr:`terms`) and their gradients (:attr:`v_raw_opacities`,
        :attr:`v_log_scales`) for raw opacities f32 [N] and log scales f32 [N,3]."""
        n = raw_opacities.shape[0]
        self._buffers(n)
        k = _Kernels.get()
        groups = -(-n // _WG)
        params = REG_PARAMS.pack(count=n, opacity_w=self.opacity_reg / max(n, 1),
                                 scale_w=self.scale_reg / (3 * max(n, 1)))
        with rec.stage("mcmc.regularize"):
            rec.clear(self.terms)
            if n == 0:
                return
            rec.dispatch(k.regularize, {"params": params, "raw_opacities": raw_opacities, "log_scales": log_scales,
                                        "v_raw_opacities": self.v_raw_opacities, "v_log_scales": self.v_log_scales,
                                        "partials": self.partials}, workgroups_for(n, _WG))
            rec.dispatch(k.reduce, {"params": REDUCE_PARAMS.pack(count=groups, out_offset=0),
                                    "partials": self.partials, "out": self.terms}, (1, 1, 1))

    def read(self) -> float:
        """The last recorded value (opacity term + scale term; waits for the GPU)."""
        return float(self.terms.numpy().astype(np.float64).sum())


class MCMCRegularizerOp(Op):
    """The MCMC regularisers as a loss op on the tape (fused: the gradients come with the forward).

    inputs: ``{"raw_opacities": f32 [N], "log_scales": f32 [N,3]}`` (the trained tensors);
    outputs: ``{"terms": f32 [2]}``, the opacity and scale terms (the loss adds their sum).
    Seed it with :attr:`seed` (ones); like :class:`brushpy.autodiff.FusedLossOp` any other seed raises.
    """

    name = "mcmc_reg"

    def __init__(self, reg: MCMCRegularizer, rec: Recorder, splats: Splats):
        reg.record(rec, splats.raw_opacities, splats.log_scales)
        self.reg = reg
        self.inputs = {"raw_opacities": splats.raw_opacities, "log_scales": splats.log_scales}
        self.outputs = {"terms": reg.terms}

    @property
    def seed(self) -> dict:
        return {self.outputs["terms"]: self.reg.unit_seed}

    def backward(self, rec: Recorder, grad_outputs: dict) -> dict:
        if grad_outputs["terms"] is not self.reg.unit_seed:
            raise ValueError("MCMCRegularizerOp's gradient is precomputed for a seed of ones: seed the tape with op.seed")
        return {"raw_opacities": self.reg.v_raw_opacities, "log_scales": self.reg.v_log_scales}


__all__ = [
    "MCMCRefineResult", "MCMCRegularizer", "MCMCRegularizerOp", "NOISE_STREAM", "add_gpu", "apply_pairs",
    "mcmc_refine", "noise_key", "record_noise", "relocate_gpu",
]
