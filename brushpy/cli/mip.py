"""``brushpy mip ...`` commands (a click group; the main CLI attaches :data:`mip_group`).

- ``mip train VOLUME``: fit Gaussians to MIPs of a (Z, Y, X) TIFF/.npy volume;
  checkpoints ``checkpoint_iter{N}.npz`` (parameters, view metadata and the Adam
  moments, ``adam.*``; ``--checkpoint`` resumes from one) every ``--checkpoint-every`` steps,
  then ``model.npz``, ``model.ply`` and ``eval.json`` (held-out PSNR/SSIM) in
  ``--output``.
- ``mip render MODEL --angles 0,45,90 -o DIR``: write MIP PNGs.
- ``mip export MODEL -o FILE.ply``: INRIA-layout PLY (see :func:`brushpy.mip.model.export_ply`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import numpy as np

from ..io.atomic import atomic_write, ensure_writable_dir
from ..mip.camera import AXES, orbit_cameras
from . import ReportingGroup


def _parse_angles(text: str) -> list[float]:
    try:
        vals = [float(a) for a in str(text).replace(" ", ",").split(",") if a != ""]
    except ValueError as exc:
        raise click.BadParameter(f"angles must be numbers separated by commas, got {text!r}") from exc
    if not vals:
        raise click.BadParameter("give at least one angle")
    return vals


def training_angles(num_views: int, span: float = 180.0) -> list[float]:
    """``num_views`` angles evenly spaced over ``[0, span)`` degrees."""
    return [span * i / num_views for i in range(num_views)]


def held_out_angles(num_views: int, num_eval: int, span: float = 180.0) -> list[float]:
    """``num_eval`` evaluation angles in ``[0, span)`` that are not training angles.

    With ``num_eval <= num_views`` they are midpoints between consecutive training
    angles, spread over the span (8 training, 4 held out: 11.25, 56.25, 101.25,
    146.25); otherwise evenly spaced, nudged by a quarter training step where one
    would coincide with a training angle.
    """
    if num_eval <= 0:
        return []
    step = span / num_views
    if num_eval <= num_views:
        picks = np.floor(np.arange(num_eval) * num_views / num_eval).astype(int)
        return [float(step * (i + 0.5)) for i in picks]
    out = []
    for i in range(num_eval):
        a = span * (i + 0.5) / num_eval
        if abs(a / step - round(a / step)) < 1e-6:
            a += step / 4
        out.append(float(a))
    return out


def _save_png(img: np.ndarray, path: Path) -> None:
    from PIL import Image

    with atomic_write(path, option="-o/--output") as f:
        Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)).save(f, format="PNG")


@click.group("mip", cls=ReportingGroup)
def mip_group():
    """MIP mode: emissive 3D Gaussians fitted to maximum intensity projections of a volume."""


@mip_group.command("train")
@click.argument("volume", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--iterations", default=1000, show_default=True, help="Training steps (each renders all views).")
@click.option("--lr", default=1e-3, show_default=True, help="Adam LR of means and amplitudes (scales, rotations: 0.1x).")
@click.option("--lambda-mse", default=1.0, show_default=True, help="Weight of the MSE term.")
@click.option("--lambda-ssim", default=0.1, show_default=True, help="Weight of the 1 - SSIM term.")
@click.option("--num-views", default=3, show_default=True, help="Training views, evenly spaced over [0, 180) degrees.")
@click.option("--eval-views", default=4, show_default=True, help="Held-out views (halfway between training angles).")
@click.option("--resolution", nargs=2, type=int, default=(256, 256), show_default=True, help="MIP size H W in pixels.")
@click.option("--num-gaussians", default=2000, show_default=True, help="Gaussians to initialise (ignored with --checkpoint).")
@click.option("--init", "init_mode", type=click.Choice(["volume", "random"]), default="volume", show_default=True,
              help="Initial positions: bright voxels (intensity-weighted) or uniform random.")
@click.option("--threshold", default=0.1, show_default=True, help="Bright-voxel threshold for --init volume (normalised intensity).")
@click.option("--checkpoint", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Start from this model/checkpoint .npz.")
@click.option("--checkpoint-every", default=500, show_default=True, help="Write checkpoint_iter{N}.npz every N steps (0: never).")
@click.option("--output", "-o", type=click.Path(file_okay=False, path_type=Path), default=Path("mip_output"), show_default=True)
@click.option("--temperature", default=0.1, show_default=True, help="Soft-max temperature 1/p of the p-norm (-> 0: hard max).")
@click.option("--axis", type=click.Choice(AXES), default="y", show_default=True, help="Rotation axis of the views.")
@click.option("--perspective/--orthographic", default=False, show_default=True, help="Camera model.")
@click.option("--fov", default=30.0, show_default=True, help="Perspective field of view in degrees.")
@click.option("--voxel-size", nargs=3, type=float, default=(1.0, 1.0, 1.0), show_default=True, help="Voxel size Z Y X (anisotropic volumes).")
@click.option("--projection", "projections", nargs=2, multiple=True, type=(float, click.Path(exists=True, dir_okay=False)),
              help="User projection: ANGLE IMAGE (repeatable); replaces the computed training MIPs.")
@click.option("--max-grad-norm", default=1.0, show_default=True, help="Gradient clipping total norm.")
@click.option("--mean-lr-final-factor", default=1.0, show_default=True,
              help="Means LR decays exponentially to lr x this by the last step (1: constant).")
@click.option("--seed", default=0, show_default=True)
def train_cmd(volume, iterations, lr, lambda_mse, lambda_ssim, num_views, eval_views, resolution, num_gaussians, init_mode,
              threshold, checkpoint, checkpoint_every, output, temperature, axis, perspective, fov, voxel_size, projections,
              max_grad_norm, mean_lr_final_factor, seed):
    """Fit emissive Gaussians to MIPs of VOLUME (a .tif/.tiff stack or .npy, Z Y X)."""
    from tqdm import tqdm

    from ..mip.camera import box_extents
    from ..mip.model import MipGaussians, export_ply, init_from_volume, init_random
    from ..mip.train import MipTrainConfig, MipTrainer, evaluate
    from ..mip.volume import load_projection_image, load_volume, true_mips

    vol = load_volume(volume)  # a VolumeError (an InputError) reaches the group's handler: `Error: …`, exit 2
    if num_views < 1:
        raise click.BadParameter(f"must be >= 1, got {num_views}", param_hint="--num-views")
    E = box_extents(vol.shape, voxel_size)
    res = (int(resolution[0]), int(resolution[1]))
    if projections:
        angles = [float(a) for a, _ in projections]
        cams = orbit_cameras(E, angles, res, axis, perspective, fov)
        targets = [load_projection_image(p, res) for _, p in projections]
    else:
        angles = training_angles(num_views)
        cams = orbit_cameras(E, angles, res, axis, perspective, fov)
        targets = true_mips(vol, cams)
    ev_angles = held_out_angles(len(angles), eval_views)
    ev_cams = orbit_cameras(E, ev_angles, res, axis, perspective, fov)
    ev_targets = true_mips(vol, ev_cams)
    resume_adam = {}
    if checkpoint is not None:
        model, extra = MipGaussians.load(checkpoint)  # MipModelError: `Error: …`, exit 2
        resume_adam = {k[len("adam."):]: v for k, v in extra.items() if k.startswith("adam.")}
    else:
        p = init_from_volume(vol, num_gaussians, threshold, seed, E) if init_mode == "volume" else init_random(num_gaussians, seed)
        model = MipGaussians.from_numpy(**p)
    cfg = MipTrainConfig(iterations=iterations, lr=lr, lambda_mse=lambda_mse, lambda_ssim=lambda_ssim,
                         temperature=temperature, max_grad_norm=max_grad_norm,
                         mean_lr_final_factor=mean_lr_final_factor)
    trainer = MipTrainer(model, cams, targets, cfg)
    if resume_adam:
        trainer.adam.load_state_dict(resume_adam)
    ensure_writable_dir(output, "-o/--output")
    meta = dict(extents=E, axis=np.array(axis), resolution=np.array(res), temperature=np.array(temperature),
                perspective=np.array(perspective), fov=np.array(fov), volume_shape=np.array(vol.shape))
    t0 = time.perf_counter()
    last = None
    with tqdm(total=iterations, desc="mip train", unit="it") as bar:
        for it in range(1, iterations + 1):
            read = it % 10 == 0 or it == iterations
            loss = trainer.step(read_loss=read)
            if loss is not None:
                last = loss
                bar.set_postfix(loss=f"{loss['loss']:.5f}", mse=f"{loss['mse']:.2e}")
            bar.update(1)
            if checkpoint_every and it % checkpoint_every == 0:
                trainer.check()
                adam_state = {f"adam.{k}": v for k, v in trainer.adam.state_dict().items()}
                model.save(output / f"checkpoint_iter{it}.npz", iteration=np.array(it), **meta, **adam_state)
    wall = time.perf_counter() - t0
    trainer.check()
    final = model.save(output / "model.npz", iteration=np.array(iterations), **meta)
    export_ply(model.to_numpy(), output / "model.ply", E)
    results, images = evaluate(model, ev_cams, ev_targets, temperature)
    for r, img, gt in zip(results, images, ev_targets):
        _save_png(img, output / f"eval_{r['angle']:.2f}.png")
        _save_png(gt, output / f"eval_{r['angle']:.2f}_gt.png")
    summary = {
        "iterations": iterations, "wall_s": wall, "it_per_s": iterations / wall if wall > 0 else None,
        "num_gaussians": model.num_gaussians, "train_angles": angles, "final_loss": last,
        "held_out": results,
        "mean_psnr": float(np.mean([r["psnr"] for r in results])) if results else None,
        "mean_ssim": float(np.mean([r["ssim"] for r in results])) if results else None,
    }
    with atomic_write(output / "eval.json", "w", encoding="utf-8", option="-o/--output") as f:
        f.write(json.dumps(summary, indent=2))
    click.echo(f"model: {final}")
    if results:
        click.echo(f"held-out PSNR {summary['mean_psnr']:.2f} dB, SSIM {summary['mean_ssim']:.4f} over {len(results)} views")


def _meta(extra: dict, key, default):
    return extra[key].item() if key in extra and extra[key].shape == () else (extra[key] if key in extra else default)


@mip_group.command("render")
@click.argument("model_path", metavar="MODEL", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--angles", default="0", show_default=True, help="Comma-separated view angles in degrees.")
@click.option("--output", "-o", type=click.Path(file_okay=False, path_type=Path), required=True, help="Folder for the PNGs.")
@click.option("--resolution", nargs=2, type=int, default=None, help="H W (default: the model's training size).")
@click.option("--axis", type=click.Choice(AXES), default=None, help="Rotation axis (default: the model's).")
@click.option("--temperature", type=float, default=None, help="Soft-max temperature (default: the model's).")
def render_cmd(model_path, angles, output, resolution, axis, temperature):
    """Render MIPs of a trained MODEL (.npz) at --angles; writes mip_{angle}.png into -o."""
    from ..mip.model import MipGaussians
    from ..mip.render import MipRenderer

    model, extra = MipGaussians.load(model_path)
    E = np.asarray(extra.get("extents", np.ones(3)), np.float64)
    res = tuple(int(v) for v in (resolution or extra.get("resolution", (256, 256))))
    axis = axis or str(_meta(extra, "axis", "y"))
    temperature = float(temperature if temperature is not None else _meta(extra, "temperature", 0.1))
    persp = bool(_meta(extra, "perspective", False))
    fov = float(_meta(extra, "fov", 30.0))
    cams = orbit_cameras(E, _parse_angles(angles), res, axis, persp, fov)
    r = MipRenderer(model.num_gaussians, res[0], res[1], temperature)
    ensure_writable_dir(output, "-o/--output")
    for cam in cams:
        path = output / f"mip_{cam.angle:g}.png"
        _save_png(r.render(model, cam), path)
        click.echo(str(path))


@mip_group.command("export")
@click.argument("model_path", metavar="MODEL", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True, help="PLY file to write.")
def export_cmd(model_path, output):
    """Write a trained MODEL (.npz) as an INRIA-layout 3DGS PLY."""
    from ..mip.model import MipGaussians, export_ply

    model, extra = MipGaussians.load(model_path)
    E = np.asarray(extra.get("extents", np.ones(3)), np.float64)
    click.echo(str(export_ply(model.to_numpy(), output, E)))


#: The name brushpy.cli's lazy group looks up (``brushpy mip ...``).
mip = mip_group
