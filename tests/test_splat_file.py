"""antimatter15 .splat files: record layout, round-trip bounds, importance order, errors, sniffing;
splat-transform as the real client."""

from __future__ import annotations

import logging
import struct

import numpy as np
import pytest

from brushpy.io import formats
from brushpy.io.ply import PlyFormatError, SplatData, read_ply
from brushpy.io.splat_file import (
    SplatFileError,
    importance_order,
    read_splat_file,
    sniff,
    write_splat_file,
)
from tests.conftest import SHARED, requires_shared
from tests.splat_transform import run_splat_transform

GUITAR = SHARED / "splats" / "guitar_inria_sh0.ply"


def scene(n: int, degree: int = 0, seed: int = 0) -> SplatData:
    rng = np.random.default_rng(seed)
    k = (degree + 1) ** 2
    return SplatData(
        means=rng.normal(size=(n, 3)) * 3,
        rotations=rng.normal(size=(n, 4)),
        log_scales=rng.uniform(-8, 0, size=(n, 3)),
        sh_coeffs=rng.normal(size=(n, k, 3)) * 0.8,
        raw_opacities=rng.normal(size=n) * 3,
    )


def quat_angle_deg(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.degrees(2 * np.arccos(np.clip(np.abs((a * b).sum(axis=1)), 0, 1)))


def test_record_layout(tmp_path):
    """One splat packed by hand: 3 f32 position, 3 f32 linear scale, RGBA bytes, quaternion bytes (w,x,y,z)."""
    rec = struct.pack("<6f", 1.5, -2.0, 3.25, 0.5, 0.25, 2.0) + bytes([255, 0, 128, 191]) + bytes([128, 218, 37, 128])
    path = tmp_path / "one.splat"
    path.write_bytes(rec)
    d = read_splat_file(path)
    assert d.num_splats == 1 and d.sh_degree == 0 and d.normals is None
    assert d.means.tolist() == [[1.5, -2.0, 3.25]]
    assert np.allclose(d.log_scales, np.log([[0.5, 0.25, 2.0]]))
    assert np.allclose(d.colors, [[1.0, 0.0, 128 / 255]], atol=1e-6)
    assert np.isclose(d.opacities[0], 191 / 255, atol=1e-6)
    # bytes (128, 218, 37, 128) -> (0, 90, -91, 0) / 128, normalised
    q = np.array([0, 90, -91, 0]) / np.hypot(90, 91)
    assert np.allclose(d.rotations[0], q, atol=1e-6)
    # and the writer produces exactly these bytes back
    write_splat_file(tmp_path / "again.splat", d)
    assert (tmp_path / "again.splat").read_bytes() == rec


def test_round_trip_bounds(tmp_path):
    data = scene(500)
    write_splat_file(tmp_path / "a.splat", data)
    assert (tmp_path / "a.splat").stat().st_size == 500 * 32
    back = read_splat_file(tmp_path / "a.splat")
    src = SplatData(**{f: getattr(data, f)[importance_order(data)]
                       for f in ("means", "rotations", "log_scales", "sh_coeffs", "raw_opacities")})
    assert np.array_equal(back.means, src.means)
    assert np.allclose(back.log_scales, src.log_scales, atol=1e-6, rtol=0)
    assert np.abs(back.colors - np.clip(src.colors, 0, 1)).max() <= 0.5 / 255 + 1e-6
    assert np.abs(back.opacities - src.opacities).max() <= 0.5 / 255 + 1e-6
    assert quat_angle_deg(back.rotations, src.rotations).max() < 0.9


def test_importance_order_is_volume_times_opacity():
    data = scene(200, seed=2)
    order = importance_order(data)
    key = np.exp(data.log_scales.astype(np.float64).sum(axis=1)) * data.opacities.astype(np.float64)
    assert np.all(np.diff(key[order]) <= 1e-12 * key.max())
    # huge values do not overflow (a log-domain key)
    data.log_scales[0] = 400.0
    assert importance_order(data)[0] == 0


def test_higher_sh_bands_are_dropped_with_a_warning(tmp_path, caplog):
    data = scene(20, degree=2)
    with caplog.at_level(logging.WARNING, logger="brushpy.io"):
        write_splat_file(tmp_path / "d2.splat", data, sort=False)
    assert "SH band 0 only" in caplog.text and str(tmp_path / "d2.splat") in caplog.text
    back = read_splat_file(tmp_path / "d2.splat")
    assert back.sh_degree == 0
    assert np.abs(back.colors - np.clip(data.colors, 0, 1)).max() <= 0.5 / 255 + 1e-6  # sort=False: input order


def test_extreme_values(tmp_path, caplog):
    """Alpha bytes 0/255 -> logits -40/+40; zero quaternion -> identity; a scale of 0 -> the -30 floor."""
    data = scene(4)
    data.raw_opacities[:] = [100, -100, 0, 0]
    data.rotations[2] = 0
    write_splat_file(tmp_path / "x.splat", data, sort=False)
    back = read_splat_file(tmp_path / "x.splat")
    assert back.raw_opacities[0] == 40 and back.raw_opacities[1] == -40
    assert np.allclose(back.rotations[2], [1, 0, 0, 0])
    raw = bytearray((tmp_path / "x.splat").read_bytes())
    raw[12:16] = struct.pack("<f", 0.0)
    (tmp_path / "x.splat").write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING, logger="brushpy.io"):
        back = read_splat_file(tmp_path / "x.splat")
    assert back.num_splats == 4 and back.log_scales[0, 0] == -30.0
    assert "-inf log_scales 1" in caplog.text


def test_bad_size_names_the_file(tmp_path):
    path = tmp_path / "cut.splat"
    path.write_bytes(bytes(32 * 3 + 7))
    with pytest.raises(SplatFileError) as err:
        read_splat_file(path)
    assert isinstance(err.value, PlyFormatError)
    assert str(path) in str(err.value) and "103 bytes" in str(err.value) and "32-byte" in str(err.value)
    with pytest.raises(FileNotFoundError, match="nope.splat"):
        read_splat_file(tmp_path / "nope.splat")
    (tmp_path / "dir.splat").mkdir()
    with pytest.raises(SplatFileError, match="directory"):
        read_splat_file(tmp_path / "dir.splat")


def test_sniff_by_name_and_size(tmp_path):
    good = tmp_path / "a.SPLAT"
    good.write_bytes(bytes(64))
    cut = tmp_path / "b.splat"
    cut.write_bytes(bytes(65))
    other = tmp_path / "c.bin"
    other.write_bytes(bytes(64))
    assert sniff(b"", good) and not sniff(b"", cut) and not sniff(b"", other)
    assert formats.detect_format(good) == "splat"
    with pytest.raises(formats.UnknownFormatError):
        formats.detect_format(cut)
    data = scene(10)
    formats.write_splats(tmp_path / "w.splat", data)
    assert formats.read_splats(tmp_path / "w.splat").num_splats == 10
    # an empty file is zero records
    empty = tmp_path / "e.splat"
    empty.write_bytes(b"")
    assert read_splat_file(empty).num_splats == 0


def test_splat_transform_reads_our_file(tmp_path):
    """The real client converts brushpy's .splat to PLY: positions, scales, colours exact; opacity equal under
    the sigmoid (it clamps alpha to [1e-6, 1 - 1e-6], brushpy to logits +-40); it decodes quaternion bytes as
    b/127.5 - 1 where antimatter15's viewer (and brushpy) use (b - 128)/128: under 1 degree apart."""
    data = scene(400, seed=5)
    data.raw_opacities[:2] = [50, -50]
    write_splat_file(tmp_path / "bp.splat", data)
    run_splat_transform(tmp_path / "bp.splat", tmp_path / "st.ply")
    ours, theirs = read_splat_file(tmp_path / "bp.splat"), read_ply(tmp_path / "st.ply")
    assert theirs.num_splats == 400
    assert np.array_equal(ours.means, theirs.means)
    assert np.allclose(ours.log_scales, theirs.log_scales, atol=1e-6, rtol=0)
    assert np.allclose(ours.sh_coeffs, theirs.sh_coeffs, atol=1e-5, rtol=0)
    assert np.abs(ours.opacities - theirs.opacities).max() < 2e-6
    assert quat_angle_deg(ours.rotations, theirs.rotations).max() < 1.0


@requires_shared("splats", "guitar_inria_sh0.ply")
def test_guitar_round_trip(tmp_path):
    data = read_ply(GUITAR)
    write_splat_file(tmp_path / "g.splat", data)
    back = read_splat_file(tmp_path / "g.splat")
    order = importance_order(data)
    assert back.num_splats == data.num_splats
    assert np.array_equal(back.means, data.means[order])
    assert np.abs(back.colors - np.clip(data.colors[order], 0, 1)).max() <= 0.5 / 255 + 1e-6
    assert quat_angle_deg(back.rotations, data.rotations[order]).max() < 0.9
