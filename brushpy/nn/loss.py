"""Mean squared error as a fused tape loss op (the loss of the layers' training test).

``L = mean((x - t)²)``, ``dL/dx = 2·(x - t) / N``, computed in one kernel
(``shaders/nn_mse.wgsl``, one workgroup, deterministic). Reference: :func:`brushpy.nn.reference.mse`.
"""

from __future__ import annotations

import numpy as np

from ..autodiff import FusedLossOp
from ..gpu import GpuTensor, Kernel, Recorder, UniformLayout

#: shaders/nn_mse.wgsl
MSE_PARAMS = UniformLayout("MseParams", [("n", "u32", "elements"), ("inv_n", "f32", "1 / n")])


class MSELossOp(FusedLossOp):
    """``mean((x - target)²)`` over all elements; records the loss and ``dL/dx`` in the constructor.

    Args:
        rec: recorder; x: float32 tensor (the prediction, differentiable); target: float32 tensor
            with the same number of elements (not differentiated).

    inputs: ``{"x"}``; outputs: ``{"loss"}`` float32 [1]. Seed the tape with :attr:`seed`
    (:class:`brushpy.autodiff.FusedLossOp`).

    Raises:
        ValueError: dtypes other than float32, element counts that differ, or an empty tensor.
    """

    name = "mse"
    input_name = "x"

    def __init__(self, rec: Recorder, x: GpuTensor, target: GpuTensor):
        for what, t in (("x", x), ("target", target)):
            if not isinstance(t, GpuTensor) or t.dtype != np.float32:
                raise ValueError(f"mse {what} must be a float32 GpuTensor, got {t!r}")
        if x.numel != target.numel or x.numel == 0:
            raise ValueError(f"mse: x {x.shape} and target {target.shape} must have the same, non-zero element count")
        ctx = x.ctx
        loss = GpuTensor.empty((1,), np.float32, "mse loss", ctx)
        grad = GpuTensor.empty(x.shape, np.float32, "mse grad x", ctx)
        unit = GpuTensor.from_numpy(np.ones(1, np.float32), "mse seed (1)", ctx)
        kernel = Kernel("nn_mse.wgsl", structs=[MSE_PARAMS], ctx=ctx)
        with rec.stage("nn_mse"):
            rec.dispatch(kernel, {"params": MSE_PARAMS.pack(n=x.numel, inv_n=1.0 / x.numel), "x": x,
                                  "target_": target, "loss": loss, "grad": grad}, (1, 1, 1))
        self._set(x, loss, unit, grad)
