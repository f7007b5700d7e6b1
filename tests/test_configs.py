"""Options resolved once (brushpy.train.config.resolve_configs): precedence, conversion, one default per
option, and the viewer's dataset path honouring args.txt as `brushpy train` does."""

from __future__ import annotations

from dataclasses import fields
from types import SimpleNamespace

import numpy as np
import pytest

from brushpy.data import LoadConfig, load_dataset, resolve_load_config
from brushpy.data.config import convert_option
from brushpy.optim import AdamConfig
from brushpy.train.config import CONFIG_CLASSES, ProcessConfig, TrainConfig, resolve_configs
from tests.conftest import REPO
from tests.test_data_misc import _make_transforms

LEGO = REPO / "assets" / "lego_small"
ARGS = "--total-steps 77 --lr-opac 0.3 --seed 5 --random-init-scene-scale 2.5 --max-resolution 20 --eval-every 9\n"


def _scene(root, args: str = ARGS):
    """A 3-view nerfstudio dataset with ``args`` as its args.txt, loaded as the viewer loads it."""
    _make_transforms(root, n=3)
    (root / "args.txt").write_text(args)
    return load_dataset(root, resolve_load_config(root, {"progress": False}), decode=False)


def _viewer_configs(scene, configs=(None, None)):
    """What ViewerSession._finish_dataset_load hands to start_training for a loaded dataset."""
    from brushpy.viewer.session import LoadJob, ViewerSession

    started = {}
    app = SimpleNamespace(path_input="x", error=None,
                          start_training=lambda d, c, p: started.update(dataset=d, config=c, process=p))
    job = LoadJob([], dataset=True, configs=configs, result=scene, done=True)
    assert ViewerSession._finish_dataset_load(app, job) is True, app.error
    assert started["dataset"] is scene
    return started["config"], started["process"]


def test_viewer_dataset_load_honours_args_txt_training_options(tmp_path):
    scene = _scene(tmp_path)
    assert scene.train_views[0].camera.width == 20  # (the dataset option, as before)
    config, process = _viewer_configs(scene)
    assert (config.total_steps, config.lr_opac, config.random_init_scene_scale) == (77, 0.3, 2.5)
    assert (process.seed, process.eval_every) == (5, 9)
    # the same options `brushpy train` resolves for this dataset
    cli = resolve_configs(scene)
    assert (config, process) == (cli.train, cli.process)
    # configs the caller chose win
    tc, pc = TrainConfig(total_steps=3), ProcessConfig(seed=1)
    assert _viewer_configs(scene, (tc, pc)) == (tc, pc)


def test_viewer_dataset_load_nerf_synthetic_white_background():
    scene = load_dataset(LEGO, LoadConfig(max_frames=2, max_resolution=16, progress=False), decode=False)
    config, process = _viewer_configs(scene)
    assert config.background_color == (1.0, 1.0, 1.0) and process == ProcessConfig()


def test_precedence_cli_over_args_txt_over_defaults(tmp_path):
    _make_transforms(tmp_path, n=3)
    (tmp_path / "args.txt").write_text(ARGS + "--background-color 0.5,0.5,0.5 --no-such-option 3\n")
    c = resolve_configs(tmp_path, {"lr-opac": "0.25", "seed": 8, "max_frames": None, "invert_masks": True})
    assert (c.train.total_steps, c.train.lr_opac, c.train.background_color) == (77, 0.25, (0.5, 0.5, 0.5))
    assert (c.process.seed, c.process.eval_every, c.process.export_every) == (8, 9, ProcessConfig().export_every)
    assert (c.load.max_resolution, c.load.max_frames, c.load.invert_masks) == (20, None, True)
    assert c.user_set == {"total_steps", "lr_opac", "seed", "random_init_scene_scale", "max_resolution", "eval_every",
                          "background_color", "invert_masks"}
    assert c.unknown == ("no_such_option",) and c.implied == {}
    # no args.txt: the defaults
    (tmp_path / "args.txt").unlink()
    d = resolve_configs(tmp_path)
    assert (d.load, d.train, d.process, d.user_set) == (LoadConfig(), TrainConfig(), ProcessConfig(), frozenset())


def test_dataset_implied_options_only_for_unset_ones():
    scene = load_dataset(LEGO, LoadConfig(max_frames=2, max_resolution=16, progress=False), decode=False)
    assert resolve_configs(scene).implied == {"background_color": (1.0, 1.0, 1.0)}
    c = resolve_configs(scene, {"background_color": "0,0,1"})
    assert c.train.background_color == (0.0, 0.0, 1.0) and c.implied == {}
    assert resolve_configs(LEGO).train.background_color == TrainConfig().background_color  # not loaded: nothing implied


def test_bad_values_name_the_flag_and_args_txt(tmp_path):
    _make_transforms(tmp_path, n=3)
    (tmp_path / "args.txt").write_text("--lr-opac fast\n")
    with pytest.raises(ValueError, match=r"args\.txt: --lr-opac: cannot read 'fast'"):
        resolve_configs(tmp_path)
    (tmp_path / "args.txt").write_text("--random-init-scene-scale -1\n")
    with pytest.raises(ValueError, match="--random-init-scene-scale must be > 0"):
        resolve_configs(tmp_path)
    (tmp_path / "args.txt").write_text("--render-mode blurry\n")
    with pytest.raises(ValueError, match="--render-mode: 'blurry' is not one of default, mip"):
        resolve_configs(tmp_path)
    (tmp_path / "args.txt").unlink()
    with pytest.raises(ValueError, match="not an option of brushpy train: --lr-opacity"):
        resolve_configs(tmp_path, {"lr_opacity": 0.1})


def test_convert_option_reads_each_field_type():
    assert convert_option(TrainConfig, "total_steps", "12") == 12 and convert_option(TrainConfig, "total_steps", 12.0) == 12
    assert convert_option(TrainConfig, "lr_mean", "-1e-5") == -1e-5
    assert convert_option(TrainConfig, "random_init_scene_scale", "none") is None
    assert convert_option(TrainConfig, "background_color", " 1, 0.5,0") == (1.0, 0.5, 0.0)
    assert convert_option(LoadConfig, "invert_masks", True) is True
    assert [convert_option(ProcessConfig, "eval_save_to_disk", t) for t in ("yes", "off", "")] == [True, False, True]
    assert convert_option(LoadConfig, "alpha_mode", "auto") is None
    assert convert_option(LoadConfig, "alpha_mode", "masked") == "masked"
    for cls, name, text in [(TrainConfig, "background_color", "1,1"), (TrainConfig, "sh_degree", "3.5"),
                            (LoadConfig, "invert_masks", "maybe"), (TrainConfig, "total_steps", "none")]:
        with pytest.raises(ValueError, match=f"--{name.replace('_', '-')}: cannot read"):
            convert_option(cls, name, text)


def test_cli_flags_use_the_same_conversion(tmp_path):
    from click.testing import CliRunner

    from brushpy.cli.train import _build_configs, train

    ctx = train.make_context("train", [str(tmp_path), "--background-color", "0,1,0", "--max-frames", "4"])
    t, load, _, user_set = _build_configs(ctx, tmp_path, dict(ctx.params))
    assert t.background_color == (0.0, 1.0, 0.0) and load.max_frames == 4
    assert user_set == {"background_color", "max_frames"}
    res = CliRunner().invoke(train, [str(tmp_path), "--background-color", "1,1"])
    assert res.exit_code == 2 and "--background-color" in res.output and "cannot read '1,1'" in res.output


def test_one_default_per_option():
    """seed and random_init_scene_scale have one owner; the optimizer options' defaults are AdamConfig's,
    with the values training used before (so training results are unchanged)."""
    owners = {}
    for cls in CONFIG_CLASSES:
        for f in fields(cls):
            owners.setdefault(f.name, []).append(cls.__name__)
    assert {k: v for k, v in owners.items() if len(v) > 1} == {}
    assert owners["seed"] == ["ProcessConfig"] and owners["random_init_scene_scale"] == ["TrainConfig"]
    t, a = TrainConfig(), AdamConfig()
    shared = [f.name for f in fields(AdamConfig) if f.name in {g.name for g in fields(TrainConfig)}]
    assert set(shared) == {"lr_mean", "lr_mean_end", "lr_coeffs_dc", "lr_coeffs_sh_scale", "lr_opac", "lr_scale",
                           "lr_rotation", "total_steps"}
    assert all(getattr(t, n) == getattr(a, n) for n in shared)
    assert AdamConfig.from_options(t) == a
    assert [getattr(t, n) for n in ("lr_mean", "lr_mean_end", "lr_coeffs_dc", "lr_coeffs_sh_scale", "lr_opac",
                                    "lr_scale", "lr_rotation", "total_steps")] == [
        2e-4, 2e-6, 5e-3, 10.0, 0.05, 1e-2, 2e-3, 30000]


def test_trainer_random_init_uses_train_config_scale_and_process_seed(gpu):
    from brushpy.train.init import scene_initial_splats
    from brushpy.train.trainer import Trainer

    scene = load_dataset(LEGO, LoadConfig(max_frames=4, max_resolution=16, progress=False))
    cfg = TrainConfig(random_init_scene_scale=2.0, sh_degree=0, min_scale_factor=0.0)
    tr = Trainer(scene, cfg, ProcessConfig(seed=3))
    want = scene_initial_splats(scene, 2.0, 3)
    np.testing.assert_array_equal(tr.splats.means.numpy(), want["means"])
    np.testing.assert_allclose(tr.splats.log_scales.numpy(), np.log(2.0 / 10000 ** (1 / 3)), rtol=1e-6)


def test_depth_loss_weight_schedule():
    """--depth-loss-weight: constant unless --depth-loss-weight-end is set, then the means'
    exponential schedule (brushpy.optim.exponential_schedule) from one to the other."""
    from brushpy.errors import OptionError
    from brushpy.optim import exponential_schedule, mean_lr
    from brushpy.train.config import TrainConfig

    assert TrainConfig().depth_loss_weight_at(0) == 0.0  # off by default
    c = TrainConfig(total_steps=1000, depth_loss_weight=0.5)
    assert c.depth_loss_weight_at(0) == c.depth_loss_weight_at(999) == 0.5
    c = TrainConfig(total_steps=1000, depth_loss_weight=1.0, depth_loss_weight_end=0.01)
    assert c.depth_loss_weight_at(0) == pytest.approx(1.0)
    assert c.depth_loss_weight_at(500) == pytest.approx(0.1)  # geometric mean
    assert c.depth_loss_weight_at(1000) == pytest.approx(0.01)
    assert c.depth_loss_weight_at(5000) == pytest.approx(0.01)  # clamped
    for step in (0, 123, 1000):  # the same curve as the means' learning rate
        assert c.depth_loss_weight_at(step) == pytest.approx(mean_lr(step, 1000, 1.0, 0.01, 1.0), rel=1e-12)
    assert TrainConfig(depth_loss_weight=0.0, depth_loss_weight_end=0.1).depth_loss_weight_at(5) == 0.0
    with pytest.raises(ValueError, match="start and end > 0"):
        exponential_schedule(0, 10, 1.0, 0.0)
    for bad, msg in (({"depth_loss_weight": -1.0}, "--depth-loss-weight must"),
                     ({"depth_loss_weight_end": 0.0}, "--depth-loss-weight-end must be > 0"),
                     ({"init": "lidar"}, "--init must be one of auto, points, random, depth"),
                     ({"init_stride": 0}, "--init-stride must")):
        with pytest.raises(OptionError, match=msg):
            TrainConfig(**bad).validate()


def test_none_on_the_command_line_clears_an_optional_option(tmp_path):
    """``--log-dir none`` turns the logs off (it used to come back as the default folder: click reads
    ``none`` as None, which resolve_configs took for "not given")."""
    from brushpy.cli.train import _given_values, train

    _make_transforms(tmp_path, n=3)
    ctx = train.make_context("train", [str(tmp_path), "--log-dir", "none", "--max-frames", "auto"])
    given = _given_values(ctx, ctx.params)
    c = resolve_configs(tmp_path, given)
    assert c.process.log_dir is None and c.load.max_frames is None
    assert {"log_dir", "max_frames"} <= c.user_set
    plain = train.make_context("train", [str(tmp_path)])
    assert resolve_configs(tmp_path, _given_values(plain, plain.params)).process.log_dir == ProcessConfig().log_dir
