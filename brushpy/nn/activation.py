"""Elementwise activations as tape ops: ReLU and GELU (tanh form), WGSL forward and backward.

* ReLU: ``max(x, 0)``; derivative ``[x > 0]`` (0 at 0, as PyTorch).
* GELU, **tanh form**: ``0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`` (Hendrycks & Gimpel 2016,
  "Gaussian Error Linear Units", section 2; PyTorch's ``F.gelu(x, approximate="tanh")``). The
  tanh form is chosen because WGSL has no ``erf``; it differs from the erf form by < 5e-4.

Kernels: ``shaders/nn_activation.wgsl``. References: :mod:`brushpy.nn.reference` ``relu``, ``gelu``.
"""

from __future__ import annotations

import numpy as np

from ..autodiff import Op
from ..gpu import GpuTensor, Kernel, Recorder, UniformLayout, workgroups_for
from ._checks import check_grad, record

#: shaders/nn_activation.wgsl
ACT_PARAMS = UniformLayout("ActParams", [("n", "u32", "elements")])
ACTIVATIONS = ("relu", "gelu")


def _kernel(entry: str, kind: str) -> Kernel:
    return Kernel("nn_activation.wgsl", entry, {"GELU": kind == "gelu"}, structs=[ACT_PARAMS])


class ActivationOp(Op):
    """``y = f(x)`` elementwise, ``f`` = ``"relu"`` or ``"gelu"``; the forward is recorded by the constructor.

    Args:
        rec: recorder; x: float32 tensor of any shape; kind: ``"relu"`` or ``"gelu"``.

    inputs: ``{"x"}``; outputs: ``{"y"}`` (shaped like ``x``).

    Raises:
        ValueError: an unknown ``kind`` or a non-float32 input.
    """

    def __init__(self, rec: Recorder, x: GpuTensor, kind: str = "relu"):
        if kind not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {kind!r}")
        if not isinstance(x, GpuTensor) or x.dtype != np.float32:
            raise ValueError(f"{kind} input must be a float32 GpuTensor, got {x!r}")
        self.name = kind
        self.kind = kind
        y = GpuTensor.empty(x.shape, np.float32, f"{kind} y", x.ctx)
        with rec.stage(f"nn_{kind}"):
            rec.dispatch(_kernel("forward", kind), {"params": ACT_PARAMS.pack(n=x.numel), "x": x, "gout": x, "out": y},
                         workgroups_for(x.numel, 256, x.ctx))
        self.inputs = {"x": x}
        self.outputs = {"y": y}

    def backward(self, rec: Recorder, grad_outputs: dict) -> dict:
        x = self.inputs["x"]
        g = check_grad(grad_outputs["y"], x, self.name)
        gx = GpuTensor.empty(x.shape, np.float32, f"{self.kind} grad x", x.ctx)
        with rec.stage(f"nn_{self.kind}_backward"):
            rec.dispatch(_kernel("backward", self.kind), {"params": ACT_PARAMS.pack(n=x.numel), "x": x, "gout": g,
                                                           "out": gx}, workgroups_for(x.numel, 256, x.ctx))
        return {"x": gx}


def relu(rec: Recorder, x: GpuTensor, tape=None) -> GpuTensor:
    """Record ``max(x, 0)`` (on ``tape`` when given) and return it."""
    return record(ActivationOp(rec, x, "relu"), tape)


def gelu(rec: Recorder, x: GpuTensor, tape=None) -> GpuTensor:
    """Record GELU (tanh form) of ``x`` (on ``tape`` when given) and return it."""
    return record(ActivationOp(rec, x, "gelu"), tape)

