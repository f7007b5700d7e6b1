"""GPU runtime: device choice, tensors, WGSL loading, kernels, recording, timing.

Everything above this layer talks to the GPU through these names only.
"""

from .device import (
    OPTIONAL_FEATURES,
    GpuContext,
    GpuError,
    NoAdapterError,
    create_context,
    get_context,
    set_context,
)
from .kernel import Kernel, Recorder, Uniform, workgroups_for
from .profiler import Profiler
from .shader import ShaderError, preprocess, shader_dir
from .tensor import BufferTooLargeError, GpuTensor, as_tensor

__all__ = [
    "OPTIONAL_FEATURES",
    "BufferTooLargeError",
    "GpuContext",
    "GpuError",
    "GpuTensor",
    "Kernel",
    "NoAdapterError",
    "Profiler",
    "Recorder",
    "ShaderError",
    "Uniform",
    "as_tensor",
    "create_context",
    "get_context",
    "preprocess",
    "set_context",
    "shader_dir",
    "workgroups_for",
]
