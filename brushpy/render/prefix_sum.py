"""GPU inclusive prefix sum (scan) of u32 values, any length.

Multi-level block scan (Blelloch's "scan then propagate" layout, as in
Harris, Sengupta & Owens, *Parallel Prefix Sum (Scan) with CUDA*, GPU Gems 3
ch. 39, and Brush's prefix-sum crate):

1. ``prefix_sum_block.wgsl``: each workgroup scans a block of
   ``WG * EPT`` values (each invocation scans ``EPT`` consecutive values,
   then the invocation totals are scanned across the workgroup: subgroup
   built-ins when the device has them, workgroup memory otherwise) and
   writes the block total to a per-level ``block_sums`` buffer;
2. the block totals are scanned the same way, recursively, until one block
   holds them all;
3. ``prefix_sum_add.wgsl`` adds the scanned totals of the preceding blocks
   back, level by level from the top.

Scans of at most :data:`SINGLE_BLOCK` values skip the levels: one workgroup
of the same block kernel (larger ``WG`` and ``EPT``) scans them in one
dispatch, since recording and launching dispatches costs more than the work.

Everything is recorded into the caller's :class:`~brushpy.gpu.Recorder`;
nothing is submitted or read back. Sums wrap around modulo 2**32 (u32).
"""

from __future__ import annotations

import math

import numpy as np

from ..gpu import GpuContext, GpuTensor, Kernel, Recorder, UniformLayout, workgroups_for

#: Workgroup size and values per invocation of the scan kernels (64 x 16 is
#: ~30% faster than 256 x 4 on lavapipe; blocks of 1024 either way).
WG = 64
EPT = 16
BLOCK = WG * EPT
#: Scans of BLOCK < count <= SINGLE_BLOCK values run as one workgroup of
#: SINGLE_WG x SINGLE_EPT (one dispatch instead of three: block, block totals,
#: add). This covers the digit counts of radix sorts of up to 2**20 keys
#: (16 per 1024-key block); per-dispatch cost dominates scans that small.
SINGLE_WG = 256
SINGLE_EPT = 64
SINGLE_BLOCK = SINGLE_WG * SINGLE_EPT

#: the uniform block of both kernels (``#struct Params`` in shaders/prefix_sum_block.wgsl, prefix_sum_add.wgsl)
SCAN_PARAMS = UniformLayout("Params", [
    ("count", "u32", "values at this level"),
    ("num_blocks", "u32", "blocks at this level"),
])


class _ScanState:
    """Kernels and grow-only scratch buffers of one context (``ctx.cache(_ScanState, _ScanState)``)."""

    def __init__(self, ctx: GpuContext):
        defs = {"WG": WG, "EPT": EPT}
        st = [SCAN_PARAMS]
        self.block = Kernel("prefix_sum_block.wgsl", defines={**defs, "IN_PLACE": False}, ctx=ctx, structs=st)
        self.block_in_place = Kernel("prefix_sum_block.wgsl", defines={**defs, "IN_PLACE": True}, ctx=ctx, structs=st)
        self.add = Kernel("prefix_sum_add.wgsl", defines=defs, ctx=ctx, structs=st)
        single = {"WG": SINGLE_WG, "EPT": SINGLE_EPT}
        self.single = Kernel("prefix_sum_block.wgsl", defines={**single, "IN_PLACE": False}, ctx=ctx, structs=st)
        self.single_in_place = Kernel("prefix_sum_block.wgsl", defines={**single, "IN_PLACE": True}, ctx=ctx, structs=st)
        self.ctx = ctx
        self.sums: list[GpuTensor] = []  # block totals of level 1, 2, ...

    def sums_buffer(self, level: int, size: int) -> GpuTensor:
        while len(self.sums) <= level:
            self.sums.append(GpuTensor.empty((1,), np.uint32, f"prefix_sum.block_sums{len(self.sums)}", self.ctx))
        if self.sums[level].numel < size:
            cap = 1 << max(0, (size - 1).bit_length())
            self.sums[level] = GpuTensor.empty((cap,), np.uint32, f"prefix_sum.block_sums{level}", self.ctx)
        return self.sums[level]


def check_u32(t: GpuTensor, name: str, count: int) -> None:
    """Raise unless ``t`` is a uint32 :class:`GpuTensor` of at least ``count`` elements.

    ``name`` leads the message (the argument, with its function where wanted);
    :func:`brushpy.render.sort.radix_sort_pairs` checks its keys and values with it too.

    Raises:
        TypeError: ``t`` is not a GpuTensor, or not uint32.
        ValueError: ``t`` holds fewer than ``count`` elements.
    """
    if not isinstance(t, GpuTensor):
        raise TypeError(f"{name} must be a GpuTensor, got {type(t).__name__}")
    if t.dtype != np.uint32:
        raise TypeError(f"{name} ({t.label!r}) must be uint32, got {t.dtype}")
    if t.numel < count:
        raise ValueError(f"{name} ({t.label!r}) holds {t.numel} elements but count={count}")


def level_sizes(count: int) -> list[int]:
    """Number of values scanned at each level (level 0 = ``count``)."""
    sizes = [count]
    while sizes[-1] > BLOCK:
        sizes.append(math.ceil(sizes[-1] / BLOCK))
    return sizes


def inclusive_prefix_sum(rec: Recorder, values: GpuTensor, count: int, out: GpuTensor | None = None) -> GpuTensor:
    """Record an inclusive scan: ``out[i] = values[0] + ... + values[i]`` for ``i < count``.

    Args:
        rec: recorder the dispatches go into (not submitted here).
        values: u32 tensor with at least ``count`` elements (any shape; flat order).
        count: number of leading values to scan (0 records nothing).
        out: u32 tensor with at least ``count`` elements for the result;
            ``None`` allocates a new ``[count]`` tensor. ``out`` may be
            ``values`` itself (in-place scan). Elements past ``count`` are
            left untouched.

    Returns:
        ``out`` (or the new tensor).

    Sums wrap modulo 2**32. Up to :data:`SINGLE_BLOCK` values take one
    dispatch; longer scans three or more. Scratch buffers (one per level,
    ``count / 1024`` values at level 1) are cached per context and reused by later calls;
    the dispatches of one recorder run in order, so several scans may be
    recorded into one recorder.

    Raises:
        TypeError: ``values``/``out`` not uint32 GpuTensors.
        ValueError: ``count`` negative or larger than a tensor.
    """
    count = int(count)
    if count < 0:
        raise ValueError(f"inclusive_prefix_sum: count must be >= 0, got {count}")
    check_u32(values, "values", count)
    if out is None:
        out = GpuTensor.empty((max(count, 0),), np.uint32, "prefix_sum.out", rec.ctx)
    check_u32(out, "out", count)
    if count == 0:
        return out
    st = rec.ctx.cache(_ScanState, _ScanState)
    if BLOCK < count <= SINGLE_BLOCK:
        params = SCAN_PARAMS.pack(count=count, num_blocks=1)
        s = st.sums_buffer(0, 1)
        if out.buffer is not values.buffer:
            rec.dispatch(st.single, {"params": params, "input": values, "output": out, "block_sums": s}, (1, 1, 1))
        else:
            rec.dispatch(st.single_in_place, {"params": params, "data": out, "block_sums": s}, (1, 1, 1))
        return out
    sizes = level_sizes(count)
    data = [out]
    sums = []
    for level, n in enumerate(sizes):
        nblocks = math.ceil(n / BLOCK)
        s = st.sums_buffer(level, nblocks)
        sums.append(s)
        params = SCAN_PARAMS.pack(count=n, num_blocks=nblocks)
        groups = workgroups_for(nblocks, 1, rec.ctx)
        if level == 0 and out.buffer is not values.buffer:
            rec.dispatch(st.block, {"params": params, "input": values, "output": out, "block_sums": s}, groups)
        else:
            rec.dispatch(st.block_in_place, {"params": params, "data": data[level], "block_sums": s}, groups)
        data.append(s)
    # Propagate from the top: level k's scanned totals into level k-1's values.
    for level in range(len(sizes) - 1, 0, -1):
        n = sizes[level - 1]
        nblocks = math.ceil(n / BLOCK)
        params = SCAN_PARAMS.pack(count=n, num_blocks=nblocks)
        rec.dispatch(st.add, {"params": params, "data": data[level - 1], "scanned_sums": data[level]},
                     workgroups_for(nblocks - 1, 1, rec.ctx))
    return out
