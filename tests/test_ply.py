"""PLY I/O: INRIA 3DGS layout round trips, field lookup, errors, real files."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from plyfile import PlyData, PlyElement

from brushpy.io.ply import PlyFormatError, SplatData, read_ply, read_ply_points, vertical_axis_vector, write_ply
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


def test_writer_keeps_nonfinite_values(tmp_path):
    """write_ply writes what it is given (the reader, not the writer, repairs non-finite values)."""
    data = random_splats(4, 0, False)
    data.means[0, 0] = np.nan
    data.raw_opacities[1] = np.inf
    data.log_scales[2, 1] = -np.inf
    for ascii in (False, True):
        write_ply(tmp_path / "nf.ply", data, ascii=ascii)
        raw = PlyData.read(str(tmp_path / "nf.ply"))["vertex"].data
        assert np.isnan(raw["x"][0]) and raw["opacity"][1] == np.inf and raw["scale_1"][2] == -np.inf


def test_nonfinite_values_repaired_or_dropped(tmp_path, caplog):
    """+-inf opacity -> +-40; -inf log scale -> -30; NaN anywhere, inf means/rotations/SH, +inf scale -> dropped;
    one warning with the file and the counts."""
    data = random_splats(12, 1, True)
    data.raw_opacities[[0, 1]] = np.inf
    data.raw_opacities[2] = -np.inf
    data.log_scales[3, 2] = -np.inf
    data.means[4, 1] = np.nan
    data.means[5, 0] = -np.inf
    data.log_scales[6, 0] = np.inf
    data.rotations[7, 3] = np.nan
    data.sh_coeffs[8, 2, 1] = np.inf
    data.raw_opacities[9] = np.nan
    data.normals[10] = np.nan  # normals are not splat parameters: kept
    path = tmp_path / "nf.ply"
    write_ply(path, data)
    with caplog.at_level(logging.WARNING, logger="brushpy.io"):
        back = read_ply(path)
    keep = [0, 1, 2, 3, 10, 11]
    assert back.num_splats == len(keep)
    for name in ("means", "rotations", "sh_coeffs"):
        assert np.array_equal(getattr(back, name), getattr(data, name)[keep]), name
    assert back.raw_opacities[:3].tolist() == [40.0, 40.0, -40.0]
    assert np.array_equal(back.raw_opacities[3:], data.raw_opacities[keep[3:]])
    assert back.log_scales[3, 2] == -30.0 and np.array_equal(back.log_scales[3, :2], data.log_scales[3, :2])
    assert np.isnan(back.normals[4]).all()
    for name in ("means", "rotations", "log_scales", "sh_coeffs", "raw_opacities"):
        assert np.isfinite(getattr(back, name)).all(), name
    records = [r for r in caplog.records if r.name == "brushpy.io"]
    assert len(records) == 1
    msg = records[0].getMessage()
    for part in (str(path), "+inf raw_opacities 2", "-inf raw_opacities 1", "-inf log_scales 1", "dropped 6 of 12",
                 "NaN means 1", "+-inf means 1", "+inf log_scales 1", "NaN rotations 1", "+-inf sh_coeffs 1",
                 "NaN raw_opacities 1"):
        assert part in msg, (part, msg)


def test_finite_file_reads_without_warning(tmp_path, caplog):
    write_ply(tmp_path / "ok.ply", random_splats(5, 0, False))
    with caplog.at_level(logging.WARNING, logger="brushpy.io"):
        read_ply(tmp_path / "ok.ply")
    assert not caplog.records


@requires_shared("splats", "guitar.compressed.ply")
def test_splat_transform_ply_with_inf_opacity(tmp_path, caplog):
    """splat-transform decodes alpha byte 255 to +inf opacity (667 guitar splats); read_ply keeps them as logit 40
    and then agrees exactly with brushpy's own decoding of the compressed file."""
    from tests.splat_transform import run_splat_transform

    out = tmp_path / "guitar.ply"
    run_splat_transform(GUITAR_COMPRESSED, out)
    raw = PlyData.read(str(out))["vertex"].data["opacity"]
    assert (raw == np.inf).sum() == 667
    with caplog.at_level(logging.WARNING, logger="brushpy.io"):
        data = read_ply(out)
    assert data.num_splats == 90_854 and (data.raw_opacities == 40.0).sum() >= 667
    assert "+inf raw_opacities 667" in caplog.text and str(out) in caplog.text
    ours = read_ply(GUITAR_COMPRESSED)
    for name in ("means", "rotations", "log_scales", "sh_coeffs", "raw_opacities"):
        assert np.array_equal(getattr(data, name), getattr(ours, name)), name


# --------------------------------------------------------------------------- header comments


def _comments(path):
    return [str(c) for c in PlyData.read(str(path)).comments]


@pytest.mark.parametrize("axis, written", [
    ("-y", "Vertical axis: 0 -1 0"),
    ("+z", "Vertical axis: 0 0 1"),
    ("+x", "Vertical axis: 1 0 0"),
    ("0.123 0.456 -0.789", "Vertical axis: 0.123 0.456 -0.789"),
])
def test_vertical_axis_round_trip(tmp_path, axis, written):
    data = random_splats(3, 2, False)
    data.vertical_axis = axis
    write_ply(tmp_path / "a.ply", data)
    comments = _comments(tmp_path / "a.ply")
    assert written in comments
    assert "SH degree: 2" in comments and "SplatRenderMode: default" in comments
    assert read_ply(tmp_path / "a.ply").vertical_axis == axis
    vec = vertical_axis_vector(axis)
    assert np.isclose(np.linalg.norm(vec), 1.0)


def test_brush_header_comments_are_read(tmp_path):
    """Brush's own lines (brush-serde export.rs): ``Vertical axis: y`` means up = -y (its y-down default),
    ``x`` -> +x, ``z`` -> -z; the last comment of a kind wins; Postshot's ``antialiased 1`` means mip."""
    data = random_splats(2, 0, False)
    cases = [
        (["Exported from Brush", "Vertical axis: y", "SH degree: 0", "SplatRenderMode: mip"], "-y", "mip"),
        (["Vertical axis: x"], "+x", "default"),
        (["vertical axis: Z", "splatrendermode: default"], "-z", "default"),
        (["Vertical axis: [0, 0, -2]", "antialiased 1"], "-z", "mip"),
        (["Vertical axis: 0 1 0", "Vertical axis: y", "SplatRenderMode: mip", "SplatRenderMode: default"], "-y", "default"),
        (["Vertical axis: sideways", "Vertical axis: 0 0 0", "SplatRenderMode: 2dgs"], None, "default"),
    ]
    for i, (comments, axis, mode) in enumerate(cases):
        arr = PlyData.read(str(_write(tmp_path / f"p{i}.ply", data))).elements
        PlyData(arr, comments=comments).write(str(tmp_path / f"c{i}.ply"))
        back = read_ply(tmp_path / f"c{i}.ply")
        assert (back.vertical_axis, back.render_mode) == (axis, mode), comments


def _write(path, data):
    write_ply(path, data)
    return path


def test_render_mode_comment_written_once(tmp_path):
    """The trainer passes its own ``SplatRenderMode`` line: it replaces the automatic one (no duplicate)."""
    data = random_splats(2, 1, False)
    data.render_mode = "mip"
    write_ply(tmp_path / "m.ply", data)
    assert [c for c in _comments(tmp_path / "m.ply") if c.startswith("SplatRenderMode")] == ["SplatRenderMode: mip"]
    assert read_ply(tmp_path / "m.ply").render_mode == "mip"
    write_ply(tmp_path / "t.ply", random_splats(2, 1, False), comments=["SplatRenderMode: mip"])
    assert [c for c in _comments(tmp_path / "t.ply") if c.startswith("SplatRenderMode")] == ["SplatRenderMode: mip"]
    assert read_ply(tmp_path / "t.ply").render_mode == "mip"
    assert read_ply(tmp_path / "t.ply").vertical_axis is None
    assert not any(c.startswith("Vertical axis") for c in _comments(tmp_path / "t.ply"))


def test_vertical_axis_vector_rejects_garbage():
    for bad in ("up", "0 0 0", "1 2", "nan 0 1"):
        with pytest.raises(ValueError, match="vertical axis"):
            vertical_axis_vector(bad)
    assert np.allclose(vertical_axis_vector("0 0 -5"), [0, 0, -1])


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
