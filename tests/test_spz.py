"""Niantic SPZ I/O: round-trip bounds, axes, the real client (splat-transform), bad input."""

from __future__ import annotations

import gzip
import struct
import warnings

import numpy as np
import pytest

from brushpy.errors import InputError
from brushpy.io import formats
from brushpy.io.ply import PlyFormatError, SplatData, read_ply, write_ply
from brushpy.io.spz import SpzFormatError, encode_spz, read_spz, write_spz
from tests.conftest import SHARED, requires_shared
from tests.splat_transform import run_splat_transform

GUITAR = SHARED / "splats" / "guitar_inria_sh0.ply"
BIKER = SHARED / "splats" / "biker.spz"

# The stated round-trip bounds (brushpy/io/spz.py docstring), for values inside the SPZ ranges.
POS_BOUND = 2.0**-13  # half a step at 12 fractional bits
LOG_SCALE_BOUND = 1 / 32
ALPHA_BOUND = 0.5 / 255
ROT_BOUND_DEG = 0.25
F_DC_BOUND = 0.5 / 38.25
SH1_BOUND = 4.5 / 128
SH_REST_BOUND = 8.5 / 128
EPS = 1e-6  # float32 slack

F_DC_MAX = 127.5 / 38.25  # colour bytes 0 / 255
LOG_SCALE_RANGE = (-10.0, 255 / 16 - 10)


def random_scene(n: int, degree: int, seed: int = 0) -> SplatData:
    """Values inside the SPZ ranges, so only rounding (not clamping) is lost."""
    rng = np.random.default_rng(seed)
    sh = rng.uniform(-1.0, 0.99, (n, (degree + 1) ** 2, 3))
    sh[:, 0] = rng.uniform(-3.3, 3.3, (n, 3))
    return SplatData(
        means=rng.uniform(-20, 20, (n, 3)),
        rotations=rng.normal(size=(n, 4)),
        log_scales=rng.uniform(-9.9, 5.9, (n, 3)),
        sh_coeffs=sh,
        raw_opacities=rng.normal(0, 3, n),
    )


def sigmoid(x):
    return 1 / (1 + np.exp(-np.asarray(x, np.float64)))


def rotation_angle_deg(q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    q1 = q1 / np.linalg.norm(q1, axis=1, keepdims=True)
    q2 = q2 / np.linalg.norm(q2, axis=1, keepdims=True)
    dot = np.abs((q1.astype(np.float64) * q2).sum(axis=1)).clip(0, 1)
    return np.degrees(2 * np.arccos(dot))


def assert_within_bounds(src: SplatData, out: SplatData, pos_bound: float = POS_BOUND):
    """``out`` (decoded SPZ) matches ``src`` within the stated bounds, clamping ``src`` to SPZ's ranges."""
    assert out.num_splats == src.num_splats
    assert np.abs(out.means - src.means).max() <= pos_bound + EPS
    assert np.abs(out.log_scales - np.clip(src.log_scales, *LOG_SCALE_RANGE)).max() <= LOG_SCALE_BOUND + EPS
    assert np.abs(sigmoid(out.raw_opacities) - sigmoid(src.raw_opacities)).max() <= ALPHA_BOUND + EPS
    assert rotation_angle_deg(out.rotations, src.rotations).max() <= ROT_BOUND_DEG
    assert np.allclose(np.linalg.norm(out.rotations, axis=1), 1, atol=1e-5)
    f_dc = np.clip(src.sh_coeffs[:, 0], -F_DC_MAX, F_DC_MAX)
    assert np.abs(out.sh_coeffs[:, 0] - f_dc).max() <= F_DC_BOUND + EPS
    k = out.sh_coeffs.shape[1]
    if k > 1:
        assert np.abs(out.sh_coeffs[:, 1:4] - src.sh_coeffs[:, 1:4]).max() <= SH1_BOUND + EPS
    if k > 4:
        assert np.abs(out.sh_coeffs[:, 4:k] - src.sh_coeffs[:, 4:k]).max() <= SH_REST_BOUND + EPS


def assert_same_floats(a: SplatData, b: SplatData, atol: float = 1e-6):
    """The same decoded splats (two decoders of one file), up to float32 rounding."""
    assert a.sh_coeffs.shape == b.sh_coeffs.shape
    for name in ("means", "rotations", "log_scales", "sh_coeffs"):
        assert np.allclose(getattr(a, name), getattr(b, name), atol=atol, rtol=0), name
    assert np.allclose(sigmoid(a.raw_opacities), sigmoid(b.raw_opacities), atol=atol, rtol=0)


def guitar_subsample(step: int) -> SplatData:
    g = read_ply(GUITAR)
    return SplatData(g.means[::step], g.rotations[::step], g.log_scales[::step], g.sh_coeffs[::step],
                     g.raw_opacities[::step])


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("version", [3, 4])
@pytest.mark.parametrize("degree", [0, 1, 3])
def test_round_trip_random_within_bounds(tmp_path, version, degree):
    src = random_scene(3000, degree, seed=degree)
    path = tmp_path / "scene.spz"
    write_spz(path, src, version=version)
    assert path.read_bytes()[:4 if version == 4 else 2] == (b"NGSP" if version == 4 else b"\x1f\x8b")
    out = read_spz(path)
    assert out.sh_degree == degree
    for arr in (out.means, out.rotations, out.log_scales, out.sh_coeffs, out.raw_opacities):
        assert arr.dtype == np.float32
    assert_within_bounds(src, out)


@pytest.mark.parametrize("version", [3, 4])
@requires_shared("splats", "guitar_inria_sh0.ply")
def test_round_trip_guitar_subsample(tmp_path, version):
    src = guitar_subsample(8)
    write_spz(tmp_path / "g.spz", src, version=version)
    assert_within_bounds(src, read_spz(tmp_path / "g.spz"))


def test_degree_4_dropped_in_v3_kept_in_v4(tmp_path):
    src = random_scene(500, 4)
    with pytest.warns(UserWarning, match="band 4 is dropped"):
        write_spz(tmp_path / "v3.spz", src, version=3)
    v3 = read_spz(tmp_path / "v3.spz")
    assert v3.sh_degree == 3
    assert_within_bounds(src, v3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_spz(tmp_path / "v4.spz", src, version=4)
    v4 = read_spz(tmp_path / "v4.spz")
    assert v4.sh_degree == 4
    assert_within_bounds(src, v4)


def test_large_scene_uses_fewer_fractional_bits(tmp_path):
    src = random_scene(200, 0)
    src.means[0] = (5000.0, -3000.0, 10.0)
    with pytest.warns(UserWarning, match="10 fractional bits"):
        write_spz(tmp_path / "big.spz", src)
    assert gzip.decompress((tmp_path / "big.spz").read_bytes())[13] == 10
    assert_within_bounds(src, read_spz(tmp_path / "big.spz"), pos_bound=2.0**-11)


def test_clamps_values_outside_spz_ranges(tmp_path):
    src = random_scene(4, 1)
    src.log_scales[0] = (-20, 9, 0)
    src.sh_coeffs[1, 0] = (9, -9, 0)
    src.sh_coeffs[2, 1] = (3, -3, 0.5)
    src.raw_opacities[:2] = (-60, 60)
    src.rotations[3] = 0  # no rotation: written as the identity
    write_spz(tmp_path / "c.spz", src)
    out = read_spz(tmp_path / "c.spz")
    assert np.allclose(out.log_scales[0], (-10, 255 / 16 - 10, 0))
    assert np.allclose(out.sh_coeffs[1, 0, :2], (F_DC_MAX, -F_DC_MAX))
    # band 1's y term is stored negated (RUB), so +3 clamps to the byte 0 (-1 -> +1 read back)
    # and -3 to 255 (127/128 -> -127/128); 0.5 sits on a 5-bit bucket and survives exactly
    assert np.allclose(out.sh_coeffs[2, 1], (1, -127 / 128, 0.5))
    assert np.all(np.isfinite(out.raw_opacities)) and np.allclose(out.raw_opacities[:2], (-40, 40))
    assert np.allclose(out.rotations[3], (1, 0, 0, 0))


@pytest.mark.parametrize("version", [3, 4])
def test_mip_flag(tmp_path, version):
    src = random_scene(10, 0)
    src.render_mode = "mip"
    write_spz(tmp_path / "m.spz", src, version=version)
    assert read_spz(tmp_path / "m.spz").render_mode == "mip"
    src.render_mode = "default"
    write_spz(tmp_path / "m.spz", src, version=version)
    assert read_spz(tmp_path / "m.spz").render_mode == "default"


# --------------------------------------------------------------------------- axes and hand-packed bytes


def legacy_file(version: int, n: int, degree: int, blocks: bytes, frac: int = 12, flags: int = 0,
                compress: bool = True) -> bytes:
    raw = struct.pack("<4sIIBBBB", b"NGSP", version, n, degree, frac, flags, 0) + blocks
    return gzip.compress(raw) if compress else raw


def fixed24(v: float, frac: int = 12) -> bytes:
    return (int(round(v * (1 << frac))) & 0xFFFFFF).to_bytes(3, "little")


def test_hand_packed_v3_decodes_into_ply_axes(tmp_path):
    """One splat stored in SPZ's RUB axes; brushpy reads it in RDF (y and z negated)."""
    s = np.sqrt(0.5)
    # rotation: 90 degrees about +y in RUB, (x, y, z, w) = (0, s, 0, s), smallest three with y
    # (index 1) as the largest: then x, z, w in 10 bits each (sign, 9-bit magnitude m / 511 * s)
    comp = 1
    for mag in (0, 0, 511):
        comp = (comp << 10) | mag
    blocks = (
        fixed24(1.0) + fixed24(2.0) + fixed24(-3.5)  # position
        + bytes([128])  # alpha 128/255
        + bytes([128, 0, 255])  # colour
        + bytes([160, 144, 176])  # scales: 0, -1, 1
        + struct.pack("<I", comp)
        # band 1: the y, z, x terms, R G B each; R = 0.25, -0.5, 0.125
        + bytes([160, 128, 128, 64, 128, 128, 144, 128, 128])
    )
    path = tmp_path / "one.spz"
    path.write_bytes(legacy_file(3, 1, 1, blocks))
    d = read_spz(path)
    assert np.allclose(d.means[0], (1.0, -2.0, 3.5))
    assert np.allclose(d.log_scales[0], (0, -1, 1))
    assert np.isclose(sigmoid(d.raw_opacities[0]), 128 / 255)
    assert np.allclose(d.sh_coeffs[0, 0], ((128 / 255 - 0.5) / 0.15, -0.5 / 0.15, 0.5 / 0.15))
    # (w, x, y, z) = (s, 0, s, 0) in RUB -> (s, 0, -s, 0) in RDF: the same turn about the flipped y
    assert np.allclose(d.rotations[0], (s, 0, -s, 0), atol=1e-6)
    # SH band 1 of R: coefficients of y, z, x -> signs -, -, +
    assert np.allclose(d.sh_coeffs[0, 1:4, 0], (-0.25, 0.5, 0.125))
    assert np.allclose(d.sh_coeffs[0, 1:4, 1:], 0)


def test_v2_first_three_and_raw_legacy(tmp_path):
    """Version 2 rotations (x, y, z bytes; w >= 0) and the non-gzipped legacy stream."""
    q = np.array([0.2, -0.4, 0.1])  # x, y, z (RUB); w = sqrt(1 - |q|^2)
    rot = bytes(int(round((v + 1) * 127.5)) for v in q)
    blocks = fixed24(0.5) + fixed24(0.25) + fixed24(0) + bytes([200]) + bytes([128] * 3) + bytes([160] * 3) + rot
    for compress in (True, False):
        path = tmp_path / f"v2_{compress}.spz"
        path.write_bytes(legacy_file(2, 1, 0, blocks, compress=compress))
        d = read_spz(path)
        xyz = np.array([b / 127.5 - 1 for b in rot])
        w = np.sqrt(1 - (xyz**2).sum())
        assert np.allclose(d.rotations[0], (w, xyz[0], -xyz[1], -xyz[2]), atol=1e-6)
        assert np.allclose(d.means[0], (0.5, -0.25, 0))


def _with_extension(v4: bytes, record: bytes) -> bytes:
    """A version-4 file with ``record`` inserted between the header and the table of contents."""
    header = bytearray(v4[:32])
    header[14] |= 0x2
    struct.pack_into("<I", header, 16, 32 + len(record))
    return bytes(header) + record + v4[32:]


def test_coordinate_system_extension(tmp_path):
    src = random_scene(50, 2)
    v4 = encode_spz(src, 4)
    # RUB stated explicitly, and a foreign record before it: read as without
    rub = struct.pack("<II", 0x12340001, 3) + b"abc" + struct.pack("<III", 0xADBE0003, 4, 4)
    (tmp_path / "rub.spz").write_bytes(_with_extension(v4, rub))
    assert_same_floats(read_spz(tmp_path / "rub.spz"), read_spz_bytes(tmp_path, v4))
    # RDF (PLY axes): no flip on read, so y and z and the odd SH come out negated vs RUB
    (tmp_path / "rdf.spz").write_bytes(_with_extension(v4, struct.pack("<III", 0xADBE0003, 4, 6)))
    rdf, base = read_spz(tmp_path / "rdf.spz"), read_spz_bytes(tmp_path, v4)
    assert np.allclose(rdf.means, base.means * (1, -1, -1))
    assert np.allclose(rdf.rotations, base.rotations * (1, 1, -1, -1), atol=1e-6)
    assert np.allclose(rdf.sh_coeffs[:, 1:4], base.sh_coeffs[:, 1:4] * np.array([-1, -1, 1])[:, None])
    # a rotated-family axis set is refused
    (tmp_path / "rfd.spz").write_bytes(_with_extension(v4, struct.pack("<III", 0xADBE0003, 4, 10)))
    with pytest.raises(SpzFormatError, match="RFD axes"):
        read_spz(tmp_path / "rfd.spz")


def read_spz_bytes(tmp_path, blob: bytes) -> SplatData:
    path = tmp_path / "blob.spz"
    path.write_bytes(blob)
    return read_spz(path)


# --------------------------------------------------------------------------- real files and clients


@requires_shared("splats", "biker.spz")
def test_biker_reads_upright_in_ply_axes():
    d = read_spz(BIKER)
    assert d.num_splats == 152_746 and d.sh_degree == 0
    assert all(np.all(np.isfinite(a)) for a in (d.means, d.rotations, d.log_scales, d.sh_coeffs, d.raw_opacities))
    assert np.allclose(np.linalg.norm(d.rotations, axis=1), 1, atol=1e-5)
    # a standing person, head up: in PLY axes "up" is -y (an unflipped read gives y in [0, 3.2])
    lo, hi = np.percentile(d.means, [1, 99], axis=0)
    assert -3.3 < lo[1] < -2.8 and -0.2 < hi[1] <= 0.0
    assert formats.detect_format(BIKER) == "spz"
    assert formats.read_splats(BIKER).num_splats == d.num_splats


@pytest.mark.parametrize("version,degree", [(3, 3), (4, 4)])
def test_splat_transform_reads_brushpy_spz(tmp_path, version, degree):
    """The real client decodes brushpy's file to the same values brushpy does (both in PLY axes)."""
    src = random_scene(2000, degree, seed=7)
    spz, ply = tmp_path / "b.spz", tmp_path / "st.ply"
    write_spz(spz, src, version=version)
    run_splat_transform(spz, ply)
    ours, theirs = read_spz(spz), read_ply(ply)
    assert_same_floats(ours, theirs)
    assert_within_bounds(src, theirs)


@pytest.mark.parametrize("version", [3, 4])
@requires_shared("splats", "guitar_inria_sh0.ply")
def test_brushpy_reads_splat_transform_spz(tmp_path, version):
    """splat-transform's SPZ of the guitar decodes within the bounds, and to the very values of
    brushpy's own encoding (the same quantisation as the reference)."""
    src = guitar_subsample(6)
    write_ply(tmp_path / "g.ply", src)
    run_splat_transform("--spz-version", str(version), tmp_path / "g.ply", tmp_path / "st.spz")
    head = (tmp_path / "st.spz").read_bytes()[:4]
    assert head[:2] == b"\x1f\x8b" if version == 3 else head == b"NGSP"
    theirs = read_spz(tmp_path / "st.spz")
    assert_within_bounds(src, theirs)
    assert_same_floats(theirs, read_spz_bytes(tmp_path, encode_spz(src, version)), atol=0)


def test_formats_entry_points(tmp_path):
    src = random_scene(20, 1)
    formats.write_splats(tmp_path / "a.spz", src)
    formats.write_splats(tmp_path / "b.spz", src, version=4)
    for name, magic in (("a.spz", b"\x1f\x8b"), ("b.spz", b"NGSP")):
        blob = (tmp_path / name).read_bytes()
        assert blob.startswith(magic)
        (tmp_path / "renamed.bin").write_bytes(blob)  # content, not the name, decides
        assert formats.detect_format(tmp_path / "renamed.bin") == "spz"
        assert_within_bounds(src, formats.read_splats(tmp_path / "renamed.bin"))
    with pytest.raises(TypeError, match="version"):
        formats.write_splats(tmp_path / "c.spz", src, level=3)


# --------------------------------------------------------------------------- bad input


def _v3(n=5, degree=1) -> bytes:
    return gzip.decompress(encode_spz(random_scene(n, degree), 3))


def u32(value: int) -> bytes:
    return struct.pack("<I", value)


def _patched_v4(offset: int, fmt: str, value) -> bytes:
    blob = bytearray(encode_spz(random_scene(5, 1), 4))
    struct.pack_into(fmt, blob, offset, value)
    return bytes(blob)


def _cases():
    raw = _v3()
    v4 = encode_spz(random_scene(5, 1), 4)
    toc_first = struct.unpack_from("<Q", v4, 32)[0]
    first_stream_at = 32 + 6 * 16
    return {
        "not gzip or NGSP": (b"hello, this is no splat file" * 4, "neither a gzip stream"),
        "empty file": (b"", "empty file"),
        "bad gzip stream": (b"\x1f\x8b\x08\x00" + b"\xff" * 60, "broken gzip stream"),
        "truncated gzip": (gzip.compress(raw)[:-30], "broken gzip stream"),
        "bad zstd stream": (v4[:first_stream_at] + bytes(4) + v4[first_stream_at + 4:], "broken zstd stream"),
        "wrong magic": (gzip.compress(b"NGSQ" + raw[4:]), "wrong magic"),
        "unknown version (gzip)": (gzip.compress(raw[:4] + u32(7) + raw[8:]), "version 7 is not supported"),
        "unknown version (NGSP)": (_patched_v4(4, "<I", 9), "version 9 is not supported"),
        "gzip holding a v4 header": (gzip.compress(raw[:4] + u32(4) + raw[8:]), "version-4 header inside"),
        "count beyond data (gzip)": (gzip.compress(raw[:8] + u32(6) + raw[12:]), "truncated SPZ file"),
        "count beyond data (NGSP)": (_patched_v4(8, "<I", 6), "need"),
        "truncated NGSP": (v4[:-1], "runs past the end"),
        "truncated NGSP header": (v4[:20], "32-byte version-4 header"),
        "toc outside file": (_patched_v4(16, "<I", 10_000), "table of contents"),
        "stream count": (_patched_v4(15, "<B", 3), "attribute streams"),
        "zero points": (gzip.compress(raw[:8] + u32(0) + raw[12:]), "0 splats"),
        "SH degree 5 (gzip)": (gzip.compress(raw[:12] + bytes([5]) + raw[13:]), "SH degree 5 is out of range"),
        "SH degree 9 (NGSP)": (_patched_v4(12, "<B", 9), "SH degree 9 is out of range"),
        "short legacy header": (gzip.compress(b"NGSP\x03\x00"), "fewer than the 16-byte"),
        "first stream size": (_patched_v4(32, "<Q", toc_first + 10_000), "runs past the end"),
    }


@pytest.mark.parametrize("case", list(_cases()))
def test_bad_input_names_file_and_fault(tmp_path, case):
    blob, fragment = _cases()[case]
    path = tmp_path / "bad.spz"
    path.write_bytes(blob)
    with pytest.raises(SpzFormatError) as info:
        read_spz(path)
    message = str(info.value)
    assert str(path) in message and fragment in message, message
    assert isinstance(info.value, PlyFormatError) and isinstance(info.value, InputError)
    # the format-independent entry point reports the same (a .spz name reaches the SPZ reader)
    with pytest.raises(SpzFormatError):
        formats.read_splats(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.spz"):
        read_spz(tmp_path / "nope.spz")
    with pytest.raises(SpzFormatError, match="directory"):
        read_spz(tmp_path)


def test_writer_refuses_bad_data_and_keeps_old_file(tmp_path):
    path = tmp_path / "keep.spz"
    path.write_bytes(b"old")
    src = random_scene(10, 0)
    with pytest.raises(ValueError, match="versions 3 and 4"):
        write_spz(path, src, version=2)
    with pytest.raises(ValueError, match="no splats"):
        write_spz(path, random_scene(0, 0))
    src.means[3, 1] = np.nan
    with pytest.raises(ValueError, match="means has non-finite values in 1 of 10"):
        write_spz(path, src)
    src.means[3, 1] = 0
    src.means[0, 0] = 1e7
    with pytest.raises(ValueError, match="24-bit range"):
        write_spz(path, src)
    assert path.read_bytes() == b"old"


# --------------------------------------------------------------------------- render


@requires_shared("splats", "guitar_inria_sh0.ply")
def test_guitar_render_psnr_after_v3_round_trip(gpu, tmp_path):
    from brushpy.io.framing import framing_camera
    from brushpy.render.forward import rasterize

    src = guitar_subsample(3)
    write_spz(tmp_path / "g.spz", src, version=3)
    out = read_spz(tmp_path / "g.spz")
    w, h = 240, 180
    cam = framing_camera(src.means, w, h, 50.0)
    images = []
    for d in (src, out):
        image = rasterize(d.means, d.rotations, d.log_scales, d.sh_coeffs, d.raw_opacities,
                          cam.world_to_camera, cam.intrinsics, w, h, background=(0.0, 0.0, 0.0))
        images.append(np.clip(np.asarray(image)[..., :3], 0, 1))
    assert images[0].mean() > 0.02  # the guitar is in view
    psnr = 10 * np.log10(1 / np.mean((images[0] - images[1]) ** 2))
    assert psnr >= 45, psnr


def test_more_sh_bits_cost_size_and_buy_accuracy(tmp_path):
    from brushpy.io.spz import encode_spz

    rng = np.random.default_rng(7)
    n = 2000
    data = SplatData(means=rng.normal(size=(n, 3)), rotations=rng.normal(size=(n, 4)),
                     log_scales=rng.normal(size=(n, 3)) - 3, sh_coeffs=rng.normal(size=(n, 16, 3)) * 0.1,
                     raw_opacities=rng.normal(size=n))
    errs, sizes = [], []
    for bits in ((5, 4), (8, 8)):
        write_spz(tmp_path / "s.spz", data, sh_bits=bits)
        back = read_spz(tmp_path / "s.spz")
        errs.append(np.abs(back.sh_coeffs[:, 1:] - data.sh_coeffs[:, 1:]).max())
        sizes.append((tmp_path / "s.spz").stat().st_size)
    assert errs[1] <= 0.5 / 128 + 1e-6 < errs[0] and sizes[1] > sizes[0]
    with pytest.raises(ValueError, match="1..8"):
        encode_spz(data, sh_bits=(9, 4))


def test_convert_spz_sh_bits_option(tmp_path):
    from click.testing import CliRunner
    from brushpy.cli import main

    rng = np.random.default_rng(8)
    n = 300
    data = SplatData(means=rng.normal(size=(n, 3)), rotations=rng.normal(size=(n, 4)),
                     log_scales=rng.normal(size=(n, 3)) - 3, sh_coeffs=rng.normal(size=(n, 4, 3)) * 0.1,
                     raw_opacities=rng.normal(size=n))
    from brushpy.io.ply import write_ply
    write_ply(tmp_path / "in.ply", data)
    r = CliRunner().invoke(main, ["convert", str(tmp_path / "in.ply"), str(tmp_path / "o.spz"), "--spz-sh-bits", "8,8"])
    assert r.exit_code == 0, r.output
    assert np.abs(read_spz(tmp_path / "o.spz").sh_coeffs[:, 1:] - data.sh_coeffs[:, 1:]).max() <= 0.5 / 128 + 1e-6
    r = CliRunner().invoke(main, ["convert", str(tmp_path / "in.ply"), str(tmp_path / "o.spz"), "--spz-sh-bits", "9"])
    assert r.exit_code == 2 and "--spz-sh-bits" in r.output
