"""A small reverse-mode autodiff tape over GPU tensors.

A training step is a short chain of coarse ops (render -> loss), each with a
hand-written backward kernel, so the tape is deliberately simple:

* An :class:`Op` is one application of an operation. Its forward has already
  run (kernels recorded into a :class:`~brushpy.gpu.Recorder`) when it is put
  on the tape; it keeps what its backward needs as attributes, lists its
  ``inputs`` and ``outputs`` (GPU tensors), and implements
  ``backward(rec, grad_outputs) -> grad_inputs``.
* :meth:`Tape.backward` walks the ops in reverse, hands each the gradients of
  its outputs and collects the gradients of its inputs. When several ops feed
  the same tensor, their gradients are summed on the GPU (``grad_accumulate.wgsl``).

Nothing is copied to the CPU: gradients are GPU tensors recorded into the
caller's recorder; submit it (or keep recording the optimizer step) after.

Tensors are identified by their buffer: a reshaped view
(:meth:`GpuTensor.reshape`) shares its gradient with the original, which is
returned in the shape it first arrived in.

Example::

    tape = Tape()
    image = tape.record(RenderOp(state, splats)).outputs[0]
    loss_op = tape.record(SomeLossOp(image, target, ...))
    grads = tape.backward(rec, {loss_op.outputs[0]: ones})
    v_means = grads[splats.means]
"""

from __future__ import annotations

import numpy as np

from .gpu import GpuTensor, Kernel, Recorder, Uniform, workgroups_for

_ADD_WG = 256


class Op:
    """One recorded application of a differentiable operation.

    Subclasses set ``inputs`` (tuple of GpuTensor or ``None`` for
    non-differentiable slots) and ``outputs`` (tuple of GpuTensor), keep
    whatever their backward needs, and implement :meth:`backward`.
    """

    inputs: tuple = ()
    outputs: tuple = ()

    def backward(self, rec: Recorder, grad_outputs: tuple) -> tuple:
        """Record the gradients of the inputs into ``rec``.

        Args:
            rec: recorder to record the backward kernels into.
            grad_outputs: one entry per output: a GpuTensor shaped like it, or
                ``None`` when nothing downstream depends on that output.

        Returns:
            One entry per input: a GpuTensor shaped like it (the op may return a
            fresh tensor; the tape takes ownership) or ``None`` for no gradient.
        """
        raise NotImplementedError

    @property
    def name(self) -> str:
        return type(self).__name__


class Gradients:
    """Gradients from :meth:`Tape.backward`, looked up by the tensor they belong to."""

    def __init__(self, grads: dict):
        self._grads = grads  # buffer id -> (tensor it belongs to, gradient)

    def get(self, tensor: GpuTensor, default=None):
        entry = self._grads.get(id(tensor.buffer))
        return default if entry is None else entry[1].reshape(tensor.shape)

    def __getitem__(self, tensor: GpuTensor) -> GpuTensor:
        g = self.get(tensor)
        if g is None:
            raise KeyError(f"no gradient reached {tensor!r}: is it an input of a recorded op?")
        return g

    def __contains__(self, tensor: GpuTensor) -> bool:
        return id(tensor.buffer) in self._grads

    def __len__(self) -> int:
        return len(self._grads)


class Tape:
    """Records ops in forward order and runs their backward in reverse."""

    def __init__(self):
        self.ops: list[Op] = []
        self._add: dict = {}

    def record(self, op: Op) -> Op:
        """Append an op whose forward has been recorded; returns it (for chaining ``.outputs``)."""
        if not isinstance(op, Op):
            raise TypeError(f"Tape.record expects an autodiff.Op, got {type(op).__name__}")
        self.ops.append(op)
        return op

    def clear(self) -> None:
        """Forget every op (call between training steps)."""
        self.ops.clear()

    # -- gradient accumulation ------------------------------------------------
    def _add_kernel(self, ctx) -> Kernel:
        k = self._add.get(id(ctx.device))
        if k is None:
            k = self._add[id(ctx.device)] = Kernel("grad_accumulate.wgsl", defines={"WG": _ADD_WG}, ctx=ctx)
        return k

    def _accumulate(self, rec: Recorder, grads: dict, owned: set, tensor: GpuTensor, grad: GpuTensor) -> None:
        if grad.numel != tensor.numel:
            raise ValueError(f"gradient {grad!r} has {grad.numel} elements but {tensor!r} has {tensor.numel}")
        key = id(tensor.buffer)
        entry = grads.get(key)
        if entry is None:
            grads[key] = (tensor, grad)
            return
        acc = entry[1]
        if key not in owned:  # never add into a tensor the tape did not allocate
            fresh = GpuTensor.empty(acc.shape, acc.dtype, f"grad[{tensor.label}]", acc.ctx)
            rec.copy(acc, fresh)
            acc = fresh
            owned.add(key)
            grads[key] = (tensor, acc)
        n = acc.numel
        rec.dispatch(
            self._add_kernel(acc.ctx),
            [Uniform(np.array([n, 0, 0, 0], np.uint32)), acc, grad],
            workgroups_for(n, _ADD_WG, acc.ctx),
        )

    # -- backward ---------------------------------------------------------------
    def backward(self, rec: Recorder, seed_grads) -> Gradients:
        """Run every op's backward in reverse order.

        Args:
            rec: recorder the backward kernels are recorded into (not submitted).
            seed_grads: ``{output tensor: gradient}`` (or a list of pairs), the
                gradients to start from, e.g. ``{loss: ones}``.

        Returns:
            :class:`Gradients` for every tensor reached (op inputs and outputs).
            The seed tensors are used as they are, never written to.
        """
        pairs = seed_grads.items() if isinstance(seed_grads, dict) else seed_grads
        grads: dict = {}
        owned: set = set()
        for tensor, grad in pairs:
            self._accumulate(rec, grads, owned, tensor, grad)
        for op in reversed(self.ops):
            g_out = tuple(None if t is None else (grads[id(t.buffer)][1] if id(t.buffer) in grads else None) for t in op.outputs)
            if all(g is None for g in g_out):
                continue  # nothing downstream depends on this op
            g_in = op.backward(rec, g_out)
            if len(g_in) != len(op.inputs):
                raise ValueError(f"{op.name}.backward returned {len(g_in)} gradients for {len(op.inputs)} inputs")
            for t, g in zip(op.inputs, g_in):
                if t is not None and g is not None:
                    fresh = id(t.buffer) not in grads
                    self._accumulate(rec, grads, owned, t, g)
                    if fresh:
                        owned.add(id(t.buffer))  # op backward results belong to the tape
        return Gradients(grads)
