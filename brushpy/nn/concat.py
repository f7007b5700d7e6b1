"""Concatenation along channels (dim 1 of NCHW), a tape op made of buffer copies.

Forward: each input's ``[C_k, H, W]`` block of every sample is copied into its place in the
output ``[B, ΣC_k, H, W]``; backward: the same blocks are copied back out of the gradient (no
kernels, ``Recorder.copy``). Reference: :func:`brushpy.nn.reference.concat_channels`.
"""

from __future__ import annotations

import numpy as np

from ..autodiff import Op
from ..gpu import GpuTensor, Recorder
from ._checks import check_grad, check_tensor, record


class ConcatOp(Op):
    """``y = concat(xs, dim=1)`` for float32 [B, C_k, H, W] tensors with equal B, H, W.

    inputs: ``{"x0", "x1", ...}``; outputs: ``{"y"}``.

    Raises:
        ValueError: no inputs, or inputs whose B, H, W differ.
    """

    name = "concat"

    def __init__(self, rec: Recorder, xs):
        xs = list(xs)
        if not xs:
            raise ValueError("concat needs at least one input")
        shapes = [check_tensor(x, f"concat input {i}", 4, "[B, C, H, W]") for i, x in enumerate(xs)]
        b, _, h, w = shapes[0]
        if any((s[0], s[2], s[3]) != (b, h, w) for s in shapes):
            raise ValueError(f"concat: inputs must share B, H, W; got {[tuple(s) for s in shapes]}")
        self.channels = [s[1] for s in shapes]
        total = sum(self.channels)
        y = GpuTensor.empty((b, total, h, w), np.float32, "concat y", xs[0].ctx)
        for x, src_off, dst_off, nbytes in self._blocks(b, h * w):
            rec.copy(xs[x], y, nbytes, src_off, dst_off)
        self.inputs = {f"x{i}": x for i, x in enumerate(xs)}
        self.outputs = {"y": y}

    def _blocks(self, batch: int, hw: int):
        """``(input index, byte offset in it, byte offset in the output, bytes)`` per copied block."""
        total = sum(self.channels)
        start = 0
        for i, c in enumerate(self.channels):
            for bi in range(batch):
                yield i, bi * c * hw * 4, (bi * total + start) * hw * 4, c * hw * 4
            start += c

    def backward(self, rec: Recorder, grad_outputs: dict) -> dict:
        y = self.outputs["y"]
        g = check_grad(grad_outputs["y"], y, self.name)
        b, _, h, w = y.shape
        grads = [GpuTensor.empty((b, c, h, w), np.float32, f"concat grad x{i}", y.ctx)
                 for i, c in enumerate(self.channels)]
        for i, src_off, dst_off, nbytes in self._blocks(b, h * w):
            rec.copy(g, grads[i], nbytes, dst_off, src_off)
        return {f"x{i}": gi for i, gi in enumerate(grads)}


def concat_channels(rec: Recorder, xs, tape=None) -> GpuTensor:
    """Record :class:`ConcatOp` (on ``tape`` when given) and return ``concat(xs, dim=1)``."""
    return record(ConcatOp(rec, xs), tape)
