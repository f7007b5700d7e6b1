"""The feed-forward encoder (issue 15, part 2): correlation and lift ops against their float64
references, the encoder's shapes and weight gradients, one training step, weights files, the
plane-sweep baseline and ``brushpy feedforward predict`` with its input errors.

Scenes are a textured plane seen by cameras moving along x (32x32, D = 8, a few channels).
"""

from __future__ import annotations

import json
from types import SimpleNamespace as NS

import numpy as np
import pytest
from click.testing import CliRunner

from brushpy.render.camera import Camera

TINY = dict(feature_channels=8, unet_channels=4, head_channels=4, num_planes=8, groups=2)
PLANE_Z = 4.0


def _texture(x, y):
    g = np.random.default_rng(7).random((3, 40, 40))
    u = np.clip((x + 2) / 0.1, 0, 38.999)
    v = np.clip((y + 2) / 0.1, 0, 38.999)
    i, j = np.floor(v).astype(int), np.floor(u).astype(int)
    fv, fu = v - i, u - j
    return (g[:, i, j] * (1 - fv) * (1 - fu) + g[:, i + 1, j] * fv * (1 - fu) + g[:, i, j + 1] * (1 - fv) * fu
            + g[:, i + 1, j + 1] * fv * fu)


def plane_view(x_world, size=32, name="v", yaw_deg=0.0):
    """A view of the textured plane z = PLANE_Z from (x_world, 0, 0), looking along +z (rotated by yaw)."""
    from brushpy.feedforward.context import ViewSample

    a = np.radians(yaw_deg)
    rot = np.array([[np.cos(a), 0, -np.sin(a)], [0, 1, 0], [np.sin(a), 0, np.cos(a)]])  # world -> camera
    w2c = np.eye(4)
    w2c[:3, :3] = rot
    w2c[:3, 3] = -rot @ np.array([x_world, 0.0, 0.0])
    f = size * 0.9
    cam = Camera(w2c, f, f, size / 2, size / 2, size, size)
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    d = np.stack([(xs - size / 2) / f, (ys - size / 2) / f, np.ones_like(xs)], -1) @ rot  # world directions
    t = PLANE_Z / np.where(d[..., 2] > 1e-6, d[..., 2], np.nan)
    seen = np.isfinite(t)  # rays that meet the plane
    tt = np.where(seen, t, 0.0)
    img = (_texture(x_world + tt * d[..., 0], tt * d[..., 1]) * seen).transpose(1, 2, 0).astype(np.float32)
    depth = np.nan_to_num(t * np.cos(a) if yaw_deg else t).astype(np.float32)
    return ViewSample(name, img, cam, depth)


def plane_scene(n=5, size=32):
    views = []
    for k, x in enumerate(np.linspace(-0.4, 0.4, n)):
        s = plane_view(x, size, f"v{k}")
        views.append(NS(name=s.name, image=(s.image * 255).round().astype(np.uint8), camera=s.camera, depth=s.depth))
    return NS(name="plane", views=views, init_points=None)


# -- references (CPU) ---------------------------------------------------------------------------

def _fd(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        d = np.zeros_like(x)
        d[i] = eps
        g[i] = (f(x + d) - f(x - d)) / (2 * eps)
    return g


def test_correlation_reference_vjp_matches_finite_differences():
    from brushpy.nn import reference as R

    rng = np.random.default_rng(0)
    a, b, g = rng.normal(size=(3, 2, 2)), rng.normal(size=(3, 4, 2, 2)), rng.normal(size=(4, 2, 2))
    ga, gb = R.correlation_vjp(a, b, g)
    np.testing.assert_allclose(ga, _fd(lambda x: np.sum(g * R.correlation(x, b)), a), atol=1e-7)
    np.testing.assert_allclose(gb, _fd(lambda x: np.sum(g * R.correlation(a, x)), b), atol=1e-7)


def test_lift_reference_vjp_matches_finite_differences():
    from brushpy.feedforward.lift import lift_reference, lift_vjp_reference

    rng = np.random.default_rng(1)
    cam = plane_view(0.1, 4).camera
    inv = rng.uniform(0.2, 0.5, (1, 1, 4, 4))
    inv[0, 0, 0, 0] = 0.01  # below the floor: no depth gradient there
    head, rgb = rng.normal(size=(1, 12, 4, 4)) * 0.5, rng.random((1, 3, 4, 4))
    grads = {k: rng.normal(size=v.shape) for k, v in lift_reference([inv], [head], [rgb], [cam], 0.03, 0.1).items()}

    def total(i, h):
        out = lift_reference([i], [h], [rgb], [cam], 0.03, 0.1)
        return sum(np.sum(grads[k] * out[k]) for k in out)

    gi, gh = lift_vjp_reference([inv], [head], [rgb], [cam], 0.03, 0.1, grads)
    np.testing.assert_allclose(gi[0].reshape(inv.shape), _fd(lambda x: total(x, head), inv), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gh[0].reshape(head.shape), _fd(lambda x: total(inv, x), head), rtol=1e-5, atol=1e-6)
    assert gi[0][0] == 0.0


# -- GPU ops against the references ----------------------------------------------------------------

def test_correlation_gpu_matches_reference(gpu):
    from brushpy.autodiff import Tape
    from brushpy.gpu import GpuTensor, Recorder
    from brushpy.nn import correlation
    from brushpy.nn import reference as R

    rng = np.random.default_rng(2)
    a, b, g = (rng.normal(size=s).astype(np.float32) for s in ((5, 3, 4), (5, 6, 3, 4), (6, 3, 4)))
    ta, tb = GpuTensor.from_numpy(a), GpuTensor.from_numpy(b)
    rec, tape = Recorder(), Tape()
    y = correlation(rec, ta, tb, tape=tape)
    grads = tape.backward(rec, {y: GpuTensor.from_numpy(g)})
    rec.submit()
    np.testing.assert_allclose(y.numpy(), R.correlation(a, b), atol=1e-5)
    ga, gb = R.correlation_vjp(a, b, g)
    np.testing.assert_allclose(grads[ta].numpy(), ga, atol=1e-5)
    np.testing.assert_allclose(grads[tb].numpy(), gb, atol=1e-5)


def test_pixel_lift_gpu_matches_reference(gpu):
    from brushpy.autodiff import Tape
    from brushpy.feedforward.lift import PixelLiftOp, lift_reference, lift_vjp_reference
    from brushpy.gpu import GpuTensor, Recorder

    rng = np.random.default_rng(3)
    cams = [plane_view(x, 8).camera for x in (-0.2, 0.3)]
    invs = [rng.uniform(0.15, 0.5, (1, 1, 8, 8)).astype(np.float32) for _ in cams]
    heads = [(rng.normal(size=(1, 12, 8, 8)) * 0.5).astype(np.float32) for _ in cams]
    rgbs = [rng.random((1, 3, 8, 8)).astype(np.float32) for _ in cams]
    t_inv, t_head = [GpuTensor.from_numpy(a) for a in invs], [GpuTensor.from_numpy(a) for a in heads]
    rec, tape = Recorder(), Tape()
    op = tape.record(PixelLiftOp(rec, t_inv, t_head, [GpuTensor.from_numpy(a) for a in rgbs], cams, 0.04, 0.1))
    ref = lift_reference(invs, heads, rgbs, cams, 0.04, 0.1)
    gnp = {k: rng.normal(size=v.shape).astype(np.float32) for k, v in ref.items()}
    grads = tape.backward(rec, {op.outputs[k]: GpuTensor.from_numpy(v) for k, v in gnp.items()})
    rec.submit()
    got = op.splats.numpy()
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-5, atol=1e-5, err_msg=k)
    gi, gh = lift_vjp_reference(invs, heads, rgbs, cams, 0.04, 0.1, gnp)
    for v in range(2):
        np.testing.assert_allclose(grads[t_inv[v]].numpy().ravel(), gi[v], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(grads[t_head[v]].numpy().reshape(12, -1), gh[v], rtol=1e-4, atol=1e-4)


# -- the encoder ------------------------------------------------------------------------------------

def _context(size=32):
    return [plane_view(-0.25, size, "a"), plane_view(0.25, size, "b")]


def test_encoder_forward_shapes_and_splat_count(gpu):
    from brushpy.feedforward import Encoder, EncoderConfig
    from brushpy.gpu import Recorder

    enc = Encoder(EncoderConfig(**TINY), seed=0)
    ctx = _context()
    rec = Recorder()
    out = enc.forward(rec, [s.tensor() for s in ctx], [s.camera for s in ctx], 2.0, 8.0)
    rec.submit()
    assert out.splats.num_splats == 2 * 32 * 32
    assert out.inv_depth[0].shape == (1, 1, 32, 32) and out.probs[0].shape == (1, 8, 8, 8)
    inv = out.inv_depth[1].numpy()
    assert np.all(inv >= 1 / 8.0 - 1e-6) and np.all(inv <= 1 / 2.0 + 1e-6)  # an expectation over the planes
    np.testing.assert_allclose(out.probs[0].numpy().sum(1), 1.0, atol=1e-5)
    s = out.splats.numpy()
    assert all(np.isfinite(v).all() for v in s.values())
    assert 0.2 < out.masks[0].numpy().mean() <= 1.0


def test_encoder_weight_gradients_match_finite_differences(gpu):
    """dL/dw through lift, depth expectation, softmax, U-Net, correlation, warp and features."""
    from brushpy.autodiff import Tape
    from brushpy.feedforward import Encoder, EncoderConfig
    from brushpy.gpu import GpuTensor, Recorder
    from brushpy.nn import MSELossOp

    enc = Encoder(EncoderConfig(**TINY), seed=1)
    ctx = _context(16)
    images, cams = [s.tensor() for s in ctx], [s.camera for s in ctx]
    target = GpuTensor.from_numpy(np.zeros((2 * 16 * 16, 3), np.float32))

    def loss(tape=None):
        rec = Recorder()
        out = enc.forward(rec, images, cams, 2.0, 8.0, tape=tape)
        op = MSELossOp(rec, out.splats.means, target)
        if tape is not None:
            tape.record(op)
            grads = tape.backward(rec, op.seed)
            rec.submit()
            return float(op.outputs["loss"].numpy()[0]), grads
        rec.submit()
        return float(op.outputs["loss"].numpy()[0])

    tape = Tape()
    _, grads = loss(tape)
    checked = 0
    for name, idx in (("feat.conv1.weight", (0, 0, 1, 1)), ("unet.logits.bias", (3,)), ("unet.in.weight", (1, 2, 1, 1)),
                      ("head.out.bias", (0,))):
        t = enc.params[name]
        analytic = grads[t].numpy()[idx]
        base = t.numpy()
        eps = 2e-3 * max(1.0, abs(float(base[idx])))
        vals = []
        for sgn in (1, -1):
            w = base.copy()
            w[idx] += sgn * eps
            t.write(w)
            vals.append(loss())
        t.write(base)
        numeric = (vals[0] - vals[1]) / (2 * eps)
        assert abs(analytic - numeric) <= 0.05 * abs(numeric) + 1e-4, (name, analytic, numeric)
        checked += abs(numeric) > 1e-4
    assert checked >= 3  # most of the probed weights do move the loss


def test_one_training_step_decreases_the_loss(gpu):
    from brushpy.feedforward import EncoderConfig
    from brushpy.feedforward.context import view_sample
    from brushpy.feedforward.training import FFTrainConfig, FFTrainer

    scene = plane_scene(5)
    cfg = FFTrainConfig(steps=10, resolution=(32, 32), num_targets=1, lr=1e-2, warmup=1,
                        encoder=EncoderConfig(**TINY))
    tr = FFTrainer([scene], cfg)
    views = [view_sample(v, (32, 32)) for v in scene.views]
    sample = ([views[0], views[4]], [views[2]], 2.0, 8.0)
    first = tr.step(sample)
    second = tr.step(sample)
    assert first.depth_loss is not None and np.isfinite(first.psnr)
    assert second.loss < first.loss, (first, second)


def test_training_run_writes_model_metrics_and_resumes(gpu, tmp_path):
    from brushpy.feedforward import EncoderConfig
    from brushpy.feedforward.model import load_model
    from brushpy.feedforward.training import FFTrainConfig, train

    cfg = FFTrainConfig(steps=2, resolution=(32, 32), num_targets=1, min_gap=2, max_gap=4, warmup=1,
                        checkpoint_every=1, encoder=EncoderConfig(**TINY))
    rows = train([plane_scene(5)], tmp_path, cfg, progress=False)
    assert [r["step"] for r in rows] == [1, 2]
    cfg.steps = 3
    more = train([plane_scene(5)], tmp_path, cfg, resume=True, progress=False)
    assert [r["step"] for r in more] == [3]
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3] and all("psnr" in x and "lr" in x for x in lines)
    enc, meta = load_model(tmp_path / "model.safetensors")
    assert enc.config == EncoderConfig(**TINY) and meta["steps"] == "3"


def test_weights_save_load_and_errors(gpu, tmp_path):
    from brushpy.feedforward import Encoder, EncoderConfig
    from brushpy.feedforward.model import load_model, save_model
    from brushpy.io.weights import WeightsFileError, save_weights
    from brushpy.nn import NetParams, WeightsError

    enc = Encoder(EncoderConfig(**TINY), seed=5)
    path = save_model(tmp_path / "m.safetensors", enc)
    back, _ = load_model(path)
    for name, arr in enc.params.state_dict().items():
        np.testing.assert_array_equal(back.params[name].numpy(), arr)
    data = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsFileError, match="cut.safetensors"):
        load_model(tmp_path / "cut.safetensors")
    other = NetParams(0)
    other.zeros("x.weight", (2,))
    save_weights(tmp_path / "other.safetensors", other, {"architecture": "some-other-net"})
    with pytest.raises(WeightsError, match="some-other-net"):
        load_model(tmp_path / "other.safetensors")
    meta = dict(enc.metadata())
    meta["encoder_config"] = EncoderConfig(**{**TINY, "num_planes": 6}).to_json()
    save_weights(tmp_path / "planes.safetensors", enc.params, meta)  # weights that do not fit their config
    with pytest.raises(WeightsError, match="planes.safetensors"):
        load_model(tmp_path / "planes.safetensors")


# -- baseline, predict and bad input --------------------------------------------------------------

def test_plane_sweep_baseline_recovers_the_plane_depth(gpu):
    from brushpy.feedforward.baseline import plane_sweep_inverse_depth, plane_sweep_splats

    ctx = _context(32)
    inv, planes = plane_sweep_inverse_depth(ctx, 2.0, 8.0, 16)
    step = abs(planes[1] - planes[0])
    for d in inv:
        inner = d[4:-4, 4:-4]
        assert np.median(np.abs(inner - 1 / PLANE_Z)) < 0.5 * step
        assert np.mean(np.abs(inner - 1 / PLANE_Z) <= step) > 0.8
    splats, _ = plane_sweep_splats(ctx, 2.0, 8.0, 16)
    z = splats.means.numpy()[:, 2].reshape(2, 32, 32)[:, 4:-4, 4:-4]
    assert abs(np.median(z) - PLANE_Z) < 0.2


def _write_dataset(root, views):
    from PIL import Image

    (root / "images").mkdir(parents=True)
    frames = []
    for s in views:
        Image.fromarray((s.image * 255).round().astype(np.uint8)).save(root / "images" / f"{s.name}.png")
        c2w = np.linalg.inv(s.camera.world_to_camera)
        c2w[:3, 1:3] *= -1  # OpenCV -> OpenGL axes
        frames.append({"file_path": f"images/{s.name}.png", "transform_matrix": c2w.tolist(),
                       "fl_x": s.camera.fx, "fl_y": s.camera.fy, "cx": s.camera.cx, "cy": s.camera.cy,
                       "w": s.camera.width, "h": s.camera.height})
    (root / "transforms.json").write_text(json.dumps({"frames": frames}))
    return root


def _run(args):
    from brushpy.cli import main

    return CliRunner().invoke(main, ["feedforward", *args])


def test_predict_writes_a_ply_and_bad_input_errors(gpu, tmp_path):
    from brushpy.feedforward import Encoder, EncoderConfig
    from brushpy.feedforward.model import save_model
    from brushpy.io.ply import read_ply

    data = _write_dataset(tmp_path / "plane", [plane_view(x, 32, f"v{k}") for k, x in enumerate((-0.25, 0.0, 0.25))])
    out = tmp_path / "splats.ply"
    r = _run(["predict", "plane-sweep", str(data), "--context", "0,2", "-o", str(out), "--resolution", "32",
              "--near", "2", "--far", "8", "--planes", "16"])
    assert r.exit_code == 0, r.output
    ply = read_ply(out)
    assert ply.num_splats == 2 * 32 * 32
    assert abs(np.median(ply.means[:, 2]) - PLANE_Z) < 0.2

    model = save_model(tmp_path / "m.safetensors", Encoder(EncoderConfig(**TINY)))
    r = _run(["predict", str(model), str(data), "--context", "0,1", "-o", str(tmp_path / "net.ply"),
              "--resolution", "32", "--near", "2", "--far", "8"])
    assert r.exit_code == 0, r.output
    assert read_ply(tmp_path / "net.ply").num_splats == 2 * 32 * 32

    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(model.read_bytes()[:100])
    r = _run(["predict", str(cut), str(data), "-o", str(tmp_path / "x.ply")])
    assert r.exit_code != 0 and "cut.safetensors" in r.output and "Traceback" not in r.output

    r = _run(["predict", "plane-sweep", str(data), "--context", "0,7", "-o", str(tmp_path / "x.ply")])
    assert r.exit_code != 0 and "out of range" in r.output

    apart = _write_dataset(tmp_path / "apart", [plane_view(0.0, 32, "a"), plane_view(0.0, 32, "b", yaw_deg=180)])
    r = _run(["predict", "plane-sweep", str(apart), "--context", "0,1", "-o", str(tmp_path / "x.ply"),
              "--near", "2", "--far", "8"])
    assert r.exit_code != 0 and "do not overlap" in r.output, r.output

    sizes = _write_dataset(tmp_path / "sizes", [plane_view(0.0, 32, "a"), plane_view(0.2, 40, "b")])
    r = _run(["predict", "plane-sweep", str(sizes), "--context", "0,1", "-o", str(tmp_path / "x.ply"),
              "--near", "2", "--far", "8"])
    assert r.exit_code != 0 and "different sizes" in r.output, r.output
    assert not (tmp_path / "x.ply").exists()


def test_training_refuses_a_dataset_too_small():
    from brushpy.feedforward import FeedForwardInputError
    from brushpy.feedforward.training import ContextSampler, FFTrainConfig

    scene = NS(name="tiny", views=plane_scene(3).views, init_points=None)
    with pytest.raises(FeedForwardInputError, match="3 views.*4 in all"):
        ContextSampler([scene], FFTrainConfig(num_targets=2), np.random.default_rng(0))
