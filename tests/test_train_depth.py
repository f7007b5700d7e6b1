"""Depth in training (issue 14): --init depth, --depth-loss-weight and the AbsRel evaluation, on the
real 7-Scenes RGB-D frames (../shared/datasets/rgbd_7scenes) at a tiny resolution."""

from __future__ import annotations

import pytest

from tests.conftest import SHARED, requires_shared

RGBD = SHARED / "datasets" / "rgbd_7scenes"


def _scene():
    from brushpy.data import LoadConfig, load_dataset

    return load_dataset(RGBD, LoadConfig(max_resolution=48, max_frames=10, eval_split_every=5, progress=False))


def _train(scene, steps, **kw):
    from brushpy.train.config import ProcessConfig, TrainConfig
    from brushpy.train.trainer import Trainer

    cfg = TrainConfig(total_steps=steps, refine_every=50, growth_stop_iter=40, sh_degree=1, init="depth",
                      init_stride=2, **kw)
    tr = Trainer(scene, cfg, ProcessConfig(seed=5))
    for _ in range(steps):
        tr.step()
    return tr


@requires_shared("datasets", "rgbd_7scenes")
def test_depth_loss_is_on_the_tape_and_lowers_the_depth_error(gpu):
    scene = _scene()
    plain = _train(scene, 60)
    supervised = _train(scene, 60, depth_loss_weight=0.5)
    assert plain.last_ops[-1] == "loss" and supervised.last_ops[-2:] == ("loss", "depth_loss")
    a, b = plain.evaluate(), supervised.evaluate()
    assert {"depth_abs_rel"} <= set(b) and all("depth_abs_rel" in v for v in b["views"])
    assert b["depth_abs_rel"] < 0.8 * a["depth_abs_rel"], (a["depth_abs_rel"], b["depth_abs_rel"])
    assert b["psnr"] > a["psnr"] - 1.0  # the depth term does not cost the image


def test_depth_loss_without_depth_maps_is_an_input_error(gpu):
    from brushpy.errors import InputError
    from brushpy.train.config import ProcessConfig, TrainConfig
    from brushpy.train.trainer import Trainer
    from tests.test_train import tiny_scene

    with pytest.raises(InputError, match="--depth-loss-weight 0.5: dataset .* has no depth maps"):
        Trainer(tiny_scene(max_frames=3, resolution=16), TrainConfig(depth_loss_weight=0.5), ProcessConfig())


def test_depth_abs_rel():
    import numpy as np

    from brushpy.loss import depth_abs_rel

    gt = np.array([[1.0, 2.0], [0.0, np.nan]])
    assert depth_abs_rel(np.array([[1.5, 2.0], [9.0, 9.0]]), gt) == (0.25, 2)
    assert depth_abs_rel(np.zeros((2, 2)), gt) == (1.0, 2)  # an empty render counts as error 1
    value, n = depth_abs_rel(np.ones((2, 2)), np.zeros((2, 2)))
    assert n == 0 and value != value
    with pytest.raises(ValueError):
        depth_abs_rel(np.ones((2, 3)), gt)
