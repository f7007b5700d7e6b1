"""Build the embedded default training scene `assets/lego_small` from NeRF-synthetic lego.

Usage: python scripts/make_lego_small.py [path/to/lego] [--size 100]

Takes every other train view and a few test views, box-downscales them with
premultiplied alpha (so transparent borders do not darken the edges), and
writes NeRF-synthetic `transforms_{train,test}.json` beside the PNGs. The scene
is by the NeRF authors (Mildenhall et al. 2020) under CC BY 3.0; the
attribution goes in `assets/lego_small/LICENSE.md`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image


def downscale_rgba(path: Path, size: int) -> Image.Image:
    rgba = np.asarray(Image.open(path).convert("RGBA"), np.float64) / 255.0
    h, w, _ = rgba.shape
    f = h // size
    if h % size or w % size or w // size != f:
        raise ValueError(f"{path}: {w}x{h} is not an integer multiple of {size}")
    premul = rgba.copy()
    premul[..., :3] *= premul[..., 3:4]
    small = premul.reshape(size, f, size, f, 4).mean(axis=(1, 3))
    alpha = small[..., 3:4]
    small[..., :3] = np.where(alpha > 0, small[..., :3] / np.maximum(alpha, 1e-12), 0.0)
    return Image.fromarray(np.clip(np.round(small * 255.0), 0, 255).astype(np.uint8), "RGBA")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", nargs="?", default=str(Path(__file__).resolve().parents[2] / "shared/datasets/lego_400"))
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--train-every", type=int, default=2)
    ap.add_argument("--num-test", type=int, default=10)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "assets/lego_small"))
    args = ap.parse_args()
    src, out = Path(args.source), Path(args.out)
    for split, pick in (("train", lambda fr: fr[:: args.train_every]), ("test", lambda fr: fr[:: max(1, len(fr) // args.num_test)][: args.num_test])):
        meta = json.loads((src / f"transforms_{split}.json").read_text())
        frames = pick(meta["frames"])
        (out / split).mkdir(parents=True, exist_ok=True)
        new_frames = []
        for fr in frames:
            name = Path(fr["file_path"]).name
            downscale_rgba(src / (fr["file_path"] + ".png"), args.size).save(out / split / f"{name}.png", optimize=True)
            new_frames.append({"file_path": f"./{split}/{name}", "transform_matrix": fr["transform_matrix"]})
        (out / f"transforms_{split}.json").write_text(
            json.dumps({"camera_angle_x": meta["camera_angle_x"], "frames": new_frames}, indent=1)
        )
        print(f"{split}: {len(new_frames)} views at {args.size}x{args.size}")


if __name__ == "__main__":
    main()
