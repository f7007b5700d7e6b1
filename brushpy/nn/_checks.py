"""Helpers shared by the layer ops: argument checks (shapes and dtypes of GPU tensors), recording on a tape."""

from __future__ import annotations

import numpy as np

from ..gpu import GpuTensor


def check_tensor(t, name: str, ndim: int, what: str = "") -> tuple[int, ...]:
    """Validate a float32 GpuTensor of ``ndim`` dimensions; returns its shape.

    Raises:
        TypeError: not a GpuTensor.
        ValueError: another dtype or number of dimensions (the message names ``name``).
    """
    if not isinstance(t, GpuTensor):
        raise TypeError(f"{name} must be a GpuTensor, got {type(t).__name__}")
    if t.dtype != np.float32 or len(t.shape) != ndim:
        raise ValueError(f"{name} must be float32 {what or f'with {ndim} dimensions'}, got {t.dtype.name} {t.shape}")
    return t.shape


def check_grad(g, like: GpuTensor, op: str) -> GpuTensor:
    """``g`` as a tensor shaped like ``like`` (a reshaped view of the same elements).

    Raises:
        ValueError: ``g`` has another element count.
    """
    if g.numel != like.numel:
        raise ValueError(f"{op}: gradient {g!r} has {g.numel} elements, expected {like.numel} ({like.shape})")
    return g if tuple(g.shape) == tuple(like.shape) else g.reshape(like.shape)


def record(op, tape, output: str = "y"):
    """Put ``op`` on ``tape`` (when given) and return its output ``output`` (the functional form of an op)."""
    if tape is not None:
        tape.record(op)
    return op.outputs[output]
