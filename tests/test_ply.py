"""PLY I/O: INRIA 3DGS layout round trips, field lookup, errors, real files."""

from __future__ import annotations

import numpy as np
import pytest
from plyfile import PlyData, PlyElement

from brushpy.io.ply import PlyFormatError, SplatData, read_ply, read_ply_points, write_ply
from tests.conftest import SHARED, requires_shared

GUITAR = SHARED / "splats" / "guitar_inria_sh0.ply"
GUITAR_COMPRESSED = SHARED / "splats" / "guitar.compressed.ply"


def random_splats(n: int, degree: int, normals: bool, seed: int = 0) -> SplatData:
    rng = np.random.default_rng(seed)
    k = (degree + 1) ** 2
    # wide dynamic range: tiny, huge, negative, subnormal-adjacent values
    scale = np.float32(10.0) ** rng.integers(-20, 20, size=(n, 1)).astype(np.float32)
    return SplatData(
        means=rng.normal(size=(n, 3)).astype(np.float32) * scale,
        rotations=rng.normal(size=(n, 4)).astype(np.float32),
        log_scales=rng.uniform(-12, 3, size=(n, 3)).astype(np.float32),
        sh_coeffs=rng.normal(size=(n, k, 3)).astype(np.float32) / 3,
        raw_opacities=rng.normal(size=n).astype(np.float32) * 5,
        normals=rng.normal(size=(n, 3)).astype(np.float32) if normals else None,
    )


def assert_same(a: SplatData, b: SplatData):
    for name in ("means", "rotations", "log_scales", "sh_coeffs", "raw_opacities"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == np.float32 and y.dtype == np.float32, name
        assert x.shape == y.shape, name
        assert np.array_equal(x, y), f"{name} differs after round trip"
    if a.normals is None:
        assert b.normals is None
    else:
        assert np.array_equal(a.normals, b.normals)


@pytest.mark.parametrize("ascii", [False, True], ids=["binary", "ascii"])
@pytest.mark.parametrize("normals", [False, True], ids=["no-normals", "normals"])
@pytest.mark.parametrize("degree", [0, 1, 2, 3, 4])
def test_round_trip_exact(tmp_path, degree, normals, ascii):
    data = random_splats(57, degree, normals, seed=degree)
    path = tmp_path / "s.ply"
    write_ply(path, data, ascii=ascii)
    back = read_ply(path)
    assert back.sh_degree == degree
    assert back.num_splats == 57
    assert_same(data, back)
    text = path.read_bytes()[:40]
    assert (b"format ascii" in text) == ascii


def test_round_trip_empty(tmp_path):
    data = random_splats(0, 2, True)
    for ascii in (False, True):
        write_ply(tmp_path / "e.ply", data, ascii=ascii)
        back = read_ply(tmp_path / "e.ply")
        assert back.num_splats == 0 and back.sh_coeffs.shape == (0, 9, 3)


def test_nonfinite_values_round_trip(tmp_path):
    data = random_splats(4, 0, False)
    data.means[0, 0] = np.nan
    data.raw_opacities[1] = np.inf
    data.log_scales[2, 1] = -np.inf
    for ascii in (False, True):
        write_ply(tmp_path / "nf.ply", data, ascii=ascii)
        back = read_ply(tmp_path / "nf.ply")
        assert np.isnan(back.means[0, 0]) and back.raw_opacities[1] == np.inf and back.log_scales[2, 1] == -np.inf
        assert np.array_equal(back.means[1:], data.means[1:])


def _inria_like_file(path, features_dc, features_rest, extra=(), order=None, dtype="f4", text=False):
    """Write a PLY the way the INRIA code does: f_rest from features_rest [N, K-1, 3] transposed to
    [N, 3, K-1] and flattened (channel-major)."""
    n = features_dc.shape[0]
    rest = features_rest.transpose(0, 2, 1).reshape(n, -1)
    cols = {"x": np.arange(n, dtype=np.float32), "y": np.ones(n), "z": np.zeros(n)}
    cols.update({f"f_dc_{c}": features_dc[:, c] for c in range(3)})
    cols.update({f"f_rest_{i}": rest[:, i] for i in range(rest.shape[1])})
    cols.update({"opacity": np.full(n, 0.25), "scale_0": np.full(n, -1.0), "scale_1": np.full(n, -2.0),
                 "scale_2": np.full(n, -3.0), "rot_0": np.ones(n), "rot_1": np.zeros(n),
                 "rot_2": np.zeros(n), "rot_3": np.full(n, 0.5)})
    for name in extra:
        cols[name] = np.full(n, 7.0)
    names = order(list(cols)) if order else list(cols)
    arr = np.empty(n, dtype=[(k, dtype) for k in names])
    for k in names:
        arr[k] = cols[k]
    PlyData([PlyElement.describe(arr, "vertex")], text=text).write(str(path))


def test_f_rest_is_channel_major(tmp_path):
    """INRIA's f_rest_i = features_rest[:, k, c] with i = c*(K-1) + k  ->  sh_coeffs[:, k+1, c]."""
    n, degree = 5, 3
    k = (degree + 1) ** 2
    rng = np.random.default_rng(3)
    dc = rng.normal(size=(n, 3)).astype(np.float32)
    rest = rng.normal(size=(n, k - 1, 3)).astype(np.float32)
    _inria_like_file(tmp_path / "a.ply", dc, rest)
    data = read_ply(tmp_path / "a.ply")
    assert data.sh_degree == degree
    assert np.array_equal(data.sh_coeffs[:, 0, :], dc)
    assert np.array_equal(data.sh_coeffs[:, 1:, :], rest)
    # concrete index check: f_rest_{K-1} is the first G coefficient of band 1
    raw = PlyData.read(str(tmp_path / "a.ply"))["vertex"].data
    assert np.array_equal(raw[f"f_rest_{k - 1}"], data.sh_coeffs[:, 1, 1])
    # and the writer uses the same layout
    write_ply(tmp_path / "b.ply", data)
    raw2 = PlyData.read(str(tmp_path / "b.ply"))["vertex"].data
    for i in range(3 * (k - 1)):
        assert np.array_equal(raw2[f"f_rest_{i}"], raw[f"f_rest_{i}"])


def test_fields_looked_up_by_name(tmp_path):
    """Property order is irrelevant; extra properties are ignored; float64 properties are read."""
    n = 6
    rng = np.random.default_rng(4)
    dc = rng.normal(size=(n, 3)).astype(np.float32)
    rest = rng.normal(size=(n, 3, 3)).astype(np.float32)
    _inria_like_file(tmp_path / "a.ply", dc, rest, extra=("filter_3D", "red"), order=lambda names: names[::-1],
                     dtype="f8", text=True)
    data = read_ply(tmp_path / "a.ply")
    assert data.sh_degree == 1 and data.normals is None
    assert np.array_equal(data.means[:, 0], np.arange(n, dtype=np.float32))
    assert np.array_equal(data.rotations[0], np.array([1, 0, 0, 0.5], np.float32))
    assert np.array_equal(data.log_scales[0], np.array([-1, -2, -3], np.float32))
    assert np.allclose(data.raw_opacities, 0.25)
    assert np.array_equal(data.sh_coeffs[:, 1:, :], rest)


@pytest.mark.parametrize(
    "missing", ["x", "z", "f_dc_1", "opacity", "scale_2", "rot_0", "rot_3", "f_rest_4"]
)
def test_missing_field_error_names_it(tmp_path, missing):
    data = random_splats(3, 1, True)
    write_ply(tmp_path / "full.ply", data)
    vertex = PlyData.read(str(tmp_path / "full.ply"))["vertex"].data
    keep = [name for name in vertex.dtype.names if name != missing]
    if missing.startswith("f_rest"):  # keep the count valid (9) so the gap itself is reported
        keep.append("f_rest_99")
    arr = np.empty(len(vertex), dtype=[(name, "f4") for name in keep])
    for name in keep:
        arr[name] = vertex[name] if name in vertex.dtype.names else 0
    path = tmp_path / "broken.ply"
    PlyData([PlyElement.describe(arr, "vertex")]).write(str(path))
    with pytest.raises(PlyFormatError) as err:
        read_ply(path)
    assert f"'{missing}'" in str(err.value)
    assert str(path) in str(err.value)


def test_bad_f_rest_count(tmp_path):
    rng = np.random.default_rng(0)
    _inria_like_file(tmp_path / "a.ply", rng.normal(size=(2, 3)), rng.normal(size=(2, 3, 3)), extra=("f_rest_9",))
    with pytest.raises(PlyFormatError, match="10 f_rest_"):
        read_ply(tmp_path / "a.ply")


def test_point_cloud_is_rejected_with_clear_error_and_readable_as_points(tmp_path):
    n = 10
    arr = np.empty(n, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    arr["x"], arr["y"], arr["z"] = np.arange(n), 2, 3
    arr["red"], arr["green"], arr["blue"] = 255, 0, 51
    path = tmp_path / "points.ply"
    PlyData([PlyElement.describe(arr, "vertex")]).write(str(path))
    with pytest.raises(PlyFormatError) as err:
        read_ply(path)
    msg = str(err.value)
    assert "point cloud" in msg and str(path) in msg
    pts, cols = read_ply_points(path)
    assert pts.shape == (n, 3) and np.array_equal(pts[:, 0], np.arange(n, dtype=np.float32))
    assert np.allclose(cols[0], [1.0, 0.0, 0.2])


def test_missing_file_and_garbage(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.ply"):
        read_ply(tmp_path / "nope.ply")
    bad = tmp_path / "bad.ply"
    bad.write_text("this is not a ply file\n")
    with pytest.raises(PlyFormatError, match="bad.ply"):
        read_ply(bad)
    nov = tmp_path / "novertex.ply"
    PlyData([PlyElement.describe(np.zeros(2, dtype=[("a", "f4")]), "face")]).write(str(nov))
    with pytest.raises(PlyFormatError, match="no 'vertex' element"):
        read_ply(nov)


def test_splatdata_validates_shapes():
    good = random_splats(4, 1, False)
    with pytest.raises(ValueError, match="rotations"):
        SplatData(good.means, good.rotations[:, :3], good.log_scales, good.sh_coeffs, good.raw_opacities)
    with pytest.raises(ValueError, match="sh_coeffs"):
        SplatData(good.means, good.rotations, good.log_scales, np.zeros((4, 5, 3)), good.raw_opacities)


def test_to_gpu_round_trip(gpu, tmp_path):
    data = random_splats(33, 2, False)
    splats = data.to_gpu()
    assert splats.num_splats == 33 and splats.sh_degree == 2
    back = SplatData.from_gpu(splats)
    assert_same(data, back)
    write_ply(tmp_path / "gpu.ply", splats)  # write_ply takes GPU splats too
    assert_same(data, read_ply(tmp_path / "gpu.ply"))


def test_big_endian_binary(tmp_path):
    data = random_splats(9, 1, True)
    write_ply(tmp_path / "le.ply", data)
    ply = PlyData.read(str(tmp_path / "le.ply"))
    PlyData(ply.elements, byte_order=">").write(str(tmp_path / "be.ply"))
    assert b"binary_big_endian" in (tmp_path / "be.ply").read_bytes()[:60]
    assert_same(data, read_ply(tmp_path / "be.ply"))


@requires_shared("splats", "guitar_inria_sh0.ply")
def test_guitar_loads():
    data = read_ply(GUITAR)
    assert data.num_splats == 90_854
    assert data.sh_degree == 0 and data.sh_coeffs.shape == (90_854, 1, 3)
    assert data.normals is not None
    for name in ("means", "rotations", "log_scales", "sh_coeffs", "raw_opacities"):
        assert np.isfinite(getattr(data, name)).all(), name
    scales = np.exp(data.log_scales)
    # a ~3.2-unit guitar: no splat larger than 1 unit, typical sizes mm..cm; flat splats may be ~1e-9
    assert scales.max() < 1.0 and scales.min() > 1e-10
    assert 1e-4 < np.median(scales) < 0.05
    assert np.linalg.norm(data.rotations, axis=1).min() > 0.5
    # y-down scene: the upright guitar spans y from about -4.2 (top) to 0 (bottom)
    lo, hi = np.percentile(data.means, [2, 98], axis=0)
    assert -4.5 < lo[1] < -3.0 and -0.5 < hi[1] < 0.2
    assert 0.0 < data.opacities.mean() < 1.0


@requires_shared("splats", "guitar.compressed.ply")
@requires_shared("splats", "guitar_inria_sh0.ply")
def test_compressed_guitar_matches_inria_decoding():
    """guitar_inria_sh0.ply is the decoded guitar.compressed.ply: our decoder must agree."""
    a = read_ply(GUITAR)
    b = read_ply(GUITAR_COMPRESSED)
    assert b.num_splats == a.num_splats and b.sh_degree == 0 and b.normals is None
    assert np.allclose(b.means, a.means, atol=1e-6, rtol=0)
    assert np.allclose(b.log_scales, a.log_scales, atol=1e-5, rtol=0)
    assert np.allclose(b.sh_coeffs, a.sh_coeffs, atol=1e-5, rtol=0)
    assert np.allclose(b.raw_opacities, a.raw_opacities, atol=1e-4, rtol=0)
    qa = a.rotations / np.linalg.norm(a.rotations, axis=1, keepdims=True)
    qb = b.rotations / np.linalg.norm(b.rotations, axis=1, keepdims=True)
    assert np.abs(np.abs((qa * qb).sum(axis=1)) - 1).max() < 1e-5


def test_compressed_ply_hand_packed(tmp_path):
    """Old-style compressed PLY (no colour bounds in the chunk) with an 'sh' element, values packed by hand."""
    n = 300  # two chunks
    chunk = np.zeros(2, dtype=[(name, "f4") for name in (
        "min_x", "min_y", "min_z", "max_x", "max_y", "max_z",
        "min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z")])
    chunk[1] = (0, 0, 0, 2, 4, 8, -5, -5, -5, -1, -1, -1)
    chunk[0] = (-1, -1, -1, 1, 1, 1, -3, -3, -3, -3, -3, -3)
    vertex = np.zeros(n, dtype=[(p, "u4") for p in ("packed_position", "packed_rotation", "packed_scale", "packed_color")])
    # splat 256 (chunk 1): position x = 1.0 (all bits), y = 0, z = 0.5-ish
    vertex["packed_position"][256] = (2047 << 21) | (0 << 11) | 1023
    vertex["packed_scale"][256] = (0 << 21) | (1023 << 11) | 2047
    # colour bytes r=255, g=0, b=128, alpha=128
    vertex["packed_color"][256] = (255 << 24) | (0 << 16) | (128 << 8) | 128
    # rotation: largest is index 2 (y); fields for (w, x, z): 1023 -> +1/sqrt2, 0 -> -1/sqrt2, 1023 -> +1/sqrt2;
    # their squares sum to 1.5 > 1, so the reconstructed y is clamped to 0
    vertex["packed_rotation"][256] = (2 << 30) | (1023 << 20) | (0 << 10) | 1023
    sh = np.zeros(n, dtype=[(f"f_rest_{i}", "u1") for i in range(9)])
    sh["f_rest_0"][256] = 0      # -> -4
    sh["f_rest_3"][256] = 128    # -> 0 (first G coefficient of band 1)
    sh["f_rest_8"][256] = 255    # -> (255/256 - 0.5) * 8
    path = tmp_path / "c.ply"
    PlyData([PlyElement.describe(chunk, "chunk"), PlyElement.describe(vertex, "vertex"),
             PlyElement.describe(sh, "sh")]).write(str(path))
    d = read_ply(path)
    assert d.num_splats == n and d.sh_degree == 1
    assert np.allclose(d.means[256], [2.0, 0.0, 8 * 1023 / 2047], atol=1e-6)
    assert np.allclose(d.log_scales[256], [-5.0, -1.0, -1.0], atol=1e-6)
    assert np.allclose(d.colors[256], [1.0, 0.0, 128 / 255], atol=1e-6)
    assert np.isclose(d.opacities[256], 128 / 255, atol=1e-6)
    h = np.sqrt(0.5)
    assert np.allclose(d.rotations[256], [h, -h, 0.0, h], atol=1e-6)
    assert np.isclose(d.sh_coeffs[256, 1, 0], -4.0) and np.isclose(d.sh_coeffs[256, 1, 1], 0.0)
    assert np.isclose(d.sh_coeffs[256, 3, 2], (255 / 256 - 0.5) * 8)
    # splat 0 (chunk 0): all-zero packing -> min corner, opacity byte 0 -> clamped logit
    assert np.allclose(d.means[0], [-1, -1, -1]) and d.raw_opacities[0] == -40.0
    pts, cols = read_ply_points(path)
    assert np.array_equal(pts, d.means) and cols.shape == (n, 3)
