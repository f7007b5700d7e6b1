"""GPU radix sort of (u32 key, u32 value) pairs: stable, ascending, any length.

Least-significant-digit radix sort with 4-bit digits, one "count, scan,
scatter" round per digit, the design of AMD FidelityFX Parallel Sort and
Brush's ``brush-sort`` (Merrill & Grimshaw, *High Performance and Scalable
Radix Sorting*, 2011, give the stable local ranking used here):

1. ``sort_count.wgsl``: every block of ``BLOCK`` keys histograms its digits
   into ``counts[digit * num_blocks + block]``;
2. :func:`~brushpy.render.prefix_sum.inclusive_prefix_sum` over ``counts``
   (digit-major) gives each (digit, block) its output range;
3. ``sort_scatter.wgsl``: every block ranks its keys stably inside the block
   and writes each digit's run to its range, reordered through workgroup
   memory so neighbouring invocations write neighbouring slots. Ranking with
   subgroups: per-invocation digit counters in registers and one subgroup
   scan of all 16 (packed) counters; without: per-invocation counter columns
   in workgroup memory and a raking workgroup scan.

Passes ping-pong between the caller's tensors and cached scratch tensors;
after an odd number of passes the result is copied back, so the sorted pairs
always end up **in the input tensors** (see :func:`radix_sort_pairs`).
"""

from __future__ import annotations

import math

import numpy as np

from ..gpu import GpuContext, GpuTensor, Kernel, Recorder, UniformLayout, workgroups_for
from .prefix_sum import check_u32, inclusive_prefix_sum

#: Bits per radix digit (16 buckets).
DIGIT_BITS = 4
#: Workgroup size and keys per invocation of the scatter kernel. Few, busy
#: invocations amortise the per-invocation ranking overhead (on lavapipe
#: 64 x 16 scatters ~30% faster than 256 x 4, and counts ~3x faster).
WG = 64
EPT = 16
#: Keys per block (one workgroup of either kernel).
BLOCK = WG * EPT
#: Workgroup size and keys per invocation of the count kernel (same BLOCK).
COUNT_WG = 64
COUNT_EPT = BLOCK // COUNT_WG
# The kernels need WG >= 16 (one invocation per digit), WG % 8 == 0 and EPT <= 255
# (8-bit counters in sort_count), and BLOCK < 65536 (16-bit packed counters).
assert WG >= 16 and COUNT_WG % 8 == 0 and COUNT_EPT <= 255 and BLOCK < 65536
assert COUNT_WG * COUNT_EPT == BLOCK

#: the uniform block of both kernels (``#struct Params`` in shaders/sort_count.wgsl, sort_scatter.wgsl)
SORT_PARAMS = UniformLayout("Params", [
    ("count", "u32", "pairs sorted"),
    ("shift", "u32", "bit offset of this pass's digit"),
    ("digit_mask", "u32", "(1 << digit bits) - 1"),
    ("num_blocks", "u32", "ceil(count / BLOCK)"),
])


class _SortState:
    """Kernels and grow-only scratch buffers of one context (``ctx.cache(_SortState, _SortState)``)."""

    def __init__(self, ctx: GpuContext):
        count_defs = {"WG": COUNT_WG, "EPT": COUNT_EPT, "HIST": 8 * COUNT_WG}
        scatter_defs = {"WG": WG, "EPT": EPT, "SMEM": max(8 * WG, 2 * BLOCK)}
        self.count = Kernel("sort_count.wgsl", defines=count_defs, ctx=ctx, structs=[SORT_PARAMS])
        self.scatter = Kernel("sort_scatter.wgsl", defines=scatter_defs, ctx=ctx, structs=[SORT_PARAMS])
        self.ctx = ctx
        self.buffers: dict[str, GpuTensor] = {}

    def scratch(self, name: str, size: int) -> GpuTensor:
        t = self.buffers.get(name)
        if t is None or t.numel < size:
            # Grow by 1/8 extra so slowly growing counts do not reallocate every call.
            cap = min(max(size + size // 8, 16), max(size, self.ctx.max_binding_bytes // 4))
            t = GpuTensor.empty((cap,), np.uint32, f"radix_sort.{name}", self.ctx)
            self.buffers[name] = t
        return t


def num_passes(num_bits: int) -> int:
    """Number of digit passes for ``num_bits`` key bits."""
    return math.ceil(num_bits / DIGIT_BITS)


def radix_sort_pairs(
    rec: Recorder,
    keys: GpuTensor,
    values: GpuTensor,
    count: int,
    num_bits: int = 32,
    stage: str | None = None,
) -> tuple[GpuTensor, GpuTensor]:
    """Record a stable ascending sort of the first ``count`` (key, value) pairs.

    Only the low ``num_bits`` bits of each key are sorted on: pairs whose keys
    agree on those bits keep their input order (the result equals
    ``np.argsort(keys & (2**num_bits - 1), kind="stable")``), and higher key
    bits travel with the key unchanged. Sorting costs ``ceil(num_bits / 4)``
    passes, so pass the fewest bits that hold the keys (e.g. the bit length
    of the tile count for tile ids).

    Args:
        rec: recorder the work is recorded into (nothing is submitted or read back).
        keys: u32 tensor with at least ``count`` elements (flat order).
        values: u32 tensor with at least ``count`` elements (flat order).
        count: number of leading pairs to sort; elements past it are untouched.
        num_bits: key bits to sort on, 0..32 (0 leaves the pairs as they are).
        stage: if given, the three steps are recorded under the profiler stages
            ``f"{stage}.count"``, ``f"{stage}.scan"`` and ``f"{stage}.scatter"``
            (summed over passes); otherwise in the caller's current stage.

    Returns:
        ``(keys, values)``: the **input tensors**, which hold the sorted pairs
        once the recorded commands have run (sorted in place; callers should
        still use the returned tensors). Internal scratch (keys/values
        ping-pong buffers of ``count`` elements, digit counts of
        ``16 * ceil(count / 1024)``) is cached per context and reused.

    Raises:
        TypeError: ``keys``/``values`` not uint32 GpuTensors.
        ValueError: bad ``count`` or ``num_bits``, or ``keys`` and ``values``
            share a buffer.
    """
    count = int(count)
    num_bits = int(num_bits)
    for t, name in ((keys, "keys"), (values, "values")):
        check_u32(t, f"radix_sort_pairs: {name}", count)
    if count < 0:
        raise ValueError(f"radix_sort_pairs: count must be >= 0, got {count}")
    if not 0 <= num_bits <= 32:
        raise ValueError(f"radix_sort_pairs: num_bits must be in 0..32, got {num_bits}")
    if keys.buffer is values.buffer:
        raise ValueError("radix_sort_pairs: keys and values must be different buffers")
    if count <= 1 or num_bits == 0:
        return keys, values

    ctx = rec.ctx
    st = ctx.cache(_SortState, _SortState)
    num_blocks = math.ceil(count / BLOCK)
    tmp_keys = st.scratch("keys", count)
    tmp_values = st.scratch("values", count)
    counts = st.scratch("counts", 16 * num_blocks)
    offsets = st.scratch("offsets", 16 * num_blocks)
    groups = workgroups_for(num_blocks, 1, ctx)

    src, dst = (keys, values), (tmp_keys, tmp_values)
    passes = num_passes(num_bits)
    for p in range(passes):
        shift = p * DIGIT_BITS
        bits = min(DIGIT_BITS, num_bits - shift)
        params = SORT_PARAMS.pack(count=count, shift=shift, digit_mask=(1 << bits) - 1, num_blocks=num_blocks)
        count_binds = {"params": params, "keys": src[0], "counts": counts}
        scatter_binds = {"params": params, "keys_in": src[0], "values_in": src[1], "counts": counts, "offsets": offsets,
                         "keys_out": dst[0], "values_out": dst[1]}
        if stage:
            with rec.stage(f"{stage}.count"):
                rec.dispatch(st.count, count_binds, groups)
            with rec.stage(f"{stage}.scan"):
                inclusive_prefix_sum(rec, counts, 16 * num_blocks, out=offsets)
            with rec.stage(f"{stage}.scatter"):
                rec.dispatch(st.scatter, scatter_binds, groups)
        else:
            rec.dispatch(st.count, count_binds, groups)
            inclusive_prefix_sum(rec, counts, 16 * num_blocks, out=offsets)
            rec.dispatch(st.scatter, scatter_binds, groups)
        src, dst = dst, src
    if passes % 2:
        rec.copy(tmp_keys, keys, 4 * count)
        rec.copy(tmp_values, values, 4 * count)
    return keys, values
