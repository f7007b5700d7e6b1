"""PlayCanvas compressed PLY: decoding (against splat-transform's decoder), writing (against its encoder),
round-trip bounds, Morton order, errors; splat-transform as the real client."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from plyfile import PlyData, PlyElement

from brushpy.io import formats
from brushpy.io.ply import PlyFormatError, SplatData, read_ply, read_ply_points, write_ply
from brushpy.io.ply_compressed import (
    CHUNK_SIZE,
    decode_sh_bytes,
    encode_sh_bytes,
    morton_order,
    read_compressed_ply,
    write_compressed_ply,
)
from tests.conftest import SHARED, requires_shared
from tests.splat_transform import run_splat_transform

GUITAR = SHARED / "splats" / "guitar_inria_sh0.ply"
GUITAR_COMPRESSED = SHARED / "splats" / "guitar.compressed.ply"
FIELDS = ("means", "rotations", "log_scales", "sh_coeffs", "raw_opacities")


def scene(n: int, degree: int, seed: int = 0) -> SplatData:
    """A clustered random scene (a few blobs, as real scenes are) with SH in the format's range."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, 3)) * 5
    k = (degree + 1) ** 2
    sh = rng.normal(size=(n, k, 3)).astype(np.float32)
    sh[:, 1:] *= 0.3
    return SplatData(
        means=centres[rng.integers(0, 8, n)] + rng.normal(size=(n, 3)) * 0.5,
        rotations=rng.normal(size=(n, 4)),
        log_scales=rng.uniform(-7, -1, size=(n, 3)),
        sh_coeffs=sh,
        raw_opacities=rng.normal(size=n) * 3,
    )


def chunk_ranges(values: np.ndarray) -> np.ndarray:
    """Per splat, its chunk's (max - min) of ``values`` [N, C] (splats in file order)."""
    n = len(values)
    pad = np.concatenate([values, np.repeat(values[-1:], -n % CHUNK_SIZE, axis=0)])
    c = pad.reshape(-1, CHUNK_SIZE, values.shape[1])
    rng = (c.max(axis=1) - c.min(axis=1)).astype(np.float64)
    return np.repeat(rng, CHUNK_SIZE, axis=0)[:n]


def quat_angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.degrees(2 * np.arccos(np.clip(np.abs((a * b).sum(axis=1)), 0, 1)))


# --------------------------------------------------------------------------- SH bytes


def test_sh_bytes_decode_to_the_middle_of_the_encoder_bins():
    """splat-transform encodes trunc((v/8 + 0.5) 256) and decodes (q + 0.5)/256 (0 and 255 pinned to -4, +4)."""
    q = np.arange(256)
    v = decode_sh_bytes(q)
    assert v[0] == -4.0 and v[255] == 4.0
    assert np.allclose(v[1:255], ((q[1:255] + 0.5) / 256 - 0.5) * 8)
    assert np.array_equal(encode_sh_bytes(v), q)  # each decoded value lies in its own bin
    x = np.linspace(-5, 5, 100_001)
    err = np.abs(decode_sh_bytes(encode_sh_bytes(x)) - np.clip(x, -4, 4))
    inner = np.abs(x) <= 4 - 1 / 32
    assert err[inner].max() <= 1 / 64 + 1e-12
    assert err.max() <= 1 / 32 + 1e-12


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
    sh["f_rest_3"][256] = 128    # -> middle of the bin [0, 1/32): 1/64 (first G coefficient of band 1)
    sh["f_rest_8"][256] = 255    # -> +4 (the top byte is pinned to the end of the range)
    sh["f_rest_5"][256] = 1      # -> (1.5 / 256 - 0.5) * 8
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
    assert d.sh_coeffs[256, 1, 0] == -4.0 and d.sh_coeffs[256, 1, 1] == 1 / 64
    assert d.sh_coeffs[256, 3, 2] == 4.0 and d.sh_coeffs[256, 3, 1] == np.float32((1.5 / 256 - 0.5) * 8)
    # splat 0 (chunk 0): all-zero packing -> min corner, opacity byte 0 -> clamped logit
    assert np.allclose(d.means[0], [-1, -1, -1]) and d.raw_opacities[0] == -40.0
    pts, cols = read_ply_points(path)
    assert np.array_equal(pts, d.means) and cols.shape == (n, 3)

# --------------------------------------------------------------------------- against splat-transform


@pytest.fixture(scope="module")
def reference_files(tmp_path_factory):
    """A degree-3 scene written as PLY, encoded by splat-transform, and decoded by it again."""
    d = tmp_path_factory.mktemp("st")
    data = scene(1500, 3, seed=7)
    write_ply(d / "in.ply", data)
    run_splat_transform(d / "in.ply", d / "st.compressed.ply")
    run_splat_transform(d / "st.compressed.ply", d / "st_decoded.ply")
    return data, d


def test_decoder_matches_splat_transform(reference_files):
    """Every dequantisation (positions, scales, colours, opacity, rotations, SH) equals splat-transform's decode
    (float32, bit for bit; its +-inf opacities are read as +-40)."""
    _, d = reference_files
    ours = read_compressed_ply(d / "st.compressed.ply")
    theirs = read_ply(d / "st_decoded.ply")
    assert ours.sh_degree == 3 and ours.num_splats == 1500
    for name in FIELDS:
        assert np.array_equal(getattr(ours, name), getattr(theirs, name)), name


def test_writer_matches_splat_transform(reference_files, tmp_path):
    """brushpy's encoder writes the same chunk, vertex and sh rows as splat-transform's (same Morton order)."""
    data, d = reference_files
    write_compressed_ply(tmp_path / "bp.compressed.ply", data)
    ours, theirs = PlyData.read(str(tmp_path / "bp.compressed.ply")), PlyData.read(str(d / "st.compressed.ply"))
    for el in ("chunk", "vertex", "sh"):
        a, b = ours[el].data, theirs[el].data
        assert a.dtype == b.dtype, el
        for name in b.dtype.names:
            assert np.array_equal(a[name], b[name]), (el, name)


def test_splat_transform_reads_our_file(tmp_path):
    """The real client decodes brushpy's compressed PLY to what brushpy reads from it."""
    data = scene(700, 2, seed=3)
    data.raw_opacities[:5] = [60, -60, 0, 30, -30]  # bytes 255 and 0
    write_compressed_ply(tmp_path / "bp.compressed.ply", data)
    run_splat_transform(tmp_path / "bp.compressed.ply", tmp_path / "st.ply")
    ours, theirs = read_ply(tmp_path / "bp.compressed.ply"), read_ply(tmp_path / "st.ply")
    assert theirs.sh_degree == 2 and theirs.num_splats == 700
    for name in FIELDS:
        assert np.array_equal(getattr(ours, name), getattr(theirs, name)), name


@requires_shared("splats", "guitar.compressed.ply")
def test_guitar_decoding_matches_splat_transform(tmp_path):
    run_splat_transform(GUITAR_COMPRESSED, tmp_path / "g.ply")
    ours, theirs = read_ply(GUITAR_COMPRESSED), read_ply(tmp_path / "g.ply")
    for name in FIELDS:
        assert np.array_equal(getattr(ours, name), getattr(theirs, name)), name


@requires_shared("splats", "guitar_inria_sh0.ply")
def test_guitar_rewritten_like_splat_transform(tmp_path):
    """Re-encoding the decoded guitar gives splat-transform's rows bit for bit (Morton refinement included)."""
    data = read_ply(GUITAR)
    run_splat_transform(GUITAR, tmp_path / "st.compressed.ply")
    write_compressed_ply(tmp_path / "bp.compressed.ply", data)
    ours, theirs = PlyData.read(str(tmp_path / "bp.compressed.ply")), PlyData.read(str(tmp_path / "st.compressed.ply"))
    for el in ("chunk", "vertex"):
        for name in theirs[el].data.dtype.names:
            assert np.array_equal(ours[el].data[name], theirs[el].data[name]), (el, name)


# --------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("degree", [0, 1, 3])
def test_round_trip_bounds(tmp_path, degree):
    data = scene(1000, degree, seed=degree)
    write_compressed_ply(tmp_path / "a.compressed.ply", data)
    back = read_ply(tmp_path / "a.compressed.ply")
    assert back.num_splats == 1000 and back.sh_degree == degree and back.normals is None
    src = SplatData(**{f: getattr(data, f)[morton_order(data.means)] for f in FIELDS})  # file order
    steps = np.array([2047, 1023, 2047])
    err = np.abs(back.means - src.means)
    assert (err <= chunk_ranges(src.means) / (2 * steps) * (1 + 1e-5) + 1e-6).all()
    err = np.abs(back.log_scales - src.log_scales)
    assert (err <= chunk_ranges(src.log_scales) / (2 * steps) * (1 + 1e-5) + 1e-6).all()
    colors = src.colors
    assert (np.abs(back.colors - colors) <= chunk_ranges(colors) / 510 + 1e-6).all()
    assert np.abs(back.opacities - src.opacities).max() <= 1 / 510 + 1e-6
    # each stored component within 1/(1023 sqrt 2): rotation angle below 0.3 degrees
    assert quat_angle_deg(back.rotations, src.rotations).max() < 0.3
    if degree:
        rest = src.sh_coeffs[:, 1:]
        inner = np.abs(rest) <= 4 - 1 / 32
        assert np.abs(back.sh_coeffs[:, 1:] - rest)[inner].max() <= 1 / 64 + 1e-6
    # chunk bounds are the chunk's own min/max (tight)
    chunk = PlyData.read(str(tmp_path / "a.compressed.ply"))["chunk"].data
    starts = range(0, 1000, CHUNK_SIZE)
    assert np.array_equal(chunk["min_x"], [src.means[i:i + CHUNK_SIZE, 0].min() for i in starts])
    assert np.array_equal(chunk["max_g"], [colors[i:i + CHUNK_SIZE, 1].max() for i in starts])


def test_morton_order_makes_tight_chunks():
    """16384 points in a cube: Morton chunks of 256 cover a few per cent of it each (random order: all of it)."""
    means = np.random.default_rng(1).uniform(-3, 5, size=(16384, 3))

    def box_volume(order):
        c = means[order].reshape(-1, CHUNK_SIZE, 3)
        return np.prod(c.max(axis=1) - c.min(axis=1), axis=1).sum()

    order = morton_order(means)
    assert np.array_equal(np.sort(order), np.arange(16384))
    ratio = box_volume(order) / box_volume(np.arange(16384))
    assert ratio < 0.1, ratio  # measured 0.05
    # ties keep input order; identical points and an empty set are left alone
    same = np.zeros((600, 3))
    assert np.array_equal(morton_order(same), np.arange(600))
    assert morton_order(np.zeros((0, 3))).shape == (0,)


def test_band_4_dropped_with_warning(tmp_path, caplog):
    data = scene(300, 4)
    with caplog.at_level(logging.WARNING, logger="brushpy.io"):
        write_compressed_ply(tmp_path / "d4.compressed.ply", data)
    assert "band 4" in caplog.text
    back = read_ply(tmp_path / "d4.compressed.ply")
    assert back.sh_degree == 3


def test_nonfinite_input_is_cleaned_before_encoding(tmp_path, caplog):
    data = scene(300, 0)
    data.means[3] = np.nan
    data.raw_opacities[4] = np.inf
    with caplog.at_level(logging.WARNING, logger="brushpy.io"):
        write_compressed_ply(tmp_path / "nf.compressed.ply", data)
    assert "dropped 1 of 300" in caplog.text
    back = read_ply(tmp_path / "nf.compressed.ply")
    assert back.num_splats == 299 and all(np.isfinite(getattr(back, f)).all() for f in FIELDS)
    assert (back.raw_opacities == 40.0).any()


def test_empty_and_comments(tmp_path):
    empty = scene(0, 1)
    write_compressed_ply(tmp_path / "e.compressed.ply", empty)
    back = read_ply(tmp_path / "e.compressed.ply")
    assert back.num_splats == 0
    data = scene(10, 0)
    data.render_mode, data.vertical_axis = "mip", "-y"
    write_compressed_ply(tmp_path / "m.compressed.ply", data)
    back = read_compressed_ply(tmp_path / "m.compressed.ply")
    assert (back.render_mode, back.vertical_axis) == ("mip", "-y")
    comments = PlyData.read(str(tmp_path / "m.compressed.ply")).comments
    assert "SplatRenderMode: mip" in comments and "Vertical axis: 0 -1 0" in comments


def test_formats_entry_points(tmp_path):
    data = scene(50, 1)
    formats.write_splats(tmp_path / "x.compressed.ply", data)
    assert formats.detect_format(tmp_path / "x.compressed.ply") == "compressed.ply"
    assert formats.read_splats(tmp_path / "x.compressed.ply").num_splats == 50
    # read_ply reads both layouts; read_compressed_ply only the compressed one
    write_ply(tmp_path / "plain.ply", data)
    with pytest.raises(PlyFormatError, match="not a compressed PLY"):
        read_compressed_ply(tmp_path / "plain.ply")


# --------------------------------------------------------------------------- errors


def _compressed_file(path, n=10, chunks=1, drop=(), sh_props=0, sh_rows=None):
    names = [p for p in ("min_x", "min_y", "min_z", "max_x", "max_y", "max_z", "min_scale_x", "min_scale_y",
                         "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z") if p not in drop]
    chunk = np.zeros(chunks, dtype=[(p, "f4") for p in names])
    packed = [p for p in ("packed_position", "packed_rotation", "packed_scale", "packed_color") if p not in drop]
    els = [PlyElement.describe(chunk, "chunk"), PlyElement.describe(np.zeros(n, dtype=[(p, "u4") for p in packed]), "vertex")]
    if sh_props:
        rows = n if sh_rows is None else sh_rows
        els.append(PlyElement.describe(np.zeros(rows, dtype=[(f"f_rest_{i}", "u1") for i in range(sh_props)]), "sh"))
    PlyData(els).write(str(path))
    return path


@pytest.mark.parametrize("kwargs, message", [
    (dict(drop=("max_scale_y",)), "chunk property 'max_scale_y' is missing"),
    (dict(drop=("packed_color",)), "vertex property 'packed_color' is missing"),
    (dict(n=300, chunks=1), "1 chunks cannot hold 300 splats"),
    (dict(sh_props=10), "10 f_rest_"),
    (dict(sh_props=9, sh_rows=5), "'sh' element has 5 rows; expected 10"),
])
def test_malformed_files_name_the_problem(tmp_path, kwargs, message):
    path = _compressed_file(tmp_path / "bad.compressed.ply", **kwargs)
    with pytest.raises(PlyFormatError) as err:
        read_ply(path)
    assert message in str(err.value) and str(path) in str(err.value)
