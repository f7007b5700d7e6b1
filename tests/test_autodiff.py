"""The autodiff tape: reverse order, accumulation on the GPU, ownership, the render op."""

from __future__ import annotations

import numpy as np
import pytest

from brushpy.autodiff import Op, Tape
from tests.reference.render_backward import render_vjp
from tests.render_scenes import PARAMS
from tests.render_scenes import scene_args
from tests.test_render_backward import _gpu_scene, _rel, _upload_state


class Affine(Op):
    """out = x * scale (elementwise, scale a numpy constant); backward uploads grad * scale.

    The backward reads the incoming gradient back, which a real op never does;
    fine for a test of the tape's bookkeeping.
    """

    def __init__(self, x, scale, log):
        from brushpy.gpu import GpuTensor

        self.scale = np.asarray(scale, np.float32)
        self.inputs = {"x": x}
        self.outputs = {"out": GpuTensor.from_numpy(x.numpy() * self.scale, "affine_out")}
        self.log = log

    def backward(self, rec, grad_outputs):
        from brushpy.gpu import GpuTensor

        self.log.append(self)
        rec.submit()
        g = grad_outputs["out"]
        return {"x": GpuTensor.from_numpy(g.numpy() * self.scale, "affine_grad")}


class Split(Op):
    """(a, b) = (x, x) with an ignored second input."""

    def __init__(self, x, log):
        self.inputs = {"x": x, "ignored": None}
        self.outputs = {"a": x.clone(), "b": x.clone()}
        self.log = log

    def backward(self, rec, grad_outputs):
        from brushpy.gpu import GpuTensor

        self.log.append(self)
        rec.submit()
        total = sum(g.numpy() for g in grad_outputs.values() if g is not None)
        return {"x": GpuTensor.from_numpy(total, "split_grad"), "ignored": None}


def test_chain_reverse_order_and_accumulation(gpu):
    from brushpy.gpu import GpuTensor, Recorder

    rng = np.random.default_rng(0)
    x_np = rng.normal(size=(5, 3)).astype(np.float32)
    x = GpuTensor.from_numpy(x_np, "x")
    log = []
    tape = Tape()
    a = tape.record(Affine(x, 2.0, log))
    b = tape.record(Affine(x.reshape(15), np.arange(15), log))  # x used twice, through a view
    c = tape.record(Affine(a.outputs["out"], -3.0, log))
    unused = tape.record(Affine(x, 5.0, log))  # nothing downstream: its backward must not run
    seed_c = GpuTensor.from_numpy(np.ones((5, 3), np.float32), "seed_c")
    seed_b = GpuTensor.from_numpy(np.full(15, 0.5, np.float32), "seed_b")
    rec = Recorder()
    grads = tape.backward(rec, {c.outputs["out"]: seed_c, b.outputs["out"]: seed_b})
    rec.submit()
    assert log == [c, b, a] and unused not in log
    expected = -6.0 * np.ones((5, 3)) + 0.5 * np.arange(15).reshape(5, 3)
    np.testing.assert_allclose(grads[x].numpy(), expected, rtol=1e-6)
    assert grads[x].shape == (5, 3) and grads[x.reshape(15)].shape == (15,)
    np.testing.assert_array_equal(seed_c.numpy(), 1.0)  # seeds are never written
    np.testing.assert_allclose(grads[a.outputs["out"]].numpy(), -3.0)
    assert unused.outputs["out"] not in grads
    with pytest.raises(KeyError, match="no gradient"):
        grads[unused.outputs["out"]]


def test_seed_reaching_a_tensor_twice_is_summed_without_writing_the_seed(gpu):
    from brushpy.gpu import GpuTensor, Recorder

    x = GpuTensor.from_numpy(np.arange(6, dtype=np.float32), "x")
    log = []
    tape = Tape()
    sp = tape.record(Split(x, log))
    seed = GpuTensor.from_numpy(np.ones(6, np.float32), "seed")
    rec = Recorder()
    # the same seed for both outputs, plus x seeded directly
    grads = tape.backward(rec, [(sp.outputs["a"], seed), (sp.outputs["b"], seed), (x, seed)])
    rec.submit()
    np.testing.assert_allclose(grads[x].numpy(), 3.0)
    np.testing.assert_array_equal(seed.numpy(), 1.0)


def test_several_loss_seeds_as_a_list_of_dicts(gpu):
    """Several losses = several seeds (``[a.seed, b.seed]``): the gradient of their sum."""
    from brushpy.gpu import GpuTensor, Recorder

    x = GpuTensor.from_numpy(np.arange(4, dtype=np.float32), "x")
    log = []
    tape = Tape()
    a = tape.record(Affine(x, 2.0, log))
    b = tape.record(Affine(x, -5.0, log))
    sa = GpuTensor.from_numpy(np.ones(4, np.float32), "seed a")
    sb = GpuTensor.from_numpy(np.full(4, 0.5, np.float32), "seed b")
    rec = Recorder()
    grads = tape.backward(rec, [{a.outputs["out"]: sa}, {b.outputs["out"]: sb}])
    rec.submit()
    np.testing.assert_allclose(grads[x].numpy(), 2.0 - 2.5)
    # a pair in the list works too, and mixing both forms
    rec = Recorder()
    grads = tape.backward(rec, [{a.outputs["out"]: sa}, (b.outputs["out"], sb)])
    rec.submit()
    np.testing.assert_allclose(grads[x].numpy(), -0.5)


def test_backward_checks_gradient_count(gpu):
    from brushpy.gpu import GpuTensor, Recorder

    class Bad(Op):
        def __init__(self, x):
            self.inputs = {"a": x, "b": x}
            self.outputs = {"y": x.clone()}

        def backward(self, rec, grad_outputs):
            return {"y": grad_outputs["y"]}

    x = GpuTensor.from_numpy(np.ones(4, np.float32))
    tape = Tape()
    op = tape.record(Bad(x))
    with pytest.raises(ValueError, match=r"returned gradients for \['y'\], which are not its inputs"):
        tape.backward(Recorder(), {op.outputs["y"]: x})
    with pytest.raises(TypeError, match="autodiff.Op"):
        tape.record(object())


def test_render_op_on_tape_two_views(gpu):
    """Two renders of the same splats: the tape sums both backward passes on the GPU."""
    from brushpy.gpu import GpuTensor, Recorder
    from brushpy.render.backward import RenderOp
    from brushpy.render.splats import Splats

    s, v1 = _gpu_scene(4, n=24, width=32, height=24)
    s2 = dict(s)
    s2["world_to_camera"] = s["world_to_camera"].copy()
    s2["world_to_camera"][0, 3] += 0.3  # a second, shifted view
    v2 = np.random.default_rng(9).normal(size=v1.shape) * 0.1
    splats = Splats.from_numpy(*[s[k] for k in PARAMS])
    tape = Tape()
    ops = [tape.record(RenderOp(_upload_state(sc), splats)) for sc in (s, s2)]
    rec = Recorder()
    seeds = {op.outputs["image"]: GpuTensor.from_numpy(v.astype(np.float32)) for op, v in zip(ops, (v1, v2))}
    grads = tape.backward(rec, seeds)
    rec.submit()
    r1 = render_vjp(*scene_args(s), v1, s["background"])
    r2 = render_vjp(*scene_args(s2), v2, s2["background"])
    for name, t in zip(PARAMS, (splats.means, splats.rotations, splats.log_scales, splats.sh_coeffs, splats.raw_opacities)):
        assert _rel(grads[t].numpy(), r1[name] + r2[name]) < 2e-4, name
    # the refine statistic of each view stays on its op
    w, h = s["width"], s["height"]
    np.testing.assert_allclose(
        ops[1].grads.refine_weight.numpy(), np.linalg.norm(r2["v_xy"] * [w, h], axis=-1), rtol=2e-3, atol=1e-7
    )
