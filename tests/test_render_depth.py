"""Depth outputs of the splat renderer (``outputs=`` "D", "ED", "RGB+D", "RGB+ED", "+MD").

* The float64 reference (depth as a 4th colour channel, as gsplat renders it; ED as the
  ratio D / max(alpha, 1e-10)) against central finite differences, default and mip mode.
* The GPU forward (D, ED, median depth) and backward (means, rotations, log_scales,
  raw opacities, through z and through the 2D mean/conic) against the reference, with and
  without an image cotangent, default and mip mode.
* Every rasterize-backward variant (CAS atomics, no subgroups, pixels per thread) agrees.
* Plain "RGB" is unchanged: the depth variants produce bit-identical images, and a depth
  state's backward without a depth cotangent equals the plain one.
* ``brushpy.rasterize`` stacking, ``RenderOp`` on a tape, errors.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.reference.render import render_depth
from tests.reference.render_backward import render_vjp
from tests.render_scenes import PARAMS, check_vjp_by_finite_differences, make_scene, scene_args


def _rel(a, b):
    return np.linalg.norm(np.asarray(a, np.float64) - b) / max(np.linalg.norm(b), 1e-30)


# ----------------------------------------------------------------------------- reference


@pytest.mark.parametrize("seed,mode,mip", [(0, "D", False), (1, "ED", False), (2, "ED", False), (3, "D", False),
                                           (4, "ED", False), (5, "ED", True), (6, "D", True), (7, "ED", False)])
def test_reference_depth_vjp_matches_finite_differences(seed, mode, mip):
    s = make_scene(seed)
    rng = np.random.default_rng(3000 + seed)
    h, w = s["height"], s["width"]
    v_image = rng.normal(size=(h, w, 4)) if seed % 2 else None
    v_depth = rng.normal(size=(h, w))
    g = render_vjp(*scene_args(s), v_image, s["background"], mip=mip, v_depth=v_depth, depth_mode=mode)
    assert g["visible"].sum() >= 5
    assert np.abs(g["v_depth"]).max() > 0

    def loss(params):
        args = [params[k] for k in PARAMS] + [s["world_to_camera"], s["intrinsics"], w, h, s["background"]]
        r = render_depth(*args, mip=mip)
        total = float((r[mode] * v_depth).sum())
        if v_image is not None:
            total += float((r["image"] * v_image).sum())
        return total

    check_vjp_by_finite_differences(loss, s, g, rng, sh_samples=8)


def test_reference_depth_is_a_channel_and_median_is_a_crossing():
    s = make_scene(2, n=30)
    r = render_depth(*scene_args(s), s["background"])
    alpha = r["alpha"]
    covered = alpha > 0.05
    assert covered.sum() > 50
    # ED of a pixel lies between the nearest and farthest visible depths
    assert np.all(r["ED"][covered] > 0.01) and np.all(r["ED"][alpha == 0] == 0)
    np.testing.assert_allclose(r["D"], r["ED"] * alpha, atol=1e-12)
    # the median exists exactly where the transmittance ends below 0.5
    assert np.all((r["MD"] > 0) == (alpha > 0.5))


# ----------------------------------------------------------------------------- GPU


def _scene(seed, n=40, width=40, height=36, degree=None):
    s = make_scene(seed, n=n, width=width, height=height, degree=degree)
    rng = np.random.default_rng(seed)
    return s, rng.normal(size=(height, width, 4)) * 0.1, rng.normal(size=(height, width)) * 0.1


@pytest.mark.parametrize("seed,mip", [(0, False), (2, False), (3, False), (4, False), (5, True)])
def test_gpu_forward_matches_reference(gpu, seed, mip):
    import brushpy

    s, _, _ = _scene(seed)
    mode = "mip" if mip else "default"
    ref = render_depth(*scene_args(s), s["background"], mip=mip)
    out = brushpy.rasterize(*scene_args(s), background=s["background"], render_mode=mode, outputs="RGB+ED+MD")
    assert out.shape == (s["height"], s["width"], 6)
    np.testing.assert_allclose(out[..., :3], ref["image"][..., :3], atol=2e-5)
    np.testing.assert_allclose(out[..., 5], ref["alpha"], atol=2e-5)
    # ED divides by alpha: compare where alpha is not tiny, and D everywhere
    cov = ref["alpha"] > 1e-3
    np.testing.assert_allclose(out[..., 3][cov], ref["ED"][cov], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out[..., 3][ref["alpha"] == 0], 0.0)
    # the median is a discontinuity: pixels whose transmittance is within rounding of 0.5 may differ
    near = np.abs(1.0 - ref["alpha"] - 0.5) < 1e-4
    np.testing.assert_allclose(out[..., 4][~near], ref["MD"][~near], rtol=1e-5, atol=1e-4)
    d = brushpy.rasterize(*scene_args(s), background=s["background"], render_mode=mode, outputs="D")
    assert d.shape == (s["height"], s["width"], 2)
    np.testing.assert_allclose(d[..., 0], ref["D"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(d[..., 1], ref["alpha"], atol=2e-5)
    assert ref["D"].max() > 0.5 and ref["MD"].max() > 0.5


def test_rgb_unchanged_by_depth_variants(gpu):
    """The depth kernels write bit-identical colour and alpha; "RGB" keeps [H,W,4] and no depth."""
    import brushpy
    from brushpy.render.camera import Camera
    from brushpy.render.forward import render_forward
    from brushpy.render.splats import Splats

    s, _, _ = _scene(4)
    rgb = brushpy.rasterize(*scene_args(s), background=s["background"])
    assert rgb.shape == (s["height"], s["width"], 4)
    for outputs in ("RGB+D", "RGB+ED", "RGB+MD", "RGB+ED+MD"):
        out = brushpy.rasterize(*scene_args(s), background=s["background"], outputs=outputs)
        np.testing.assert_array_equal(out[..., :3], rgb[..., :3])
        np.testing.assert_array_equal(out[..., -1], rgb[..., 3])
    splats = Splats.from_numpy(*(s[k] for k in PARAMS))
    cam = Camera(s["world_to_camera"], *s["intrinsics"], s["width"], s["height"])
    state = render_forward(splats, cam, s["background"])
    assert state.depth is None and state.median_depth is None and state.depths is None and state.outputs == "RGB"
    state = render_forward(splats, cam, s["background"], outputs="ED")
    assert state.depth.shape == (s["height"], s["width"]) and state.depth_mode == "ED" and state.median_depth is None
    np.testing.assert_array_equal(state.image.numpy(), rgb)


@pytest.mark.parametrize("seed,mode,with_image,mip", [
    (0, "D", True, False), (1, "ED", True, False), (2, "ED", False, False), (3, "D", False, False),
    (4, "ED", True, False), (7, "D", True, False), (5, "ED", True, True), (8, "D", False, True),
])
def test_gpu_backward_matches_reference(gpu, seed, mode, with_image, mip):
    import brushpy

    s, v_image, v_depth = _scene(seed)
    vi = v_image if with_image else None
    ref = render_vjp(*scene_args(s), vi, s["background"], mip=mip, v_depth=v_depth, depth_mode=mode)
    out = brushpy.rasterize_vjp(*scene_args(s), vi, background=s["background"], v_depth=v_depth,
                                outputs=("RGB+" if with_image else "") + mode, render_mode="mip" if mip else "default")
    for name in PARAMS:
        assert out[name].shape == np.asarray(s[name]).shape
        if name == "sh_coeffs" and not with_image:
            assert np.all(out[name] == 0)
            continue
        assert _rel(out[name], ref[name]) < 2e-4, (name, _rel(out[name], ref[name]))
    # the depth alone moves the means along the view axis too (through z)
    assert np.abs(ref["v_depth"]).max() > 0


def _gpu_depth_grads(s, v_image, v_depth, mode, ctx=None, defines=None):
    """Through the real forward, with a RenderBackward built for ``defines``."""
    from brushpy.gpu import GpuTensor, Recorder, get_context
    from brushpy.render.backward import RenderBackward
    from brushpy.render.camera import Camera
    from brushpy.render.forward import render_forward
    from brushpy.render.splats import Splats

    from brushpy.gpu import set_context

    old = get_context()
    if ctx is not None:
        set_context(ctx)
    try:
        ctx = get_context()
        splats = Splats.from_numpy(*(s[k] for k in PARAMS))
        cam = Camera(s["world_to_camera"], *s["intrinsics"], s["width"], s["height"])
        rec = Recorder(ctx=ctx)
        state = render_forward(splats, cam, s["background"], rec=rec, outputs="RGB+" + mode)
        kb = RenderBackward(defines=defines, ctx=ctx)
        grads = kb.record(rec, state, splats, GpuTensor.from_numpy(v_image.astype(np.float32)), out=None,
                          v_depth=GpuTensor.from_numpy(v_depth.astype(np.float32)))
        rec.submit()
        out = grads.numpy()
        out["v_depths"] = grads.v_depths.numpy()[: state.num_visible]
        out["order"] = state.global_from_compact.numpy()
        return out
    finally:
        set_context(old)


def test_atomic_and_subgroup_paths_agree(gpu):
    """Every depth rasterize-backward variant: float/CAS atomics, subgroups or not, pixels per thread."""
    from brushpy.gpu import create_context

    s, v_image, v_depth = _scene(2)
    for mode in ("D", "ED"):
        base = _gpu_depth_grads(s, v_image, v_depth, mode)
        ref = render_vjp(*scene_args(s), v_image, s["background"], v_depth=v_depth, depth_mode=mode)
        assert _rel(base["v_depths"], ref["v_depth"][base["order"]]) < 2e-4
        no_float_atomics = create_context(disable={"shader-float32-atomic"})
        neither = create_context(disable={"subgroup", "shader-float32-atomic"})
        no_subgroups = create_context(disable={"subgroup"})
        assert not neither.has_float_atomics and not neither.has_subgroups
        variants = [("CAS atomics", no_float_atomics, None), ("no subgroups", no_subgroups, None), ("neither", neither, None)]
        variants += [(f"{ppt} pixels per thread", None, {"PIXELS_PER_THREAD": ppt}) for ppt in (1, 2, 8)]
        variants += [("1 pixel per thread, neither", neither, {"PIXELS_PER_THREAD": 1})]
        for label, ctx, defines in variants:
            out = _gpu_depth_grads(s, v_image, v_depth, mode, ctx=ctx, defines=defines)
            for name in PARAMS + ("refine_weight_abs", "v_depths"):
                assert _rel(out[name], base[name]) < 1e-5, (mode, label, name)


def test_forward_pixels_per_thread_and_fallbacks(gpu):
    """The depth forward variants agree for every PIXELS_PER_THREAD and without subgroups/float atomics."""
    import brushpy
    from brushpy.gpu import create_context, get_context, set_context
    from brushpy.render import forward

    s, _, _ = _scene(3)
    base = brushpy.rasterize(*scene_args(s), background=s["background"], outputs="RGB+D+MD")
    old_defines = dict(forward._DEFINES)
    try:
        for ppt in (1, 2, 8):
            forward._DEFINES["PIXELS_PER_THREAD"] = ppt
            out = brushpy.rasterize(*scene_args(s), background=s["background"], outputs="RGB+D+MD")
            np.testing.assert_allclose(out, base, rtol=1e-6, atol=1e-6)
    finally:
        forward._DEFINES.clear()
        forward._DEFINES.update(old_defines)
    old = get_context()
    try:
        set_context(create_context(disable={"subgroup", "shader-float32-atomic"}))
        out = brushpy.rasterize(*scene_args(s), background=s["background"], outputs="RGB+D+MD")
        np.testing.assert_allclose(out, base, rtol=1e-6, atol=1e-6)
    finally:
        set_context(old)


def test_depth_state_without_depth_cotangent_is_plain(gpu):
    """A state rendered with depth, differentiated w.r.t. the image only, runs the plain backward
    (equal up to the order of float atomics, as two plain runs are)."""
    import brushpy

    s, v_image, _ = _scene(4)
    plain = brushpy.rasterize_vjp(*scene_args(s), v_image, background=s["background"])
    with_depth = brushpy.rasterize_vjp(*scene_args(s), v_image, background=s["background"], outputs="RGB+ED")
    for name in PARAMS:
        assert _rel(with_depth[name], plain[name]) < 1e-6, name


def test_render_op_depth_on_a_tape(gpu):
    """RenderOp exposes "depth"; the tape's backward from the depth alone, and from both, matches the reference."""
    from brushpy.autodiff import Tape
    from brushpy.gpu import GpuTensor, Recorder
    from brushpy.render.backward import RenderOp
    from brushpy.render.camera import Camera
    from brushpy.render.forward import render_forward
    from brushpy.render.splats import Splats

    s, v_image, v_depth = _scene(1)
    splats = Splats.from_numpy(*(s[k] for k in PARAMS))
    cam = Camera(s["world_to_camera"], *s["intrinsics"], s["width"], s["height"])
    for seeds in ("depth", "both"):
        tape = Tape()
        rec = Recorder()
        state = render_forward(splats, cam, s["background"], rec=rec, outputs="RGB+ED")
        op = tape.record(RenderOp(state, splats))
        assert set(op.outputs) == {"image", "depth"} and tuple(op.outputs["depth"].shape) == (s["height"], s["width"])
        seed = {op.outputs["depth"]: GpuTensor.from_numpy(v_depth.astype(np.float32))}
        if seeds == "both":
            seed[op.outputs["image"]] = GpuTensor.from_numpy(v_image.astype(np.float32))
        grads = tape.backward(rec, seed)
        rec.submit()
        ref = render_vjp(*scene_args(s), v_image if seeds == "both" else None, s["background"], v_depth=v_depth,
                         depth_mode="ED")
        got = grads.of(splats)
        for name in ("means", "rotations", "log_scales", "raw_opacities"):
            assert _rel(got[name].numpy(), ref[name]) < 2e-4, (seeds, name)


def test_errors(gpu):
    import brushpy
    from brushpy.render.params import parse_outputs

    for bad in ("RGBD", "D+ED", "RGB+RGB", "", "depth"):
        with pytest.raises(ValueError, match="outputs="):
            parse_outputs(bad)
    assert parse_outputs("rgb+ed").name == "RGB+ED"
    assert parse_outputs("MD+RGB").name == "RGB+MD"
    s, v_image, v_depth = _scene(0, n=10)
    with pytest.raises(ValueError, match="outputs="):
        brushpy.rasterize(*scene_args(s), outputs="RGB+Z")
    with pytest.raises(ValueError, match="which depth"):
        brushpy.rasterize_vjp(*scene_args(s), v_image, v_depth=v_depth)
    with pytest.raises(ValueError, match="v_depth has shape"):
        brushpy.rasterize_vjp(*scene_args(s), v_image, v_depth=v_depth[:-1], outputs="RGB+D")
