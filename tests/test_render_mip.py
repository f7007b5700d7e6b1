"""The ``mip`` render mode (Mip-Splatting's 2D filter, gsplat's ``antialiased``, Brush's mip).

2D covariance ``+ 0.1 I`` instead of ``+ 0.3 I``; opacity times
``sqrt(max(det Σ2D, 0) / det(Σ2D + 0.1 I))``.

* The float64 reference VJP of the mip mode against central finite differences.
* The compensation formula against a direct evaluation, and the cull/extent on the
  compensated opacity.
* The GPU forward and backward in mip mode against the reference (both modes differ).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.reference.render import project, render
from tests.reference.render_backward import render_vjp
from tests.render_scenes import PARAMS, check_vjp_by_finite_differences, make_scene, scene_args

FD_SEEDS = [0, 1, 2, 3, 4, 5, 6, 9]


def _rel(a, b):
    return np.linalg.norm(np.asarray(a, np.float64) - b) / max(np.linalg.norm(b), 1e-30)


@pytest.mark.parametrize("seed", FD_SEEDS)
def test_reference_mip_vjp_matches_finite_differences(seed):
    s = make_scene(seed)
    rng = np.random.default_rng(2000 + seed)
    v_image = rng.normal(size=(s["height"], s["width"], 4))
    g = render_vjp(*scene_args(s), v_image, s["background"], mip=True)
    assert g["visible"].sum() >= 5

    def loss(params):
        args = [params[k] for k in PARAMS] + [s["world_to_camera"], s["intrinsics"], s["width"], s["height"], s["background"]]
        return float((render(*args, mip=True) * v_image).sum())

    check_vjp_by_finite_differences(loss, s, g, rng, sh_samples=12)


def test_reference_compensation_and_cull():
    s = make_scene(3, n=30)
    args = scene_args(s)
    p0 = project(*args)
    p1 = project(*args, mip=True)
    raw = p0["cov2d"].copy()
    raw[:, 0] -= 0.3
    raw[:, 2] -= 0.3
    det_raw = raw[:, 0] * raw[:, 2] - raw[:, 1] ** 2
    det_b = (raw[:, 0] + 0.1) * (raw[:, 2] + 0.1) - raw[:, 1] ** 2
    comp = np.sqrt(np.maximum(det_raw, 0) / det_b)
    np.testing.assert_allclose(p1["compensation"], comp, rtol=1e-12)
    np.testing.assert_allclose(p1["opacity"], p0["opacity"] * comp, rtol=1e-12)
    np.testing.assert_allclose(p1["cov2d"][:, [0, 2]], raw[:, [0, 2]] + 0.1, rtol=1e-12)
    assert np.all((comp > 0) & (comp < 1))
    # a tiny splat (sub-pixel) is heavily attenuated and culled when o·comp < 1/255
    s2 = dict(s)
    s2["log_scales"] = np.array(s["log_scales"], copy=True)
    s2["log_scales"][0] = -9.0
    s2["raw_opacities"] = np.array(s["raw_opacities"], copy=True)
    s2["raw_opacities"][0] = 6.0
    p2 = project(*scene_args(s2), mip=True)
    p2d = project(*scene_args(s2))
    assert p2["opacity"][0] < 1 / 255 and not p2["visible"][0]
    assert p2d["opacity"][0] > 0.99  # the default mode keeps its full opacity
    # the extent follows the compensated opacity: 2 ln(255 o·comp) instead of 2 ln(255 o)
    vis = p1["visible"]
    power = 2 * np.log(255 * p1["opacity"][vis])
    np.testing.assert_allclose(p1["extent"][vis], np.sqrt(power[:, None] * p1["cov2d"][vis][:, [0, 2]]), rtol=1e-12)


# ----------------------------------------------------------------------------- GPU


def _splats(s):
    from brushpy.render.splats import Splats

    return Splats.from_numpy(*(np.asarray(s[k], np.float32) for k in PARAMS))


def _check_kept(gfc, p, width, height):
    """The GPU keeps the reference's visible splats, except ones whose 1/255 ellipse
    reaches no pixel centre (the reference culls on the extent box only)."""
    kept = set(int(g) for g in gfc)
    vis = set(int(g) for g in np.nonzero(p["visible"])[0])
    assert kept <= vis and len(kept) == len(gfc)
    py, px = np.mgrid[0:height, 0:width] + 0.5
    for g in vis - kept:
        dx, dy = p["xy"][g, 0] - px, p["xy"][g, 1] - py
        a, b, c = p["conic"][g]
        sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
        assert (p["opacity"][g] * np.exp(-sigma)).max() < 1.001 / 255, f"splat {g} dropped but contributes"


def _camera(s):
    from brushpy.render.camera import Camera

    return Camera(np.asarray(s["world_to_camera"], np.float64), *s["intrinsics"], s["width"], s["height"])


@pytest.mark.parametrize("seed", [0, 2, 3, 5])
def test_gpu_forward_mip_matches_reference(gpu, seed):
    from brushpy.render.forward import render_forward

    s = make_scene(seed, n=120, width=56, height=44)
    state = render_forward(_splats(s), _camera(s), s["background"], render_mode="mip")
    assert state.render_mode == "mip"
    img = state.image.numpy().astype(np.float64)
    expected = render(*scene_args(s), s["background"], mip=True)
    default = render(*scene_args(s), s["background"])
    err = np.abs(img - expected)
    assert (err <= 1e-5 + 1e-2 * np.abs(expected)).all(), err.max()
    assert np.abs(expected - default).max() > 1e-2  # the modes really differ here
    p = project(*scene_args(s), mip=True)
    gfc = state.global_from_compact.numpy()
    _check_kept(gfc, p, s["width"], s["height"])
    proj = state.projected.numpy().astype(np.float64)
    np.testing.assert_allclose(proj[:, 8], p["opacity"][gfc], rtol=2e-5, atol=1e-7)
    np.testing.assert_allclose(proj[:, 2:5], p["conic"][gfc], rtol=2e-4, atol=1e-5 * np.abs(p["conic"][gfc]).max())


def test_gpu_forward_rejects_bad_mode(gpu):
    from brushpy.render.forward import rasterize, render_forward

    s = make_scene(0)
    with pytest.raises(ValueError, match="render_mode"):
        render_forward(_splats(s), _camera(s), render_mode="antialiased")
    with pytest.raises(ValueError, match="render_mode"):
        rasterize(*scene_args(s), render_mode="classic")


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_gpu_backward_mip_matches_reference(gpu, seed):
    from brushpy.render.backward import rasterize_vjp

    s = make_scene(seed, n=40, width=40, height=36)
    v_image = np.random.default_rng(seed).normal(size=(36, 40, 4)) * 0.1
    args = scene_args(s)
    out = rasterize_vjp(*args, v_image, background=s["background"], render_mode="mip")
    ref = render_vjp(*args, v_image, s["background"], mip=True)
    ref_default = render_vjp(*args, v_image, s["background"])
    for name in PARAMS:
        assert out[name].shape == np.asarray(s[name]).shape and out[name].dtype == np.float32
        assert _rel(out[name], ref[name]) < 2e-4, (name, _rel(out[name], ref[name]))
    assert _rel(ref["log_scales"], ref_default["log_scales"]) > 1e-2


def test_rasterize_mip_numpy_api(gpu):
    from brushpy.render.forward import rasterize

    s = make_scene(4, n=80, width=48, height=40)
    img = rasterize(*scene_args(s), background=s["background"], render_mode="mip")
    expected = render(*scene_args(s), s["background"], mip=True)
    assert (np.abs(img - expected) <= 1e-5 + 1e-2 * np.abs(expected)).all()


def test_gpu_culls_on_compensated_opacity(gpu):
    """A sub-pixel, nearly opaque splat: kept by the default mode, culled by mip (o·comp < 1/255)."""
    from brushpy.render.forward import render_forward

    s = make_scene(1, n=20, width=40, height=36)
    for k in ("log_scales", "raw_opacities", "means"):
        s[k] = np.array(s[k], copy=True)
    R, t = s["world_to_camera"][:3, :3], s["world_to_camera"][:3, 3]
    s["means"][0] = R.T @ (np.array([0.0, 0.0, 4.0]) - t)  # on the optical axis, on screen
    s["log_scales"][0] = -9.0
    s["raw_opacities"][0] = 6.0
    p_mip = project(*scene_args(s), mip=True)
    p_def = project(*scene_args(s))
    assert p_def["visible"][0] and not p_mip["visible"][0]
    for mode, p in (("default", p_def), ("mip", p_mip)):
        state = render_forward(_splats(s), _camera(s), s["background"], render_mode=mode)
        gfc = state.global_from_compact.numpy()
        _check_kept(gfc, p, s["width"], s["height"])
        assert (0 in gfc) == (mode == "default")
