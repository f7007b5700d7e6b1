"""Network layers as autodiff tape ops: WGSL forward and backward, float64 NumPy references.

The foundation of the feed-forward (DepthSplat-style) encoder. Each op is a
:class:`brushpy.autodiff.Op` whose constructor records the forward kernels into a recorder;
put it on a :class:`~brushpy.autodiff.Tape` to get gradients. Modules:

* :mod:`~brushpy.nn.conv` conv2d (3x3 / 1x1, stride 1 / 2, bias); :mod:`~brushpy.nn.activation`
  ReLU, GELU (tanh form); :mod:`~brushpy.nn.norm` group norm; :mod:`~brushpy.nn.upsample`
  bilinear up-sampling; :mod:`~brushpy.nn.concat` channel concat; :mod:`~brushpy.nn.softmax`
  softmax over depth candidates; :mod:`~brushpy.nn.correlation` the correlation cost volume; :mod:`~brushpy.nn.warp` plane-sweep warp of a source view's
  features into a reference view; :mod:`~brushpy.nn.loss` MSE;
* :mod:`~brushpy.nn.params` :class:`NetParams`, the weights as a parameter group (He init,
  seeded; stepped by ``brushpy.optim.Adam(config, lr=...)``); :mod:`~brushpy.nn.layers` layers
  that own their weights; weights files: ``brushpy.io.weights`` (safetensors);
* :mod:`~brushpy.nn.reference` the float64 references.

Tensors are NCHW float32 GpuTensors.
"""

from .activation import ACTIVATIONS, ActivationOp, gelu, relu
from .concat import ConcatOp, concat_channels
from .correlation import CorrelationOp, correlation
from .conv import CONV_PARAMS, Conv2dOp, conv2d
from .layers import Conv2d, GroupNorm
from .loss import MSELossOp
from .norm import GroupNormOp, group_norm
from .params import NetParams, WeightsError
from .softmax import SoftmaxDepthOp, softmax_depth
from .upsample import UpsampleOp, upsample_bilinear
from .warp import PlaneSweepWarpOp, plane_sweep_warp

__all__ = [
    "ACTIVATIONS",
    "CONV_PARAMS",
    "ActivationOp",
    "ConcatOp",
    "Conv2d",
    "Conv2dOp",
    "CorrelationOp",
    "GroupNorm",
    "GroupNormOp",
    "MSELossOp",
    "NetParams",
    "PlaneSweepWarpOp",
    "SoftmaxDepthOp",
    "UpsampleOp",
    "WeightsError",
    "concat_channels",
    "conv2d",
    "correlation",
    "gelu",
    "group_norm",
    "plane_sweep_warp",
    "relu",
    "softmax_depth",
    "upsample_bilinear",
]
