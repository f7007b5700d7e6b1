"""``brushpy convert`` and its parts: splat-set edits (brushpy/io/edit.py), levels of detail
(brushpy/io/lod.py) and the command (brushpy/cli/convert.py).

Formats other than PLY are parametrized over ``WRITE_FORMATS`` and skip, with a reason, in a
checkout whose module for that format is missing or still a stub (NotImplementedError).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from click.testing import CliRunner

from brushpy import cli
from brushpy.cli import convert as convert_cli
from brushpy.io.edit import (extension_for, parse_fraction, prune_by_opacity, select_splats, split_extension,
                             truncate_sh, with_format_extension)
from brushpy.io.formats import WRITE_FORMATS, read_splats, write_splats
from brushpy.io.lod import build_lods, importance, lod_counts, lod_path, render_psnrs, write_lods
from brushpy.io.ply import SplatData, read_ply, write_ply
from tests.conftest import SHARED, requires_shared
from tests.test_cli import reference_rasterize

GUITAR = SHARED / "splats" / "guitar_inria_sh0.ply"


def run(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args])


def scene(n=60, degree=1, seed=1, normals=False) -> SplatData:
    """A slab of splats around (0, 0, 5), opacities spread over (0, 1), varied sizes."""
    rng = np.random.default_rng(seed)
    return SplatData(
        means=rng.uniform([-1, -1, 4.9], [1, 1, 5.1], size=(n, 3)),
        rotations=rng.normal(size=(n, 4)),
        log_scales=np.log(rng.uniform(0.03, 0.2, size=(n, 3))),
        sh_coeffs=rng.normal(size=(n, (degree + 1) ** 2, 3)) * 0.3,
        raw_opacities=rng.uniform(-6, 4, size=n),
        normals=rng.normal(size=(n, 3)) if normals else None,
    )


def write_or_skip(path, data, fmt, **options):
    """write_splats, skipping the test where this checkout cannot write ``fmt`` yet."""
    try:
        write_splats(path, data, format=fmt, **options)
    except NotImplementedError as exc:
        pytest.skip(f"{fmt} writing is a stub in this checkout ({exc})")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("brushpy.io."):
            pytest.skip(f"{fmt}: module {exc.name} is not in this checkout yet")
        raise


def skip_if_unavailable(result, fmt):
    if result.exit_code == 1 and "not available in this build" in result.output:
        pytest.skip(f"{fmt} writing is not in this checkout yet: {result.output.strip().splitlines()[-1]}")


# --------------------------------------------------------------------------- edits


def test_parse_fraction():
    assert parse_fraction("1/255") == pytest.approx(1 / 255)
    assert parse_fraction("0.004") == 0.004 and parse_fraction("0") == 0.0 and parse_fraction("1") == 1.0
    assert parse_fraction(" 3 / 4 ") == 0.75
    for bad in ("2", "-0.1", "abc", "1/0", "nan", ""):
        with pytest.raises(ValueError, match="1/255"):
            parse_fraction(bad)


def test_select_truncate_prune_keep_order_and_metadata():
    d = scene(20, degree=2, normals=True)
    d.vertical_axis, d.render_mode = "+z", "mip"
    sub = select_splats(d, np.array([7, 2, 2, 11]))
    np.testing.assert_array_equal(sub.means, d.means[[2, 7, 11]])  # sorted, duplicates once
    np.testing.assert_array_equal(sub.normals, d.normals[[2, 7, 11]])
    assert sub.vertical_axis == "+z" and sub.render_mode == "mip"
    with pytest.raises(ValueError):
        select_splats(d, np.ones(3, bool))
    with pytest.raises(ValueError):
        select_splats(d, [25])

    t = truncate_sh(d, 1)
    assert t.sh_degree == 1 and t.sh_coeffs.shape == (20, 4, 3)
    np.testing.assert_array_equal(t.sh_coeffs, d.sh_coeffs[:, :4])
    assert truncate_sh(d, 3) is d and truncate_sh(d, 2) is d

    p = prune_by_opacity(d, 0.5)
    assert np.all(p.opacities >= 0.5) and p.num_splats == int((d.opacities >= 0.5).sum())
    assert prune_by_opacity(d, 0.0) is d


def test_export_extensions():
    assert [extension_for(f) for f in WRITE_FORMATS] == [".ply", ".compressed.ply", ".spz", ".sog", ".splat"]
    assert split_extension("a.b.Compressed.PLY") == ("a.b", ".Compressed.PLY")
    assert split_extension("notes.txt") == ("notes.txt", "")
    assert with_format_extension("export_30.ply", "spz") == "export_30.spz"
    assert with_format_extension("export_30.ply", "compressed.ply") == "export_30.compressed.ply"
    assert with_format_extension("export_30.compressed.ply", "ply") == "export_30.ply"
    assert with_format_extension("export_30.ply", "ply") == "export_30.ply"
    assert with_format_extension("run_30", "sog") == "run_30.sog"
    with pytest.raises(ValueError, match="spz"):
        extension_for("jpeg")


# --------------------------------------------------------------------------- levels of detail


def test_lod_counts_names_and_selection(tmp_path):
    assert lod_counts(100, 3) == [100, 50, 25, 13]
    assert lod_counts(3, 4) == [3, 2, 1, 1, 1] and lod_counts(0, 2) == [0, 0, 0]
    assert lod_path(tmp_path / "s.ply", 0) == tmp_path / "s.ply"
    assert lod_path(tmp_path / "s.ply", 2) == tmp_path / "s_lod2.ply"  # Brush: export_{iter}_lod2.ply
    assert lod_path(tmp_path / "s.compressed.ply", 1) == tmp_path / "s_lod1.compressed.ply"
    assert lod_path(tmp_path / "s.spz", 3) == tmp_path / "s_lod3.spz"
    assert lod_path(tmp_path / "scene" / "meta.json", 1) == tmp_path / "scene_lod1" / "meta.json"

    d = scene(101, seed=2)
    d.vertical_axis = "+z"
    d.raw_opacities[5] = np.nan  # a non-finite score ranks last
    score = importance(d)
    ls = np.sort(d.log_scales.astype(np.float64), axis=1)
    np.testing.assert_allclose(score[6], d.opacities[6] * np.exp(ls[6, 1] + ls[6, 2]), rtol=1e-6)
    assert score[5] == -np.inf
    lods = build_lods(d, 3)
    assert lods[0] is d and [x.num_splats for x in lods] == [101, 51, 26, 13]
    for fine, coarse in zip(lods, lods[1:]):  # nested, in file order, carrying the metadata
        rows = {tuple(r) for r in fine.means.tolist()}
        assert all(tuple(r) in rows for r in coarse.means.tolist())
        assert coarse.vertical_axis == "+z"
    idx = np.flatnonzero(np.isin(d.means[:, 0], lods[2].means[:, 0]))
    assert np.all(np.diff(idx) > 0) and len(idx) == 26
    assert score[idx].min() >= np.sort(score)[::-1][25]  # the 26 highest scores


def test_write_lods_and_psnr_with_reference(tmp_path):
    d = scene(48, seed=3)
    d.raw_opacities[:] = 2.0
    levels = write_lods(tmp_path / "s.ply", d, 2)
    assert [lv.path.name for lv in levels] == ["s.ply", "s_lod1.ply", "s_lod2.ply"]
    assert [lv.num_splats for lv in levels] == [48, 24, 12]
    assert [read_ply(lv.path).num_splats for lv in levels] == [48, 24, 12]
    assert all(lv.size_bytes == lv.path.stat().st_size for lv in levels)
    psnrs = render_psnrs(build_lods(d, 2), 40, 30, rasterize=reference_rasterize)
    assert math.isinf(psnrs[0]) and 5 < psnrs[2] < psnrs[1] < 60, psnrs


# --------------------------------------------------------------------------- brushpy convert


@pytest.fixture
def reference_raster(monkeypatch):
    monkeypatch.setattr(convert_cli, "_load_rasterize", lambda: reference_rasterize)
    monkeypatch.setattr(convert_cli, "LOD_RENDER_SIZE", (40, 30))


def test_convert_ply_prune_sh_and_lod(tmp_path, reference_raster):
    d = scene(80, degree=2, seed=4)
    write_ply(tmp_path / "in.ply", d)
    out = tmp_path / "out" / "o.ply"
    result = run("convert", tmp_path / "in.ply", out, "--prune-alpha", "1/255", "--sh-degree", "1", "--lod", "2")
    assert result.exit_code == 0, result.output
    keep = d.opacities >= np.float32(1 / 255)
    got = read_ply(out)
    assert got.num_splats == keep.sum() and got.sh_degree == 1
    np.testing.assert_array_equal(got.means, d.means[keep])
    np.testing.assert_array_equal(got.sh_coeffs, d.sh_coeffs[keep][:, :4])
    n = int(keep.sum())
    assert read_ply(tmp_path / "out" / "o_lod2.ply").num_splats == math.ceil(n / 4)
    text = result.output
    assert "ply, 80 splats, SH degree 2" in text and f"pruned {80 - n} splats" in text
    assert "o_lod1.ply" in text and "reference" in text and text.count(" dB") == 2


def test_convert_errors(tmp_path):
    write_ply(tmp_path / "in.ply", scene(10))
    garbage = tmp_path / "notes.bin"
    garbage.write_bytes(b"hello, not splats\n")
    r = run("convert", garbage, tmp_path / "o.ply")
    assert r.exit_code == 2 and "notes.bin is not a splat file brushpy reads (it reads" in r.output
    assert r.output.startswith("Error: ")
    r = run("convert", tmp_path / "in.ply", tmp_path / "o.dat")
    assert r.exit_code == 2 and "--format" in r.output and "o.dat" in r.output
    r = run("convert", tmp_path / "in.ply", tmp_path / "o.ply", "--spz-version", "4")
    assert r.exit_code == 2 and "--spz-version" in r.output
    r = run("convert", tmp_path / "in.ply", tmp_path / "o.ply", "--sh-degree", "3")
    assert r.exit_code == 2 and "(1)" in r.output
    r = run("convert", tmp_path / "in.ply", tmp_path / "o.ply", "--prune-alpha", "3/2")
    assert r.exit_code == 2 and "1/255" in r.output
    r = run("convert", tmp_path / "in.ply", tmp_path / "o.ply", "--prune-alpha", "1")
    assert r.exit_code == 2 and "removes all 10 splats" in r.output
    assert not (tmp_path / "o.ply").exists() and not (tmp_path / "o.dat").exists()
    r = run("convert", tmp_path / "missing.ply", tmp_path / "o.ply")
    assert r.exit_code == 2 and "missing.ply" in r.output


def test_convert_format_override(tmp_path):
    write_ply(tmp_path / "in.ply", scene(10))
    r = run("convert", tmp_path / "in.ply", tmp_path / "o.bin", "--format", "ply")
    assert r.exit_code == 0, r.output
    assert read_splats(tmp_path / "o.bin").num_splats == 10  # detected from the content


@pytest.mark.parametrize("fmt", WRITE_FORMATS)
def test_convert_to_every_format(tmp_path, fmt, reference_raster):
    """PLY -> each format (and LOD levels in it) -> read back by brushpy."""
    d = scene(64, degree=0, seed=5)
    d.raw_opacities[:] = np.clip(d.raw_opacities, -3, 3)
    write_ply(tmp_path / "in.ply", d)
    out = tmp_path / f"o{extension_for(fmt)}"
    extra = ["--spz-version", "3"] if fmt == "spz" else []
    r = run("convert", tmp_path / "in.ply", out, "--lod", "1", *extra)
    skip_if_unavailable(r, fmt)
    assert r.exit_code == 0, r.output
    assert f": {fmt}, 64 splats" in r.output
    back = read_splats(out)
    assert back.num_splats == 64
    np.testing.assert_allclose(np.sort(back.means, axis=0), np.sort(d.means, axis=0), atol=0.05)
    assert read_splats(lod_path(out, 1)).num_splats == 32


@pytest.mark.parametrize("fmt", [f for f in WRITE_FORMATS if f != "splat"])
def test_converted_files_read_by_splat_transform(tmp_path, fmt):
    """The real client (PlayCanvas splat-transform) reads what convert writes, LOD levels included."""
    from plyfile import PlyData

    from tests.splat_transform import run_splat_transform

    d = scene(300, degree=1, seed=6)
    write_ply(tmp_path / "in.ply", d)
    out = tmp_path / f"o{extension_for(fmt)}"
    r = run("convert", tmp_path / "in.ply", out, "--lod", "1")
    skip_if_unavailable(r, fmt)
    assert r.exit_code == 0, r.output
    for level, n in ((0, 300), (1, 150)):
        back = tmp_path / f"back{level}.ply"
        run_splat_transform(lod_path(out, level), back)
        assert PlyData.read(str(back))["vertex"].count == n


@requires_shared("splats", "guitar_inria_sh0.ply")
def test_convert_lod_on_the_guitar(tmp_path, gpu):
    """A real scene (every 3rd splat of the guitar) through convert --lod 2 on the GPU: the PSNRs fall
    with the level and stay where a halved scene still shows the guitar."""
    pytest.importorskip("brushpy.render.forward")
    d = read_ply(GUITAR)
    write_ply(tmp_path / "g.ply", select_splats(d, np.arange(0, d.num_splats, 3)))
    r = run("convert", tmp_path / "g.ply", tmp_path / "lod" / "g.ply", "--lod", "2")
    assert r.exit_code == 0, r.output
    psnrs = [float(line.split()[-2]) for line in r.output.splitlines() if line.endswith(" dB")]
    assert len(psnrs) == 2 and 20 < psnrs[1] < psnrs[0] < 45, r.output
