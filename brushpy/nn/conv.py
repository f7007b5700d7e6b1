"""2D convolution (NCHW, float32): a tape op with WGSL forward and backward.

``y[b,o,i,j] = bias[o] + Σ_{c,ky,kx} weight[o,c,ky,kx] · x[b, c, s·i + ky - p, s·j + kx - p]``
with zero padding ``p = K // 2``, so a 3x3 conv keeps the size at stride 1 and halves it
(rounding up) at stride 2: ``Ho = (H + 2p - K) // s + 1`` (PyTorch's ``nn.Conv2d(k, stride=s,
padding=k // 2)``). Weights are ``[C_out, C_in, K, K]``, PyTorch's layout.

Kernels: ``shaders/nn_conv2d.wgsl`` (direct loops, one thread per output / input / weight /
bias element, no atomics). Reference: :func:`brushpy.nn.reference.conv2d`.
"""

from __future__ import annotations

import numpy as np

from ..autodiff import Op
from ..gpu import GpuTensor, Kernel, Recorder, UniformLayout, workgroups_for
from ._checks import check_grad, check_tensor, record
from .reference import conv_out_size

#: kernel sizes and strides the kernels are tested with (any odd K works)
KERNEL_SIZES = (1, 3)
STRIDES = (1, 2)

#: shaders/nn_conv2d.wgsl
CONV_PARAMS = UniformLayout("ConvParams", [
    ("count", "u32", "threads of the dispatch"),
    ("batch", "u32"),
    ("cin", "u32"),
    ("cout", "u32"),
    ("h", "u32", "input height"),
    ("w", "u32", "input width"),
    ("ho", "u32", "output height"),
    ("wo", "u32", "output width"),
])


def _kernel(entry: str, k: int, stride: int, backward: bool) -> Kernel:
    return Kernel("nn_conv2d.wgsl", entry, {"K": k, "S": stride, "BACKWARD": backward}, structs=[CONV_PARAMS])


class Conv2dOp(Op):
    """One conv2d application; the forward is recorded by the constructor.

    Args:
        rec: recorder for the forward kernel.
        x: float32 [B, C_in, H, W].
        weight: float32 [C_out, C_in, K, K], K odd (1 and 3 are tested).
        bias: float32 [C_out].
        stride: 1 or 2 (any positive stride works).
        input_grad: False when ``x`` needs no gradient (an input image): the backward then
            skips ``dL/dx`` (``inputs["x"]`` is None).

    inputs: ``{"x", "weight", "bias"}``; outputs: ``{"y"}`` float32 [B, C_out, Ho, Wo].

    Raises:
        TypeError, ValueError: shapes or dtypes that do not fit together (the message says which).
    """

    name = "conv2d"

    def __init__(self, rec: Recorder, x: GpuTensor, weight: GpuTensor, bias: GpuTensor, stride: int = 1,
                 input_grad: bool = True):
        b, cin, h, w = check_tensor(x, "conv2d input x", 4, "[B, C_in, H, W]")
        cout, wcin, k, k2 = check_tensor(weight, "conv2d weight", 4, "[C_out, C_in, K, K]")
        check_tensor(bias, "conv2d bias", 1, "[C_out]")
        if wcin != cin or k != k2 or k % 2 == 0:
            raise ValueError(f"conv2d: weight {weight.shape} does not fit input {x.shape} "
                             "(need [C_out, C_in, K, K] with C_in of the input and K odd)")
        if bias.shape[0] != cout:
            raise ValueError(f"conv2d: bias {bias.shape} does not match C_out = {cout}")
        if int(stride) < 1:
            raise ValueError(f"conv2d: stride must be >= 1, got {stride}")
        self.stride, self.k = int(stride), k
        ho, wo = conv_out_size(h, k, self.stride), conv_out_size(w, k, self.stride)
        self.dims = dict(batch=b, cin=cin, cout=cout, h=h, w=w, ho=ho, wo=wo)
        y = GpuTensor.empty((b, cout, ho, wo), np.float32, "conv2d y", x.ctx)
        n = y.numel
        with rec.stage("nn_conv2d"):
            rec.dispatch(_kernel("forward", k, self.stride, False),
                         {"params": CONV_PARAMS.pack(count=n, **self.dims), "x": x, "weight": weight, "bias": bias,
                          "y": y}, workgroups_for(n, 256, x.ctx))
        self.x, self.weight, self.bias = x, weight, bias
        self.inputs = {"x": x if input_grad else None, "weight": weight, "bias": bias}
        self.outputs = {"y": y}

    def backward(self, rec: Recorder, grad_outputs: dict) -> dict:
        g = check_grad(grad_outputs["y"], self.outputs["y"], self.name)
        ctx = self.x.ctx
        want_x = self.inputs["x"] is not None
        gx = GpuTensor.empty(self.x.shape if want_x else (4,), np.float32, "conv2d grad x", ctx)
        gw = GpuTensor.empty(self.weight.shape, np.float32, "conv2d grad weight", ctx)
        gb = GpuTensor.empty(self.bias.shape, np.float32, "conv2d grad bias", ctx)
        bindings = {"x": self.x, "weight": self.weight, "gout": g, "grad_x": gx, "grad_weight": gw, "grad_bias": gb}
        with rec.stage("nn_conv2d_backward"):
            passes = [("backward_weight", gw.numel), ("backward_bias", gb.numel)]
            if want_x:
                passes.insert(0, ("backward_input", gx.numel))
            for entry, n in passes:
                rec.dispatch(_kernel(entry, self.k, self.stride, True),
                             {"params": CONV_PARAMS.pack(count=n, **self.dims), **bindings},
                             workgroups_for(n, 256, ctx))
        out = {"weight": gw, "bias": gb}
        if want_x:
            out["x"] = gx
        return out


def conv2d(rec: Recorder, x: GpuTensor, weight: GpuTensor, bias: GpuTensor, stride: int = 1, tape=None,
           input_grad: bool = True) -> GpuTensor:
    """Record a conv2d (see :class:`Conv2dOp`) and return its output [B, C_out, Ho, Wo];
    with a ``tape`` the op is recorded on it for the backward."""
    return record(Conv2dOp(rec, x, weight, bias, stride, input_grad), tape)
