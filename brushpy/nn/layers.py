"""Layers: weights in a :class:`~brushpy.nn.params.NetParams` plus the op that applies them.

A layer creates its tensors (named ``f"{name}.weight"``, ``f"{name}.bias"``) in the group when
constructed, with He initialisation for conv weights, and records its op when called::

    params = NetParams(seed=0)
    conv1 = Conv2d(params, "conv1", 3, 16, kernel_size=3, stride=2)
    y = relu(rec, conv1(rec, x, tape), tape)
"""

from __future__ import annotations

from ..gpu import GpuTensor, Recorder
from ._checks import record
from .conv import Conv2dOp
from .norm import GroupNormOp
from .params import NetParams
from .reference import GROUP_NORM_EPS


class Conv2d:
    """A conv layer: weight [C_out, C_in, K, K] (He normal, fan_in = C_in·K²) and bias [C_out] (zeros).

    Args:
        params: the group the tensors are created in; name: prefix of their names;
        in_channels, out_channels, kernel_size (odd; 1 and 3 tested), stride (1 or 2).
    """

    def __init__(self, params: NetParams, name: str, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: int = 1):
        k = int(kernel_size)
        self.stride = int(stride)
        self.weight = params.he_normal(f"{name}.weight", (out_channels, in_channels, k, k), in_channels * k * k)
        self.bias = params.zeros(f"{name}.bias", (out_channels,))

    def __call__(self, rec: Recorder, x: GpuTensor, tape=None, input_grad: bool = True) -> GpuTensor:
        """Record the conv of ``x`` [B, C_in, H, W] (on ``tape`` when given); returns [B, C_out, Ho, Wo]."""
        return record(Conv2dOp(rec, x, self.weight, self.bias, self.stride, input_grad), tape)


class GroupNorm:
    """Group normalisation with affine ``weight`` [C] (ones) and ``bias`` [C] (zeros) (PyTorch's init).

    Args:
        params, name: as :class:`Conv2d`; groups: number of groups (divides ``channels``).
    """

    def __init__(self, params: NetParams, name: str, groups: int, channels: int, eps: float = GROUP_NORM_EPS):
        if groups < 1 or channels % groups:
            raise ValueError(f"GroupNorm {name}: {groups} groups must divide {channels} channels")
        self.groups, self.eps = int(groups), float(eps)
        self.weight = params.ones(f"{name}.weight", (channels,))
        self.bias = params.zeros(f"{name}.bias", (channels,))

    def __call__(self, rec: Recorder, x: GpuTensor, tape=None) -> GpuTensor:
        return record(GroupNormOp(rec, x, self.groups, self.weight, self.bias, self.eps), tape)
