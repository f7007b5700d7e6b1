"""``brushpy feedforward``: splats from two posed views by the feed-forward encoder (issue 15).

``predict MODEL DATASET --context i,j -o splats.ply`` (MODEL: a weights file from ``train``, or
``plane-sweep`` for the untrained classical baseline); ``train DATA... -o MODEL_DIR``.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import OptionError
from . import ReportingGroup


@click.group("feedforward", cls=ReportingGroup)
def feedforward():
    """Feed-forward splats: an encoder that predicts splats from 2 posed context views."""


def _load_scene(path):
    from ..data import LoadConfig, load_dataset

    return load_dataset(path, LoadConfig())


@feedforward.command("predict")
@click.argument("model")
@click.argument("dataset", type=click.Path(exists=True))
@click.option("--context", default="0,1", show_default=True, help="Two view indices i,j (Scene.views order).")
@click.option("-o", "--output", type=click.Path(), required=True, help="The splat file to write (.ply).")
@click.option("--resolution", default="128", show_default=True, help="N or WxH (multiples of 8).")
@click.option("--near", type=float, default=None, help="Nearest depth of the cost volume (default: from the data).")
@click.option("--far", type=float, default=None, help="Farthest depth of the cost volume (default: from the data).")
@click.option("--planes", type=int, default=32, show_default=True, help="Depth planes of the plane-sweep baseline.")
def predict(model, dataset, context, output, resolution, near, far, planes):
    """Predict splats from two context views of DATASET with MODEL (or `plane-sweep`)."""
    from ..feedforward.baseline import BASELINE_NAME
    from ..feedforward.inference import predict as run_predict
    from ..feedforward.model import load_model
    from ..io.ply import write_ply

    if planes < 2:
        raise OptionError(f"--planes must be >= 2, got {planes}")
    encoder = BASELINE_NAME if model == BASELINE_NAME else load_model(model)[0]
    scene = _load_scene(dataset)
    pred = run_predict(encoder, scene, context, resolution, near, far, planes)
    write_ply(output, pred.splats, option="--output")
    click.echo(f"{pred.splats.num_splats:,} splats from views {pred.samples[0].name}, {pred.samples[1].name} "
               f"(depth {pred.near:.3g}..{pred.far:.3g}) in {pred.seconds:.2f} s -> {output}")


@feedforward.command("train")
@click.argument("data", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-o", "--output", "out_dir", type=click.Path(), required=True, help="Model folder.")
@click.option("--steps", type=int, default=200, show_default=True)
@click.option("--resolution", default="128", show_default=True, help="N or WxH (multiples of 8).")
@click.option("--targets", type=int, default=2, show_default=True, help="Target views per sample (M).")
@click.option("--gap", default="1,4", show_default=True, help="MIN,MAX index distance of the context views.")
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--warmup", type=int, default=20, show_default=True, help="Warm-up steps.")
@click.option("--clip", type=float, default=1.0, show_default=True, help="Gradient norm clip (0: off).")
@click.option("--depth-weight", type=float, default=0.1, show_default=True,
              help="Weight of the inverse-depth L1 where the data has depth.")
@click.option("--planes", type=int, default=16, show_default=True, help="Depth planes D.")
@click.option("--channels", type=int, default=16, show_default=True, help="Feature channels C.")
@click.option("--checkpoint-every", type=int, default=50, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from MODEL_DIR's checkpoint.")
def train(data, out_dir, steps, resolution, targets, gap, lr, warmup, clip, depth_weight, planes, channels,
          checkpoint_every, seed, resume):
    """Train the encoder on the multi-view datasets DATA..."""
    from ..feedforward.context import parse_resolution
    from ..feedforward.encoder import EncoderConfig
    from ..feedforward.training import FFTrainConfig, train as run_train

    try:
        lo, hi = (int(p) for p in gap.split(","))
    except ValueError:
        raise OptionError(f"--gap {gap!r}: give MIN,MAX (e.g. 1,4)") from None
    if not 1 <= lo <= hi:
        raise OptionError(f"--gap {gap!r}: need 1 <= MIN <= MAX")
    if steps < 1 or targets < 1:
        raise OptionError("--steps and --targets must be >= 1")
    try:
        enc = EncoderConfig(feature_channels=channels, num_planes=planes)
        enc.validate()
    except ValueError as exc:
        raise OptionError(f"--channels/--planes: {exc}") from None
    config = FFTrainConfig(steps=steps, resolution=parse_resolution(resolution), num_targets=targets, min_gap=lo,
                           max_gap=hi, lr=lr, warmup=warmup, clip=clip, depth_weight=depth_weight,
                           checkpoint_every=checkpoint_every, seed=seed, encoder=enc)
    scenes = [_load_scene(p) for p in data]
    rows = run_train(scenes, Path(out_dir), config, resume=resume)
    if rows:
        click.echo(f"steps {rows[0]['step']}..{rows[-1]['step']}: loss {rows[0]['loss']:.4f} -> {rows[-1]['loss']:.4f}, "
                   f"PSNR {rows[0]['psnr']:.2f} -> {rows[-1]['psnr']:.2f} dB; model: {Path(out_dir) / 'model.safetensors'}")
