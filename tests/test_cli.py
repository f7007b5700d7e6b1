"""The ``brushpy`` command line: info, render (camera framing, PNG output, errors)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from brushpy import cli
from brushpy.io.framing import DEFAULT_UP, default_forward, framing_camera, robust_bounds
from brushpy.io.ply import SplatData, read_ply, write_ply
from tests.conftest import REPO, SHARED, requires_shared
from tests.reference.render import render as reference_render
from tests.reference.render import render_depth as reference_render_depth

EXAMPLE = REPO / "assets" / "example_scene.ply"
GUITAR = SHARED / "splats" / "guitar_inria_sh0.ply"
HAS_FORWARD = importlib.util.find_spec("brushpy.render.forward") is not None
requires_forward = pytest.mark.skipif(
    not HAS_FORWARD, reason="brushpy.render.forward (the WGSL rasterizer) is not in this checkout yet"
)


def run(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args])


def reference_rasterize(means, rotations, log_scales, sh_coeffs, raw_opacities, world_to_camera, intrinsics,
                        width, height, background=(0.0, 0.0, 0.0), sh_degree=None, render_mode="default", outputs="RGB"):
    """The float64 NumPy reference with the rasterizer's signature (CLI tests without the GPU)."""
    if sh_degree is not None:
        sh_coeffs = sh_coeffs[:, : (sh_degree + 1) ** 2]
    if outputs == "RGB+ED":
        r = reference_render_depth(means, rotations, log_scales, sh_coeffs, raw_opacities, world_to_camera, intrinsics,
                                   width, height, background, mip=render_mode == "mip")
        return np.concatenate([r["image"][..., :3], r["ED"][..., None], r["alpha"][..., None]], -1).astype(np.float32)
    assert outputs == "RGB", outputs
    return reference_render(means, rotations, log_scales, sh_coeffs, raw_opacities, world_to_camera, intrinsics,
                            width, height, background, mip=render_mode == "mip").astype(np.float32)


@pytest.fixture
def reference_rasterizer(monkeypatch):
    calls = []

    def fake(*args, **kwargs):
        calls.append(kwargs)
        return reference_rasterize(*args, **kwargs)

    monkeypatch.setattr(cli, "_load_rasterize", lambda: fake)
    return calls


def _small_scene(path, n=60):
    """A few opaque splats in a 2x2x0.2 slab around (0, 0, 5) (y-down world)."""
    rng = np.random.default_rng(1)
    data = SplatData(
        means=rng.uniform([-1, -1, 4.9], [1, 1, 5.1], size=(n, 3)),
        rotations=np.tile([1.0, 0, 0, 0], (n, 1)),
        log_scales=np.full((n, 3), np.log(0.12)),
        sh_coeffs=rng.normal(size=(n, 4, 3)) * 0.3,
        raw_opacities=np.full(n, 3.0),
    )
    write_ply(path, data)
    return data


# --------------------------------------------------------------------------- info


def test_info_prints_adapter(gpu):
    result = run("info")
    assert result.exit_code == 0, result.output
    desc = gpu.describe()
    assert f"adapter:      {desc['adapter']}" in result.output
    assert f"backend:      {desc['backend']}" in result.output
    assert "subgroup:" in result.output and "max-storage-buffer-binding-size" in result.output


def test_info_json(gpu):
    result = run("info", "--json")
    assert result.exit_code == 0, result.output
    parsed = json.loads(result.output)
    assert parsed["adapter"] == gpu.describe()["adapter"]
    assert "limits" in parsed and "features" in parsed


def test_info_without_adapter(monkeypatch):
    import brushpy.gpu
    from brushpy.gpu.device import NO_ADAPTER_HELP, NoAdapterError

    def no_adapter():
        raise NoAdapterError(NO_ADAPTER_HELP.format(detail=""))

    monkeypatch.setattr(brushpy.gpu, "get_context", no_adapter)
    result = run("info")
    assert result.exit_code == 1
    assert "found no WebGPU adapter" in result.output and "mesa-vulkan-drivers" in result.output


def test_python_dash_m():
    proc = subprocess.run([sys.executable, "-m", "brushpy", "--help"], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "info" in proc.stdout and "render" in proc.stdout
    assert proc.stdout.startswith("Usage: brushpy")


# --------------------------------------------------------------------------- lazy subcommands


def test_lazy_subcommand_is_loaded_and_missing_ones_hidden(tmp_path, monkeypatch):
    (tmp_path / "brushpy_fake_cmd.py").write_text(
        "import click\n@click.command('hello')\ndef hello():\n    click.echo('hello from plugin')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, "SUBCOMMAND_MODULES", {"hello": "brushpy_fake_cmd", "ghost": "brushpy_no_such_module"})
    result = run("--help")
    assert "hello" in result.output and "ghost" not in result.output
    result = run("hello")
    assert result.exit_code == 0 and "hello from plugin" in result.output
    assert run("ghost").exit_code != 0


def test_broken_subcommand_module_fails_loudly(tmp_path, monkeypatch):
    (tmp_path / "brushpy_broken_cmd.py").write_text("import brushpy_dependency_that_is_missing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, "SUBCOMMAND_MODULES", {"broken": "brushpy_broken_cmd"})
    result = run("broken")
    assert result.exit_code != 0
    assert isinstance(result.exception, ModuleNotFoundError)


# --------------------------------------------------------------------------- render errors


def test_render_missing_file(tmp_path):
    missing = tmp_path / "no_such_scene.ply"
    result = run("render", missing, "-o", tmp_path / "out.png")
    assert result.exit_code != 0
    assert "no_such_scene.ply" in result.output and "does not exist" in result.output
    assert not (tmp_path / "out.png").exists()


def test_render_not_a_splat_file(tmp_path):
    bad = tmp_path / "garbage.ply"
    bad.write_text("not a ply\n")
    result = run("render", bad, "-o", tmp_path / "out.png")
    assert result.exit_code == 2  # bad input (an InputError), see brushpy.errors
    assert "garbage.ply" in result.output


@pytest.mark.parametrize("value", ["1,0", "red", "0,0,2", "-0.1,0,0", "a,b,c", "0,0,0,0", "nan,0,0"])
def test_render_bad_background(tmp_path, value):
    _small_scene(tmp_path / "s.ply")
    result = run("render", tmp_path / "s.ply", "-o", tmp_path / "out.png", "--background", value)
    assert result.exit_code == 2
    assert "--background" in result.output and "R,G,B" in result.output


def test_parse_background_accepts():
    assert cli.parse_background("0,0,0") == (0.0, 0.0, 0.0)
    assert cli.parse_background("1, 0.5 ,0.25") == (1.0, 0.5, 0.25)
    assert cli.parse_background("white") == (1.0, 1.0, 1.0)


def test_render_sh_degree_above_file(tmp_path):
    _small_scene(tmp_path / "s.ply")  # degree 1
    result = run("render", tmp_path / "s.ply", "-o", tmp_path / "out.png", "--sh-degree", "3")
    assert result.exit_code == 2 and "--sh-degree" in result.output and "(1)" in result.output
    result = run("render", tmp_path / "s.ply", "-o", tmp_path / "out.png", "--sh-degree", "7")
    assert result.exit_code == 2


def test_render_bad_output_and_camera(tmp_path):
    _small_scene(tmp_path / "s.ply")
    result = run("render", tmp_path / "s.ply", "-o", tmp_path / "out.jpg")
    assert result.exit_code == 2 and ".png" in result.output
    # up parallel to the viewing direction: bad options, exit 2
    result = run("render", tmp_path / "s.ply", "-o", tmp_path / "o.png", "--position", 0, 0, 0, "--look-at", 0, 0, 5,
                 "--up", 0, 0, 1)
    assert result.exit_code == 2 and "up" in result.output
    result = run("render", tmp_path / "s.ply", "-o", tmp_path / "o.png", "--position", 1, 2, 3, "--look-at", 1, 2, 3)
    assert result.exit_code == 2 and "coincide" in result.output
    assert run("render", tmp_path / "s.ply", "-o", tmp_path / "o.png", "--fov", 180).exit_code == 2


# --------------------------------------------------------------------------- render (reference rasterizer)


def test_render_with_reference_rasterizer(tmp_path, reference_rasterizer):
    """CLI plumbing, default framing and PNG encoding, with the NumPy reference as rasterizer."""
    _small_scene(tmp_path / "s.ply")
    out = tmp_path / "out.png"
    result = run("render", tmp_path / "s.ply", "-o", out, "--width", 48, "--height", 36, "--background", "0,0,1")
    assert result.exit_code == 0, result.output
    assert reference_rasterizer[-1]["background"] == (0.0, 0.0, 1.0)
    assert reference_rasterizer[-1]["sh_degree"] is None
    assert reference_rasterizer[-1]["render_mode"] == "default"
    img = np.asarray(Image.open(out))
    assert img.shape == (36, 48, 3) and img.dtype == np.uint8
    for corner in (img[0, 0], img[0, -1], img[-1, 0], img[-1, -1]):  # at most faint splat tails
        assert np.abs(corner.astype(int) - [0, 0, 255]).max() <= 8
    centre = img[14:22, 18:30].reshape(-1, 3)
    assert (np.abs(centre.astype(int) - [0, 0, 255]).sum(axis=1) > 30).mean() > 0.9

    # --alpha: RGBA, transparent corners, black background passed to the rasterizer
    result = run("render", tmp_path / "s.ply", "-o", tmp_path / "a.png", "--width", 48, "--height", 36, "--alpha",
                 "--sh-degree", "0", "--background", "1,1,1")
    assert result.exit_code == 0, result.output
    assert reference_rasterizer[-1]["background"] == (0.0, 0.0, 0.0)
    assert reference_rasterizer[-1]["sh_degree"] == 0
    rgba = np.asarray(Image.open(tmp_path / "a.png"))
    assert rgba.shape == (36, 48, 4)
    assert (rgba[0, 0, 3] == 0) and (rgba[18, 24, 3] > 200)


def test_render_mip_ply_in_mip_mode(tmp_path, reference_rasterizer):
    """A PLY whose header says ``SplatRenderMode: mip`` is rendered in that mode."""
    _small_scene(tmp_path / "s.ply")
    data = read_ply(tmp_path / "s.ply")
    data.render_mode = "mip"
    write_ply(tmp_path / "m.ply", data)
    result = run("render", tmp_path / "m.ply", "-o", tmp_path / "m.png", "--width", 48, "--height", 36)
    assert result.exit_code == 0, result.output
    assert reference_rasterizer[-1]["render_mode"] == "mip"


def test_render_depth_npy_and_png(tmp_path, reference_rasterizer):
    """--depth OUT.npy: the expected depth (0 where alpha < 1/255); OUT.png: turbo or grey between the
    2nd/98th percentiles, or --depth-near/--depth-far."""
    _small_scene(tmp_path / "s.ply")
    base = ("render", tmp_path / "s.ply", "-o", tmp_path / "o.png", "--width", 48, "--height", 36)
    result = run(*base, "--depth", tmp_path / "d.npy")
    assert result.exit_code == 0, result.output
    assert reference_rasterizer[-1]["outputs"] == "RGB+ED"
    assert "depth" in result.output
    depth = np.load(tmp_path / "d.npy")
    assert depth.shape == (36, 48) and depth.dtype == np.float32
    img = np.asarray(Image.open(tmp_path / "o.png"))
    assert img.shape == (36, 48, 3)  # the colour image is still RGB
    covered = depth > 0
    assert 0.3 < covered.mean() < 1.0 and depth[0, 0] == 0.0
    # the slab is at z 4.9..5.1 in world; the framing camera looks at it face on from some distance
    d = depth[covered]
    assert d.max() - d.min() < 1.0 and d.min() > 0.5
    # PNG: turbo between the percentiles, then grey with explicit near/far
    result = run(*base, "--depth", tmp_path / "d.png")
    assert result.exit_code == 0, result.output
    turbo = np.asarray(Image.open(tmp_path / "d.png"))
    assert turbo.shape == (36, 48, 3) and (turbo[~covered] == 0).all() and turbo[covered].max() > 0
    near, far = float(np.percentile(d, 2)), float(np.percentile(d, 98))
    result = run(*base, "--depth", tmp_path / "g.png", "--depth-colormap", "grey", "--depth-near", near, "--depth-far", far)
    assert result.exit_code == 0, result.output
    grey = np.asarray(Image.open(tmp_path / "g.png")).astype(int)
    want = np.round(np.clip((depth - near) / (far - near), 0, 1) * 255)
    assert np.abs(grey[..., 0][covered] - want[covered]).max() <= 1 and (grey[~covered] == 0).all()
    # errors: suffix, near/far without --depth, far <= near
    assert run(*base, "--depth", tmp_path / "d.exr").exit_code == 2
    assert run(*base, "--depth-near", 1.0).exit_code == 2
    assert run(*base, "--depth", tmp_path / "d.png", "--depth-near", 2.0, "--depth-far", 1.0).exit_code == 2


def test_depth_colormap_helpers():
    depth = np.array([[1.0, 2.0, 3.0, 0.0]])
    valid = np.array([[True, True, True, False]])
    lo, hi = cli.depth_range(depth, valid)
    assert 1.0 <= lo < 1.1 and 2.9 < hi <= 3.0
    assert cli.depth_range(depth, valid, near=0.5, far=4.0) == (0.5, 4.0)
    assert cli.depth_range(depth, np.zeros_like(valid))[1] > cli.depth_range(depth, np.zeros_like(valid))[0]
    px = cli.depth_to_png_array(np.array([[1.2, 2.8, 2.0, 0.0]]), valid, 1.0, 3.0)
    assert (px[0, 3] == 0).all()
    assert px[0, 0, 2] > 2 * px[0, 0, 0] and px[0, 1, 0] > 2 * px[0, 1, 2]  # turbo: near blue, far red


def test_render_explicit_camera(tmp_path, reference_rasterizer):
    """--position/--look-at/--up reach the rasterizer as the documented world_to_camera."""
    _small_scene(tmp_path / "s.ply")
    captured = {}

    def spy(*args, **kwargs):
        captured["w2c"], captured["intr"] = args[5], args[6]
        return reference_rasterize(*args, **kwargs)

    cli_load = cli._load_rasterize
    try:
        cli._load_rasterize = lambda: spy
        result = run("render", tmp_path / "s.ply", "-o", tmp_path / "o.png", "--width", 40, "--height", 20,
                     "--fov", 90, "--position", 0, 0, 0, "--look-at", 0, 0, 5, "--up", 0, -1, 0)
    finally:
        cli._load_rasterize = cli_load
    assert result.exit_code == 0, result.output
    assert np.allclose(captured["w2c"], np.eye(4), atol=1e-12)  # OpenCV camera at the origin looking +z
    fx, fy, cx, cy = captured["intr"]
    assert np.isclose(fy, 10.0) and np.isclose(fx, 10.0) and (cx, cy) == (20.0, 10.0)


def test_render_example_scene_with_reference(tmp_path, reference_rasterizer):
    result = run("render", EXAMPLE, "-o", tmp_path / "ex.png", "--width", 64, "--height", 48)
    assert result.exit_code == 0, result.output
    img = np.asarray(Image.open(tmp_path / "ex.png")).astype(int)
    assert (img[:2, :2] == 0).all() and (img[-2:, -2:] == 0).all()
    # the sphere sits in the middle: bright and dark checks, not background
    assert img[20:28, 28:36].sum(axis=2).mean() > 150


# --------------------------------------------------------------------------- framing


def test_robust_bounds_ignore_outliers():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-1, 1, size=(1000, 3))
    pts[:5] = 1e6
    pts[5] = np.nan
    lo, hi = robust_bounds(pts)
    assert (lo > -1.01).all() and (hi < 1.01).all() and (hi - lo > 1.8).all()
    assert np.array_equal(robust_bounds(np.zeros((0, 3)))[0], -np.ones(3))


def test_framing_camera_sees_the_whole_box():
    rng = np.random.default_rng(2)
    pts = rng.uniform([-3, -1, -0.5], [3, 1, 0.5], size=(5000, 3)) + [10, 20, 30]
    lo, hi = robust_bounds(pts)
    for w, h, fov in ((64, 48, 50), (48, 96, 30), (200, 50, 80)):
        cam = framing_camera(pts, w, h, fov)
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
        p = corners @ cam.world_to_camera[:3, :3].T + cam.world_to_camera[:3, 3]
        assert (p[:, 2] > 0).all()
        u = cam.fx * p[:, 0] / p[:, 2] + cam.cx
        v = cam.fy * p[:, 1] / p[:, 2] + cam.cy
        assert (u >= 0).all() and (u <= w).all() and (v >= 0).all() and (v <= h).all()
        # ...and fills it: some corner within 25% of an edge (margin 1.1)
        assert min(u.min(), w - u.max()) < 0.25 * w or min(v.min(), h - v.max()) < 0.25 * h
        # up = -y: world -y maps to image up (negative v)
        assert (cam.world_to_camera[:3, :3] @ np.array(DEFAULT_UP))[1] < -0.99


def test_default_forward_faces_broadest_side():
    rng = np.random.default_rng(3)
    # a vertical slab, wide along x, thin along z -> look along +z
    slab = rng.uniform([-2, -2, -0.1], [2, 0, 0.1], size=(2000, 3))
    assert np.allclose(default_forward(slab), [0, 0, 1], atol=0.05)
    # wide along z, thin along x -> look along x (sign: +z component >= 0 rule, then +x by convention)
    slab2 = slab[:, [2, 1, 0]]
    f = default_forward(slab2)
    assert abs(f[0]) > 0.99 and abs(f[1]) < 1e-9
    # round spread -> +z fallback
    ball = rng.normal(size=(4000, 3))
    assert np.allclose(default_forward(ball), [0, 0, 1])
    # z-up scene: forward stays horizontal (perpendicular to up)
    assert abs(default_forward(slab, up=(0, 0, 1)) @ [0, 0, 1]) < 1e-9


# --------------------------------------------------------------------------- render (WGSL rasterizer)


def _check_framed_render(path, background):
    img = np.asarray(Image.open(path)).astype(int)
    h, w = img.shape[:2]
    bg = np.round(np.array(background) * 255).astype(int)
    for corner in (img[:4, :4], img[:4, -4:], img[-4:, :4], img[-4:, -4:]):
        assert (np.abs(corner - bg).max(axis=2) <= 1).all(), "corners should show the background"
    fg = np.abs(img - bg).max(axis=2) > 20
    assert fg[h // 2 - 2: h // 2 + 3, w // 2 - 2: w // 2 + 3].all(), "the scene should cover the image centre"
    assert fg[int(0.3 * h): int(0.7 * h), int(0.3 * w): int(0.7 * w)].mean() > 0.25, "the scene should fill the view"
    return img


@requires_forward
def test_render_example_scene(tmp_path, gpu):
    result = run("render", EXAMPLE, "-o", tmp_path / "ex.png", "--width", 160, "--height", 120)
    assert result.exit_code == 0, result.output
    _check_framed_render(tmp_path / "ex.png", (0, 0, 0))


@requires_forward
@requires_shared("splats", "guitar_inria_sh0.ply")
def test_render_guitar(tmp_path, gpu):
    out = tmp_path / "guitar.png"
    result = run("render", GUITAR, "-o", out, "--width", 192, "--height", 256, "--background", "0.2,0.3,0.4")
    assert result.exit_code == 0, result.output
    img = _check_framed_render(out, (0.2, 0.3, 0.4))
    # the guitar is tall: its top (head) and bottom (body) rows both hold non-background pixels
    bg = np.array([51, 77, 102])
    rows = (np.abs(img - bg).max(axis=2) > 20).any(axis=1)
    assert rows[int(0.15 * 256)] and rows[int(0.85 * 256)]
    data = read_ply(GUITAR)
    assert data.num_splats == 90_854


@requires_forward
def test_example_render_script(tmp_path, gpu):
    out = tmp_path / "turn.png"
    proc = subprocess.run([sys.executable, str(REPO / "examples" / "render_ply.py"), str(EXAMPLE), str(out),
                           "--size", "64", "48"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    img = np.asarray(Image.open(out)).astype(int)
    assert (img[0, 0] == 255).all() and img[20:28, 28:36].sum(axis=2).mean() < 700  # white corner, scene centre


@requires_forward
def test_render_depth_on_the_gpu(tmp_path, gpu):
    """--depth OUT.npy through the real rasterizer equals the reference's expected depth."""
    _small_scene(tmp_path / "s.ply")
    calls = []
    real = cli._load_rasterize()

    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    load = cli._load_rasterize
    try:
        cli._load_rasterize = lambda: spy
        result = run("render", tmp_path / "s.ply", "-o", tmp_path / "o.png", "--width", 48, "--height", 36,
                     "--depth", tmp_path / "d.npy")
    finally:
        cli._load_rasterize = load
    assert result.exit_code == 0, result.output
    args, kwargs = calls[-1]
    ref = reference_rasterize(*args, **kwargs)
    depth = np.load(tmp_path / "d.npy")
    ok = ref[..., 4] >= cli.DEPTH_MIN_ALPHA
    np.testing.assert_allclose(depth[ok], ref[..., 3][ok], rtol=1e-4)
    assert (depth[~ok] == 0).all() and ok.mean() > 0.3


@requires_forward
def test_render_too_large_image(tmp_path, gpu):
    # 16384^2 RGBA float32 = 4 GiB: above any device's storage-binding limit
    result = run("render", EXAMPLE, "-o", tmp_path / "huge.png", "--width", 16384, "--height", 16384)
    assert result.exit_code == 1
    assert "max-storage-buffer-binding-size" in result.output and "--width/--height" in result.output
    assert not (tmp_path / "huge.png").exists()
