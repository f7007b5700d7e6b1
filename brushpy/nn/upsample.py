"""Bilinear up-sampling by an integer factor, a tape op (NCHW float32).

Convention: PyTorch's ``F.interpolate(x, scale_factor=f, mode="bilinear", align_corners=False)``:
output index ``o`` along an axis samples the input at ``max((o + 0.5) / f - 0.5, 0)`` (edge
pixels clamp). Kernels: ``shaders/nn_upsample.wgsl`` (the backward gathers, no atomics).
Reference: :func:`brushpy.nn.reference.upsample_bilinear`.
"""

from __future__ import annotations

import numpy as np

from ..autodiff import Op
from ..gpu import GpuTensor, Kernel, Recorder, UniformLayout, workgroups_for
from ._checks import check_grad, check_tensor, record

#: shaders/nn_upsample.wgsl
UP_PARAMS = UniformLayout("UpParams", [
    ("count", "u32", "threads"),
    ("factor", "u32"),
    ("h", "u32", "input height"),
    ("w", "u32", "input width"),
    ("ho", "u32", "h * factor"),
    ("wo", "u32", "w * factor"),
])


def _kernel(entry: str) -> Kernel:
    return Kernel("nn_upsample.wgsl", entry, structs=[UP_PARAMS])


class UpsampleOp(Op):
    """``y`` [B, C, H·f, W·f] = bilinear up-sampling of ``x`` [B, C, H, W] by the integer ``factor`` f ≥ 1.

    inputs: ``{"x"}``; outputs: ``{"y"}``.

    Raises:
        ValueError: a factor that is not a positive integer, or a non-4D input.
    """

    name = "upsample_bilinear"

    def __init__(self, rec: Recorder, x: GpuTensor, factor: int):
        b, c, h, w = check_tensor(x, "upsample input x", 4, "[B, C, H, W]")
        if int(factor) != factor or factor < 1:
            raise ValueError(f"upsample: factor must be a positive integer, got {factor}")
        f = int(factor)
        self.dims = dict(factor=f, h=h, w=w, ho=h * f, wo=w * f)
        y = GpuTensor.empty((b, c, h * f, w * f), np.float32, "upsample y", x.ctx)
        with rec.stage("nn_upsample"):
            rec.dispatch(_kernel("forward"), {"params": UP_PARAMS.pack(count=y.numel, **self.dims), "src": x, "dst": y},
                         workgroups_for(y.numel, 256, x.ctx))
        self.inputs = {"x": x}
        self.outputs = {"y": y}

    def backward(self, rec: Recorder, grad_outputs: dict) -> dict:
        x = self.inputs["x"]
        g = check_grad(grad_outputs["y"], self.outputs["y"], self.name)
        gx = GpuTensor.empty(x.shape, np.float32, "upsample grad x", x.ctx)
        with rec.stage("nn_upsample_backward"):
            rec.dispatch(_kernel("backward"), {"params": UP_PARAMS.pack(count=x.numel, **self.dims), "src": g,
                                               "dst": gx}, workgroups_for(x.numel, 256, x.ctx))
        return {"x": gx}


def upsample_bilinear(rec: Recorder, x: GpuTensor, factor: int, tape=None) -> GpuTensor:
    """Record :class:`UpsampleOp` (on ``tape`` when given) and return its output."""
    return record(UpsampleOp(rec, x, factor), tape)
