"""Adapter and device choice, optional features and their fallbacks.

One process-wide :class:`GpuContext` is created lazily by :func:`get_context`.

Environment variables
---------------------
``BRUSHPY_ADAPTER``
    Pick an adapter by a case-insensitive substring of its name or by backend
    (``vulkan``, ``metal``, ``d3d12``, ``gl``). Default: the high-performance
    adapter wgpu recommends.
``BRUSHPY_DISABLE_FEATURES``
    Comma-separated optional features to pretend are absent, to force (and
    test) the fallback paths: ``subgroup``, ``shader-float32-atomic``,
    ``timestamp-query``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from dataclasses import dataclass, field

import wgpu
from ..errors import RunError

#: Optional features brushpy uses when the adapter offers them. Each has a
#: code path that works without it.
OPTIONAL_FEATURES = ("subgroup", "shader-float32-atomic", "timestamp-query")

#: Limits raised to the adapter's maximum (wgpu's defaults are far lower).
_RAISED_LIMITS = (
    "max-storage-buffer-binding-size",
    "max-buffer-size",
    "max-storage-buffers-per-shader-stage",
    "max-compute-workgroup-storage-size",
    "max-compute-invocations-per-workgroup",
    "max-compute-workgroup-size-x",
    "max-compute-workgroup-size-y",
    "max-compute-workgroups-per-dimension",
    "max-bind-groups",
    "max-bindings-per-bind-group",
    "max-uniform-buffer-binding-size",
)


class GpuError(RunError):
    """Base class of brushpy's GPU runtime errors."""


class NoAdapterError(GpuError):
    """No WebGPU adapter (GPU driver or software Vulkan) could be found."""


NO_ADAPTER_HELP = (
    "brushpy found no WebGPU adapter{detail}.\n"
    "It needs a Vulkan, Metal or DX12 driver:\n"
    "  - on a machine with a GPU, install or update its driver;\n"
    "  - on a headless Linux box without a GPU, install Mesa's software Vulkan\n"
    "    driver (lavapipe): `sudo apt-get install mesa-vulkan-drivers` (Debian/Ubuntu)\n"
    "    or `sudo dnf install mesa-vulkan-drivers` (Fedora).\n"
    "Run `brushpy info` to see what wgpu finds; BRUSHPY_ADAPTER picks an adapter by name or backend."
)


_MISSING = object()


@dataclass
class GpuContext:
    """The adapter, the device and what they offer.

    Attributes:
        adapter: the ``wgpu.GPUAdapter`` in use.
        device: the ``wgpu.GPUDevice`` every buffer and pipeline lives on.
        features: optional features enabled on ``device`` (subset of
            :data:`OPTIONAL_FEATURES`), after ``BRUSHPY_DISABLE_FEATURES``.
        limits: the device limits (dict, kebab-case keys as in WebGPU).

    Everything built for one context (pipelines, kernel wrappers, scratch buffers,
    buffer pools) lives in its :meth:`cache`, so it lives exactly as long as the
    context and never leaks onto another one (tests switch contexts with
    :func:`set_context` to force fallback paths).
    """

    adapter: "wgpu.GPUAdapter"
    device: "wgpu.GPUDevice"
    features: frozenset = field(default_factory=frozenset)
    limits: dict = field(default_factory=dict)
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def cache(self, key, factory):
        """The object cached on this context under ``key``, made by ``factory(ctx)`` on first use.

        The one per-context cache of brushpy: a kernel wrapper keeps its pipelines,
        scratch buffers or pools here rather than in a module-level dict keyed by
        context. Lifetime: an entry lives as long as this context (it is dropped with
        it; the context may be collected while entries refer back to it) or until
        :meth:`forget` removes it. Keys are any hashable; use one the owner defines
        (e.g. its class or a module-level constant) so owners never collide.

        Args:
            key: hashable identifying the entry.
            factory: called with this context when ``key`` has no entry yet; its result is
                stored and returned.
        """
        value = self._cache.get(key, _MISSING)
        if value is _MISSING:
            value = self._cache[key] = factory(self)
        return value

    def forget(self, key):
        """Remove the entry under ``key`` from :meth:`cache` (the next use builds a new one);
        returns it, or None when there was none."""
        return self._cache.pop(key, None)

    @property
    def is_cpu(self) -> bool:
        """Whether the adapter is a CPU device (Mesa's lavapipe, WARP): some kernels
        and bindings take a CPU-friendly form there (see ``uniforms_as_storage`` and
        ``default_pixels_per_thread``)."""
        return str(self.adapter.info.get("adapter_type", "")).upper() == "CPU"

    @property
    def has_subgroups(self) -> bool:
        return "subgroup" in self.features

    @property
    def has_float_atomics(self) -> bool:
        return "shader-float32-atomic" in self.features

    @property
    def has_timestamps(self) -> bool:
        return "timestamp-query" in self.features

    @property
    def max_binding_bytes(self) -> int:
        """Largest storage buffer one binding may cover, in bytes."""
        return int(self.limits["max-storage-buffer-binding-size"])

    @property
    def max_workgroups_per_dim(self) -> int:
        return int(self.limits["max-compute-workgroups-per-dimension"])

    def describe(self) -> dict:
        """Adapter, backend, features and key limits as a plain dict."""
        info = self.adapter.info
        return {
            "adapter": info.get("device", ""),
            "description": info.get("description", ""),
            "vendor": info.get("vendor", ""),
            "adapter_type": info.get("adapter_type", ""),
            "backend": info.get("backend_type", ""),
            "features": sorted(self.features),
            "adapter_features": sorted(str(f) for f in self.adapter.features),
            "limits": {k: self.limits[k] for k in sorted(self.limits) if k in _RAISED_LIMITS},
        }


_context: GpuContext | None = None
_lock = threading.Lock()


def _disabled_features() -> set:
    raw = os.environ.get("BRUSHPY_DISABLE_FEATURES", "")
    return {f.strip() for f in raw.split(",") if f.strip()}


def _quiet_headless_probe() -> None:
    """Give Mesa's EGL probe a runtime folder on headless Linux.

    wgpu also probes OpenGL/EGL adapters; without ``XDG_RUNTIME_DIR`` Mesa prints
    "error: XDG_RUNTIME_DIR is invalid" to stderr on every start, which reads like
    a failure. Only Wayland clients use the folder, so a private empty one is harmless.
    """
    if not sys.platform.startswith("linux"):
        return
    current = os.environ.get("XDG_RUNTIME_DIR")
    if current and os.path.isdir(current):
        return
    os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="brushpy-xdg-")


def _choose_adapter(spec: str | None) -> "wgpu.GPUAdapter":
    if not spec:
        try:
            adapter = wgpu.gpu.request_adapter_sync(power_preference="high-performance")
        except Exception as exc:  # wgpu raises various errors when nothing is there
            raise NoAdapterError(NO_ADAPTER_HELP.format(detail=f" ({exc})")) from exc
        if adapter is None:
            raise NoAdapterError(NO_ADAPTER_HELP.format(detail=""))
        return adapter
    try:
        adapters = wgpu.gpu.enumerate_adapters_sync()
    except Exception as exc:
        raise NoAdapterError(NO_ADAPTER_HELP.format(detail=f" ({exc})")) from exc
    needle = spec.lower()
    for adapter in adapters:
        info = adapter.info
        name = f"{info.get('device', '')} {info.get('description', '')}".lower()
        if needle in name or needle == str(info.get("backend_type", "")).lower():
            return adapter
    found = ", ".join(a.summary for a in adapters) or "none"
    raise NoAdapterError(
        f"BRUSHPY_ADAPTER={spec!r} matches no adapter. Adapters found: {found}. "
        "Use a substring of a name or a backend (vulkan, metal, d3d12, gl), or unset it."
    )


def create_context(adapter_spec: str | None = None, disable: set | None = None) -> GpuContext:
    """Create a new :class:`GpuContext` (most code wants :func:`get_context`).

    Args:
        adapter_spec: name substring or backend; ``None`` reads ``BRUSHPY_ADAPTER``.
        disable: optional features to leave off; ``None`` reads ``BRUSHPY_DISABLE_FEATURES``.

    Raises:
        NoAdapterError: no adapter, or none matching ``adapter_spec``.
    """
    if adapter_spec is None:
        adapter_spec = os.environ.get("BRUSHPY_ADAPTER") or None
    if disable is None:
        disable = _disabled_features()
    _quiet_headless_probe()
    adapter = _choose_adapter(adapter_spec)
    offered = {str(f) for f in adapter.features}
    features = [f for f in OPTIONAL_FEATURES if f in offered and f not in disable]
    # timestamps inside encoders let a profiler write between passes.
    extra = [f for f in ("timestamp-query-inside-encoders",) if f in offered and "timestamp-query" in features]
    limits = {k: adapter.limits[k] for k in _RAISED_LIMITS if k in adapter.limits}
    device = adapter.request_device_sync(
        required_features=features + extra, required_limits=limits, label="brushpy"
    )
    return GpuContext(adapter=adapter, device=device, features=frozenset(features), limits=dict(device.limits))


def get_context() -> GpuContext:
    """The process-wide :class:`GpuContext`, created on first use.

    Raises:
        NoAdapterError: when no adapter can be found (the message says how to get one).
    """
    global _context
    with _lock:
        if _context is None:
            _context = create_context()
        return _context


def set_context(ctx: GpuContext | None) -> None:
    """Replace the process-wide context (tests use this to force fallback paths).

    Kernels cache pipelines per context (:meth:`GpuContext.cache`), so switching is safe; tensors made on
    one context cannot be used on another.
    """
    global _context
    with _lock:
        _context = ctx
