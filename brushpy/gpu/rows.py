"""Row gather and per-row zeroing of GPU tensors, for refine (splat parameters) and
the optimizer (its moments).

A "row" is everything after the first axis of a tensor: ``means [N,3]`` has
rows of 3 words, ``sh_coeffs [N,K,3]`` rows of ``3K``, ``raw_opacities [N]``
rows of one. Kernels copy raw 32-bit words, so they are bit-exact for float32,
uint32 and int32 tensors alike (WGSL: ``shaders/gather_rows.wgsl``, its
parameter struct :data:`ROW_PARAMS`).
"""

from __future__ import annotations

import math

import numpy as np

from .kernel import Kernel, Recorder, workgroups_for
from .layout import UniformLayout
from .tensor import GpuTensor

_WG = 256

#: shaders/gather_rows.wgsl (both variants)
ROW_PARAMS = UniformLayout("RowParams", [
    ("count", "u32", "rows to write"),
    ("src_count", "u32", "gather: rows of src (an index >= it gives a zero row)"),
    ("_pad0", "u32"),
    ("_pad1", "u32"),
])


def row_width(t: GpuTensor) -> int:
    """Number of 32-bit words per row (product of all axes but the first; 1 for 1-D)."""
    return int(math.prod(t.shape[1:])) if len(t.shape) > 1 else 1


def gather_rows(rec: Recorder, src: GpuTensor, src_rows: GpuTensor, count: int,
                out: GpuTensor | None = None, label: str | None = None,
                zero_mask: GpuTensor | None = None) -> GpuTensor:
    """Record ``out[r] = src[src_rows[r]]`` for ``r < count`` (rows of any width).

    An index ``src_rows[r] >= N`` (e.g. ``0xFFFFFFFF``) writes a zero row (a fresh
    row). With ``zero_mask`` (uint32 ``[>= count]``), rows with a nonzero mask are
    written as zeros too (gather and :func:`zero_rows` in one pass).

    Args:
        rec: recorder the dispatch goes into.
        src: tensor ``[N, ...]`` (any of the three 32-bit dtypes).
        src_rows: uint32 ``[>= count]`` row indices into ``src``.
        count: rows to write.
        out: destination ``[>= count, ...]`` with ``src``'s row width and dtype;
            allocated as ``[count, ...]`` when None.
        label: label of the allocated ``out`` (default: ``src``'s).

    Returns:
        ``out``.

    Raises:
        ValueError: mismatched dtype, row width or too-small tensors.
    """
    width = row_width(src)
    if src_rows.dtype != np.uint32:
        raise ValueError(f"gather_rows: src_rows must be uint32, got {src_rows.dtype}")
    if src_rows.numel < count:
        raise ValueError(f"gather_rows: src_rows has {src_rows.numel} entries, need {count}")
    if out is None:
        out = GpuTensor.empty((count,) + tuple(src.shape[1:]), src.dtype, label or src.label)
    elif out.dtype != src.dtype or row_width(out) != width or out.shape[0] < count:
        raise ValueError(f"gather_rows: out {out!r} does not fit {count} rows of {src!r}")
    if zero_mask is not None and (zero_mask.dtype != np.uint32 or zero_mask.numel < count):
        raise ValueError(f"gather_rows: zero_mask must be uint32 with >= {count} entries, got {zero_mask!r}")
    if count == 0 or width == 0:
        return out
    masked = zero_mask is not None
    k = Kernel("gather_rows.wgsl", defines={"GATHER": True, "USE_MASK": masked, "WIDTH": width}, structs=[ROW_PARAMS])
    bindings = {"src": src, "src_rows": src_rows, "dst": out,
                "params": ROW_PARAMS.pack(count=count, src_count=src.shape[0] if src.shape else 1)}
    if masked:
        bindings["row_mask"] = zero_mask
    rec.dispatch(k, bindings, workgroups_for(count * width, _WG))
    return out


def zero_rows(rec: Recorder, tensor: GpuTensor, row_mask: GpuTensor, count: int | None = None) -> GpuTensor:
    """Record ``tensor[r] = 0`` wherever ``row_mask[r] != 0`` (``r < count``, default all rows).

    Args:
        tensor: ``[N, ...]`` tensor modified in place.
        row_mask: uint32 ``[>= count]``, nonzero for rows to clear.

    Returns:
        ``tensor``.

    Raises:
        ValueError: ``row_mask`` is not uint32 or has fewer than ``count`` entries.
    """
    count = tensor.shape[0] if count is None else count
    if row_mask.dtype != np.uint32 or row_mask.numel < count:
        raise ValueError(f"zero_rows: row_mask must be uint32 with >= {count} entries, got {row_mask!r}")
    width = row_width(tensor)
    if count == 0 or width == 0:
        return tensor
    k = Kernel("gather_rows.wgsl", defines={"GATHER": False, "USE_MASK": True, "WIDTH": width}, structs=[ROW_PARAMS])
    rec.dispatch(k, {"dst": tensor, "row_mask": row_mask, "params": ROW_PARAMS.pack(count=count, src_count=0)},
                 workgroups_for(count * width, _WG))
    return tensor
