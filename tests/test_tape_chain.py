"""Ops chained through the autodiff tape against float64 reference chains, end to end.

* Filter3DOp -> RenderOp -> ImageLossOp (the splat training step's ops): the gradient of
  the loss with respect to every splat parameter against the float64 references chained
  by hand (``reference.filter3d.fold``, its VJP by central differences, ``reference.render``,
  ``reference.loss.image_loss``, ``reference.render_backward.render_vjp``).
* MipRenderOp -> MipLossOp (the MIP step's ops), two views, summed by the tape (own frames)
  and as :class:`brushpy.mip.MipTrainer` records them (shared frame and buffers, one tape
  backward per view): gradients and loss against ``reference.mip`` with the MSE and the
  reference SSIM gradient.

Tolerances are those of the kernel-vs-reference tests: ``_rel < 2e-4`` per splat
parameter (tests/test_render_backward.py); for MIP ``atol = 2e-6·max, rtol = 1e-3``
(tests/test_mip.py) and the loss to ``rel 1e-4``.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.reference import filter3d as ref_filter
from tests.reference import loss as ref_loss
from tests.reference import mip as ref_mip
from tests.reference.render import render as ref_render
from tests.reference.render_backward import render_vjp as ref_render_vjp
from tests.render_scenes import PARAMS, make_scene, scene_args

SSIM_WEIGHT = 0.2


def _rel(a, b):
    return np.linalg.norm(np.asarray(a, np.float64) - b) / max(np.linalg.norm(b), 1e-30)


def _fold_vjp(log_scales, raw_opacities, floors, v_ls, v_raw, eps=1e-6):
    """VJP of the reference fold by central differences (the map is per splat, so one
    perturbation of a column of every splat at once gives that column's gradients)."""

    def dot(ls, raw):
        a, b = ref_filter.fold(ls, raw, floors)
        return (a * v_ls).sum(-1) + b * v_raw

    g_ls = np.zeros_like(log_scales)
    for k in range(3):
        d = np.zeros_like(log_scales)
        d[:, k] = eps
        g_ls[:, k] = (dot(log_scales + d, raw_opacities) - dot(log_scales - d, raw_opacities)) / (2 * eps)
    g_raw = (dot(log_scales, raw_opacities + eps) - dot(log_scales, raw_opacities - eps)) / (2 * eps)
    return g_ls, g_raw


@pytest.mark.parametrize("seed", [1, 2, 4])
def test_filter3d_render_loss_chain_matches_reference(gpu, seed):
    from brushpy.autodiff import Tape
    from brushpy.gpu import GpuTensor, Recorder
    from brushpy.loss import ImageLoss, ImageLossOp
    from brushpy.render.backward import RenderOp
    from brushpy.render.camera import Camera
    from brushpy.render.forward import render_forward
    from brushpy.render.splats import Splats
    from brushpy.train.filter3d import Filter3D, Filter3DOp

    s = make_scene(seed, n=30, width=40, height=36)
    rng = np.random.default_rng(100 + seed)
    p = {k: np.asarray(s[k], np.float32) for k in PARAMS}  # what the GPU holds
    p64 = {k: v.astype(np.float64) for k, v in p.items()}
    n, w, h = p["means"].shape[0], s["width"], s["height"]
    floors = rng.uniform(0.02, 0.1, n).astype(np.float32)
    bg = np.asarray(s["background"], np.float32)
    fx, fy, cx, cy = s["intrinsics"]
    cam = Camera(s["world_to_camera"], fx, fy, cx, cy, w, h)

    # float64 reference chain: fold -> render -> loss, then back
    ls_f, raw_f = ref_filter.fold(p64["log_scales"], p64["raw_opacities"], floors.astype(np.float64))
    filtered = dict(p64, log_scales=ls_f, raw_opacities=raw_f)
    fs = dict(s, **filtered)
    image = ref_render(*scene_args(fs), background=bg.astype(np.float64))
    # ground truth away from the L1 kink: |image - gt| >= 0.05 in every channel
    shape = image[..., :3].shape
    gt = image[..., :3] + rng.choice([-1.0, 1.0], shape) * rng.uniform(0.05, 0.2, shape)
    loss_want, v_image = ref_loss.image_loss(image, gt, ssim_weight=SSIM_WEIGHT, match_alpha_weight=0.0,
                                             background=bg)
    g = ref_render_vjp(*scene_args(fs), v_image, bg.astype(np.float64))
    assert g["visible"].sum() >= 10
    want = {k: g[k] for k in PARAMS}
    want["log_scales"], want["raw_opacities"] = _fold_vjp(p64["log_scales"], p64["raw_opacities"], floors.astype(np.float64),
                                                          g["log_scales"], g["raw_opacities"])

    # the same chain on the tape
    splats = Splats.from_numpy(*(p[k] for k in PARAMS))
    f3d = Filter3D([cam])
    f3d.load(floors)
    loss_fn = ImageLoss(SSIM_WEIGHT, 0.0)
    tape = Tape()
    rec = Recorder()
    render_splats = tape.record(Filter3DOp(f3d, rec, splats)).filtered
    state = render_forward(render_splats, cam, background=bg, rec=rec)
    render = tape.record(RenderOp(state, render_splats))
    loss = tape.record(ImageLossOp(loss_fn, rec, render.outputs["image"], GpuTensor.from_numpy(gt.astype(np.float32)),
                                   background=bg))
    grads = tape.backward(rec, loss.seed)
    rec.submit()
    assert [op.name for op in tape.ops] == [Filter3DOp.name, RenderOp.name, ImageLossOp.name]
    assert loss_fn.read_loss() == pytest.approx(loss_want, rel=2e-5)
    got = grads.of(splats)
    assert set(got) == set(PARAMS)
    for name in PARAMS:
        assert np.abs(want[name]).max() > 0, name
        assert _rel(got[name].numpy(), want[name]) < 2e-4, (name, _rel(got[name].numpy(), want[name]))


# -- MIP --------------------------------------------------------------------------------

LAMBDA_MSE, LAMBDA_SSIM = 1.0, 0.5


def _mip_setup(seed=11, k=30, h=32, w=40):
    from brushpy.mip.camera import orbit_cameras

    rng = np.random.default_rng(seed)
    params = (rng.uniform(0.2, 0.8, (k, 3)).astype(np.float32),
              rng.uniform(-3.2, -2.2, (k, 3)).astype(np.float32),
              rng.normal(size=(k, 4)).astype(np.float32),
              rng.uniform(-1.5, 0.5, k).astype(np.float32))
    cams = [orbit_cameras([1.0, 0.8, 0.5], [a], (h, w), "y", persp)[0] for a, persp in ((10.0, False), (70.0, True))]
    targets = [rng.uniform(0, 1, (h, w)).astype(np.float32) for _ in cams]
    return params, cams, targets


def _mip_reference(params, cams, targets, power):
    """(loss, gradients per parameter) of the MIP loss over the views, float64."""
    V = len(cams)
    total = 0.0
    grads = [np.zeros(p.shape) for p in params]
    for cam, t in zip(cams, targets):
        h, w = t.shape
        x = ref_mip.render(*params, cam.as_dict(), w, h, power)
        rgba = lambda a: np.concatenate([np.repeat(a[..., None], 3, -1), np.ones(a.shape + (1,))], -1)  # noqa: E731
        ssim_l, v_ssim = ref_loss.image_loss(rgba(x), rgba(t.astype(np.float64)), ssim_weight=1.0, match_alpha_weight=0.0)
        total += (LAMBDA_MSE * np.mean((x - t) ** 2) + LAMBDA_SSIM * ssim_l) / V
        v_out = (LAMBDA_MSE * 2 * (x - t) / x.size + LAMBDA_SSIM * v_ssim[..., :3].sum(-1)) / V
        for acc, g in zip(grads, ref_mip.render_vjp(*params, cam.as_dict(), w, h, power, v_out)):
            acc += g
    return total, grads


def _assert_mip_grads(got: dict, want):
    from brushpy.mip.model import PARAM_NAMES

    for name, e in zip(PARAM_NAMES, want):
        scale = np.abs(e).max()
        assert scale > 0, name
        np.testing.assert_allclose(got[name], e, atol=2e-6 * scale, rtol=1e-3, err_msg=name)


def test_mip_render_loss_chain_on_one_tape_matches_reference(gpu):
    """Both views on one tape, each op with its own frame: the tape sums the views' gradients."""
    from brushpy.autodiff import Tape
    from brushpy.gpu import GpuTensor, Recorder
    from brushpy.mip.model import MipGaussians
    from brushpy.mip.render import MipRenderer, MipRenderOp
    from brushpy.mip.train import MipLoss, MipLossOp, grey_to_rgba

    params, cams, targets = _mip_setup()
    h, w = targets[0].shape
    model = MipGaussians.from_numpy(*params)
    r = MipRenderer(model.num_gaussians, h, w, temperature=0.1)
    loss_fn = MipLoss(len(cams), h, w, LAMBDA_MSE, LAMBDA_SSIM)
    tape = Tape()
    rec = Recorder()
    for v, (cam, t) in enumerate(zip(cams, targets)):
        render = tape.record(MipRenderOp(r, rec, model, cam, slot=v))
        # each view's gradient in a buffer of its own (the default one is reused view after view)
        v_image = GpuTensor.empty((h, w, 4), np.float32, f"v_image {v}")
        loss = tape.record(MipLossOp(loss_fn, rec, render.outputs["image"], GpuTensor.from_numpy(grey_to_rgba(t)), v,
                                     v_image=v_image))
    loss_fn.record_total(rec)
    other = Tape()
    other.record(loss)
    with pytest.raises(ValueError, match="seed"):
        other.backward(rec, {loss.outputs["loss"]: GpuTensor.from_numpy(np.full(1, 2.0, np.float32))})
    # the loss ops share one output (the step's loss), so one seed reaches both
    grads = tape.backward(rec, loss.seed)
    rec.submit()
    want_loss, want = _mip_reference([p.astype(np.float64) for p in params], cams, targets, 10.0)
    assert loss_fn.read()["loss"] == pytest.approx(want_loss, rel=1e-4)
    _assert_mip_grads({n: g.numpy() for n, g in grads.of(model).items()}, want)


def test_mip_trainer_step_gradients_match_reference(gpu):
    """MipTrainer's tape (shared frame and buffers, one backward per view) gives the same
    gradients (before clipping) and loss as the reference chain."""
    from brushpy.mip.model import MipGaussians
    from brushpy.mip.render import MipRenderOp
    from brushpy.mip.train import MipLossOp, MipTrainConfig, MipTrainer

    params, cams, targets = _mip_setup()
    model = MipGaussians.from_numpy(*params)
    tr = MipTrainer(model, cams, targets, MipTrainConfig(lambda_mse=LAMBDA_MSE, lambda_ssim=LAMBDA_SSIM,
                                                         max_grad_norm=1e30))
    out = tr.step()
    assert tr.last_ops == (MipRenderOp.name, MipLossOp.name)
    want_loss, want = _mip_reference([p.astype(np.float64) for p in params], cams, targets, 10.0)
    assert out["loss"] == pytest.approx(want_loss, rel=1e-4)
    _assert_mip_grads({n: g.numpy() for n, g in tr.grads.items()}, want)  # Adam reads, never writes them
    norm = np.sqrt(sum((g**2).sum() for g in want))
    assert tr.grad_norm() == pytest.approx(norm, rel=1e-4)
