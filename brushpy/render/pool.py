"""The forward renderer's buffer pool: grow-only buffer sets reused render after render.

Creating a wgpu buffer, and the bind groups that name it, costs tens of microseconds
of host time each; a render touches ~16 buffers and ~40 bind groups. So the renderer
keeps its buffers in grow-only sets (capacity = what was needed plus 1/8, capped at
the binding limit) and hands out views with the exact shapes; a set that is reused
render after render keeps the kernels' bind-group caches hitting.

* Scratch (buffers no caller sees) is checked out for one render and goes back to
  the pool when the recorder holding the render's commands is submitted, so two
  renders recorded side by side into different recorders never share scratch.
* The buffers of the returned ForwardState (image, final_index, tile_ranges,
  projected, global_from_compact, compact_from_isect) are only reused after the
  caller hands the state back with :func:`release_forward_state`; a state never
  released keeps buffers of its own (garbage collected with it), as before pooling.
"""

from __future__ import annotations

import math

import numpy as np

from ..gpu import BufferTooLargeError, GpuTensor, Recorder, get_context
from .state import ForwardState

#: x, y, conic (1, 0, 1), colour 0, opacity 0: alpha is 0 at every pixel, so it is always skipped
_NULL_SPLAT = np.array([0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0], np.float32)


class RenderTooLargeError(BufferTooLargeError):
    """A buffer of the forward render exceeds the device's storage-binding limit.

    The message names the buffer, its size, the limit (``max-storage-buffer-binding-size``)
    and what to lower.
    """

    def __init__(self, what: str, nbytes: int, limit: int, hint: str):
        super().__init__(what, nbytes, limit)
        self.hint = hint
        self.args = (
            f"forward render: buffer {what!r} needs {_fmt_bytes(nbytes)} but this device binds at most "
            f"{_fmt_bytes(limit)} per storage buffer (max-storage-buffer-binding-size); {hint}",
        )


def _fmt_bytes(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


def _view(t: GpuTensor, n: int, shape: tuple | None = None) -> GpuTensor:
    """``t``'s buffer seen as its first ``n`` elements (optionally reshaped); always a new view object."""
    shape = (n,) if shape is None else shape
    if t.numel < math.prod(shape):
        raise RuntimeError(f"{t!r} holds {t.numel} elements, fewer than the {math.prod(shape)} needed")
    return GpuTensor.view_of(t.buffer, shape, t.dtype, t.label, t.ctx)


class _BufferSet:
    """Grow-only tensors by name; :meth:`get` returns views of the requested shape."""

    __slots__ = ("tensors",)

    def __init__(self):
        self.tensors: dict[str, GpuTensor] = {}

    def get(self, name: str, shape: tuple, dtype, hint: str) -> GpuTensor:
        need = math.prod(shape)
        t = self.tensors.get(name)
        if t is None or t.numel < need:
            label = f"render.{name}"
            ctx = get_context()
            itemsize = np.dtype(dtype).itemsize
            limit = ctx.max_binding_bytes // itemsize
            cap = need if need >= limit else min(limit, need + need // 8)
            try:
                t = GpuTensor.empty((max(cap, 1),), dtype, label, ctx)
            except BufferTooLargeError as exc:
                raise RenderTooLargeError(label, need * itemsize, exc.limit, hint) from None
            self.tensors[name] = t
        return GpuTensor.view_of(t.buffer, shape, t.dtype, t.label, t.ctx)


class _RenderPool:
    """Free scratch and output sets of one context (most recently freed handed out first);
    one per context, in its cache (``ctx.cache(_RenderPool, _RenderPool)``)."""

    #: free sets kept per kind; more are dropped (their memory freed)
    KEEP = 2

    def __init__(self, ctx):
        self.ctx = ctx
        self.scratch: list[_BufferSet] = []
        self.outputs: list[_BufferSet] = []
        self.null_splat = GpuTensor.from_numpy(_NULL_SPLAT, "render.null_splat", ctx)

    def take(self, kind: str) -> _BufferSet:
        free = getattr(self, kind)
        return free.pop() if free else _BufferSet()

    def give(self, kind: str, buffers: _BufferSet) -> None:
        free = getattr(self, kind)
        if len(free) < self.KEEP and all(b is not buffers for b in free):
            free.append(buffers)


def _pool(ctx=None) -> _RenderPool:
    """The renderer's pool of the context (default: the current one)."""
    return (ctx or get_context()).cache(_RenderPool, _RenderPool)


def release_forward_state(state: ForwardState, rec: Recorder | None = None) -> None:
    """Hand the buffers of ``state`` back to the renderer, which reuses them in later renders.

    Optional: a state never released simply keeps its own buffers until it is garbage
    collected. Releasing saves the host time of creating buffers and bind groups in
    the next render (the kernels' bind-group caches hit on reused buffers).

    Lifetime rule: after release, any later :func:`render_forward` may overwrite
    ``state.image``, ``projected``, ``global_from_compact``, ``compact_from_isect``,
    ``tile_ranges``, ``final_index``, ``depth``, ``median_depth`` and ``depths`` (and views of them), so release only when
    every command that reads them has been recorded and nothing reads them on the host
    afterwards. Without ``rec``, the commands that read the state must also have been
    submitted already (e.g. call it after the training step's ``rec.submit()``); with
    ``rec``, the buffers return to the pool when ``rec`` is next submitted, so it may
    be called right after recording the backward into ``rec``. Releasing a state twice,
    or one not made by :func:`render_forward`, does nothing.
    """
    held = state.__dict__.pop("_pooled_outputs", None)
    if held is None:
        return
    pool, buffers = held
    if rec is None:
        pool.give("outputs", buffers)
    else:
        rec.on_submit(lambda: pool.give("outputs", buffers))

