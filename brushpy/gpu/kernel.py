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

Host cost per dispatch (the Python side of recording). Creating a wgpu
buffer or bind group costs tens of microseconds, a dispatch from cached
objects a few, so neither is done per dispatch in a steady loop:

- **Uniforms live in a per-recorder arena.** Every uniform binding is
  declared with a dynamic offset. :class:`Uniform` bytes bound by a dispatch
  are appended to a host staging copy of an arena chunk (a 64 KiB
  ``UNIFORM | COPY_DST`` buffer) at the device's
  ``min-uniform-buffer-offset-alignment``, and the dispatch binds the chunk at
  that offset. :meth:`Recorder.submit` uploads each used chunk with one
  ``queue.write_buffer`` just before submitting, then hands the chunks back to
  a per-device pool, so the next recorder gets the same buffers. This is
  correct because queue writes and submits run in the order they are issued:
  a chunk rewritten for the next submit does not disturb commands already
  submitted. A recorder holding chunks takes other chunks from the pool, so
  recorders may be open side by side.
- **Bind groups are cached by buffer identity** (per pipeline, shared by all
  :class:`Kernel` objects of one shader/defines/device), uniforms included now
  that they sit in the few long-lived arena chunks. A cached bind group is
  dropped as soon as any buffer in it is garbage collected (weak references),
  so the cache never keeps dead tensors' GPU memory alive; each pipeline keeps
  at most ``_BIND_GROUP_CACHE`` entries (least recently used dropped first).
  Callers that want hits frame after frame reuse their buffers (see the
  renderer's buffer pool in :mod:`brushpy.render.forward`).
- ``set_pipeline`` is skipped when consecutive dispatches of one compute pass
  use the same pipeline, and without a timing profiler consecutive stages share
  one compute pass (opening a pass costs ~10-25 us).

``benchmarks/bench_dispatch.py`` measures these costs.
"""

from __future__ import annotations

import contextlib
import math
import operator
import os
import re
import weakref
from collections import OrderedDict

import numpy as np
import wgpu

from .device import GpuContext, get_context
from .shader import parse_binding_names, parse_bindings, preprocess
from .tensor import GpuTensor

#: key of the per-context pipeline table in GpuContext.cache
_PIPELINES = "brushpy.gpu.kernel.pipelines"
#: most bind groups cached per pipeline (entries also die with any of their buffers)
_BIND_GROUP_CACHE = 256
#: bytes per uniform arena chunk (the WebGPU default max-uniform-buffer-binding-size)
UNIFORM_CHUNK_BYTES = 64 * 1024


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

    The bytes are padded to a multiple of 16. Binding a ``Uniform`` copies it
    into the recorder's uniform arena (see the module notes) when the dispatch
    is recorded; binding the same ``Uniform`` again before the recorder submits
    reuses that copy. The bytes are captured at construction: build a new
    ``Uniform`` for new values.
    """

    __slots__ = ("data", "_slot")

    def __init__(self, data):
        if isinstance(data, np.ndarray):
            data = data.tobytes()
        data = bytes(data)
        pad = (-len(data)) % 16
        self.data = data + b"\0" * pad if pad or not data else data
        self._slot = None  # (chunk, chunk generation, offset) of the latest placement


# -- uniform arena -----------------------------------------------------------------


class _UniformChunk:
    """One arena buffer and its host staging copy."""

    __slots__ = ("buffer", "staging", "used", "generation", "owner", "__weakref__")

    def __init__(self, device, size: int):
        self.buffer = device.create_buffer(
            size=size, usage=wgpu.BufferUsage.UNIFORM | wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_DST,
            label="brushpy.uniform_arena",
        )
        self.staging = bytearray(size)
        self.used = 0
        self.generation = 0
        self.owner = None  # the Recorder filling it, None while pooled


class _ChunkPool:
    """Free arena chunks of one context (last freed is handed out first, so buffers repeat)."""

    def __init__(self, ctx: GpuContext):
        self.device = ctx.device
        self.alignment = max(16, int(ctx.limits.get("min-uniform-buffer-offset-alignment", 256)),
                             int(ctx.limits.get("min-storage-buffer-offset-alignment", 256)))
        self.free: list[_UniformChunk] = []
        self.created = 0  # chunks made so far (a steady loop stops making new ones)

    def take(self, nbytes: int) -> _UniformChunk:
        if nbytes <= UNIFORM_CHUNK_BYTES and self.free:
            return self.free.pop()
        self.created += 1
        return _UniformChunk(self.device, max(UNIFORM_CHUNK_BYTES, nbytes))

    def give(self, chunk: _UniformChunk) -> None:
        chunk.used = 0
        chunk.generation += 1
        chunk.owner = None
        if len(chunk.staging) == UNIFORM_CHUNK_BYTES and len(self.free) < 64:
            self.free.append(chunk)


def _chunk_pool(ctx: GpuContext) -> _ChunkPool:
    """The context's arena chunk pool (in :meth:`GpuContext.cache`)."""
    return ctx.cache(_ChunkPool, _ChunkPool)


# -- bind-group cache ------------------------------------------------------------------

# id(buffer) -> (weak reference to the buffer, set of (id(cache), key) entries using it)
_BUFFER_USERS: dict = {}
# id(cache) -> bind-group cache of a pipeline (weak: pipelines live as long as their context)
_CACHES = weakref.WeakValueDictionary()


def _forget_buffer(buf_id: int, _ref=None) -> None:
    entry = _BUFFER_USERS.pop(buf_id, None)
    if entry is None:
        return
    for cache_id, key in list(entry[1]):
        cache = _CACHES.get(cache_id)
        if cache is not None:
            _drop_cached(cache, key)


def _drop_cached(cache: OrderedDict, key) -> None:
    """Remove ``key`` from ``cache`` and from the user sets of its buffers."""
    item = cache.pop(key, None)
    if item is None:
        return
    entry = (id(cache), key)
    for other in item[1]:
        users = _BUFFER_USERS.get(other)
        if users is not None:
            users[1].discard(entry)


class _Pipeline:
    """A compute pipeline, its layout, binding kinds and bind-group cache."""

    def __init__(self, pipeline, layout, kinds: dict, name: str, names: dict):
        self.pipeline = pipeline
        self.layout = layout
        self.kinds = kinds
        self.name = name
        self.slots = sorted(kinds)
        #: WGSL variable names in binding order (what a bindings dict is keyed on)
        self.names = tuple(names.get(s, f"@binding({s})") for s in self.slots)
        #: a bindings dict -> its values in binding order (one C call; KeyError when one is missing)
        get = operator.itemgetter(*self.names) if self.names else (lambda _d: ())
        self.take = get if len(self.names) != 1 else (lambda d: (get(d),))
        self.uniform_positions = tuple(i for i, s in enumerate(self.slots) if kinds[s] == "uniform")
        self.cache: OrderedDict = OrderedDict()  # key -> (bind group, buffer ids)
        _CACHES[id(self.cache)] = self.cache


def _register_users(cache: OrderedDict, key, buffers) -> None:
    entry = (id(cache), key)
    for buf in buffers:
        bid = id(buf)
        users = _BUFFER_USERS.get(bid)
        if users is None:
            users = (weakref.ref(buf, lambda _r, bid=bid: _forget_buffer(bid)), set())
            _BUFFER_USERS[bid] = users
        users[1].add(entry)


_UNIFORM_DECL = re.compile(r"var\s*<\s*uniform\s*>")


def uniforms_as_storage(ctx: GpuContext) -> bool:
    """Whether kernels read their ``var<uniform>`` parameters as read-only storage.

    True on CPU devices (Mesa's lavapipe), where a uniform buffer's values are
    compiled into a new variant of the shader whenever they change and the
    variants are never freed: a training run's camera, background noise and step
    counters made every step compile shaders and leak about 2 MB
    (``tests/test_render_forward.py::test_no_host_memory_growth_per_render``).
    Storage buffers are not specialised that way. The WGSL and the bytes are the
    same (our parameter structs are laid out identically in both address
    spaces); ``BRUSHPY_UNIFORMS_AS_STORAGE=0`` or ``1`` overrides the choice.
    """
    env = os.environ.get("BRUSHPY_UNIFORMS_AS_STORAGE", "").strip()
    if env in ("0", "1"):
        return env == "1"
    return ctx.is_cpu


def _new_table(_ctx) -> dict:
    return {}


class BindingError(ValueError):
    """A dispatch's bindings do not match the kernel's ``@binding`` declarations."""


class Kernel:
    """One compute pipeline and its bind-group layout.

    Args:
        shader: file name in ``shaders/`` (e.g. ``"project_forward.wgsl"``).
        entry_point: the ``@compute`` function.
        defines: template values (see :mod:`brushpy.gpu.shader`).
        ctx: device context (default: :func:`get_context`).
        structs: :class:`~brushpy.gpu.layout.UniformLayout` objects whose WGSL the
            shader's ``#struct Name`` lines are replaced with.

    The pipeline (and its bind-group cache) is cached per (shader, entry point,
    defines, structs) in the context's :meth:`~brushpy.gpu.GpuContext.cache`, so
    constructing the same Kernel twice is cheap and pipelines live as long as their context. Uniform
    bindings are declared with ``has_dynamic_offset`` (see the module notes).
    """

    def __init__(self, shader: str, entry_point: str = "main", defines: dict | None = None, ctx: GpuContext | None = None,
                 structs=()):
        self.ctx = ctx or get_context()
        defs = {"HAS_SUBGROUPS": self.ctx.has_subgroups, "HAS_FLOAT_ATOMICS": self.ctx.has_float_atomics}
        defs.update(defines or {})
        self.name = f"{shader}:{entry_point}"
        as_storage = uniforms_as_storage(self.ctx)
        key = (shader, entry_point, tuple(sorted((k, str(v)) for k, v in defs.items())), as_storage,
               tuple(s.wgsl() for s in structs))
        pipelines = self.ctx.cache(_PIPELINES, _new_table)
        cached = pipelines.get(key)
        if cached is None:
            src = preprocess(shader, defs, structs)
            kinds = parse_bindings(src)
            names = parse_binding_names(src)
            if as_storage:  # see uniforms_as_storage: same bytes, bound as read-only storage
                src = _UNIFORM_DECL.sub("var<storage, read>", src)
            device = self.ctx.device
            module = device.create_shader_module(code=src, label=shader)
            entries = []
            for idx in sorted(kinds):
                kind = kinds[idx]
                if kind == "uniform":
                    buf = {"type": "read-only-storage" if as_storage else "uniform", "has_dynamic_offset": True}
                else:
                    buf = {"type": kind}
                entries.append({"binding": idx, "visibility": wgpu.ShaderStage.COMPUTE, "buffer": buf})
            layout = device.create_bind_group_layout(entries=entries, label=self.name)
            pipeline = device.create_compute_pipeline(
                layout=device.create_pipeline_layout(bind_group_layouts=[layout]),
                compute={"module": module, "entry_point": entry_point},
                label=self.name,
            )
            cached = _Pipeline(pipeline, layout, kinds, self.name, names)
            pipelines[key] = cached
        self._pipe = cached
        self.pipeline, self.layout, self.binding_kinds = cached.pipeline, cached.layout, cached.kinds

    @property
    def binding_names(self) -> tuple:
        """The WGSL variable names of the kernel's bindings, in binding order."""
        return self._pipe.names

    def _by_name(self, bindings: dict):
        pipe = self._pipe
        if len(bindings) == len(pipe.names):
            try:
                return pipe.take(bindings)
            except KeyError:  # explained below
                pass
        names = pipe.names
        try:
            out = [bindings[n] for n in names]
        except KeyError:
            missing = [n for n in names if n not in bindings]
            raise BindingError(f"kernel {self.name}: no value for binding {missing[0]!r}"
                               f" (missing: {', '.join(missing)}; bindings: {', '.join(names)})") from None
        if len(bindings) != len(names):
            unknown = [n for n in bindings if n not in names]
            raise BindingError(f"kernel {self.name} has no binding {unknown[0]!r} (bindings: {', '.join(names)})")
        return out

    def bind(self, bindings, rec: "Recorder") -> tuple:
        """``(bind_group, dynamic_offsets)`` for ``bindings``: a dict keyed by the WGSL
        variable names of the kernel's bindings (see :attr:`binding_names`), or a sequence
        in binding order.

        Values are :class:`GpuTensor`, :class:`Uniform` (placed in ``rec``'s
        uniform arena) or raw ``wgpu.GPUBuffer`` objects (bound whole, at offset 0; at a uniform
        binding it needs STORAGE usage as well as UNIFORM, see :func:`uniforms_as_storage`).
        The bind group is cached by buffer identity (and uniform sizes).

        Raises:
            BindingError: a dict lacks a binding of the kernel or names one it does not have
                (the message names the kernel and the binding), or a sequence's length differs
                from the kernel's declarations.
        """
        if type(bindings) is dict:
            bindings = self._by_name(bindings)
        pipe = self._pipe
        if len(bindings) != len(pipe.slots):
            raise BindingError(f"kernel {self.name} declares {len(pipe.slots)} bindings, got {len(bindings)}")
        buffers = [b.buffer if isinstance(b, GpuTensor) else b for b in bindings]
        offsets = []
        sizes = []
        for pos in pipe.uniform_positions:
            b = buffers[pos]
            if type(b) is Uniform:
                buffers[pos], off = rec._place_uniform(b)
                offsets.append(off)
                sizes.append(len(b.data))
            else:  # a raw buffer: bound whole
                offsets.append(0)
                sizes.append(b.size)
        key = (*map(id, buffers), *sizes)
        cache = pipe.cache
        item = cache.get(key)
        if item is not None:
            cache.move_to_end(key)
            return item[0], offsets
        return self._new_bind_group(key, buffers, sizes), offsets

    def _new_bind_group(self, key, buffers, sizes):
        pipe = self._pipe
        for b in buffers:
            if not isinstance(b, wgpu.GPUBuffer):
                raise TypeError(f"kernel {self.name}: cannot bind {type(b).__name__} (expected GpuTensor, Uniform or GPUBuffer)")
        uniform_sizes = dict(zip(pipe.uniform_positions, sizes))
        entries = [
            {"binding": slot, "resource": {"buffer": buf, "offset": 0, "size": uniform_sizes.get(pos, buf.size)}}
            for pos, (slot, buf) in enumerate(zip(pipe.slots, buffers))
        ]
        bg = self.ctx.device.create_bind_group(layout=pipe.layout, entries=entries, label=self.name)
        cache = pipe.cache
        cache[key] = (bg, key[: len(buffers)])
        _register_users(cache, key, buffers)
        if len(cache) > _BIND_GROUP_CACHE:
            _drop_cached(cache, next(iter(cache)))
        return bg


class Recorder:
    """Records a sequence of GPU commands into one command encoder.

    Use :meth:`stage` to group dispatches under a name. With a profiler that has
    timestamps, each stage is its own timed compute pass and dispatches outside a
    stage get a pass each; without one, dispatches share a compute pass until a
    copy, clear or submit (fewer passes, less host time).
    :meth:`submit` finishes and submits the encoder; the recorder can then be
    reused for the next batch. Uniform values bound by the dispatches are
    uploaded at submit (one write per arena chunk, see the module notes).
    """

    def __init__(self, ctx: GpuContext | None = None, profiler=None):
        self.ctx = ctx or get_context()
        self.profiler = profiler
        self._encoder = self.ctx.device.create_command_encoder()
        self._pass = None
        self._pass_pipeline = None
        self._stage: str | None = None
        # with timestamps every stage (and every dispatch outside one) gets its own
        # pass; without, one pass runs on until a copy, clear or submit needs the encoder
        self._timed = profiler is not None and bool(getattr(profiler, "enabled", True))
        self._pool = _chunk_pool(self.ctx)
        self._chunks: list[_UniformChunk] = []  # arena chunks filled since the last submit
        self._on_submit: list = []

    @property
    def encoder(self):
        """The ``wgpu.GPUCommandEncoder`` being recorded into, for commands this class
        does not wrap; any open compute pass is ended first (untimed passes stay open
        across dispatches and stages, and an encoder with an open pass is locked)."""
        self._close_pass()
        return self._encoder

    # -- uniform arena ----------------------------------------------------------
    def _place_uniform(self, u: Uniform) -> tuple:
        """``(arena buffer, byte offset)`` holding ``u``'s bytes for this submit."""
        slot = u._slot
        if slot is not None:
            chunk = slot[0]
            if chunk.owner is self and chunk.generation == slot[1]:
                return chunk.buffer, slot[2]
        data = u.data
        n = len(data)
        chunks = self._chunks
        chunk = chunks[-1] if chunks else None
        if chunk is not None:
            align = self._pool.alignment
            off = -(-chunk.used // align) * align
            if off + n > len(chunk.staging):
                chunk = None
        if chunk is None:
            chunk = self._pool.take(n)
            chunk.owner = self
            chunks.append(chunk)
            off = 0
        chunk.staging[off : off + n] = data
        chunk.used = off + n
        u._slot = (chunk, chunk.generation, off)
        return chunk.buffer, off

    @property
    def uniform_bytes(self) -> int:
        """Bytes of the uniform arena filled since the last submit (alignment gaps included)."""
        return sum(c.used for c in self._chunks)

    # -- passes -------------------------------------------------------------
    def _open_pass(self):
        if self._pass is None:
            if self._timed:
                tw = self.profiler.pass_timestamps(self._stage) if self._stage else None
                self._pass = self._encoder.begin_compute_pass(label=self._stage or "brushpy", timestamp_writes=tw)
            else:
                # untimed passes span stages; no label (encoding one costs ~10 us on wgpu-py)
                self._pass = self._encoder.begin_compute_pass()
            self._pass_pipeline = None
        return self._pass

    def _close_pass(self):
        if self._pass is not None:
            self._pass.end()
            self._pass = None

    @contextlib.contextmanager
    def stage(self, name: str):
        """Group the commands recorded inside under ``name`` (per-stage GPU timing).

        With a timing profiler the stage gets its own compute pass(es); without one,
        consecutive stages share a pass (a pass boundary changes nothing else: every
        dispatch is its own synchronisation scope either way).
        """
        if self._timed:
            self._close_pass()
        prev, self._stage = self._stage, name
        try:
            yield self
        finally:
            if self._timed:
                self._close_pass()
            self._stage = prev

    # -- commands -------------------------------------------------------------
    def dispatch(self, kernel: Kernel, bindings, groups=None, indirect: GpuTensor | None = None, indirect_offset: int = 0):
        """Record ``kernel`` over ``groups`` workgroups (int or (x, y, z)) or an indirect argument buffer.

        ``bindings``: one per ``@binding`` of the kernel, a dict keyed by the WGSL
        variable names (``{"means": t, "params": Uniform(...)}``) or a sequence in binding
        order: :class:`GpuTensor`, :class:`Uniform` or a raw ``wgpu.GPUBuffer``
        (see :meth:`Kernel.bind`; a name mismatch raises :class:`BindingError`). A grid
        with a zero dimension records nothing but still opens the stage's pass.
        """
        bg, offsets = kernel.bind(bindings, self)
        p = self._pass or self._open_pass()
        if indirect is None:
            if type(groups) is int:
                groups = (groups, 1, 1)
            if not (groups[0] and groups[1] and groups[2]):
                if self._stage is None and self._timed:
                    self._close_pass()
                return
        pipeline = kernel.pipeline
        if pipeline is not self._pass_pipeline:
            p.set_pipeline(pipeline)
            self._pass_pipeline = pipeline
        p.set_bind_group(0, bg, offsets)
        if indirect is None:
            p.dispatch_workgroups(*groups)
        else:
            p.dispatch_workgroups_indirect(indirect.buffer, indirect_offset)
        if self._stage is None and self._timed:
            self._close_pass()

    def copy(self, src: GpuTensor, dst: GpuTensor, nbytes: int | None = None, src_offset: int = 0, dst_offset: int = 0):
        """Copy ``nbytes`` (default: all of ``src``) between tensors (byte offsets, multiples of 4)."""
        self._close_pass()
        n = src.nbytes if nbytes is None else nbytes
        n = (n + 3) // 4 * 4
        if n:
            self._encoder.copy_buffer_to_buffer(src.buffer, src_offset, dst.buffer, dst_offset, n)

    def clear(self, tensor: GpuTensor, nbytes: int | None = None):
        """Zero a tensor's whole buffer, or only its first ``nbytes`` (rounded up to 4)."""
        self._close_pass()
        if nbytes is None:
            self._encoder.clear_buffer(tensor.buffer)
        else:
            n = min((int(nbytes) + 3) // 4 * 4, tensor.buffer.size)
            if n:
                self._encoder.clear_buffer(tensor.buffer, 0, n)

    def write(self, tensor: GpuTensor, array, offset_elems: int = 0):
        """Queue a host-to-GPU write (it happens before this recorder's commands run)."""
        tensor.write(array, offset_elems)

    def on_submit(self, callback) -> None:
        """Call ``callback()`` once, right after the next :meth:`submit` (e.g. to hand
        scratch buffers that the recorded commands use back to a pool)."""
        self._on_submit.append(callback)

    def submit(self):
        """Upload the uniform arena, finish and submit everything recorded so far; start a fresh encoder."""
        self._close_pass()
        if self.profiler is not None:
            self.profiler.resolve(self._encoder)
        queue = self.ctx.device.queue
        chunks, self._chunks = self._chunks, []
        for chunk in chunks:
            if chunk.used:
                queue.write_buffer(chunk.buffer, 0, chunk.staging, 0, -(-chunk.used // 4) * 4)
        queue.submit([self._encoder.finish()])
        for chunk in chunks:
            self._pool.give(chunk)
        self._encoder = self.ctx.device.create_command_encoder()
        callbacks, self._on_submit = self._on_submit, []
        for cb in callbacks:
            cb()
