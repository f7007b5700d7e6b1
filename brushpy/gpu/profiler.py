"""GPU timestamp profiler: time per named stage.

Each compute pass recorded inside ``Recorder.stage(name)`` gets a pair of
timestamps; the stage's time is the sum over its passes (copies and clears
between passes are not counted). Without the ``timestamp-query`` feature the
profiler records nothing and :meth:`Profiler.read` returns an empty dict.

Example::

    prof = Profiler()
    rec = Recorder(profiler=prof)
    with rec.stage("sort"):
        ...
    rec.submit()
    print(prof.read())   # {"sort": 0.42}  (milliseconds)
"""

from __future__ import annotations

import numpy as np
import wgpu

from .device import GpuContext, get_context


#: Most timed passes one profiler holds: a WebGPU query set has at most 4096 queries.
MAX_CAPACITY = 2048


class Profiler:
    """Collects per-stage GPU times in milliseconds.

    Args:
        capacity: maximum number of timed passes between two :meth:`read` calls
            (1..:data:`MAX_CAPACITY`; ``ValueError`` otherwise).
    """

    def __init__(self, capacity: int = 256, ctx: GpuContext | None = None):
        if not 1 <= capacity <= MAX_CAPACITY:
            raise ValueError(f"Profiler capacity must be in 1..{MAX_CAPACITY} timed passes (two timestamps each; "
                             f"WebGPU query sets hold at most 4096), got {capacity}; call read() more often instead")
        self.ctx = ctx or get_context()
        self.enabled = self.ctx.has_timestamps
        self.capacity = capacity
        self._names: list[str] = []
        self._resolved = 0
        if self.enabled:
            dev = self.ctx.device
            self.query_set = dev.create_query_set(type="timestamp", count=2 * capacity)
            self.resolve_buf = dev.create_buffer(
                size=16 * capacity, usage=wgpu.BufferUsage.QUERY_RESOLVE | wgpu.BufferUsage.COPY_SRC
            )
            self.read_buf = dev.create_buffer(
                size=16 * capacity, usage=wgpu.BufferUsage.COPY_DST | wgpu.BufferUsage.COPY_SRC
            )

    def pass_timestamps(self, name: str):
        """Timestamp writes for the next compute pass of stage ``name`` (``None`` when disabled or full)."""
        if not self.enabled or len(self._names) >= self.capacity:
            return None
        i = len(self._names)
        self._names.append(name)
        return {
            "query_set": self.query_set,
            "beginning_of_pass_write_index": 2 * i,
            "end_of_pass_write_index": 2 * i + 1,
        }

    def resolve(self, encoder) -> None:
        """Record resolution of the queries written since the last resolve (called by ``Recorder.submit``)."""
        n = len(self._names)
        if not self.enabled or n == self._resolved:
            return
        first = self._resolved
        # the resolve destination offset must be 256-aligned: resolve to 0, then copy into place
        encoder.resolve_query_set(self.query_set, 2 * first, 2 * (n - first), self.resolve_buf, 0)
        encoder.copy_buffer_to_buffer(self.resolve_buf, 0, self.read_buf, 16 * first, 16 * (n - first))
        self._resolved = n

    def read(self) -> dict[str, float]:
        """Milliseconds per stage since the last read (waits for the GPU); resets the profiler."""
        n = self._resolved
        out: dict[str, float] = {}
        if self.enabled and n:
            raw = self.ctx.device.queue.read_buffer(self.read_buf, 0, 16 * n)
            ticks = np.frombuffer(raw, dtype=np.uint64).reshape(n, 2).astype(np.float64)
            period = 1.0  # WebGPU timestamps are in nanoseconds
            for name, (t0, t1) in zip(self._names[:n], ticks):
                out[name] = out.get(name, 0.0) + float(max(t1 - t0, 0.0) * period * 1e-6)
        self._names = self._names[n:]
        self._resolved = 0
        return out
