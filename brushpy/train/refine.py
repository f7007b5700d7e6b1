"""Refine on the GPU: prune, re-fill, force-split, grow and decay splats.

Every ``--refine-every`` steps (until 95% of training, the trainer's call),
:func:`refine` rebuilds the splat set from the statistics gathered since the
last refine (:class:`RefineStats`). The rules follow Brush's trainer
(``brush-train``, ``SplatTrainer::refine``) with the split maths of DESIGN.md:

1. **Prune** a splat when any parameter is non-finite, its opacity is below
   1/255, one of its scales exceeds 100x the scene half-extent, or its mean is
   more than 100x the scene half-extent from the scene centre along some axis
   (:class:`SceneBounds`). If every splat would go, none is pruned (as Brush).
2. **Re-fill** the P pruned splats' budget: split min(P, #visible survivors)
   survivors sampled by opacity without replacement.
3. **Force-split** visible survivors whose largest on-screen extent since the
   last refine exceeds ``split_at_screen_size`` of the image (0 disables), in
   index order, as long as ``max_splats`` allows.
4. **Grow** (while ``step < growth_stop_iter``): of the T visible survivors
   whose statistic exceeds ``growth_grad_threshold``, split
   ``round(T·growth_select_fraction) − P`` more (at least 0), sampled by the
   statistic without replacement among those not already split, within
   ``max_splats``.
5. **Split** (DESIGN.md; Brush's rule restricted to the longest axis): the
   longest axis shrinks by ``k = 1/√2`` (with force-split on:
   ``min(1/√2, split_at_screen_size / screen size)``, so the halves of an
   oversized splat land at the limit, as Brush), parent and child move by
   ``±R·e_a·√(1−k²)·s_a`` (Brush's mass-conserving offset), both get opacity
   ``1 − (1 − o)^(1/√2)`` clamped to [1/255, 254/255], both restart Adam.
6. **Decay** every opacity: ``o ← clamp(o − opac_decay·(1 − step/total_steps))``.

Random sampling is deterministic: uniform numbers come from a counter-based
PCG hash of (seed, step, stream, splat index) (``shaders/refine_common.wgsl``),
and a weighted sample of ``k`` without replacement takes the ``k`` smallest
Efraimidis–Spirakis keys ``−ln(u)/w`` ("Weighted random sampling with a
reservoir", 2006), sorted on the GPU as 32-bit keys by the radix sort (only
the keys that can make the sample: those below the histogram bin where the
count reaches ``k``). Compaction uses the GPU prefix sum. Two small counter
read-backs (and one 8 KiB key histogram per large sample) size the later
passes; the scene bounds are recomputed at the end from a read-back of the
new means (as Brush).

New row layout: survivors keep their order in rows ``[0, n_kept)``; the
children of split splats follow in the order of their parents' old index.
``src_rows[r]`` names the old row of new row ``r``; ``zero_mask[r]`` marks the
rows whose Adam moments restart (both halves of every split).

Trainer contract::

    bounds = scene_bounds(splats.means)          # once at start; lr_mean *= bounds.median_size
    stats = RefineStats(splats.num_splats)
    ...each step, after the backward, in the step's recorder:
    stats.accumulate(rec, forward_state, refine_weight)
    ...every refine_every steps while step < 0.95 * total_steps:
    res = refine(rec, splats, stats, adam, config, step, bounds, seed)
    splats, stats, bounds = res.splats, res.stats, res.bounds

Differences from Brush, on purpose: samples are drawn without replacement
(Brush draws with replacement and drops duplicates, so it may split fewer);
growth excludes splats already chosen by re-fill or force-split (Brush counts
them again, which also shrinks its growth); children copy the parent's raw
quaternion (Brush stores it normalised; same rotation). The split follows
DESIGN.md: only the longest axis shrinks and moves (Brush's current rule also
shrinks the other axes by ``1 − (1−k)·s_i²/s_max²`` and offsets them, which
reduces to this when the other axes are much smaller).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ..gpu import GpuTensor, Kernel, Recorder, UniformLayout, workgroups_for
from ..render.bounds import BOUND_PERCENTILE, SceneBounds, scene_bounds  # noqa: F401  (re-exported)
from ..render.prefix_sum import inclusive_prefix_sum
from ..render.sort import radix_sort_pairs
from ..render.splats import Splats
from .config import TrainConfig

# ------------------------------------------------------------------ uniform layouts
#: shaders/refine_stats.wgsl
STATS_PARAMS = UniformLayout("Params", [
    ("num_visible", "u32"),
    ("compact_weights", "u32", "1: weight indexed by compact id, 0: by global id"),
    ("width", "f32"),
    ("height", "f32"),
])
#: shaders/refine_mark.wgsl
MARK_PARAMS = UniformLayout("Params", [
    ("n", "u32"),
    ("sh_width", "u32", "floats per SH row (3K)"),
    ("mode", "u32", "bit 0 force-split on, bit 1 growth on, bit 2 pruning on"),
    ("refill_key", "u32"),
    ("raw_opacity_min", "f32", "logit(1/255)"),
    ("log_scale_max", "f32", "ln(100 * scene half-extent)"),
    ("distance_max", "f32", "100 * scene half-extent (per axis from the centre)"),
    ("grow_threshold", "f32"),
    ("center_x", "f32"),
    ("center_y", "f32"),
    ("center_z", "f32"),
    ("split_screen", "f32"),
])
#: shaders/refine_select.wgsl (every entry point)
SELECT_PARAMS = UniformLayout("Params", [
    ("count", "u32", "SELECT_FIRST: how many to take; others: number of splats"),
    ("budget", "u32", "FORCE_SELECT: max force splits; KEY_FLAGS/KEY_COMPACT: key limit"),
    ("grow_key", "u32", "FORCE_SELECT: random stream of the growth sample"),
    ("_pad", "u32"),
])
#: shaders/refine_compact.wgsl
COMPACT_PARAMS = UniformLayout("Params", [("n", "u32"), ("n_kept", "u32"), ("_pad0", "u32"), ("_pad1", "u32")])
#: shaders/refine_split.wgsl with SPLIT
SPLIT_PARAMS = UniformLayout("Params", [
    ("n_split", "u32"), ("n_kept", "u32"), ("split_screen", "f32", "0 = force-split off"), ("_pad", "u32"),
])
#: shaders/refine_split.wgsl with DECAY
DECAY_PARAMS = UniformLayout("Params", [("count", "u32"), ("decay", "f32"), ("_pad0", "u32"), ("_pad1", "u32")])
from ..gpu.rows import gather_rows

_WG = 256

#: Brush's MIN_OPACITY: splats below this opacity are pruned.
MIN_OPACITY = 1.0 / 255.0
#: Prune splats whose scale or distance from the centre exceeds this many scene half-extents.
PRUNE_EXTENT_FACTOR = 100.0

# Counter slots written by the refine kernels (u32 each).
_C_PRUNED, _C_REFILL_ELIGIBLE, _C_FORCE_CAND, _C_GROW_CAND, _C_KEPT = 0, 1, 2, 3, 4
_C_NONFINITE, _C_TRANSPARENT, _C_HUGE, _C_FORCE_SEL, _C_GROW_ELIGIBLE = 5, 6, 7, 8, 9
_NUM_COUNTERS = 16

# Key histogram used to cut the weighted-sample sort short: top 11 bits of the
# key (sign, exponent, 2 mantissa bits: quarter-octave bins), 8 KiB of workgroup memory.
_HIST_BITS = 11
_HIST_BINS = 1 << _HIST_BITS

# Random streams (one per sampling decision).
STREAM_REFILL = 1
STREAM_GROW = 2

_M32 = 0xFFFFFFFF


# --------------------------------------------------------------------------- RNG
def pcg_hash(v: int) -> int:
    """The PCG hash of ``shaders/refine_common.wgsl`` on a Python int (u32 in, u32 out)."""
    state = (v * 747796405 + 2891336453) & _M32
    word = (((state >> ((state >> 28) + 4)) ^ state) * 277803737) & _M32
    return ((word >> 22) ^ word) & _M32


def stream_key(seed: int, step: int, stream: int) -> int:
    """Key of one random stream: ``pcg(pcg(pcg(seed) ^ step) ^ stream)`` (all u32)."""
    return pcg_hash(pcg_hash(pcg_hash(seed & _M32) ^ (step & _M32)) ^ (stream & _M32))


# ------------------------------------------------------------------ statistics
class RefineStats:
    """Per-splat statistics gathered between two refines (GPU tensors, length N).

    Attributes:
        refine_stat: f32 [N] max over steps of the backward's per-splat growth
            weight (Brush: ``|∂L/∂mean2d · (W, H)|``, see the options doc).
        visible_count: u32 [N] number of steps in which the splat survived the
            forward's culling (Brush's ``vis_weight``); > 0 means "visible".
        max_screen_frac: f32 [N] max over steps of the splat's largest on-screen
            half-extent as a fraction of the image size,
            ``max(extent_x / W, extent_y / H)`` with the 1/255-alpha extent
            (as Brush's ``max_screen_size``).
    """

    def __init__(self, num_splats: int):
        n = int(num_splats)
        self.refine_stat = GpuTensor.empty((n,), np.float32, "refine_stat")
        self.visible_count = GpuTensor.empty((n,), np.uint32, "visible_count")
        self.max_screen_frac = GpuTensor.empty((n,), np.float32, "max_screen_frac")
        self._kernel = Kernel("refine_stats.wgsl", structs=[STATS_PARAMS])

    @property
    def num_splats(self) -> int:
        return self.refine_stat.shape[0]

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the three statistics (for checkpoints; bit-exact with :meth:`load_state_dict`)."""
        return {"refine_stat": self.refine_stat.numpy(), "visible_count": self.visible_count.numpy(),
                "max_screen_frac": self.max_screen_frac.numpy()}

    @classmethod
    def from_state_dict(cls, state: dict[str, np.ndarray]) -> "RefineStats":
        """Statistics restored from :meth:`state_dict`.

        Raises:
            ValueError: a missing key or arrays of different lengths.
        """
        names = ("refine_stat", "visible_count", "max_screen_frac")
        missing = [k for k in names if k not in state]
        if missing:
            raise ValueError(f"RefineStats.from_state_dict: missing {missing}")
        lengths = {np.asarray(state[k]).size for k in names}
        if len(lengths) != 1:
            raise ValueError(f"RefineStats.from_state_dict: arrays have different lengths {sorted(lengths)}")
        out = cls(lengths.pop())
        out.refine_stat.write(np.asarray(state["refine_stat"], np.float32))
        out.visible_count.write(np.asarray(state["visible_count"], np.uint32))
        out.max_screen_frac.write(np.asarray(state["max_screen_frac"], np.float32))
        return out

    def reset(self, rec: Recorder) -> None:
        """Record zeroing all three statistics."""
        rec.clear(self.refine_stat)
        rec.clear(self.visible_count)
        rec.clear(self.max_screen_frac)

    def accumulate(self, rec: Recorder, state, refine_weight: GpuTensor, compact_weights: bool = False) -> None:
        """Record folding one training step into the statistics.

        Args:
            state: the step's :class:`~brushpy.render.state.ForwardState`
                (``global_from_compact``, ``projected`` [V,9] conic and opacity,
                ``num_visible``, ``camera.width/height``).
            refine_weight: f32 per-splat weight of this step from the backward,
                indexed by global splat id ([N]) or, with ``compact_weights``,
                by compact (visible) id ([V]). Non-finite weights are ignored.
        """
        self.accumulate_buffers(
            rec, state.global_from_compact, state.projected, int(state.num_visible),
            state.camera.width, state.camera.height, refine_weight, compact_weights,
        )

    def accumulate_buffers(self, rec: Recorder, global_from_compact: GpuTensor, projected: GpuTensor,
                           num_visible: int, width: int, height: int, refine_weight: GpuTensor,
                           compact_weights: bool = False) -> None:
        """:meth:`accumulate` from the raw buffers (``projected`` f32 [V,9], see ``render/state.py``)."""
        if num_visible <= 0:
            return
        need = num_visible if compact_weights else self.num_splats
        if refine_weight.numel < need:
            raise ValueError(f"refine_weight has {refine_weight.numel} entries, expected {need}")
        params = STATS_PARAMS.pack(num_visible=num_visible, compact_weights=1 if compact_weights else 0,
                                   width=float(width), height=float(height))
        rec.dispatch(
            self._kernel,
            {"global_from_compact": global_from_compact, "projected": projected, "refine_weight": refine_weight,
             "refine_stat": self.refine_stat, "visible_count": self.visible_count,
             "max_screen_frac": self.max_screen_frac, "params": params},
            workgroups_for(num_visible, _WG),
        )


# ------------------------------------------------------------------ optimizer hook
@runtime_checkable
class RefineOptimizer(Protocol):
    """What refine needs from the optimizer to rebuild its moments for the new rows.

    :class:`brushpy.optim.adam.Adam` implements it.
    """

    def gather(self, rec: Recorder, idx: GpuTensor) -> None:
        """Replace every per-splat state tensor ``t`` [N, ...] by ``t[idx]`` (``idx`` u32 [N_new])."""

    def zero_mask(self, rec: Recorder, mask: GpuTensor) -> None:
        """Zero the state of every row ``r`` with ``mask[r] != 0`` (``mask`` u32 [N_new])."""


# ------------------------------------------------------------------ result
@dataclass
class RefineResult:
    """What :func:`refine` returns.

    Attributes:
        splats: the new splat set (new tensors, ``num_splats`` rows).
        stats: fresh zeroed :class:`RefineStats` for the new size.
        src_rows: u32 [num_splats] old row of each new row.
        zero_mask: u32 [num_splats] 1 where Adam moments were zeroed.
        bounds: :func:`scene_bounds` of the new means.
        num_pruned: pruned splats (= non-finite + transparent + huge).
        num_refilled / num_force_split / num_grown: splits by cause.
    """

    splats: Splats
    stats: RefineStats
    src_rows: GpuTensor
    zero_mask: GpuTensor
    bounds: SceneBounds
    num_pruned: int = 0
    num_pruned_nonfinite: int = 0
    num_pruned_transparent: int = 0
    num_pruned_huge: int = 0
    num_refilled: int = 0
    num_force_split: int = 0
    num_grown: int = 0

    @property
    def num_split(self) -> int:
        return self.num_refilled + self.num_force_split + self.num_grown

    @property
    def num_splats(self) -> int:
        return self.splats.num_splats


# ------------------------------------------------------------------ kernels
class _Kernels:
    """Refine's kernels for one context (kept in ``ctx.cache(_Kernels, _Kernels)``)."""

    def __init__(self, ctx):
        sel = [SELECT_PARAMS]
        self.mark = Kernel("refine_mark.wgsl", structs=[MARK_PARAMS], ctx=ctx)
        self.select_first = Kernel("refine_select.wgsl", defines={"SELECT_FIRST": True}, structs=sel, ctx=ctx)
        self.key_histogram = Kernel("refine_select.wgsl", defines={
            "KEY_HISTOGRAM": True, "HIST_BITS": _HIST_BITS, "HIST_BINS": _HIST_BINS}, structs=sel, ctx=ctx)
        self.key_flags = Kernel("refine_select.wgsl", defines={"KEY_FLAGS": True}, structs=sel, ctx=ctx)
        self.key_compact = Kernel("refine_select.wgsl", defines={"KEY_COMPACT": True}, structs=sel, ctx=ctx)
        self.force_flags = Kernel("refine_select.wgsl", defines={"FORCE_FLAGS": True}, structs=sel, ctx=ctx)
        self.force_select = Kernel("refine_select.wgsl", defines={"FORCE_SELECT": True}, structs=sel, ctx=ctx)
        self.compact = Kernel("refine_compact.wgsl", structs=[COMPACT_PARAMS], ctx=ctx)
        self.split = Kernel("refine_split.wgsl", defines={"SPLIT": True}, structs=[SPLIT_PARAMS], ctx=ctx)
        self.decay = Kernel("refine_split.wgsl", defines={"DECAY": True}, structs=[DECAY_PARAMS], ctx=ctx)

    @classmethod
    def get(cls) -> "_Kernels":
        from ..gpu import get_context

        return get_context().cache(cls, cls)


def _read_counters(rec: Recorder, counters: GpuTensor) -> np.ndarray:
    rec.submit()
    return counters.numpy().astype(np.int64)


def _select_smallest(rec, k: _Kernels, keys, vals, n: int, num_candidates: int, take: int,
                     selected: GpuTensor) -> None:
    """Mark ``selected`` for the ``take`` smallest keys (non-candidates have key 0xffffffff).

    Only the keys that can be among the ``take`` smallest are sorted: when
    ``take`` is small next to the candidates, a histogram of the keys' top bits
    (read back, 8 KiB) gives the first bin where the count reaches ``take``
    and only keys below that bin's end are kept; when the candidates are at
    most half the splats, non-candidates are dropped. Either way the kept
    pairs are packed in index order, so the stable sort picks exactly the
    splats a sort of all keys would.
    """
    limit = 0xFFFFFFFF
    kept = num_candidates
    if 4 * take <= num_candidates and num_candidates > 4096:
        hist = GpuTensor.empty((_HIST_BINS,), np.uint32, "key_histogram")
        rec.dispatch(k.key_histogram, {"keys": keys, "histogram": hist, "params": SELECT_PARAMS.pack(count=n, budget=0, grow_key=0)},
                     workgroups_for(n, _WG))
        rec.submit()
        cum = np.cumsum(hist.numpy().astype(np.int64))
        b = int(np.searchsorted(cum, take))  # first bin with cum >= take
        if b < _HIST_BINS - 1:
            limit = (b + 1) << (32 - _HIST_BITS)
            kept = int(cum[b])
    if limit != 0xFFFFFFFF or 2 * num_candidates <= n:
        flag = GpuTensor.empty((n,), np.uint32, "candidate_flag")
        rec.dispatch(k.key_flags, {"keys": keys, "flag": flag, "params": SELECT_PARAMS.pack(count=n, budget=limit, grow_key=0)},
                     workgroups_for(n, _WG))
        rank = inclusive_prefix_sum(rec, flag, n, out=flag)
        ckeys = GpuTensor.empty((kept,), np.uint32, "candidate_keys")
        cvals = GpuTensor.empty((kept,), np.uint32, "candidate_vals")
        rec.dispatch(k.key_compact, {"keys": keys, "rank": rank, "out_keys": ckeys, "out_vals": cvals,
                                     "params": SELECT_PARAMS.pack(count=n, budget=limit, grow_key=0)},
                     workgroups_for(n, _WG))
        keys, vals, n = ckeys, cvals, kept
    _, sorted_vals = radix_sort_pairs(rec, keys, vals, n, num_bits=32)
    rec.dispatch(k.select_first, {"sorted_vals": sorted_vals, "selected": selected,
                                  "params": SELECT_PARAMS.pack(count=take, budget=0, grow_key=0)}, workgroups_for(take, _WG))


def growth_count(num_candidates: int, fraction: float, num_pruned: int) -> int:
    """Brush's growth target: ``round(T·fraction) − P`` (f32 product, halves away from 0), at least 0."""
    want = int(math.floor(float(np.float32(num_candidates) * np.float32(fraction)) + 0.5))
    return max(0, want - num_pruned)


def refine(rec: Recorder, splats: Splats, stats: RefineStats, optimizer: RefineOptimizer | None,
           config: TrainConfig, step: int, bounds: SceneBounds, seed: int) -> RefineResult:
    """Prune, re-fill, force-split, grow and decay on the GPU (rules: module docstring).

    Args:
        rec: recorder; everything recorded before is submitted along the way.
        splats: current splats (N rows); not modified (new tensors are returned).
        stats: statistics for these N splats since the last refine.
        optimizer: its moments are gathered by ``src_rows`` and zeroed by
            ``zero_mask`` (:class:`RefineOptimizer`, e.g. the GPU Adam); None skips that.
        config: ``max_splats``, ``growth_*``, ``split_at_screen_size``,
            ``opac_decay``, ``total_steps``.
        step: current training step (growth stops at ``growth_stop_iter``;
            the decay fades with ``step / total_steps``; a random-stream input).
        bounds: scene bounds before the refine (prune limits).
        seed: run seed (random-stream input).

    Returns:
        :class:`RefineResult` (the new splats and stats, row mapping, counts, new bounds).

    Raises:
        ValueError: when ``stats`` does not have N rows.
    """
    n = splats.num_splats
    if stats.num_splats != n:
        raise ValueError(f"refine: stats cover {stats.num_splats} splats but the splat set has {n}; "
                         "recreate RefineStats after changing the splat count")
    k = _Kernels.get()
    sh_width = int(np.prod(splats.sh_coeffs.shape[1:]))
    max_splats = int(config.max_splats)
    force_on = config.split_at_screen_size > 0
    grow_on = step < config.growth_stop_iter
    t = min(max(step / max(config.total_steps, 1), 0.0), 1.0)
    decay = float(config.opac_decay) * (1.0 - t)

    if n == 0:
        empty = Splats(*(GpuTensor.empty((0,) + tuple(getattr(splats, f).shape[1:]), np.float32, f)
                         for f in Splats.PARAM_NAMES))
        z = GpuTensor.empty((0,), np.uint32, "src_rows")
        return RefineResult(empty, RefineStats(0), z, GpuTensor.empty((0,), np.uint32, "zero_mask"), bounds)

    # ---- pass 1: prune flags, candidates, re-fill keys
    limit = PRUNE_EXTENT_FACTOR * bounds.max_half_extent
    log_scale_max = math.log(limit) if limit > 0 else -math.inf
    keep = GpuTensor.empty((n,), np.uint32, "refine_keep")
    flags = GpuTensor.empty((n,), np.uint32, "refine_flags")
    refill_keys = GpuTensor.empty((n,), np.uint32, "refill_keys")
    refill_vals = GpuTensor.empty((n,), np.uint32, "refill_vals")
    counters = GpuTensor.empty((_NUM_COUNTERS,), np.uint32, "refine_counters")
    c = bounds.center

    def mark(prune: bool) -> np.ndarray:
        mode = (1 if force_on else 0) | (2 if grow_on else 0) | (4 if prune else 0)
        params = MARK_PARAMS.pack(
            n=n, sh_width=sh_width, mode=mode, refill_key=stream_key(seed, step, STREAM_REFILL),
            raw_opacity_min=float(-math.log(254.0)), log_scale_max=float(log_scale_max), distance_max=float(limit),
            grow_threshold=float(config.growth_grad_threshold), center_x=float(c[0]), center_y=float(c[1]),
            center_z=float(c[2]), split_screen=float(config.split_at_screen_size))
        rec.clear(counters)
        bindings = {name: getattr(splats, name) for name in Splats.PARAM_NAMES}
        bindings.update(refine_stat=stats.refine_stat, visible_count=stats.visible_count,
                        max_screen_frac=stats.max_screen_frac, keep=keep, flags=flags, refill_keys=refill_keys,
                        refill_vals=refill_vals, counters=counters, params=params)
        with rec.stage("refine.mark"):
            rec.dispatch(k.mark, bindings, workgroups_for(n, _WG))
        return _read_counters(rec, counters)

    cnt = mark(True)
    if cnt[_C_KEPT] == 0:
        warnings.warn(f"refine at step {step}: every splat met a prune rule; keeping them all (as Brush)")
        cnt = mark(False)
    n_kept = int(cnt[_C_KEPT])
    n_pruned = n - n_kept

    # ---- re-fill: the pruned budget, sampled by opacity among visible survivors
    selected = GpuTensor.empty((n,), np.uint32, "refine_selected")
    n_refill = min(n_pruned, int(cnt[_C_REFILL_ELIGIBLE]))
    if n_refill > 0:
        with rec.stage("refine.sample"):
            _select_smallest(rec, k, refill_keys, refill_vals, n, int(cnt[_C_REFILL_ELIGIBLE]), n_refill, selected)

    # ---- force-split in index order within the budget; then growth keys
    force_budget = min(n, max(0, max_splats - (n_kept + n_refill)))  # fits the u32 uniform
    force_rank = flags  # any u32 [N]; unread when no splat is a force candidate
    grow_keys = GpuTensor.empty((n,), np.uint32, "grow_keys")
    grow_vals = GpuTensor.empty((n,), np.uint32, "grow_vals")
    with rec.stage("refine.sample"):
        if force_on and cnt[_C_FORCE_CAND] > 0 and force_budget > 0:
            force = GpuTensor.empty((n,), np.uint32, "refine_force")
            rec.dispatch(k.force_flags, {"flags": flags, "selected": selected, "force": force,
                                         "params": SELECT_PARAMS.pack(count=n, budget=0, grow_key=0)}, workgroups_for(n, _WG))
            force_rank = inclusive_prefix_sum(rec, force, n)
        else:
            force_budget = 0
        rec.dispatch(k.force_select, {
            "flags": flags, "force_rank": force_rank, "selected": selected, "refine_stat": stats.refine_stat,
            "grow_keys": grow_keys, "grow_vals": grow_vals, "counters": counters,
            "params": SELECT_PARAMS.pack(count=n, budget=force_budget, grow_key=stream_key(seed, step, STREAM_GROW)),
        }, workgroups_for(n, _WG))
    cnt2 = _read_counters(rec, counters)
    n_force = int(cnt2[_C_FORCE_SEL])

    # ---- growth: round(T·fraction) − P more, by the statistic, within max_splats
    n_grow = 0
    if grow_on:
        headroom = max(0, max_splats - (n_kept + n_refill + n_force))
        want = growth_count(int(cnt[_C_GROW_CAND]), config.growth_select_fraction, n_pruned)
        n_grow = min(want, headroom, int(cnt2[_C_GROW_ELIGIBLE]))
        if n_grow > 0:
            with rec.stage("refine.sample"):
                _select_smallest(rec, k, grow_keys, grow_vals, n, int(cnt2[_C_GROW_ELIGIBLE]), n_grow, selected)

    # ---- compaction: new row layout, Adam mapping
    n_split = n_refill + n_force + n_grow
    n_new = n_kept + n_split
    src_rows = GpuTensor.empty((n_new,), np.uint32, "src_rows")
    zero_mask = GpuTensor.empty((n_new,), np.uint32, "zero_mask")
    split_old = GpuTensor.empty((max(n_split, 1),), np.uint32, "split_old")
    with rec.stage("refine.compact"):
        keep_rank = inclusive_prefix_sum(rec, keep, n)
        sel_rank = inclusive_prefix_sum(rec, selected, n)
        rec.dispatch(k.compact, {"keep": keep, "selected": selected, "keep_rank": keep_rank, "selected_rank": sel_rank,
                                 "src_rows": src_rows, "zero_mask": zero_mask, "split_old": split_old,
                                 "params": COMPACT_PARAMS.pack(n=n, n_kept=n_kept)}, workgroups_for(n, _WG))

    with rec.stage("refine.gather"):
        new = Splats(*(gather_rows(rec, getattr(splats, f), src_rows, n_new, label=f)
                       for f in Splats.PARAM_NAMES))
    with rec.stage("refine.split"):
        if n_split > 0:
            screen = float(config.split_at_screen_size) if force_on else 0.0
            rec.dispatch(k.split, {
                "split_old": split_old, "keep_rank": keep_rank, "means": splats.means, "rotations": splats.rotations,
                "log_scales": splats.log_scales, "raw_opacities": splats.raw_opacities,
                "max_screen_frac": stats.max_screen_frac, "new_means": new.means, "new_log_scales": new.log_scales,
                "new_raw_opacities": new.raw_opacities,
                "params": SPLIT_PARAMS.pack(n_split=n_split, n_kept=n_kept, split_screen=screen),
            }, workgroups_for(n_split, _WG))
        if decay > 0:
            rec.dispatch(k.decay, {"raw_opacities": new.raw_opacities,
                                   "params": DECAY_PARAMS.pack(count=n_new, decay=float(decay))},
                         workgroups_for(n_new, _WG))
    if optimizer is not None:
        with rec.stage("refine.optimizer"):
            optimizer.gather(rec, src_rows)
            optimizer.zero_mask(rec, zero_mask)
    rec.submit()

    return RefineResult(
        splats=new, stats=RefineStats(n_new), src_rows=src_rows, zero_mask=zero_mask,
        bounds=scene_bounds(new.means),
        num_pruned=n_pruned, num_pruned_nonfinite=int(cnt[_C_NONFINITE]) if n_pruned else 0,
        num_pruned_transparent=int(cnt[_C_TRANSPARENT]) if n_pruned else 0,
        num_pruned_huge=int(cnt[_C_HUGE]) if n_pruned else 0,
        num_refilled=n_refill, num_force_split=n_force, num_grown=n_grow,
    )


__all__ = [
    "BOUND_PERCENTILE", "MIN_OPACITY", "PRUNE_EXTENT_FACTOR", "RefineOptimizer", "RefineResult",
    "RefineStats", "SceneBounds", "growth_count", "pcg_hash", "refine", "scene_bounds", "stream_key",
]
