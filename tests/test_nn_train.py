"""Network weights: He init (seeded), Adam over a NetParams, safetensors save/load and its errors,
and a 2-layer conv net trained on the tape that lowers its loss."""

from __future__ import annotations

import numpy as np
import pytest


def _net(seed, cin=3, hidden=8, cout=3):
    from brushpy.nn import Conv2d, NetParams

    params = NetParams(seed=seed)
    conv1 = Conv2d(params, "conv1", cin, hidden, kernel_size=3)
    conv2 = Conv2d(params, "conv2", hidden, cout, kernel_size=1)
    return params, conv1, conv2


def _forward(rec, x, conv1, conv2, tape=None):
    from brushpy.nn import relu

    return conv2(rec, relu(rec, conv1(rec, x, tape, input_grad=False), tape), tape)


def test_he_init_is_seeded_and_scaled(gpu):
    from brushpy.nn import NetParams

    a, b, c = NetParams(seed=1), NetParams(seed=1), NetParams(seed=2)
    for p in (a, b, c):
        p.he_normal("w", (64, 32, 3, 3), 32 * 9)
    wa = a["w"].numpy()
    np.testing.assert_array_equal(wa, b["w"].numpy())
    assert not np.array_equal(wa, c["w"].numpy())
    assert wa.std() == pytest.approx(np.sqrt(2 / (32 * 9)), rel=0.03)
    assert abs(wa.mean()) < 0.01
    params, _, _ = _net(0)
    assert list(params.params()) == ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias"]
    assert params.spec()["conv1.weight"] == (8, 3, 3, 3)
    np.testing.assert_array_equal(params["conv1.bias"].numpy(), 0)
    assert params.count() == 8 * 27 + 8 + 3 * 8 + 3


def test_adam_with_one_lr_steps_any_names(gpu):
    """Adam(lr=...) updates a NetParams group like the float64 update rule."""
    from brushpy.gpu import GpuTensor, Recorder
    from brushpy.nn import NetParams
    from brushpy.optim import Adam, AdamConfig

    params = NetParams(seed=0)
    w = params.he_normal("enc.conv.weight", (4, 2, 3, 3), 18)
    w0 = w.numpy().astype(np.float64)
    rng = np.random.default_rng(0)
    g = rng.standard_normal(w.shape).astype(np.float32)
    adam = Adam(AdamConfig(eps=1e-8), lr=lambda step: 1e-2 * (step + 1))
    rec = Recorder()
    lrs = adam.step(rec, params, {"enc.conv.weight": GpuTensor.from_numpy(g)}, step=1)
    rec.submit()
    assert lrs == {"enc.conv.weight": pytest.approx(2e-2)}
    m = 0.1 * g
    v = 0.001 * g.astype(np.float64) ** 2
    want = w0 - 2e-2 * (m / 0.1) / (np.sqrt(v / 0.001) + 1e-8)
    np.testing.assert_allclose(w.numpy(), want, rtol=1e-5, atol=1e-6)
    state = adam.state_dict()
    assert set(state) == {"t", "enc.conv.weight.exp_avg", "enc.conv.weight.exp_avg_sq"}
    Adam(AdamConfig(), lr=1e-3).load_state_dict(state)  # any name is accepted with a single lr
    with pytest.raises(ValueError, match="unknown parameter group"):
        Adam(AdamConfig()).step(rec, params, {"enc.conv.weight": GpuTensor.from_numpy(g)}, step=0)


def test_two_layer_conv_net_trains(gpu):
    """conv3x3 -> ReLU -> conv1x1 fitted to a fixed target (another net's output) with the tape and
    the GPU Adam: the loss falls well below its start within 20 steps."""
    from brushpy.autodiff import Tape
    from brushpy.gpu import GpuTensor, Recorder
    from brushpy.nn import MSELossOp
    from brushpy.optim import Adam, AdamConfig

    rng = np.random.default_rng(0)
    x = GpuTensor.from_numpy(rng.random((1, 3, 12, 12)).astype(np.float32))
    rec = Recorder()
    _, t1, t2 = _net(seed=7)
    target = _forward(rec, x, t1, t2)
    params, conv1, conv2 = _net(seed=0)
    adam = Adam(AdamConfig(eps=1e-8), lr=1e-2)
    losses = []
    for step in range(20):
        tape = Tape()
        y = _forward(rec, x, conv1, conv2, tape)
        loss = tape.record(MSELossOp(rec, y, target))
        grads = tape.backward(rec, loss.seed)
        assert set(grads.of(params)) == set(params.params())
        adam.step(rec, params, grads, step)
        rec.submit()
        losses.append(float(loss.outputs["loss"].numpy()[0]))
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.3 * losses[0], losses
    assert min(losses[-5:]) < min(losses[:5])


def test_weights_round_trip_and_errors(gpu, tmp_path):
    from brushpy.errors import InputError
    from brushpy.io.weights import WeightsFileError, load_weights, read_weights, save_weights
    from brushpy.nn import Conv2d, NetParams, WeightsError

    params, _, _ = _net(seed=3)
    path = save_weights(tmp_path / "net.safetensors", params, {"architecture": "tiny2"})
    arrays, meta = read_weights(path)
    assert meta == {"format": "brushpy.nn", "architecture": "tiny2"}
    assert all(a.dtype == np.float32 for a in arrays.values())
    other, _, _ = _net(seed=4)
    assert not np.array_equal(other["conv1.weight"].numpy(), params["conv1.weight"].numpy())
    assert load_weights(path, other, architecture="tiny2")["architecture"] == "tiny2"
    for name, t in params.params().items():
        np.testing.assert_array_equal(other[name].numpy(), t.numpy())

    # another architecture: wider hidden layer (shapes), other names, other metadata
    wide, _, _ = _net(seed=0, hidden=16)
    with pytest.raises(WeightsError, match=r"net\.safetensors.*shapes differ.*conv1\.weight") as e:
        load_weights(path, wide)
    assert isinstance(e.value, InputError)
    renamed = NetParams(seed=0)
    Conv2d(renamed, "encoder.conv1", 3, 8)
    with pytest.raises(WeightsError, match="missing encoder.conv1.weight.*unexpected .*conv1.weight"):
        load_weights(path, renamed)
    with pytest.raises(WeightsError, match="architecture 'tiny2'.*'big'"):
        load_weights(path, other, architecture="big")
    # a truncated file and a file of another kind: the file is named, nothing is overwritten
    before = other["conv2.bias"].numpy()
    data = path.read_bytes()
    for bad, cut in (("cut.safetensors", data[: len(data) - 10]), ("head.safetensors", data[:6]),
                     ("text.safetensors", b"not a weights file at all, just text")):
        (tmp_path / bad).write_bytes(cut)
        with pytest.raises(WeightsFileError, match=bad):
            load_weights(tmp_path / bad, other)
    np.testing.assert_array_equal(other["conv2.bias"].numpy(), before)
    with pytest.raises(WeightsFileError, match="not found"):
        load_weights(tmp_path / "missing.safetensors", other)


def test_layer_chain_on_the_tape_matches_the_reference_chain(gpu):
    """conv3x3/s2 -> group norm -> GELU -> up-sample x2 -> concat with the input -> conv1x1 ->
    softmax over 'depth' channels -> MSE: the loss and the gradient of every weight through the
    tape against the float64 references chained by hand."""
    from brushpy.autodiff import Tape
    from brushpy.gpu import GpuTensor, Recorder
    from brushpy.nn import (Conv2d, GroupNorm, MSELossOp, NetParams, concat_channels, gelu, softmax_depth,
                            upsample_bilinear)
    from brushpy.nn import reference as R

    rng = np.random.default_rng(11)
    x = rng.random((1, 3, 8, 8)).astype(np.float32)
    target = rng.random((1, 5, 8, 8)).astype(np.float32)
    params = NetParams(seed=5)
    c1 = Conv2d(params, "c1", 3, 4, 3, stride=2)
    gn = GroupNorm(params, "gn", 2, 4)
    c2 = Conv2d(params, "c2", 7, 5, 1)
    params["gn.weight"].write(rng.uniform(0.5, 1.5, 4))
    params["gn.bias"].write(rng.uniform(-0.2, 0.2, 4))
    w = {n: a.astype(np.float64) for n, a in params.state_dict().items()}

    rec, tape = Recorder(), Tape()
    xt = GpuTensor.from_numpy(x)
    h = gelu(rec, gn(rec, c1(rec, xt, tape, input_grad=False), tape), tape)
    y = softmax_depth(rec, c2(rec, concat_channels(rec, [upsample_bilinear(rec, h, 2, tape), xt], tape), tape), tape)
    loss = tape.record(MSELossOp(rec, y, GpuTensor.from_numpy(target)))
    grads = tape.backward(rec, loss.seed).of(params)
    rec.submit()

    a1 = R.conv2d(x, w["c1.weight"], w["c1.bias"], 2)
    a2 = R.group_norm(a1, 2, w["gn.weight"], w["gn.bias"])
    a3 = R.gelu(a2)
    a4 = R.upsample_bilinear(a3, 2)
    a5 = R.concat_channels([a4, x])
    a6 = R.conv2d(a5, w["c2.weight"], w["c2.bias"], 1)
    a7 = R.softmax_depth(a6)
    ref_loss, g7 = R.mse(a7, target)
    g6 = R.softmax_depth_vjp(a7, g7)
    g5, gw2, gb2 = R.conv2d_vjp(a5, w["c2.weight"], 1, g6)
    g4 = R.concat_channels_vjp([4, 3], g5)[0]
    g3 = R.upsample_bilinear_vjp(a3.shape, 2, g4)
    g2 = R.gelu_vjp(a2, g3)
    g1, gg, gbeta = R.group_norm_vjp(a1, 2, w["gn.weight"], g2)
    _, gw1, gb1 = R.conv2d_vjp(x, w["c1.weight"], 2, g1)
    assert float(loss.outputs["loss"].numpy()[0]) == pytest.approx(ref_loss, rel=1e-5)
    want = {"c1.weight": gw1, "c1.bias": gb1, "gn.weight": gg, "gn.bias": gbeta, "c2.weight": gw2, "c2.bias": gb2}
    assert set(grads) == set(want)
    for name, ref in want.items():
        got = grads[name].numpy()
        assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max() + 1e-7, name
