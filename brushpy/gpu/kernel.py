"""Compute kernels and command recording.

A :class:`Kernel` owns one compute pipeline (built once per shader, entry
point, defines and device) and its bind-group layout, derived from the
``@group(0) @binding(i)`` declarations in the WGSL. A :class:`Recorder`
records dispatches, copies and clears of a whole step into one command
encoder; :class:`~brushpy.gpu.profiler.Profiler` adds per-stage GPU time.

Large 1D dispatches: when a kernel needs more workgroups than one dimension
allows (65,535), :func:`workgroups_for` folds them into ``(x, y, 1)``; shaders
recover the linear index with ``linear_workgroup_id`` from ``common.wgsl``
and must bounds-check against their element count.
"""

from __future__ import annotations

import contextlib
import math
from collections import OrderedDict

import numpy as np
import wgpu

from .device import GpuContext, get_context
from .shader import parse_bindings, preprocess
from .tensor import GpuTensor

_PIPELINES: dict = {}
_BIND_GROUP_CACHE = 8


def workgroups_for(count: int, group_size: int, ctx: GpuContext | None = None) -> tuple[int, int, int]:
    """Workgroup grid covering ``count`` threads in groups of ``group_size``, folded into 2D if needed."""
    ctx = ctx or get_context()
    groups = max(1, math.ceil(count / group_size))
    limit = ctx.max_workgroups_per_dim
    if groups <= limit:
        return (groups, 1, 1)
    y = math.ceil(groups / limit)
    x = math.ceil(groups / y)
    return (x, y, 1)


class Uniform:
    """Bytes to bind as a uniform buffer (a numpy structured scalar, array or ``bytes``).

    The GPU buffer is created on first use and reused when the same ``Uniform`` is
    bound again (e.g. by several dispatches of one operation).
    """

    __slots__ = ("data", "_gpu")

    def __init__(self, data):
        if isinstance(data, np.ndarray):
            data = data.tobytes()
        data = bytes(data)
        pad = (-len(data)) % 16
        self.data = data + b"\0" * pad if pad or not data else data
        self._gpu = None  # (device, buffer) once bound


class Kernel:
    """One compute pipeline and its bind-group layout.

    Args:
        shader: file name in ``shaders/`` (e.g. ``"project_forward.wgsl"``).
        entry_point: the ``@compute`` function.
        defines: template values (see :mod:`brushpy.gpu.shader`).
        ctx: device context (default: :func:`get_context`).

    The pipeline is cached per (shader, entry point, defines, device), so
    constructing the same Kernel twice is cheap.
    """

    def __init__(self, shader: str, entry_point: str = "main", defines: dict | None = None, ctx: GpuContext | None = None):
        self.ctx = ctx or get_context()
        defs = {"HAS_SUBGROUPS": self.ctx.has_subgroups, "HAS_FLOAT_ATOMICS": self.ctx.has_float_atomics}
        defs.update(defines or {})
        self.name = f"{shader}:{entry_point}"
        key = (shader, entry_point, tuple(sorted((k, str(v)) for k, v in defs.items())), id(self.ctx.device))
        cached = _PIPELINES.get(key)
        if cached is None:
            src = preprocess(shader, defs)
            kinds = parse_bindings(src)
            device = self.ctx.device
            module = device.create_shader_module(code=src, label=shader)
            entries = []
            for idx in sorted(kinds):
                kind = kinds[idx]
                if kind == "uniform":
                    entries.append({"binding": idx, "visibility": wgpu.ShaderStage.COMPUTE, "buffer": {"type": "uniform"}})
                else:
                    entries.append({"binding": idx, "visibility": wgpu.ShaderStage.COMPUTE, "buffer": {"type": kind}})
            layout = device.create_bind_group_layout(entries=entries, label=self.name)
            pipeline = device.create_compute_pipeline(
                layout=device.create_pipeline_layout(bind_group_layouts=[layout]),
                compute={"module": module, "entry_point": entry_point},
                label=self.name,
            )
            cached = (pipeline, layout, kinds)
            _PIPELINES[key] = cached
        self.pipeline, self.layout, self.binding_kinds = cached
        self._bind_groups: OrderedDict = OrderedDict()

    def bind_group(self, bindings) -> "wgpu.GPUBindGroup":
        """Bind group for ``bindings`` (index i = binding i), cached by buffer identity."""
        buffers = []
        for b in bindings:
            if isinstance(b, GpuTensor):
                buffers.append(b.buffer)
            elif isinstance(b, Uniform):
                if b._gpu is None or b._gpu[0] is not self.ctx.device:
                    b._gpu = (self.ctx.device, self.ctx.device.create_buffer_with_data(data=b.data, usage=wgpu.BufferUsage.UNIFORM))
                buffers.append(b._gpu[1])
            else:
                buffers.append(b)
        if len(buffers) != len(self.binding_kinds):
            raise ValueError(
                f"kernel {self.name} declares {len(self.binding_kinds)} bindings, got {len(buffers)}"
            )
        key = tuple(id(b) for b in buffers)
        bg = self._bind_groups.get(key)
        if bg is not None:
            self._bind_groups.move_to_end(key)
            return bg[0]
        entries = [{"binding": i, "resource": {"buffer": buf, "offset": 0, "size": buf.size}} for i, buf in zip(sorted(self.binding_kinds), buffers)]
        bg = self.ctx.device.create_bind_group(layout=self.layout, entries=entries, label=self.name)
        if not any(isinstance(b, Uniform) for b in bindings):
            # The cache holds the buffers (so ids stay unique while cached). Keep it
            # small: callers that allocate per call (the renderer) would otherwise pin
            # many frames' worth of GPU memory; steady loops over persistent buffers
            # (Adam, loss) still hit.
            self._bind_groups[key] = (bg, buffers)
            if len(self._bind_groups) > _BIND_GROUP_CACHE:
                self._bind_groups.popitem(last=False)
        return bg


class Recorder:
    """Records a sequence of GPU commands into one command encoder.

    Use :meth:`stage` to group dispatches under a name (one compute pass, timed
    when a profiler is attached); dispatches outside a stage get a pass each.
    :meth:`submit` finishes and submits the encoder; the recorder can then be
    reused for the next batch.
    """

    def __init__(self, ctx: GpuContext | None = None, profiler=None):
        self.ctx = ctx or get_context()
        self.profiler = profiler
        self.encoder = self.ctx.device.create_command_encoder()
        self._pass = None
        self._stage: str | None = None

    # -- passes -------------------------------------------------------------
    def _open_pass(self):
        if self._pass is None:
            label = self._stage or "brushpy"
            tw = self.profiler.pass_timestamps(self._stage) if (self.profiler and self._stage) else None
            self._pass = self.encoder.begin_compute_pass(label=label, timestamp_writes=tw)
        return self._pass

    def _close_pass(self):
        if self._pass is not None:
            self._pass.end()
            self._pass = None

    @contextlib.contextmanager
    def stage(self, name: str):
        """Group the commands recorded inside under ``name`` (per-stage GPU timing)."""
        self._close_pass()
        prev, self._stage = self._stage, name
        try:
            yield self
        finally:
            self._close_pass()
            self._stage = prev

    # -- commands -------------------------------------------------------------
    def dispatch(self, kernel: Kernel, bindings, groups=None, indirect: GpuTensor | None = None, indirect_offset: int = 0):
        """Record ``kernel`` over ``groups`` workgroups (int or (x, y, z)) or an indirect argument buffer."""
        bg = kernel.bind_group(bindings)
        p = self._open_pass()
        p.set_pipeline(kernel.pipeline)
        p.set_bind_group(0, bg)
        if indirect is not None:
            p.dispatch_workgroups_indirect(indirect.buffer, indirect_offset)
        else:
            if isinstance(groups, int):
                groups = (groups, 1, 1)
            if min(groups) == 0:
                return
            p.dispatch_workgroups(*groups)
        if self._stage is None:
            self._close_pass()

    def copy(self, src: GpuTensor, dst: GpuTensor, nbytes: int | None = None, src_offset: int = 0, dst_offset: int = 0):
        """Copy ``nbytes`` (default: all of ``src``) between tensors (byte offsets, multiples of 4)."""
        self._close_pass()
        n = src.nbytes if nbytes is None else nbytes
        n = (n + 3) // 4 * 4
        if n:
            self.encoder.copy_buffer_to_buffer(src.buffer, src_offset, dst.buffer, dst_offset, n)

    def clear(self, tensor: GpuTensor):
        """Zero a tensor's whole buffer."""
        self._close_pass()
        self.encoder.clear_buffer(tensor.buffer)

    def write(self, tensor: GpuTensor, array, offset_elems: int = 0):
        """Queue a host-to-GPU write (it happens before this recorder's commands run)."""
        tensor.write(array, offset_elems)

    def submit(self):
        """Finish and submit everything recorded so far; start a fresh encoder."""
        self._close_pass()
        if self.profiler is not None:
            self.profiler.resolve(self.encoder)
        self.ctx.device.queue.submit([self.encoder.finish()])
        self.encoder = self.ctx.device.create_command_encoder()
