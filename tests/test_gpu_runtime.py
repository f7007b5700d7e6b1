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
