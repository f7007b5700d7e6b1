"""GPU runtime: device choice, tensors, WGSL loading, uniform layouts, kernels, recording, timing.

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
from .kernel import BindingError, Kernel, Recorder, Uniform, workgroups_for
from .layout import LayoutError, UniformLayout
from .profiler import Profiler
from .shader import ShaderError, preprocess, shader_dir
from .tensor import BufferTooLargeError, GpuTensor, as_tensor, gpu_memory_stats, reset_gpu_memory_peak

__all__ = [
    "OPTIONAL_FEATURES",
    "BindingError",
    "BufferTooLargeError",
    "GpuContext",
    "GpuError",
    "GpuTensor",
    "Kernel",
    "LayoutError",
    "NoAdapterError",
    "Profiler",
    "Recorder",
    "ShaderError",
    "Uniform",
    "UniformLayout",
    "as_tensor",
    "create_context",
    "get_context",
    "gpu_memory_stats",
    "preprocess",
    "reset_gpu_memory_peak",
    "set_context",
    "shader_dir",
    "workgroups_for",
]
