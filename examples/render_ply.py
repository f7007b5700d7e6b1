"""Render a splat PLY from Python: load, frame, rasterize, save (what `brushpy render` does).

    python examples/render_ply.py assets/example_scene.ply example.png

The camera orbits the scene: the default framing camera is turned by --turn degrees
about the up axis (-y) around the centre of the scene's bounds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from brushpy.io import read_ply  # noqa: E402
from brushpy.io.framing import DEFAULT_UP, framing_camera, robust_bounds  # noqa: E402
from brushpy.render.camera import Camera  # noqa: E402
from brushpy.render.forward import rasterize  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scene", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--size", type=int, nargs=2, default=(640, 480), metavar=("W", "H"))
    parser.add_argument("--turn", type=float, default=30.0, help="degrees to orbit about the up axis")
    args = parser.parse_args()

    splats = read_ply(args.scene)  # SplatData: numpy float32 arrays
    width, height = args.size
    camera = framing_camera(splats.means, width, height, fov_y_deg=50.0)

    # orbit: rotate the camera centre about the up axis through the bounds' centre (Rodrigues)
    lo, hi = robust_bounds(splats.means)
    centre = 0.5 * (lo + hi)
    axis = np.asarray(DEFAULT_UP, np.float64)
    a = np.deg2rad(args.turn)
    offset = camera.position - centre
    offset = offset * np.cos(a) + np.cross(axis, offset) * np.sin(a) + axis * axis.dot(offset) * (1 - np.cos(a))
    camera = Camera.look_at(centre + offset, centre, DEFAULT_UP, 50.0, width, height)

    image = rasterize(
        splats.means, splats.rotations, splats.log_scales, splats.sh_coeffs, splats.raw_opacities,
        camera.world_to_camera, camera.intrinsics, width, height, background=(1.0, 1.0, 1.0),
    )  # float32 [H, W, 4]: RGB over the background, alpha
    rgb = np.round(np.clip(image[..., :3], 0.0, 1.0) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(args.output)
    print(f"wrote {args.output}: {splats.num_splats} splats, camera at {np.round(camera.position, 3)}")


if __name__ == "__main__":
    main()
