"""A small reverse-mode autodiff tape over GPU tensors: the spine of every training step.

A training step is a short chain of coarse ops (3D filter -> render -> loss), each
with a hand-written backward kernel, so the tape is deliberately simple:

* An :class:`Op` is one application of an operation. Its forward has already
  run (kernels recorded into a :class:`~brushpy.gpu.Recorder`) when it is put
  on the tape; it keeps what its backward needs as attributes, declares its
  ``inputs`` and ``outputs`` by name (``{name: GpuTensor}``; an input may be
  ``None`` for a non-differentiable slot), and implements
  ``backward(rec, grad_outputs: {name: GpuTensor | None}) -> {name: GpuTensor | None}``.
* A *parameter group* (:class:`ParamGroup`) is a named set of GPU tensors, e.g.
  :class:`brushpy.render.splats.Splats` (``params() -> {name: tensor}``);
  :meth:`Gradients.of` returns the gradients of a whole group by name, the form
  :meth:`brushpy.optim.Adam.step` takes.
* :meth:`Tape.backward` walks the ops in reverse, hands each the gradients of
  its outputs and collects the gradients of its inputs. When several ops feed
  the same tensor, their gradients are summed on the GPU (``grad_accumulate.wgsl``).

Nothing is copied to the CPU: gradients are GPU tensors recorded into the
caller's recorder; submit it (or keep recording the optimizer step) after.

Tensors are identified by their buffer: a reshaped view
(:meth:`GpuTensor.reshape`) shares its gradient with the original, which is
returned in the shape it first arrived in.

Example (what :meth:`brushpy.train.Trainer.step` does)::

    tape = Tape()
    render = tape.record(RenderOp(state, splats, out=grad_buffers))
    loss = tape.record(ImageLossOp(loss_fn, rec, render.outputs["image"], gt))
    grads = tape.backward(rec, loss.seed)
    adam.step(rec, splats, grads.of(splats), step)
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from .gpu import GpuTensor, Kernel, Recorder, UniformLayout, workgroups_for

_ADD_WG = 256
#: shaders/grad_accumulate.wgsl
ADD_PARAMS = UniformLayout("Params", [("n", "u32", "elements")])


@runtime_checkable
class ParamGroup(Protocol):
    """A named set of trainable GPU tensors (e.g. :class:`~brushpy.render.splats.Splats`).

    ``params()`` returns ``{name: GpuTensor}`` in a fixed order (the group's
    ``PARAM_NAMES``); optimizers and :meth:`Gradients.of` address tensors by these names.
    """

    def params(self) -> dict[str, GpuTensor]: ...


class Op:
    """One recorded application of a differentiable operation.

    Subclasses set ``inputs`` (``{name: GpuTensor or None}``; ``None`` marks a
    non-differentiable slot) and ``outputs`` (``{name: GpuTensor}``), keep
    whatever their backward needs, and implement :meth:`backward`. ``name`` (a
    class attribute) says what the op is in logs and tests (``"render"``, ``"loss"``).
    """

    name: str = "op"
    inputs: dict = {}
    outputs: dict = {}

    def backward(self, rec: Recorder, grad_outputs: dict) -> dict:
        """Record the gradients of the inputs into ``rec``.

        Args:
            rec: recorder to record the backward kernels into.
            grad_outputs: ``{output name: GpuTensor shaped like it, or None}``;
                ``None`` when nothing downstream depends on that output.

        Returns:
            ``{input name: GpuTensor shaped like it}`` (the op may return a fresh
            tensor or one of its own reused buffers; the tape may add into it);
            names left out or mapped to ``None`` get no gradient.
        """
        raise NotImplementedError


class FusedLossOp(Op):
    """Base of loss ops whose kernels compute ``dL/d input`` in the same pass as the loss.

    The backward records nothing: it returns the precomputed gradient of the input. That
    is the gradient for a seed of exactly 1, so the op must be seeded with :attr:`seed`
    (the loss's own unit tensor, never written); any other seed raises, since a loss used
    twice or scaled needs an op per use. Subclasses record the loss in ``__init__`` and
    call :meth:`_set` with what it produced.

    inputs: ``{input_name: tensor}`` (``input_name`` is a class attribute: ``"image"`` for
    the image losses, ``"depth"`` for :class:`brushpy.loss.DepthLossOp`);
    outputs: ``{"loss": loss_value}`` float32 [1].

    Several losses on one tape: each has its own output tensor and unit seed, so seed
    the tape with all of them, ``tape.backward(rec, [a.seed, b.seed])`` (see
    :meth:`Tape.backward`); gradients reaching one tensor from both are summed.
    """

    name = "loss"
    #: the name of the one differentiable input
    input_name = "image"

    def _set(self, input: GpuTensor, loss_value: GpuTensor, unit_seed: GpuTensor, grad_input: GpuTensor) -> None:
        self.inputs = {self.input_name: input}
        self.outputs = {"loss": loss_value}
        self.unit_seed = unit_seed
        #: the precomputed ``dL/d input`` (``v_image`` for the image losses)
        self.grad_input = grad_input
        self.v_image = grad_input

    @property
    def seed(self) -> dict:
        """``{loss: 1}``, the seed gradients for :meth:`Tape.backward`."""
        return {self.outputs["loss"]: self.unit_seed}

    def backward(self, rec: Recorder, grad_outputs: dict) -> dict:
        if grad_outputs["loss"] is not self.unit_seed:
            raise ValueError(f"{type(self).__name__}'s gradient is precomputed for a seed of 1: seed the tape with "
                             "op.seed (a loss used twice or scaled needs a loss op per use)")
        return {self.input_name: self.grad_input}


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

    def of(self, group) -> dict[str, GpuTensor]:
        """``{name: gradient}`` for the tensors of a parameter group (``group.params()``,
        or a ``{name: tensor}`` dict) that a gradient reached; tensors no op used are left out."""
        params = group.params() if hasattr(group, "params") else group
        out = {}
        for name, t in params.items():
            g = self.get(t)
            if g is not None:
                out[name] = g
        return out


def _new_add_kernel(ctx) -> Kernel:
    return Kernel("grad_accumulate.wgsl", defines={"WG": _ADD_WG}, ctx=ctx, structs=[ADD_PARAMS])


#: the ``ctx.cache`` key of the gradient-sum kernel
_add_kernel_key = "autodiff.grad_accumulate"


def _seed_pairs(seed_grads) -> list:
    """``(tensor, gradient)`` pairs of a seed: a dict, a list of pairs, or a list of dicts."""
    if isinstance(seed_grads, dict):
        return list(seed_grads.items())
    pairs = []
    for item in seed_grads:
        if isinstance(item, dict):
            pairs.extend(item.items())
        else:
            tensor, grad = item
            pairs.append((tensor, grad))
    return pairs


class Tape:
    """Records ops in forward order and runs their backward in reverse."""

    def __init__(self):
        self.ops: list[Op] = []

    def record(self, op: Op) -> Op:
        """Append an op whose forward has been recorded; returns it (for chaining ``.outputs[name]``)."""
        if not isinstance(op, Op):
            raise TypeError(f"Tape.record expects an autodiff.Op, got {type(op).__name__}")
        self.ops.append(op)
        return op

    def clear(self) -> None:
        """Forget every op (call between training steps)."""
        self.ops.clear()

    # -- gradient accumulation ------------------------------------------------
    @staticmethod
    def _add_kernel(ctx) -> Kernel:
        """The gradient-sum kernel of ``ctx`` (one per context, in ``ctx.cache``)."""
        return ctx.cache(_add_kernel_key, _new_add_kernel)

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
            {"params": ADD_PARAMS.pack(n=n), "acc": acc, "grad": grad},
            workgroups_for(n, _ADD_WG, acc.ctx),
        )

    # -- backward ---------------------------------------------------------------
    def backward(self, rec: Recorder, seed_grads) -> Gradients:
        """Run every op's backward in reverse order.

        Args:
            rec: recorder the backward kernels are recorded into (not submitted).
            seed_grads: ``{output tensor: gradient}``, a list of ``(tensor, gradient)``
                pairs, or a list of such dicts: the gradients to start from, e.g.
                ``{loss: ones}`` or a fused loss op's ``seed``
                (:class:`brushpy.loss.ImageLossOp`). Several losses are several seeds
                (``[image_loss.seed, depth_loss.seed]``): the backward then gives the
                gradient of their sum. Seeds given twice for one tensor are summed.

        Returns:
            :class:`Gradients` for every tensor reached (op inputs and outputs).
            The seed tensors are used as they are, never written to.
        """
        pairs = _seed_pairs(seed_grads)
        grads: dict = {}
        owned: set = set()
        for tensor, grad in pairs:
            self._accumulate(rec, grads, owned, tensor, grad)
        for op in reversed(self.ops):
            g_out = {}
            for name, t in op.outputs.items():
                entry = grads.get(id(t.buffer))
                g_out[name] = None if entry is None else entry[1]
            if all(g is None for g in g_out.values()):
                continue  # nothing downstream depends on this op
            g_in = op.backward(rec, g_out)
            unknown = sorted(set(g_in) - set(op.inputs))
            if unknown:
                raise ValueError(f"{op.name}.backward returned gradients for {unknown}, which are not its inputs "
                                 f"{sorted(op.inputs)}")
            for name, g in g_in.items():
                t = op.inputs[name]
                if t is not None and g is not None:
                    fresh = id(t.buffer) not in grads
                    self._accumulate(rec, grads, owned, t, g)
                    if fresh:
                        owned.add(id(t.buffer))  # op backward results belong to the tape
        return Gradients(grads)
