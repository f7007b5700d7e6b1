"""Initial splats (brushpy.train.init): point init, random and focus-box init, the scene scale; the
point-cloud PLY reader they start from, and the one SH_C0."""

from __future__ import annotations

import re

import numpy as np
import pytest
from plyfile import PlyData, PlyElement

from brushpy.data import InitPoints, LoadConfig, load_dataset
from brushpy.io.ply import SH_C0
from brushpy.render.camera import Camera
from brushpy.train.init import default_scene_scale, knn_mean_distance, random_splats, scene_initial_splats, splats_from_points
from tests.conftest import REPO
from tests.test_data_misc import _make_transforms


def test_kdtree_scales_match_brute_force():
    rng = np.random.default_rng(3)
    pts = rng.normal(size=(300, 3)).astype(np.float32)
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    expect = np.sort(d, axis=1)[:, :2].mean(1)
    assert np.allclose(knn_mean_distance(pts), expect, rtol=1e-6)
    cols = rng.random((300, 3)).astype(np.float32)
    s = splats_from_points(InitPoints(pts, cols))
    assert s["means"].dtype == np.float32 and s["sh_coeffs"].shape == (300, 1, 3)
    assert np.allclose(s["log_scales"], np.log(expect)[:, None], atol=1e-5)
    assert np.array_equal(s["rotations"], np.tile([1, 0, 0, 0], (300, 1)).astype(np.float32))
    assert np.array_equal(s["raw_opacities"], np.zeros(300, np.float32))
    assert np.allclose(s["sh_coeffs"][:, 0] * SH_C0 + 0.5, cols, atol=1e-6)
    # A regular grid with spacing 0.5: every point's 2 nearest neighbours are 0.5 away.
    g = np.stack(np.meshgrid(*[np.arange(4) * 0.5] * 3), -1).reshape(-1, 3)
    assert np.allclose(knn_mean_distance(g), 0.5)


def test_random_init_statistics():
    cam = Camera.look_at([0, 0, -5], [0, 0, 0], [0, -1, 0], 60.0, 64, 48)
    s = random_splats([cam], 10000, scene_scale=4.0, seed=7)
    assert all(v.dtype == np.float32 for v in s.values())
    assert s["means"].shape == (10000, 3) and s["sh_coeffs"].shape == (10000, 1, 3)
    op = 1 / (1 + np.exp(-s["raw_opacities"].astype(np.float64)))
    assert op.min() >= 0.1 - 1e-6 and op.max() <= 0.25 + 1e-6 and abs(op.mean() - 0.175) < 0.005
    assert np.allclose(s["log_scales"], np.log(4.0 / 10000 ** (1 / 3)))
    p = s["means"] @ cam.world_to_camera[:3, :3].T + cam.world_to_camera[:3, 3]
    z = p[:, 2]
    assert z.min() >= 0.2 - 1e-4 and z.max() <= 4.0 + 1e-4
    logz = (np.log(z) - np.log(0.2)) / (np.log(4.0) - np.log(0.2))  # uniform on [0,1] when log-uniform
    assert abs(logz.mean() - 0.5) < 0.02 and abs(np.quantile(logz, 0.25) - 0.25) < 0.02
    u = cam.fx * p[:, 0] / z + cam.cx
    v = cam.fy * p[:, 1] / z + cam.cy
    assert (u >= -1e-3).all() and (u <= 64 + 1e-3).all() and (v >= -1e-3).all() and (v <= 48 + 1e-3).all()
    assert abs(u.mean() - 32) < 1 and abs(v.mean() - 24) < 1
    # Same seed, same splats; another seed differs.
    assert np.array_equal(random_splats([cam], 10000, 4.0, seed=7)["means"], s["means"])
    assert not np.array_equal(random_splats([cam], 10000, 4.0, seed=8)["means"], s["means"])


def test_default_scene_scale():
    cams = [Camera.look_at([x, 0, -5], [0, 0, 0], [0, -1, 0], 60.0, 8, 8) for x in (0.0, 2.0, 5.0)]
    assert default_scene_scale(cams) == pytest.approx(3 * (2 + 2 + 3) / 3)
    near = [Camera.look_at([x, 0, -5], [0, 0, 0], [0, -1, 0], 60.0, 8, 8) for x in (0.0, 0.1)]
    assert default_scene_scale(near) == 1.0
    assert default_scene_scale(cams[:1]) == 1.0


def test_scene_random_init_when_no_points(tmp_path):
    _make_transforms(tmp_path, n=3)
    scene = load_dataset(tmp_path, LoadConfig(progress=False), decode=False)
    s = scene_initial_splats(scene, scene_scale=2.0)
    assert s["means"].shape == (10000, 3)
    assert np.allclose(s["log_scales"], np.log(2.0 / 10000 ** (1 / 3)))


def test_sh_c0_is_the_kernels_constant():
    """One Python SH_C0 (brushpy.io.ply, used by io, train.init and mip) equal to the WGSL one."""
    wgsl = (REPO / "shaders" / "sh.wgsl").read_text()
    (value,) = re.findall(r"const SH_C0: f32 = ([0-9.eE+-]+);", wgsl)
    assert SH_C0 == float(value) == pytest.approx(0.5 / np.sqrt(np.pi), rel=1e-15)
    owners = [p.relative_to(REPO) for p in sorted((REPO / "brushpy").rglob("*.py"))
              if re.search(r"^SH_C0\s*=", p.read_text(encoding="utf-8"), re.M)]
    assert [str(p) for p in owners] == ["brushpy/io/ply.py"]


def test_band0_colour_has_one_owner():
    """The band-0 colour formula (``SH_C0 * f_dc + 0.5`` and its inverse) is written once, in
    brushpy.io.ply's sh_dc_to_rgb / rgb_to_sh_dc, and the pair are inverses."""
    from brushpy.io.ply import rgb_to_sh_dc, sh_dc_to_rgb

    rgb = np.random.default_rng(0).random((5, 3))
    assert np.allclose(sh_dc_to_rgb(rgb_to_sh_dc(rgb)), rgb, atol=1e-12)
    assert np.allclose(sh_dc_to_rgb(np.ones(3)), 0.5 + SH_C0)
    formula = re.compile(r"SH_C0\s*\*|\*\s*SH_C0|/\s*SH_C0")
    writers = []
    for p in sorted((REPO / "brushpy").rglob("*.py")):
        code = [ln.split("#")[0] for ln in p.read_text(encoding="utf-8").splitlines()
                if not ln.lstrip().startswith(("#", "``", "-", "*")) and "``" not in ln]
        if any(formula.search(ln) for ln in code):
            writers.append(str(p.relative_to(REPO)))
    assert writers == ["brushpy/io/ply.py"], writers


def _ply_bytes(tmp_path, arr) -> bytes:
    path = tmp_path / "p.ply"
    PlyData([PlyElement.describe(arr, "vertex")]).write(str(path))
    return path.read_bytes()


def test_init_points_from_ply_bytes(tmp_path):
    """Bytes go through the one read_ply_points: uint8 colours, band-0 colours, grey when none, errors."""
    v = np.zeros(3, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    v["x"], v["red"], v["blue"] = [1, 2, 3], 255, 51
    pts = InitPoints.from_ply(_ply_bytes(tmp_path, v), "a.ply")
    assert np.array_equal(pts.positions[:, 0], [1, 2, 3]) and np.allclose(pts.colors, [1.0, 0.0, 0.2])
    dc = np.zeros(2, dtype=[(n, "f4") for n in ("x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2")])
    dc["f_dc_0"] = 1.0
    assert np.allclose(InitPoints.from_ply(_ply_bytes(tmp_path, dc)).colors, [0.5 + SH_C0, 0.5, 0.5])
    bare = np.zeros(2, dtype=[(n, "f4") for n in "xyz"])
    assert np.array_equal(InitPoints.from_ply(_ply_bytes(tmp_path, bare)).colors, np.full((2, 3), 0.5, np.float32))
    with pytest.raises(ValueError, match="zipped.ply"):
        InitPoints.from_ply(b"not a ply", "zipped.ply")
    with pytest.raises(ValueError, match="b.ply.*'z' is missing"):
        InitPoints.from_ply(_ply_bytes(tmp_path, np.zeros(2, dtype=[(n, "f4") for n in "xy"])), "b.ply")
