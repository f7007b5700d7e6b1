"""Correlation cost volume: per-plane dot products of reference features with warped source features.

``cost[d, y, x] = (1 / C) · Σ_c ref[c, y, x] · warped[c, d, y, x]`` — the matching score of
MVSplat (Chen et al. 2024, section 3.1) and DepthSplat (Xu et al. 2025): ``warped`` is the
other view's features at D depth planes (:func:`brushpy.nn.warp.plane_sweep_warp`), the
``1/C`` keeps the scores independent of the channel count. Differentiable with respect to both
inputs. Kernels: ``shaders/nn_correlation.wgsl`` (gathers, deterministic). Reference:
:func:`brushpy.nn.reference.correlation`.
"""

from __future__ import annotations

import numpy as np

from ..autodiff import Op
from ..gpu import GpuTensor, Kernel, Recorder, UniformLayout, workgroups_for
from ._checks import check_grad, check_tensor, record

#: shaders/nn_correlation.wgsl
CORR_PARAMS = UniformLayout("CorrParams", [
    ("count", "u32", "threads of the dispatch"),
    ("channels", "u32"),
    ("planes", "u32"),
    ("pixels", "u32", "H*W"),
    ("scale", "f32", "1 / C"),
])


def _kernel(entry: str) -> Kernel:
    return Kernel("nn_correlation.wgsl", entry, structs=[CORR_PARAMS])


class CorrelationOp(Op):
    """``cost [D, H, W] = Σ_c ref[c] · warped[c, d] / C``.

    Args:
        rec: recorder for the forward.
        ref: float32 [C, H, W] reference features.
        warped: float32 [C, D, H, W] source features warped to the reference at D planes.

    inputs: ``{"ref", "warped"}``; outputs: ``{"y"}`` float32 [D, H, W].

    Raises:
        TypeError, ValueError: shapes that do not fit together.
    """

    name = "correlation"

    def __init__(self, rec: Recorder, ref: GpuTensor, warped: GpuTensor):
        c, h, w = check_tensor(ref, "correlation ref", 3, "[C, H, W]")
        c2, d, h2, w2 = check_tensor(warped, "correlation warped", 4, "[C, D, H, W]")
        if (c2, h2, w2) != (c, h, w):
            raise ValueError(f"correlation: warped {warped.shape} does not fit ref {ref.shape}")
        self.dims = dict(channels=c, planes=d, pixels=h * w, scale=1.0 / c)
        y = GpuTensor.empty((d, h, w), np.float32, "correlation y", ref.ctx)
        with rec.stage("nn_correlation"):
            rec.dispatch(_kernel("forward"), {"params": CORR_PARAMS.pack(count=y.numel, **self.dims), "a": ref,
                                              "b": warped, "gout": ref, "out": y}, workgroups_for(y.numel, 256, ref.ctx))
        self.inputs = {"ref": ref, "warped": warped}
        self.outputs = {"y": y}

    def backward(self, rec: Recorder, grad_outputs: dict) -> dict:
        g = check_grad(grad_outputs["y"], self.outputs["y"], self.name)
        ref, warped = self.inputs["ref"], self.inputs["warped"]
        ga = GpuTensor.empty(ref.shape, np.float32, "correlation grad ref", ref.ctx)
        gb = GpuTensor.empty(warped.shape, np.float32, "correlation grad warped", ref.ctx)
        with rec.stage("nn_correlation_backward"):
            for entry, out in (("backward_a", ga), ("backward_b", gb)):
                rec.dispatch(_kernel(entry), {"params": CORR_PARAMS.pack(count=out.numel, **self.dims), "a": ref,
                                              "b": warped, "gout": g, "out": out},
                             workgroups_for(out.numel, 256, ref.ctx))
        return {"ref": ga, "warped": gb}


def correlation(rec: Recorder, ref: GpuTensor, warped: GpuTensor, tape=None) -> GpuTensor:
    """Record :class:`CorrelationOp` (on ``tape`` when given); returns the cost volume [D, H, W]."""
    return record(CorrelationOp(rec, ref, warped), tape)
