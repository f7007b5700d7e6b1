#!/usr/bin/env python3
"""Look for seams: render a held-out view across a partitioned run's block boundary.

Picks the eval view in which the most init points near the boundary between the first two blocks'
cores project inside the image, renders it from the merged splats (and from ``--compare PLY``, a
monolithic run, when given), and writes one image: ground truth | merged | [monolithic] | merged
with each splat tinted by the block that kept it (red 0_0, blue the next, ...), so the boundary can
be found in the plain render. ``--eval`` also prints the held-out PSNR/SSIM of the merged set and of
``--compare`` through the same evaluation (:meth:`brushpy.train.trainer.Trainer.evaluate` on the
full scene's eval split; the files' 3D filter is already folded in, so none is added).

    python3 scripts/partition_seams.py DATA OUT --max-resolution 320 --eval-split-every 8 \\
        --compare MONO/export_1000.ply -o docs/images/partition_seams.png

OUT is the partitioned run's export folder (``partition.json``, ``merged.ply``).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from brushpy.data import LoadConfig, load_dataset  # noqa: E402
from brushpy.distributed.partition import project_fraction  # noqa: E402
from brushpy.distributed.partitioned import partition_from_summary  # noqa: E402
from brushpy.io import read_splats  # noqa: E402
from brushpy.io.atomic import atomic_write  # noqa: E402
from brushpy.render.forward import render_forward  # noqa: E402
from brushpy.train.init import rgb_to_sh_dc  # noqa: E402

TINTS = np.array([[1, 0.2, 0.2], [0.2, 0.4, 1], [0.2, 0.9, 0.2], [1, 0.9, 0.2]], np.float32)


def render(data, camera) -> np.ndarray:
    state = render_forward(data.to_gpu(), camera, background=(0.0, 0.0, 0.0))
    return np.clip(state.image.numpy()[..., :3], 0, 1)


def evaluate(scene, data) -> dict:
    """Held-out PSNR/SSIM of a splat file's contents on ``scene``'s eval views."""
    from brushpy.distributed.partitioned import SPLAT_ARRAYS
    from brushpy.train.config import TrainConfig
    from brushpy.train.trainer import Trainer

    degree = int(round(np.sqrt(data.sh_coeffs.shape[1]))) - 1
    config = TrainConfig(min_scale_factor=0.0, sh_degree=degree, max_splats=max(1, len(data.means)))
    res = Trainer(scene, config, initial={k: getattr(data, k) for k in SPLAT_ARRAYS}).evaluate()
    return {"psnr": round(res["psnr"], 3), "ssim": round(res["ssim"], 4), "num_splats": len(data.means)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dataset")
    ap.add_argument("out", help="the partitioned run's export folder")
    ap.add_argument("--max-resolution", type=int, default=1920)
    ap.add_argument("--eval-split-every", type=int, default=8)
    ap.add_argument("--compare", help="a monolithic run's PLY to render beside the merged one")
    ap.add_argument("--view", help="render this eval view instead of choosing one")
    ap.add_argument("--eval", action="store_true", help="also print the held-out PSNR/SSIM of both (JSON)")
    ap.add_argument("-o", "--output", required=True)
    args = ap.parse_args()

    summary = json.loads((Path(args.out) / "partition.json").read_text())
    part = partition_from_summary(summary)
    scene = load_dataset(args.dataset, LoadConfig(max_resolution=args.max_resolution,
                                                  eval_split_every=args.eval_split_every, progress=False), decode=False)
    merged = read_splats(summary["merged"]["export"])
    pts = scene.init_points.positions if scene.init_points is not None else merged.means
    g = part.frame.to_ground(pts)
    cut = part.blocks[0].core[1]  # the first block's upper edges; the finite one is the boundary
    axis = int(np.flatnonzero(np.isfinite(cut))[0])
    near = pts[np.abs(g[:, axis] - cut[axis]) < 0.05 * (np.percentile(g[:, axis], 99) - np.percentile(g[:, axis], 1))]
    views = scene.eval_views
    if args.view:
        view = next(v for v in views if v.name == args.view)
    else:
        cams = [v.camera for v in views]
        w2c = np.stack([c.world_to_camera for c in cams])
        intr = np.array([[c.fx, c.fy, c.cx, c.cy] for c in cams])
        sizes = np.array([[c.width, c.height] for c in cams], np.float64)
        view = views[int(np.argmax(project_fraction(w2c, intr, sizes, near)))]
    cam = view.camera
    owner = part.owner(merged.means)
    tinted = replace(merged, sh_coeffs=np.concatenate(
        [rgb_to_sh_dc(TINTS[owner % len(TINTS)]), np.zeros_like(merged.sh_coeffs[:, 1:])], axis=1))
    panels = [view.image[..., :3].astype(np.float32) / 255.0, render(merged, cam)]
    if args.compare:
        panels.append(render(read_splats(args.compare), cam))
    panels.append(0.5 * panels[1] + 0.5 * render(tinted, cam))
    strip = np.concatenate([np.pad(p, ((0, 0), (0, 4), (0, 0)), constant_values=1.0) for p in panels], axis=1)
    from PIL import Image

    with atomic_write(args.output) as f:
        Image.fromarray((strip * 255 + 0.5).astype(np.uint8)).save(f, format="PNG")
    if args.eval:
        scene.decode(progress=False)
        figures = {"merged": evaluate(scene, merged)}
        if args.compare:
            figures["compare"] = evaluate(scene, read_splats(args.compare))
        print(json.dumps(figures))
    print(f"{view.name}: wrote {args.output} (ground truth | merged{' | monolithic' if args.compare else ''} | "
          f"tinted by block)")


if __name__ == "__main__":
    main()
