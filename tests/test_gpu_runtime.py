import numpy as np
import pytest

from brushpy.gpu import GpuTensor, Kernel, Profiler, Recorder, ShaderError, Uniform, preprocess, workgroups_for
from brushpy.gpu.shader import parse_bindings


def test_tensor_roundtrip(gpu):
    for dtype in (np.float32, np.uint32, np.int32):
        a = (np.arange(1000) * 3 - 7).astype(dtype).reshape(10, 100)
        t = GpuTensor.from_numpy(a)
        assert t.shape == (10, 100) and t.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(t.numpy(), a)
    empty = GpuTensor.empty((0, 3))
    assert empty.numpy().shape == (0, 3)


def test_tensor_too_large_names_buffer(gpu):
    from brushpy.gpu import BufferTooLargeError

    n = gpu.max_binding_bytes // 4 + 1
    with pytest.raises(BufferTooLargeError, match="huge"):
        GpuTensor.empty((n,), np.float32, label="huge")


def test_preprocess_templates():
    src = preprocess("common.wgsl", {})
    assert "fn linear_workgroup_id" in src
    with pytest.raises(ShaderError, match="not found"):
        preprocess("no_such_shader.wgsl")


def test_parse_bindings():
    src = """
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read_write> b: array<f32>;
"""
    assert parse_bindings(src) == {0: "uniform", 1: "read-only-storage", 2: "storage"}


def test_workgroups_fold(gpu):
    assert workgroups_for(10, 256) == (1, 1, 1)
    x, y, z = workgroups_for(70000 * 256, 256)
    assert x <= gpu.max_workgroups_per_dim and x * y >= 70000 and z == 1


def test_kernel_dispatch_and_profiler(gpu, tmp_path, monkeypatch):
    import brushpy.gpu.shader as shader_mod

    (tmp_path / "common.wgsl").write_text(preprocess("common.wgsl"))
    (tmp_path / "axpy.wgsl").write_text(
        """#include "common.wgsl"
struct Params { n: u32, scale: f32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@compute @workgroup_size({{WG}})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = linear_workgroup_id(wid, nwg) * {{WG}}u + lid;
    if (i >= params.n) { return; }
#if OFFSET
    out[i] = a[i] * params.scale + 1.0;
#else
    out[i] = a[i] * params.scale;
#endif
}
"""
    )
    monkeypatch.setattr(shader_mod, "shader_dir", lambda: tmp_path)
    shader_mod._read.cache_clear()
    try:
        n = 1000
        a = GpuTensor.from_numpy(np.arange(n, dtype=np.float32))
        out = GpuTensor.empty(n)
        params = Uniform(np.array([n], np.uint32).tobytes() + np.array([2.0], np.float32).tobytes())
        prof = Profiler()
        rec = Recorder(profiler=prof)
        for offset in (True, False):
            k = Kernel("axpy.wgsl", defines={"WG": 64, "OFFSET": offset})
            with rec.stage(f"axpy{offset}"):
                rec.dispatch(k, [params, a, out], workgroups_for(n, 64))
            rec.submit()
            expect = np.arange(n, dtype=np.float32) * 2 + (1 if offset else 0)
            np.testing.assert_array_equal(out.numpy(), expect)
        times = prof.read()
        if gpu.has_timestamps:
            assert set(times) == {"axpyTrue", "axpyFalse"} and all(t >= 0 for t in times.values())
    finally:
        shader_mod._read.cache_clear()


# -- uniform arena (dynamic offsets) and the bind-group cache --------------------------

_PICK_WGSL = """#include "common.wgsl"
struct Params { index: u32, value: u32, pad0: u32, pad1: u32, big: array<vec4<u32>, {{BIG}}> }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(1)
fn main() {
    // the value, plus the last vec4 of the large tail (proves the whole block is bound)
    out[params.index] = params.value + params.big[{{BIG}} - 1u].w;
}
"""


@pytest.fixture
def pick_kernel(gpu, tmp_path, monkeypatch):
    """Kernel factory for a tiny shader: out[index] = value + tail (from one uniform block)."""
    import brushpy.gpu.shader as shader_mod

    (tmp_path / "common.wgsl").write_text(preprocess("common.wgsl"))
    (tmp_path / "pick.wgsl").write_text(_PICK_WGSL)
    monkeypatch.setattr(shader_mod, "shader_dir", lambda: tmp_path)
    shader_mod._read.cache_clear()
    try:
        yield lambda big=1: Kernel("pick.wgsl", defines={"BIG": big})
    finally:
        shader_mod._read.cache_clear()


def _pick_params(index, value, big=1, tail=0):
    data = np.zeros(4 + 4 * big, np.uint32)
    data[:2] = index, value
    data[-1] = tail
    return Uniform(data)


def test_uniform_arena_many_dispatches(gpu, pick_kernel):
    """Hundreds of dispatches in one recorder, each with its own Uniform, all see their own values."""
    k = pick_kernel()
    n = 600
    out = GpuTensor.empty((n,), np.uint32)
    rec = Recorder()
    with rec.stage("pick"):
        for i in range(n):
            rec.dispatch(k, [_pick_params(i, 1000 + 7 * i), out], 1)
    assert rec.uniform_bytes >= 32 * (n - 1)
    rec.submit()
    np.testing.assert_array_equal(out.numpy(), 1000 + 7 * np.arange(n))
    # the recorder is reusable: a second batch overwrites the arena (same chunks, no new
    # ones), the first batch's results stay
    pool = rec._pool
    created = pool.created
    out2 = GpuTensor.empty((n,), np.uint32)
    for i in range(n):
        rec.dispatch(k, [_pick_params(i, 5 * i), out2], 1)
    rec.submit()
    assert pool.created == created
    np.testing.assert_array_equal(out2.numpy(), 5 * np.arange(n))
    np.testing.assert_array_equal(out.numpy(), 1000 + 7 * np.arange(n))


def test_uniform_arena_spills_into_more_chunks(gpu, pick_kernel):
    """16 KiB uniform blocks: a 64 KiB arena chunk holds three, so 10 dispatches need several chunks."""
    from brushpy.gpu.kernel import UNIFORM_CHUNK_BYTES

    big = 1024  # 16 KiB tail
    k = pick_kernel(big)
    n = 10
    out = GpuTensor.empty((n,), np.uint32)
    rec = Recorder()
    for i in range(n):
        rec.dispatch(k, [_pick_params(i, i, big, tail=100 * i), out], 1)
    assert len(rec._chunks) > 1 and rec.uniform_bytes > UNIFORM_CHUNK_BYTES
    rec.submit()
    np.testing.assert_array_equal(out.numpy(), 101 * np.arange(n))


def test_uniform_shared_and_interleaved_recorders(gpu, pick_kernel):
    """One Uniform bound by several dispatches and by two recorders; the recorders are
    submitted in the opposite order to recording; each sees the right bytes."""
    k = pick_kernel()
    out = GpuTensor.empty((8,), np.uint32)
    shared = _pick_params(0, 11)
    rec_a, rec_b = Recorder(), Recorder()
    rec_a.dispatch(k, [shared, out], 1)
    rec_a.dispatch(k, [_pick_params(1, 12), out], 1)
    rec_b.dispatch(k, [_pick_params(2, 21), out], 1)
    rec_b.dispatch(k, [shared, out], 1)  # same Uniform, other recorder: placed there too
    rec_b.dispatch(k, [_pick_params(3, 22), out], 1)
    rec_a.dispatch(k, [_pick_params(4, 13), out], 1)
    assert rec_a._chunks[0] is not rec_b._chunks[0]
    rec_b.submit()
    rec_a.submit()
    np.testing.assert_array_equal(out.numpy()[:5], [11, 12, 21, 22, 13])


def test_raw_buffer_at_uniform_binding(gpu, pick_kernel):
    """A raw wgpu buffer at a uniform binding is bound whole at offset 0 (it needs
    STORAGE usage too where uniforms are read as storage, see uniforms_as_storage)."""
    import wgpu

    k = pick_kernel()
    out = GpuTensor.empty((4,), np.uint32)
    raw = gpu.device.create_buffer_with_data(data=np.array([2, 77, 0, 0, 0, 0, 0, 0], np.uint32).tobytes(),
                                             usage=wgpu.BufferUsage.UNIFORM | wgpu.BufferUsage.STORAGE)
    rec = Recorder()
    rec.dispatch(k, [raw, out], 1)
    rec.submit()
    assert out.numpy()[2] == 77
    with pytest.raises(ValueError, match="declares 2 bindings, got 1"):
        rec.dispatch(k, [out], 1)


def test_bind_group_cache_hits_and_forgets_dead_buffers(gpu, pick_kernel):
    """Repeated dispatches on the same tensors reuse one bind group (new Uniforms
    included); a bind group is dropped from the cache when one of its buffers dies."""
    import gc

    from brushpy.gpu import kernel as kernel_mod

    k = pick_kernel()
    cache = k._pipe.cache
    out = GpuTensor.empty((4,), np.uint32)
    rec = Recorder()
    rec.dispatch(k, [_pick_params(0, 1), out], 1)
    rec.submit()
    before = len(cache)
    created = []
    real = gpu.device.create_bind_group

    def counting(**kw):
        created.append(kw["label"])  # (not the entries: they would keep the buffers alive)
        return real(**kw)

    gpu.device.create_bind_group = counting
    try:
        for i in range(20):
            rec.dispatch(k, [_pick_params(i % 4, i), out], 1)
            rec.submit()
        assert created == [] and len(cache) == before
        tmp = GpuTensor.empty((4,), np.uint32)
        rec.dispatch(k, [_pick_params(1, 5), tmp], 1)
        rec.submit()
        assert len(created) == 1 and len(cache) == before + 1
        np.testing.assert_array_equal(tmp.numpy()[1], 5)
    finally:
        gpu.device.create_bind_group = real
    buf_id = id(tmp.buffer)
    assert buf_id in kernel_mod._BUFFER_USERS
    del tmp
    gc.collect()
    assert len(cache) == before and buf_id not in kernel_mod._BUFFER_USERS


def test_on_submit_and_partial_clear(gpu):
    t = GpuTensor.from_numpy(np.arange(1, 9, dtype=np.uint32))
    rec = Recorder()
    rec.clear(t, 12)  # first three elements
    calls = []
    rec.on_submit(lambda: calls.append(t.numpy()))
    assert calls == []
    rec.submit()
    np.testing.assert_array_equal(calls[0], [0, 0, 0, 4, 5, 6, 7, 8])
    rec.submit()
    assert len(calls) == 1  # once only


def test_encoder_usable_between_dispatches(gpu, pick_kernel):
    """Untimed dispatches share an open pass; taking ``rec.encoder`` ends it, so raw
    encoder commands can follow and later dispatches open a new pass."""
    k = pick_kernel()
    out = GpuTensor.empty((4,), np.uint32)
    rec = Recorder()
    rec.dispatch(k, [_pick_params(0, 5), out], 1)
    out.fill_zero(rec.encoder)  # a raw encoder command after the dispatch
    rec.dispatch(k, [_pick_params(1, 6), out], 1)
    rec.submit()
    np.testing.assert_array_equal(out.numpy(), [0, 6, 0, 0])


def test_profiler_capacity_is_bounded(gpu):
    from brushpy.gpu.profiler import MAX_CAPACITY

    with pytest.raises(ValueError, match="4096"):
        Profiler(capacity=MAX_CAPACITY + 1)
    Profiler(capacity=MAX_CAPACITY)


def test_bindings_by_name(gpu, pick_kernel):
    """A dict of bindings keyed by the WGSL variable names binds like the positional list;
    a missing or unknown name raises BindingError naming the kernel and the binding."""
    from brushpy.gpu import BindingError
    from brushpy.gpu.shader import ShaderError, parse_binding_names

    k = pick_kernel()
    assert k.binding_names == ("params", "out")
    out = GpuTensor.empty((4,), np.uint32)
    rec = Recorder()
    rec.dispatch(k, {"out": out, "params": _pick_params(1, 41)}, 1)  # order of the dict does not matter
    rec.dispatch(k, [_pick_params(3, 43), out], 1)
    rec.submit()
    np.testing.assert_array_equal(out.numpy()[[1, 3]], [41, 43])
    with pytest.raises(BindingError, match=r"pick\.wgsl:main: no value for binding 'out'"):
        rec.dispatch(k, {"params": _pick_params(0, 1)}, 1)
    with pytest.raises(BindingError, match=r"pick\.wgsl:main has no binding 'outs'"):
        rec.dispatch(k, {"params": _pick_params(0, 1), "out": out, "outs": out}, 1)
    with pytest.raises(BindingError, match="no value for binding 'out'"):
        rec.dispatch(k, {"params": _pick_params(0, 1), "outs": out}, 1)
    assert issubclass(BindingError, ValueError)
    src = "@group(0) @binding(0) var<storage, read> a: array<f32>;\n@group(0) @binding(1) var<uniform> p : P;\n"
    assert parse_binding_names(src) == {0: "a", 1: "p"}
    with pytest.raises(ShaderError, match="'a' declared twice"):
        parse_binding_names(src.replace(" p :", " a:"))


def test_context_cache_lives_as_long_as_the_context(gpu):
    """ctx.cache(key, factory) builds once per context (factory gets the context), keeps
    contexts apart, forget() drops an entry, and entries die with their context (even
    ones that refer back to it, as kernel wrappers do)."""
    import gc
    import weakref

    from brushpy.gpu import create_context
    from brushpy.render.prefix_sum import inclusive_prefix_sum

    ctx = create_context()
    calls = []

    class Entry:
        def __init__(self, c):
            calls.append(c)
            self.ctx = c

    a = ctx.cache(Entry, Entry)
    assert ctx.cache(Entry, Entry) is a and calls == [ctx]
    from brushpy.gpu import get_context

    other = get_context()
    assert other.cache(Entry, Entry) is not a and calls == [ctx, other]
    assert ctx.forget(Entry) is a and ctx.forget(Entry) is None
    assert ctx.cache(Entry, Entry) is not a
    other.forget(Entry)
    # a context's kernels, scratch and arena live in its cache, and go with it
    rec = Recorder(ctx)
    vals = GpuTensor.from_numpy(np.arange(3000, dtype=np.uint32), ctx=ctx)
    got = inclusive_prefix_sum(rec, vals, 3000)
    rec.submit()
    np.testing.assert_array_equal(got.numpy(), np.cumsum(np.arange(3000)))
    assert any(type(v).__name__ == "_ScanState" for v in ctx._cache.values())
    dead = weakref.ref(ctx)
    del ctx, a, rec, vals, got, calls
    gc.collect()
    assert dead() is None
