"""Softmax over the depth candidates (dim 1 of [B, D, H, W]), a tape op.

``y[b,d,i,j] = exp(x[b,d,i,j] - m) / Σ_k exp(x[b,k,i,j] - m)`` with ``m`` the per-pixel maximum;
backward ``dx = y·(g - Σ_k g_k·y_k)`` from the saved output. Kernels: ``shaders/nn_softmax.wgsl``.
Reference: :func:`brushpy.nn.reference.softmax_depth`.
"""

from __future__ import annotations

import numpy as np

from ..autodiff import Op
from ..gpu import GpuTensor, Kernel, Recorder, UniformLayout, workgroups_for
from ._checks import check_grad, check_tensor, record

#: shaders/nn_softmax.wgsl
SOFTMAX_PARAMS = UniformLayout("SoftmaxParams", [("count", "u32", "B*H*W"), ("d", "u32"), ("hw", "u32")])


def _kernel(entry: str) -> Kernel:
    return Kernel("nn_softmax.wgsl", entry, structs=[SOFTMAX_PARAMS])


class SoftmaxDepthOp(Op):
    """Softmax of ``x`` [B, D, H, W] over D; inputs ``{"x"}``, outputs ``{"y"}`` (same shape)."""

    name = "softmax_depth"

    def __init__(self, rec: Recorder, x: GpuTensor):
        b, d, h, w = check_tensor(x, "softmax input x", 4, "[B, D, H, W]")
        self.params = SOFTMAX_PARAMS.pack(count=b * h * w, d=d, hw=h * w)
        self.count = b * h * w
        y = GpuTensor.empty(x.shape, np.float32, "softmax y", x.ctx)
        with rec.stage("nn_softmax"):
            rec.dispatch(_kernel("forward"), {"params": self.params, "a": x, "gout": x, "out": y},
                         workgroups_for(self.count, 256, x.ctx))
        self.inputs = {"x": x}
        self.outputs = {"y": y}

    def backward(self, rec: Recorder, grad_outputs: dict) -> dict:
        y = self.outputs["y"]
        g = check_grad(grad_outputs["y"], y, self.name)
        gx = GpuTensor.empty(y.shape, np.float32, "softmax grad x", y.ctx)
        with rec.stage("nn_softmax_backward"):
            rec.dispatch(_kernel("backward"), {"params": self.params, "a": y, "gout": g, "out": gx},
                         workgroups_for(self.count, 256, y.ctx))
        return {"x": gx}


def softmax_depth(rec: Recorder, x: GpuTensor, tape=None) -> GpuTensor:
    """Record :class:`SoftmaxDepthOp` (on ``tape`` when given) and return the probabilities."""
    return record(SoftmaxDepthOp(rec, x), tape)
