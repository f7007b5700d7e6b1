"""GPU tensors: a storage buffer with a shape and a dtype.

Tensors are row-major (C order) with 32-bit elements (``float32``, ``uint32``,
``int32``). Every buffer is usable as storage, copy source/destination and
indirect-dispatch arguments. Buffers are at least 16 bytes, so zero-length
tensors can still be bound.
"""

from __future__ import annotations

import math
import threading
import weakref

import numpy as np
import wgpu

from .device import GpuContext, GpuError, get_context

SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.uint32), np.dtype(np.int32))

_USAGE = (
    wgpu.BufferUsage.STORAGE
    | wgpu.BufferUsage.COPY_SRC
    | wgpu.BufferUsage.COPY_DST
    | wgpu.BufferUsage.INDIRECT
)


class BufferTooLargeError(GpuError):
    """A tensor is larger than one storage binding may be on this device.

    Attributes:
        nbytes: the requested size in bytes.
        limit: the device's ``max-storage-buffer-binding-size`` in bytes.
        what: the tensor's label.
    """

    def __init__(self, what: str, nbytes: int, limit: int):
        self.what, self.nbytes, self.limit = what, nbytes, limit
        super().__init__(
            f"GPU buffer {what!r} needs {nbytes / 2**20:.1f} MiB but this device binds at most "
            f"{limit / 2**20:.1f} MiB per storage buffer (max-storage-buffer-binding-size). "
            "Use fewer splats or a smaller image, or a GPU with a larger limit."
        )


def _alloc_size(nbytes: int) -> int:
    return max(16, (nbytes + 15) // 16 * 16)


class _MemoryCounter:
    """Bytes held by live tensor buffers (allocated by :meth:`GpuTensor.empty`)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.live = 0
        self.peak = 0

    def add(self, buffer, nbytes: int) -> None:
        with self.lock:
            self.live += nbytes
            self.peak = max(self.peak, self.live)
        weakref.finalize(buffer, self.sub, nbytes)

    def sub(self, nbytes: int) -> None:
        with self.lock:
            self.live -= nbytes


_memory = _MemoryCounter()


def gpu_memory_stats() -> dict:
    """GPU memory held by tensor buffers, in bytes: ``{"live": ..., "peak": ...}``.

    Counts every buffer made by :meth:`GpuTensor.empty` (and so ``zeros`` and
    ``from_numpy``) from its creation until Python releases it; the peak is
    since the process started or the last :func:`reset_gpu_memory_peak`. The
    driver's own allocations (pipelines, uniform arenas, query sets) are not
    included, so this is a lower bound of what the device holds.
    """
    with _memory.lock:
        return {"live": _memory.live, "peak": _memory.peak}


def reset_gpu_memory_peak() -> None:
    """Restart the peak of :func:`gpu_memory_stats` from the bytes live now."""
    with _memory.lock:
        _memory.peak = _memory.live


class GpuTensor:
    """A shaped, typed view of one ``wgpu.GPUBuffer``.

    Attributes:
        buffer: the underlying buffer (size rounded up to 16 bytes).
        shape: tuple of ints.
        dtype: ``numpy.dtype`` (float32, uint32 or int32).
        label: a name used in error messages and debuggers.
    """

    __slots__ = ("buffer", "shape", "dtype", "label", "ctx", "__weakref__")

    def __init__(self, buffer, shape, dtype, label: str = "", ctx: GpuContext | None = None):
        self.buffer = buffer
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.label = label
        self.ctx = ctx or get_context()

    @classmethod
    def view_of(cls, buffer, shape: tuple, dtype: np.dtype, label: str, ctx: GpuContext) -> "GpuTensor":
        """A tensor over an existing ``buffer`` (at least ``prod(shape) * itemsize`` bytes).

        The fast path of the constructor for hot loops: ``shape`` must be a tuple of
        ints and ``dtype`` a ``numpy.dtype``; nothing is converted or checked.
        """
        t = object.__new__(cls)
        t.buffer, t.shape, t.dtype, t.label, t.ctx = buffer, shape, dtype, label, ctx
        return t

    # -- construction -----------------------------------------------------
    @classmethod
    def empty(cls, shape, dtype=np.float32, label: str = "", ctx: GpuContext | None = None) -> "GpuTensor":
        """Allocate an uninitialised tensor (wgpu zero-fills new buffers).

        Raises:
            BufferTooLargeError: when it exceeds one storage binding.
        """
        ctx = ctx or get_context()
        dtype = np.dtype(dtype)
        if dtype not in SUPPORTED_DTYPES:
            raise TypeError(f"GpuTensor {label!r}: dtype {dtype} unsupported; use float32, uint32 or int32")
        shape = tuple(int(s) for s in (shape if isinstance(shape, (tuple, list)) else (shape,)))
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes > ctx.max_binding_bytes:
            raise BufferTooLargeError(label or "tensor", nbytes, ctx.max_binding_bytes)
        size = _alloc_size(nbytes)
        buf = ctx.device.create_buffer(size=size, usage=_USAGE, label=label or "tensor")
        _memory.add(buf, size)
        return cls(buf, shape, dtype, label, ctx)

    zeros = empty  # new wgpu buffers are zero-initialised

    @classmethod
    def from_numpy(cls, array, label: str = "", ctx: GpuContext | None = None, dtype=None) -> "GpuTensor":
        """Upload a numpy array (converted to ``dtype`` or its own 32-bit dtype).

        float64 becomes float32 and int64 becomes int32 unless ``dtype`` says otherwise.
        """
        arr = np.asarray(array)
        if dtype is None:
            dtype = {"f": np.float32, "u": np.uint32, "i": np.int32, "b": np.uint32}.get(arr.dtype.kind)
            if dtype is None:
                raise TypeError(f"GpuTensor {label!r}: cannot upload dtype {arr.dtype}")
        arr = np.ascontiguousarray(arr, dtype=dtype)
        t = cls.empty(arr.shape, arr.dtype, label, ctx)
        if arr.nbytes:
            t.ctx.device.queue.write_buffer(t.buffer, 0, arr)
        return t

    # -- properties ---------------------------------------------------------
    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0] if self.shape else 1

    def __repr__(self) -> str:
        return f"GpuTensor({self.label!r}, shape={self.shape}, dtype={self.dtype.name})"

    # -- data movement --------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """Copy to a new numpy array (waits for queued GPU work)."""
        if self.nbytes == 0:
            return np.zeros(self.shape, self.dtype)
        data = self.ctx.device.queue.read_buffer(self.buffer, 0, _alloc_size(self.nbytes))
        return np.frombuffer(data, dtype=self.dtype, count=self.numel).reshape(self.shape).copy()

    def write(self, array, offset_elems: int = 0) -> None:
        """Overwrite elements starting at ``offset_elems`` from a numpy array."""
        arr = np.ascontiguousarray(array, dtype=self.dtype).ravel()
        if offset_elems + arr.size > self.numel:
            raise ValueError(f"{self!r}: writing {arr.size} elements at {offset_elems} overflows")
        if arr.size:
            self.ctx.device.queue.write_buffer(self.buffer, offset_elems * self.dtype.itemsize, arr)

    def fill_zero(self, encoder=None) -> None:
        """Zero the whole buffer (inside ``encoder`` if given, else right away)."""
        if encoder is not None:
            encoder.clear_buffer(self.buffer)
        else:
            enc = self.ctx.device.create_command_encoder()
            enc.clear_buffer(self.buffer)
            self.ctx.device.queue.submit([enc.finish()])

    def reshape(self, *shape) -> "GpuTensor":
        """A view with another shape over the same buffer (-1 allowed once)."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        if -1 in shape:
            known = math.prod(s for s in shape if s != -1)
            shape = tuple(self.numel // max(known, 1) if s == -1 else s for s in shape)
        if math.prod(shape) != self.numel:
            raise ValueError(f"cannot reshape {self.shape} to {shape}")
        return GpuTensor(self.buffer, shape, self.dtype, self.label, self.ctx)

    def clone(self, encoder=None) -> "GpuTensor":
        """A new tensor with a copy of this one's data."""
        out = GpuTensor.empty(self.shape, self.dtype, self.label, self.ctx)
        if self.nbytes:
            enc = encoder or self.ctx.device.create_command_encoder()
            enc.copy_buffer_to_buffer(self.buffer, 0, out.buffer, 0, _alloc_size(self.nbytes))
            if encoder is None:
                self.ctx.device.queue.submit([enc.finish()])
        return out


def as_tensor(x, label: str = "", dtype=None) -> GpuTensor:
    """Return ``x`` if it is a :class:`GpuTensor`, else upload it."""
    if isinstance(x, GpuTensor):
        return x
    return GpuTensor.from_numpy(x, label=label, dtype=dtype)
