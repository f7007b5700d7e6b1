"""UniformLayout: WGSL struct text and byte packing from one declaration, and the
``#struct`` template directive that pastes it into a shader."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from brushpy.gpu import GpuTensor, Kernel, LayoutError, Recorder, ShaderError, UniformLayout, preprocess


def test_offsets_follow_wgsl_alignment():
    lay = UniformLayout("P", [
        ("a", "f32"),            # 0
        ("b", "vec3<f32>"),      # 16 (vec3 aligns to 16)
        ("c", "u32"),            # 28 (fits after the 12-byte vec3)
        ("d", "vec2<f32>"),      # 32
        ("e", "i32"),            # 40
        ("m", "mat4x4<f32>"),    # 48
        ("n", "mat3x3<f32>"),    # 112 (3 columns of 16 bytes)
        ("arr", "array<vec4<u32>, 2>"),  # 160
        ("f", "f32"),            # 192
    ])
    assert lay.offsets == {"a": 0, "b": 16, "c": 28, "d": 32, "e": 40, "m": 48, "n": 112, "arr": 160, "f": 192}
    assert lay.size == 208 and lay.align == 16  # 196 rounded up to the struct's alignment


def test_vec2_alignment_and_small_struct_size():
    lay = UniformLayout("Q", [("x", "u32"), ("v", "vec2<u32>"), ("y", "u32")])
    assert lay.offsets == {"x": 0, "v": 8, "y": 16}
    assert lay.size == 24  # aligned to 8
    assert UniformLayout("R", [("n", "u32"), ("s", "f32")]).size == 8


def test_wgsl_text():
    lay = UniformLayout("Params", [("count", "u32", "elements"), ("scale", "f32"), ("rows", "vec4< f32 >")])
    assert lay.wgsl() == (
        "struct Params {\n"
        "    count: u32,  // elements\n"
        "    scale: f32,\n"
        "    rows: vec4<f32>,\n"
        "}"
    )


def test_pack_bytes_at_offsets():
    lay = UniformLayout("P", [("a", "f32"), ("b", "vec3<f32>"), ("c", "u32"), ("m", "mat2x2<f32>"), ("e", "i32")])
    m = np.array([[1.0, 2.0], [3.0, 4.0]])  # rows
    got = lay.pack_bytes(a=1.5, b=(2.0, 3.0, 4.0), c=7, m=m, e=-3)
    assert lay.offsets == {"a": 0, "b": 16, "c": 28, "m": 32, "e": 48}
    assert len(got) == lay.size == 64
    expect = bytearray(64)
    struct.pack_into("<f", expect, 0, 1.5)
    struct.pack_into("<3f", expect, 16, 2.0, 3.0, 4.0)
    struct.pack_into("<I", expect, 28, 7)
    struct.pack_into("<4f", expect, 32, 1.0, 3.0, 2.0, 4.0)  # column-major
    struct.pack_into("<i", expect, 48, -3)
    assert got == bytes(expect)
    # a flat sequence is taken in memory order
    assert lay.pack_bytes(a=1.5, b=(2.0, 3.0, 4.0), c=7, m=(1.0, 3.0, 2.0, 4.0), e=-3) == got


def test_pack_rounds_like_numpy_and_overflows_to_inf():
    lay = UniformLayout("P", [("x", "f32"), ("y", "f32"), ("n", "u32")])
    got = np.frombuffer(lay.pack_bytes(x=0.1, y=1e300, n=3)[:8], np.float32)
    assert got[0] == np.float32(0.1) and got[1] == np.inf


def test_array_field_and_padding_defaults():
    lay = UniformLayout("P", [("n", "u32"), ("_p", "u32"), ("_pad", "vec2<u32>"), ("big", "array<vec4<f32>, 2>")])
    assert lay.offsets == {"n": 0, "_p": 4, "_pad": 8, "big": 16}
    got = np.frombuffer(lay.pack_bytes(n=5, big=np.arange(8, dtype=np.float32)), np.uint32)
    assert got[0] == 5 and list(got[1:4]) == [0, 0, 0]
    np.testing.assert_array_equal(got[4:].view(np.float32), np.arange(8, dtype=np.float32))
    u = lay.pack(n=5, big=np.zeros(8))
    assert len(u.data) == 48


def test_wrong_names_and_values_raise():
    lay = UniformLayout("Params", [("count", "u32"), ("scale", "f32"), ("v", "vec4<f32>")])
    with pytest.raises(LayoutError, match=r"Params has no field 'cuont'"):
        lay.pack_bytes(cuont=1, scale=1.0, v=(0, 0, 0, 0))
    with pytest.raises(LayoutError, match=r"Params: no value for field 'scale'"):
        lay.pack_bytes(count=1, v=(0, 0, 0, 0))
    with pytest.raises(LayoutError, match=r"'v' \(vec4<f32>\) takes 4 values, got 3"):
        lay.pack_bytes(count=1, scale=1.0, v=(0, 0, 0))
    with pytest.raises(LayoutError, match="Params"):
        lay.pack_bytes(count=-1, scale=1.0, v=(0, 0, 0, 0))  # not a u32


def test_bad_declarations_raise():
    with pytest.raises(LayoutError, match="unsupported WGSL type"):
        UniformLayout("P", [("x", "f64")])
    with pytest.raises(LayoutError, match="multiple of 16"):
        UniformLayout("P", [("x", "array<f32, 4>")])
    with pytest.raises(LayoutError, match="declared twice"):
        UniformLayout("P", [("x", "u32"), ("x", "f32")])


def test_part_packs_a_byte_range_of_the_whole():
    lay = UniformLayout("P", [("a", "vec4<f32>"), ("b", "vec4<f32>"), ("n", "vec4<u32>"), ("m", "u32")])
    head, tail = lay.part("a", "b"), lay.part("n", "m")
    vals = dict(a=(1, 2, 3, 4), b=(5, 6, 7, 8), n=(1, 2, 3, 4), m=9)
    whole = lay.pack_bytes(**vals)
    assert head.pack_bytes(a=vals["a"], b=vals["b"]) + tail.pack_bytes(n=vals["n"], m=9) == whole
    with pytest.raises(LayoutError, match="16-byte-aligned"):
        UniformLayout("Q", [("x", "u32"), ("y", "u32"), ("z", "vec4<f32>")]).part("y", "z")


def test_struct_directive_pastes_the_layout(gpu, tmp_path, monkeypatch):
    """A shader's ``#struct Name`` becomes the layout's WGSL; a kernel built with the layout
    reads each packed field where the host wrote it (vec3 then scalar, mat4, array)."""
    import brushpy.gpu.shader as shader_mod

    lay = UniformLayout("Params", [
        ("n", "u32"), ("v", "vec3<f32>"), ("s", "f32"), ("m", "mat4x4<f32>"), ("arr", "array<vec4<u32>, 2>"),
    ])
    (tmp_path / "read_params.wgsl").write_text("""
#struct Params
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(1)
fn main() {
    out[0] = f32(params.n);
    out[1] = params.v.x; out[2] = params.v.y; out[3] = params.v.z;
    out[4] = params.s;
    out[5] = params.m[1][2];  // column 1, row 2
    out[6] = f32(params.arr[1].w);
}
""")
    monkeypatch.setattr(shader_mod, "shader_dir", lambda: tmp_path)
    shader_mod._read.cache_clear()
    try:
        src = preprocess("read_params.wgsl", structs=[lay])
        assert lay.wgsl() in src and "#struct" not in src
        with pytest.raises(ShaderError, match=r"'#struct Params'.*no layout named Params"):
            preprocess("read_params.wgsl")
        m = np.arange(16, dtype=np.float64).reshape(4, 4)  # m[row, col]
        out = GpuTensor.empty(8)
        rec = Recorder()
        k = Kernel("read_params.wgsl", structs=[lay])
        rec.dispatch(k, [lay.pack(n=7, v=(1.5, 2.5, 3.5), s=-4.0, m=m, arr=(0, 0, 0, 0, 0, 0, 0, 11)), out], 1)
        rec.submit()
        np.testing.assert_array_equal(out.numpy()[:7], [7, 1.5, 2.5, 3.5, -4.0, m[2, 1], 11])
    finally:
        shader_mod._read.cache_clear()


def test_scalar_struct_fast_path_packs_like_the_general_path():
    """A struct of scalars given exactly its non-padding fields takes one struct call; it
    gives the same bytes as the general path and the same errors."""
    lay = UniformLayout("P", [("n", "u32"), ("_pad0", "u32"), ("x", "f32"), ("k", "i32"), ("_pad1", "u32")])
    assert lay._fast is not None
    want = struct.pack("<I4xfi4x", 7, 1.5, -3)
    assert lay.pack_bytes(n=7, x=1.5, k=-3) == want
    assert lay.pack_bytes(n=7, x=1.5, k=-3, _pad0=0, _pad1=0) == want  # general path
    assert lay.pack(n=7, x=1.5, k=-3).data == want + b"\0" * 12  # a Uniform pads to 16
    assert lay.pack_bytes(n=7, x=1e39, k=0)[8:12] == np.float32(np.inf).tobytes()  # overflow: NumPy's rounding
    with pytest.raises(LayoutError, match="no value for field 'k'"):
        lay.pack_bytes(n=7, x=1.5, _pad0=0)
    with pytest.raises(LayoutError, match="no field 'kk'"):
        lay.pack_bytes(n=7, x=1.5, kk=1)
    with pytest.raises(LayoutError, match="struct P"):
        lay.pack_bytes(n=-1, x=1.5, k=0)  # u32 out of range


def test_project_backward_params_struct_and_bytes_agree(gpu, tmp_path, monkeypatch):
    """PROJECT_BACKWARD_PARAMS (mat4x4, vec4s, u32s) is what shaders/project_backward.wgsl
    declares, packs the bytes the hand packing it replaced wrote, and a kernel built with
    its generated struct reads every field where the host put it."""
    import brushpy.gpu.shader as shader_mod
    from brushpy.render.backward import PROJECT_BACKWARD_PARAMS as lay
    from brushpy.render.params import RENDER_PARAMS

    src = preprocess("project_backward.wgsl", structs=[RENDER_PARAMS, lay])
    assert lay.wgsl() in src and "#struct" not in src
    rng = np.random.default_rng(5)
    w2c = rng.normal(size=(4, 4))
    pos, intr, size = rng.normal(size=3), rng.uniform(1, 500, 4), (640.0, 480.0, 1.0, 0.0)
    counts = dict(num_visible=123, num_coeffs=9, view_dir_const=1, coeff_stride=16)
    got = lay.pack_bytes(world_to_camera=w2c, cam_pos=(*pos, 0.0), intrinsics=intr, size=size, **counts)
    f = np.zeros(28, np.float32)  # the layout the host wrote by hand before
    f[:16] = w2c.astype(np.float32).T.ravel()
    f[16:19], f[20:24], f[24:28] = pos, intr, size
    assert got == f.tobytes() + np.array(list(counts.values()), np.uint32).tobytes()

    (tmp_path / "read_pb.wgsl").write_text("""
#struct Params
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(1)
fn main() {
    for (var c = 0u; c < 4u; c++) {
        for (var r = 0u; r < 4u; r++) {
            out[4u * r + c] = params.world_to_camera[c][r];
        }
    }
    out[16] = params.cam_pos.z;
    out[17] = params.intrinsics.w;
    out[18] = params.size.z;
    out[19] = f32(params.num_visible);
    out[20] = f32(params.num_coeffs);
    out[21] = f32(params.view_dir_const);
    out[22] = f32(params.coeff_stride);
}
""")
    monkeypatch.setattr(shader_mod, "shader_dir", lambda: tmp_path)
    shader_mod._read.cache_clear()
    try:
        out = GpuTensor.empty(23)
        rec = Recorder()
        rec.dispatch(Kernel("read_pb.wgsl", structs=[lay]), {"params": lay.pack(
            world_to_camera=w2c, cam_pos=(*pos, 0.0), intrinsics=intr, size=size, **counts), "out": out}, 1)
        rec.submit()
    finally:
        shader_mod._read.cache_clear()
    want = np.concatenate([w2c.ravel(), [pos[2], intr[3], size[2]], list(counts.values())]).astype(np.float32)
    np.testing.assert_array_equal(out.numpy(), want)


@pytest.mark.parametrize("module, names", [
    ("brushpy.render.sort", ("SORT_PARAMS",)),
    ("brushpy.render.prefix_sum", ("SCAN_PARAMS",)),
    ("brushpy.render.backward", ("RASTERIZE_BACKWARD_PARAMS", "PROJECT_BACKWARD_PARAMS")),
    ("brushpy.loss.image_loss", ("LOSS_PARAMS", "REDUCE_PARAMS")),
])
def test_kernel_structs_are_declared_once(module, names):
    """Each layout's shaders say ``#struct Name`` and hand-write no struct of that name."""
    import importlib
    import re

    from brushpy.gpu.shader import _read

    shaders = {
        "SORT_PARAMS": ("sort_count.wgsl", "sort_scatter.wgsl"),
        "SCAN_PARAMS": ("prefix_sum_block.wgsl", "prefix_sum_add.wgsl"),
        "RASTERIZE_BACKWARD_PARAMS": ("rasterize_backward.wgsl",),
        "PROJECT_BACKWARD_PARAMS": ("project_backward.wgsl",),
        "LOSS_PARAMS": ("loss_ssim.wgsl",),
        "REDUCE_PARAMS": ("loss_reduce.wgsl",),
    }
    mod = importlib.import_module(module)
    for name in names:
        lay = getattr(mod, name)
        for shader in shaders[name]:
            text = _read(shader)
            assert re.search(rf"^#struct {lay.name}$", text, re.M), (shader, lay.name)
            assert not re.search(rf"^struct {lay.name}\b", text, re.M), (shader, lay.name)
