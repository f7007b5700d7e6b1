"""``brushpy sfm INPUT``: camera poses for a folder of photos or a video (structure from motion).

Runs :func:`brushpy.data.sfm.run_sfm` (pycolmap, the optional ``brushpy[sfm]`` extra) and prints
its summary; the result is a COLMAP project ``brushpy train`` (and Brush, gsplat, nerfstudio)
reads. Bad input or too few registered images are reported by the ``brushpy`` group as one
``Error: …`` line (exit 2 for bad input, 1 for a reconstruction that failed).
"""

from __future__ import annotations

from pathlib import Path

import click

from ..data.sfm import CAMERA_MODELS, MAPPERS, MATCHERS, SfmOptions


@click.command("sfm")
@click.argument("source", metavar="INPUT", type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Folder for the COLMAP project (images/, sparse/0/, database.db). Default: INPUT_sfm beside "
                   "INPUT, the folder `brushpy train INPUT` reuses.")
@click.option("--fps", type=click.FloatRange(0.0, min_open=True), default=None,
              help="Video only: frames kept per second (the sharpest of each 1/fps window). Default: enough for "
                   "about 150 frames.")
@click.option("--camera-model", type=click.Choice(CAMERA_MODELS), default="SIMPLE_RADIAL", show_default=True,
              help="Camera model fitted to the photos (undistorted to PINHOLE at the end).")
@click.option("--camera-per", type=click.Choice(["folder", "image"]), default="folder", show_default=True,
              help="One camera shared by each folder's photos, or one per photo (mixed cameras or zoom).")
@click.option("--max-image-size", type=click.IntRange(64, 16384), default=1600, show_default=True,
              help="Long side in pixels the images are scaled to for feature extraction (smaller is faster; the "
                   "output images keep their size).")
@click.option("--matcher", type=click.Choice(MATCHERS), default="auto", show_default=True,
              help="Image pairs to match: every pair (exhaustive), or neighbours in name order (sequential). auto: "
                   "sequential for a video or more than 100 images, else exhaustive, retried with sequential "
                   "pairs when the exhaustive camera path folds (ordered photos of a symmetric object).")
@click.option("--mapper", type=click.Choice(MAPPERS), default="incremental", show_default=True,
              help="COLMAP's incremental mapper, or global mapping (GLOMAP; needs a pycolmap that has it).")
@click.option("--min-registered", type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True,
              help="Fraction of the images that must be placed; fewer is an error.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed of COLMAP's RANSAC and mapper.")
@click.option("--overwrite", is_flag=True, help="Replace an earlier SfM run in the output folder.")
@click.option("--colmap-log", is_flag=True, help="Show COLMAP's own log (default: silent; its failures are reported as brushpy errors).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def sfm(source: Path, output, fps, camera_model, camera_per, max_image_size, matcher, mapper, min_registered, seed,
        overwrite, colmap_log, quiet):
    """Find the camera poses of INPUT (a folder of photos, or a video) with COLMAP and write a
    COLMAP project: undistorted images, sparse/0/ and the feature database.

    Needs pycolmap: pip install 'brushpy[sfm]'.
    """
    from ..data.sfm import run_sfm
    from ..data.sfm_cache import default_sfm_dir

    options = SfmOptions(camera_model=camera_model, camera_per=camera_per, max_image_size=max_image_size,
                         matcher=matcher, mapper=mapper, fps=fps, min_registered=min_registered, seed=seed,
                         colmap_log=colmap_log, progress=not quiet)
    output = output if output is not None else default_sfm_dir(source)
    result = run_sfm(source, output, options, overwrite=overwrite, log_fn=click.echo)
    click.echo(result.summary())
    click.echo(f"wrote {output} (COLMAP project); train with: brushpy train {output}")
