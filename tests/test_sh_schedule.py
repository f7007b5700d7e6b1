"""The SH degree schedule (``--sh-degree-interval``, brushpy.train.config.TrainConfig.active_sh_degree):
bands enabled at the right steps, no gradient and no Adam update for inactive bands, and a run
resumed mid-schedule keeps it."""

from __future__ import annotations

import numpy as np
import pytest

from brushpy.errors import OptionError
from brushpy.train.config import ProcessConfig, TrainConfig
from tests.test_train import tiny_scene


def test_active_degree_follows_the_step():
    c = TrainConfig(sh_degree=3, sh_degree_interval=1000)
    got = {s: c.active_sh_degree(s) for s in (0, 999, 1000, 1999, 2000, 2999, 3000, 10**6)}
    assert got == {0: 0, 999: 0, 1000: 1, 1999: 1, 2000: 2, 2999: 2, 3000: 3, 10**6: 3}
    assert [TrainConfig(sh_degree=3).active_sh_degree(s) for s in (0, 5000)] == [3, 3]  # 0: all bands always
    assert TrainConfig(sh_degree=1, sh_degree_interval=10).active_sh_degree(100) == 1  # capped at --sh-degree
    with pytest.raises(OptionError, match="--sh-degree-interval"):
        TrainConfig(sh_degree_interval=-1).validate()


def _bands(sh: np.ndarray) -> list[np.ndarray]:
    """[N,16,3] coefficients split into bands 0..3."""
    return [sh[:, b * b:(b + 1) * (b + 1)] for b in range(4)]


def test_inactive_bands_get_no_gradient_or_update_and_resume_keeps_the_schedule(gpu, tmp_path):
    from brushpy.train.trainer import Trainer

    scene = tiny_scene(max_frames=4, resolution=32)
    # no refine (the splat set stays the same) and no position noise, so only the schedule changes SH
    cfg = TrainConfig(total_steps=30, sh_degree=3, sh_degree_interval=4, refine_every=1000, mean_noise_weight=0.0,
                      background_color=(1.0, 1.0, 1.0))
    tr = Trainer(scene, cfg, ProcessConfig(seed=1))
    sh0 = tr.splats.sh_coeffs.numpy()
    assert not np.any(sh0[:, 1:]), "the random init has only band 0"
    for _ in range(4):  # steps 0..3: band 0 only
        tr.step()
    assert tr.sh_degree_now == 0
    grad = tr._grads.sh_coeffs.numpy()  # the last step's render gradient
    assert np.any(grad[:, 0]) and not np.any(grad[:, 1:])
    sh = tr.splats.sh_coeffs.numpy()
    assert not np.array_equal(sh[:, 0], sh0[:, 0])
    assert not np.any(sh[:, 1:]), "inactive bands moved"

    for _ in range(3):  # steps 4..6: bands 0-1
        tr.step()
    assert tr.sh_degree_now == 1
    grad = tr._grads.sh_coeffs.numpy()
    b = _bands(grad)
    assert np.any(b[1]) and not np.any(grad[:, 4:])
    sh = tr.splats.sh_coeffs.numpy()
    assert np.any(_bands(sh)[1]) and not np.any(sh[:, 4:])
    ckpt = tr.save_checkpoint(tmp_path / "ckpt.npz")  # saved mid-schedule, at step 7 (degree 1)

    resumed = Trainer(scene, cfg, ProcessConfig(seed=1))
    assert resumed.sh_degree_now == 0
    resumed.load_checkpoint(ckpt)
    assert resumed.step_count == 7 and resumed.sh_degree_now == 1
    resumed.step()  # step 7: still degree 1
    assert not np.any(resumed.splats.sh_coeffs.numpy()[:, 4:])
    resumed.step()  # step 8: band 2 on
    assert resumed.sh_degree_now == 2
    sh = resumed.splats.sh_coeffs.numpy()
    assert np.any(_bands(sh)[2]) and not np.any(_bands(sh)[3])
    assert np.any(_bands(resumed._grads.sh_coeffs.numpy())[2])
