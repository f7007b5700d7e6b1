"""Backward of the splat renderer.

* The float64 reference VJP (tests/reference/render_backward.py) against
  central finite differences of the reference forward, on 22 scenes.
* The GPU kernels against the reference VJP, gsplat's tiny_case gradients,
  both atomic paths, the no-subgroup path, determinism, culled and NaN splats.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import SHARED, requires_shared
from tests.reference.render import project, render
from tests.reference.render_backward import forward_buffers, render_vjp
from tests.render_scenes import PARAMS, check_vjp_by_finite_differences, make_scene, scene_args

FD_SEEDS = list(range(22))


@pytest.mark.parametrize("seed,degree", [(seed, None) for seed in FD_SEEDS] + [(22, 4)])
def test_reference_vjp_matches_finite_differences(seed, degree):
    s = make_scene(seed, degree=degree)
    rng = np.random.default_rng(1000 + seed)
    v_image = rng.normal(size=(s["height"], s["width"], 4))
    view_dir_const = seed % 7 == 6
    g = render_vjp(*scene_args(s), v_image, s["background"], view_dir_const=view_dir_const)
    assert g["visible"].sum() >= 5

    def loss(params):
        args = [params[k] for k in PARAMS] + [s["world_to_camera"], s["intrinsics"], s["width"], s["height"], s["background"]]
        dirs = None
        if view_dir_const:  # hold the SH direction at its unperturbed value
            R, t = s["world_to_camera"][:3, :3], s["world_to_camera"][:3, 3]
            dirs = s["means"] - (-R.T @ t)
        return float((render(*args, view_dir_const=dirs) * v_image).sum())

    check_vjp_by_finite_differences(loss, s, g, rng, sh_samples=24)


# ----------------------------------------------------------------------------- GPU


def _upload_state(s, ctx=None):
    from brushpy.gpu import GpuTensor
    from brushpy.render.camera import Camera
    from brushpy.render.state import ForwardState

    fb = forward_buffers(*scene_args(s), background=s["background"])
    fx, fy, cx, cy = s["intrinsics"]
    cam = Camera(s["world_to_camera"], fx, fy, cx, cy, s["width"], s["height"])
    up = lambda a, label: GpuTensor.from_numpy(a, label, ctx=ctx)  # noqa: E731
    k = np.asarray(s["sh_coeffs"]).shape[1]
    return ForwardState(
        camera=cam,
        background=tuple(np.asarray(s["background"], float)),
        num_splats=len(s["means"]),
        num_visible=len(fb["global_from_compact"]),
        num_intersections=len(fb["compact_from_isect"]),
        tiles_x=fb["tiles_x"],
        tiles_y=fb["tiles_y"],
        image=up(fb["image"], "image"),
        projected=up(fb["projected"], "projected"),
        global_from_compact=up(fb["global_from_compact"], "global_from_compact"),
        compact_from_isect=up(fb["compact_from_isect"], "compact_from_isect"),
        tile_ranges=up(fb["tile_ranges"], "tile_ranges"),
        final_index=up(fb["final_index"], "final_index"),
        sh_degree=int(round(np.sqrt(k))) - 1,
    )


def gpu_grads(s, v_image, view_dir_const=False, ctx=None, defines=None):
    """Run the GPU backward on a ForwardState built from the reference forward."""
    from brushpy.gpu import GpuTensor, Recorder
    from brushpy.render.backward import RenderBackward
    from brushpy.render.splats import Splats

    from brushpy.gpu import get_context

    ctx = ctx or get_context()
    state = _upload_state(s, ctx)
    arrays = [np.asarray(s[k], np.float32) for k in PARAMS]
    splats = Splats(*(GpuTensor.from_numpy(a, k, ctx=ctx) for a, k in zip(arrays, PARAMS)))
    rec = Recorder(ctx=ctx)
    kb = RenderBackward(defines=defines, ctx=ctx)
    grads = kb.record(rec, state, splats, GpuTensor.from_numpy(np.asarray(v_image, np.float32), "v_image", ctx=ctx), view_dir_const)
    rec.submit()
    out = grads.numpy()
    out["v_projected"] = grads.v_projected.numpy()[: state.num_visible]
    out["order"] = state.global_from_compact.numpy()
    return out


def _rel(a, b):
    return np.linalg.norm(np.asarray(a, np.float64) - b) / max(np.linalg.norm(b), 1e-30)


def _gpu_scene(seed, n=40, width=40, height=36, degree=None):
    s = make_scene(seed, n=n, width=width, height=height, degree=degree)
    v_image = np.random.default_rng(seed).normal(size=(height, width, 4)) * 0.1
    return s, v_image


@pytest.mark.parametrize(
    "seed,view_dir_const,degree", [(0, False, None), (1, False, None), (2, False, None), (3, True, None), (4, False, None), (7, False, None), (8, False, 4)]
)
def test_gpu_matches_reference_vjp(gpu, seed, view_dir_const, degree):
    s, v_image = _gpu_scene(seed, degree=degree)
    ref = render_vjp(*scene_args(s), v_image, s["background"], view_dir_const=view_dir_const)
    out = gpu_grads(s, v_image, view_dir_const)
    for name in PARAMS:
        assert out[name].shape == np.asarray(s[name]).shape
        assert _rel(out[name], ref[name]) < 2e-4, (name, _rel(out[name], ref[name]))
    order = out["order"]
    vp = np.concatenate([ref["v_xy"], ref["v_conic"], ref["v_color"], ref["v_opacity"][:, None]], -1)[order]
    assert _rel(out["v_projected"], vp) < 2e-4
    np.testing.assert_array_equal(out["visible"], ref["visible"].astype(np.uint32))
    w, h = s["width"], s["height"]
    refine = np.linalg.norm(ref["v_xy"] * [w, h], axis=-1)
    np.testing.assert_allclose(out["refine_weight"], refine, rtol=2e-3, atol=1e-6 * refine.max())
    np.testing.assert_allclose(out["refine_weight_abs"], ref["refine_abs"], rtol=2e-3, atol=1e-6 * ref["refine_abs"].max())
    assert np.all(out["refine_weight_abs"] >= 0) and ref["refine_abs"].max() > 0


def _tiny_case():
    import safetensors.numpy

    d = safetensors.numpy.load_file(str(SHARED / "reference" / "tiny_case.safetensors"))
    w2c = np.eye(4)
    w2c[:3, 3] = -np.array([0.123, 0.456, -8.0])
    s = {
        "means": d["means"],
        "rotations": d["quats"],
        "log_scales": d["scales"],
        "sh_coeffs": d["coeffs"],
        "raw_opacities": d["opacities"],
        "world_to_camera": w2c,
        "intrinsics": (61.5, 61.5, 61.5, 41.0),
        "width": 123,
        "height": 82,
        "background": np.zeros(3),
    }
    return s, d


@requires_shared("reference", "tiny_case.safetensors")
def test_tiny_case_matches_gsplat(gpu):
    from PIL import Image

    s, d = _tiny_case()
    # the loss of the README: mean((out_img - target)^2), target = crab.png RGB / 255, alpha 0
    target = np.asarray(Image.open(SHARED / "reference" / "crab.png").convert("RGB"), np.float64) / 255.0
    target = np.concatenate([target, np.zeros(target.shape[:2] + (1,))], -1)
    image = render(*scene_args(s))
    v_image = 2.0 * (image - target) / image.size
    np.testing.assert_allclose(v_image, d["v_out_img"], atol=1e-9)
    out = gpu_grads(s, v_image, view_dir_const=True)
    for ours, theirs in [("means", "v_means"), ("log_scales", "v_scales"), ("rotations", "v_quats"), ("sh_coeffs", "v_coeffs"), ("raw_opacities", "v_opacities")]:
        assert _rel(out[ours], d[theirs]) < 1e-4, (ours, _rel(out[ours], d[theirs]))
    ref = render_vjp(*scene_args(s), v_image, view_dir_const=True)
    for ours, theirs in [("means", "v_means"), ("log_scales", "v_scales"), ("rotations", "v_quats"), ("sh_coeffs", "v_coeffs"), ("raw_opacities", "v_opacities")]:
        assert _rel(ref[ours], d[theirs]) < 1e-4


def test_atomic_and_subgroup_paths_agree(gpu):
    """Every rasterize-backward variant: atomics, subgroups, pixels per thread."""
    from brushpy.gpu import create_context

    s, v_image = _gpu_scene(2)
    base = gpu_grads(s, v_image)
    no_float_atomics = create_context(disable={"shader-float32-atomic"})
    no_subgroups = create_context(disable={"subgroup"})
    neither = create_context(disable={"subgroup", "shader-float32-atomic"})
    assert not no_float_atomics.has_float_atomics and not neither.has_float_atomics
    assert not no_subgroups.has_subgroups and not neither.has_subgroups
    variants = [
        ("CAS atomics", no_float_atomics, None),
        ("no subgroups", no_subgroups, None),
        ("neither", neither, None),
    ] + [(f"{ppt} pixels per thread", None, {"PIXELS_PER_THREAD": ppt}) for ppt in (1, 2, 4, 8)] + [
        ("1 pixel per thread, neither", neither, {"PIXELS_PER_THREAD": 1}),
        ("4 pixels per thread, neither", neither, {"PIXELS_PER_THREAD": 4}),
    ]
    for label, ctx, defines in variants:
        out = gpu_grads(s, v_image, ctx=ctx, defines=defines)
        for name in PARAMS + ("refine_weight", "refine_weight_abs"):
            assert _rel(out[name], base[name]) < 1e-5, (label, name)


def test_two_runs_agree(gpu):
    s, v_image = _gpu_scene(4)
    a = gpu_grads(s, v_image)
    b = gpu_grads(s, v_image)
    for name in PARAMS:
        assert _rel(a[name], b[name]) < 1e-6, name


def test_culled_splats_get_exact_zeros(gpu):
    s, v_image = _gpu_scene(1, n=20)
    w2c = s["world_to_camera"]
    R, t = w2c[:3, :3], w2c[:3, 3]
    cam = -R.T @ t
    s["means"][0] = cam - 1.0 * R[2]  # behind the camera
    s["raw_opacities"][1] = -9.0  # opacity < 1/255
    s["means"][2] = cam + R[2] * 2.0 + R[0] * 50.0  # far off screen
    s["means"][3] = cam + R[2] * 0.005  # before the near plane
    p = project(*scene_args(s))
    assert not p["visible"][:4].any() and p["visible"][4:].sum() >= 10
    out = gpu_grads(s, v_image)
    for name in PARAMS:
        assert np.all(out[name][:4] == 0.0), name
        assert np.abs(out[name][4:]).max() > 0
    assert np.all(out["refine_weight"][:4] == 0.0) and np.all(out["visible"][:4] == 0)
    assert np.all(out["refine_weight_abs"][:4] == 0.0)


def test_nan_splat_does_not_poison_others(gpu):
    s, v_image = _gpu_scene(3, n=20)
    for name, idx in [("means", (5, 1)), ("rotations", (6, 0)), ("log_scales", (7, 2)), ("raw_opacities", (8,))]:
        s[name][idx] = np.nan
    s["sh_coeffs"][9, 0, 1] = np.inf
    out = gpu_grads(s, v_image)
    for name in PARAMS:
        assert np.isfinite(out[name]).all(), name
        assert np.all(out[name][5:10] == 0.0), name
    # the other splats see a render without splats 5..9
    s2 = {k: (np.delete(np.asarray(v), range(5, 10), axis=0) if k in PARAMS else v) for k, v in s.items()}
    ref = render_vjp(*scene_args(s2), v_image, s2["background"])
    keep = np.delete(np.arange(len(s["means"])), range(5, 10))
    for name in PARAMS:
        assert _rel(out[name][keep], ref[name]) < 2e-4, name


def test_errors_name_the_mismatch(gpu):
    from brushpy.gpu import GpuTensor, Recorder
    from brushpy.render.backward import render_backward
    from brushpy.render.splats import Splats

    s, v_image = _gpu_scene(0, n=8, width=20, height=18)
    state = _upload_state(s)
    splats = Splats.from_numpy(*[s[k] for k in PARAMS])
    with pytest.raises(ValueError, match="v_image has shape"):
        render_backward(state, splats, GpuTensor.empty((18, 19, 4)), Recorder())
    fewer = Splats.from_numpy(*[np.asarray(s[k])[:3] for k in PARAMS])
    with pytest.raises(ValueError, match="rendered from"):
        render_backward(state, fewer, GpuTensor.from_numpy(v_image.astype(np.float32)), Recorder())


# --------------------------------------------------------- through the GPU forward


@pytest.mark.parametrize("seed,view_dir_const", [(0, False), (2, True), (4, False), (5, False)])
def test_rasterize_vjp_matches_reference(gpu, seed, view_dir_const):
    from brushpy.render.backward import rasterize_vjp

    s, v_image = _gpu_scene(seed)
    args = scene_args(s)
    out = rasterize_vjp(*args, v_image, background=s["background"], view_dir_const=view_dir_const)
    ref = render_vjp(*args, v_image, s["background"], view_dir_const=view_dir_const)
    for name in PARAMS:
        assert out[name].shape == np.asarray(s[name]).shape and out[name].dtype == np.float32
        assert _rel(out[name], ref[name]) < 2e-4, (name, _rel(out[name], ref[name]))


@requires_shared("reference", "tiny_case.safetensors")
def test_rasterize_vjp_tiny_case_matches_gsplat(gpu):
    from brushpy.render.backward import rasterize_vjp

    s, d = _tiny_case()
    out = rasterize_vjp(*scene_args(s), d["v_out_img"], view_dir_const=True)
    for ours, theirs in [("means", "v_means"), ("log_scales", "v_scales"), ("rotations", "v_quats"), ("sh_coeffs", "v_coeffs"), ("raw_opacities", "v_opacities")]:
        assert _rel(out[ours], d[theirs]) < 1e-4, (ours, _rel(out[ours], d[theirs]))


def test_rasterize_vjp_nan_and_culled_splats(gpu):
    from brushpy.render.backward import rasterize_vjp

    s, v_image = _gpu_scene(1, n=20)
    R, t = s["world_to_camera"][:3, :3], s["world_to_camera"][:3, 3]
    s["means"][0] = -R.T @ t - R[2]  # behind the camera
    s["means"][1, 0] = np.nan
    s["rotations"][2] = np.nan
    s["log_scales"][3, 1] = np.inf
    s["raw_opacities"][4] = np.nan
    s["sh_coeffs"][5, 0, 0] = np.nan
    out = rasterize_vjp(*scene_args(s), v_image, background=s["background"])
    for name in PARAMS:
        assert np.isfinite(out[name]).all(), name
        assert np.all(out[name][:6] == 0.0), name
    s2 = {k: (np.asarray(v)[6:] if k in PARAMS else v) for k, v in s.items()}
    ref = render_vjp(*scene_args(s2), v_image, s2["background"])
    for name in PARAMS:
        assert _rel(out[name][6:], ref[name]) < 2e-4, name


def test_rasterize_vjp_lower_sh_degree(gpu):
    """sh_degree below the data's: unused coefficients get zero gradient, the rest match a degree-1 render."""
    from brushpy.render.backward import rasterize_vjp

    s, v_image = _gpu_scene(3)  # degree 3
    out = rasterize_vjp(*scene_args(s), v_image, background=s["background"], sh_degree=1)
    assert np.all(out["sh_coeffs"][:, 4:] == 0.0)
    s1 = dict(s, sh_coeffs=np.asarray(s["sh_coeffs"])[:, :4])
    ref = render_vjp(*scene_args(s1), v_image, s1["background"])
    assert _rel(out["sh_coeffs"][:, :4], ref["sh_coeffs"]) < 2e-4
    for name in ("means", "rotations", "log_scales", "raw_opacities"):
        assert _rel(out[name], ref[name]) < 2e-4, name
    # degree 0 given as [N,3]
    s0 = dict(s, sh_coeffs=np.asarray(s["sh_coeffs"])[:, 0])
    out0 = rasterize_vjp(*scene_args(s0), v_image, background=s["background"])
    assert out0["sh_coeffs"].shape == (len(s["means"]), 3)


def test_rasterize_vjp_paths_agree_and_repeat(gpu):
    """Through the real forward: CAS atomics and no subgroups match; two runs agree to 1e-6."""
    import brushpy
    from brushpy.gpu import create_context, get_context, set_context

    s, v_image = _gpu_scene(4)
    args = scene_args(s)
    base = brushpy.rasterize_vjp(*args, v_image, background=s["background"])
    again = brushpy.rasterize_vjp(*args, v_image, background=s["background"])
    for name in PARAMS:
        assert _rel(again[name], base[name]) < 1e-6, name
    old = get_context()
    try:
        for disable in ({"shader-float32-atomic"}, {"subgroup", "shader-float32-atomic"}):
            set_context(create_context(disable=disable))
            out = brushpy.rasterize_vjp(*args, v_image, background=s["background"])
            for name in PARAMS:
                assert _rel(out[name], base[name]) < 1e-5, (disable, name)
    finally:
        set_context(old)


def test_rasterize_vjp_rejects_bad_v_image(gpu):
    from brushpy.render.backward import rasterize_vjp

    s, v_image = _gpu_scene(0, n=8, width=20, height=18)
    with pytest.raises(ValueError, match=r"v_image has shape \(18, 20, 3\)"):
        rasterize_vjp(*scene_args(s), v_image[..., :3])


def test_reused_output_buffers(gpu):
    """render_backward(out=...) writes into the same buffers every call, cleared each time."""
    from brushpy.gpu import GpuTensor, Recorder
    from brushpy.render.backward import RenderBackward, render_backward
    from brushpy.render.splats import Splats

    s, v_image = _gpu_scene(2, n=20, width=32, height=24)
    n, k = len(s["means"]), np.asarray(s["sh_coeffs"]).shape[1]
    out = RenderBackward().allocate(n, k, n)
    splats = Splats.from_numpy(*[s[p] for p in PARAMS])
    for scale in (1.0, -0.5):  # second call must not add onto the first
        rec = Recorder()
        g = render_backward(_upload_state(s), splats, GpuTensor.from_numpy((scale * v_image).astype(np.float32)), rec, out=out)
        rec.submit()
        assert g is out
        ref = render_vjp(*scene_args(s), scale * v_image, s["background"])
        for name in PARAMS:
            assert _rel(getattr(out, name).numpy(), ref[name]) < 2e-4, name
    small = RenderBackward().allocate(n, k, 1)
    with pytest.raises(ValueError, match="visible splats"):
        render_backward(_upload_state(s), splats, GpuTensor.from_numpy(v_image.astype(np.float32)), Recorder(), out=small)
