"""``load_dataset``: detect a dataset's format and load it into a ``Scene``.

Formats, tried in this order:

1. COLMAP: a folder holding ``cameras.{bin,txt}`` + ``images.{bin,txt}``
   (``sparse/N/`` or the root; with several, the model with most images);
2. nerfstudio / instant-ngp: ``transforms.json``;
3. NeRF-synthetic: ``transforms_train.json`` (+ ``transforms_test/val.json``);
4. RGB-D frames in the 7-Scenes layout (``rgbd.py``): ``frame-N.color.png`` +
   ``frame-N.pose.txt`` (+ ``frame-N.depth.png``) and ``camera-intrinsics.txt``.

The dataset may be a folder or a ``.zip`` of one. Views are sorted by image
name (digit runs compared numerically), then ``subsample_frames`` and
``max_frames`` apply, then ``eval_split_every`` moves every n-th view to the
eval set (unless the dataset ships its own eval file). Initial points: COLMAP
``points3D``, ``ply_file_path`` of a transforms file, or a file named
``init.ply`` anywhere in the dataset (which takes precedence, as in Brush).
Depth maps (``depth.py``): ``View.depth``, ``Scene.has_depth``.
"""

from __future__ import annotations

import logging
import os

from . import colmap, nerf_synthetic, nerfstudio, rgbd
from .config import LoadConfig
from .images import has_masks_folder
from .init_points import InitPoints
from .scene import LoadReport, Scene, split_every
from .source import DatasetError, DatasetSource  # noqa: F401  (DatasetError: re-exported)

log = logging.getLogger("brushpy.data")

LOOKED_FOR = (
    "a COLMAP model (cameras.bin/.txt + images.bin/.txt in sparse/N/ or the root), "
    "transforms.json (nerfstudio / instant-ngp), transforms_train.json (NeRF-synthetic) or "
    "7-Scenes RGB-D frames (frame-N.color.png + frame-N.pose.txt, camera-intrinsics.txt)"
)


def load_dataset(path: str | os.PathLike | DatasetSource, config: LoadConfig | None = None,
                 decode: bool = True) -> Scene:
    """Load a dataset folder or zip.

    Args:
        path: dataset folder, ``.zip`` of one, or an open ``DatasetSource``.
        config: loading options (``LoadConfig()`` defaults = Brush's). ``args.txt`` is
            NOT read here; use ``args_txt.resolve_load_config`` to build the config.
        decode: decode every image now (thread pool + progress bar); with False
            pixels are decoded on first access of ``View.image``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DatasetError: no recognised cameras, or no usable training views (names the folder).
        images.ImageDecodeError: a corrupt image (names the file).
        colmap.ColmapFormatError, nerfstudio.TransformsFormatError, rgbd.RgbdFormatError,
        undistort.UnsupportedCameraModel: bad camera files (names the file).
        depth.DepthMapError: an unreadable depth map, or one of another aspect than its image
            (names the files).
    """
    config = config or LoadConfig()
    source = path if isinstance(path, DatasetSource) else DatasetSource(path)
    where = str(source.path)
    alpha_mode = config.alpha_mode or ("masked" if has_masks_folder(source) else "transparent")
    report = LoadReport()
    init_points = None
    evals = None

    loaded = colmap.load_colmap_scene(source, config, alpha_mode, report)
    if loaded is not None:
        views, init_points, folder = loaded
        log.info("%s: COLMAP model in %s/", where, folder or ".")
        kind, fmt = "COLMAP", "colmap"
    else:
        rel = nerfstudio.find_transforms(source, "transforms.json")
        if rel is not None:
            data = nerfstudio.read_json(source, rel)
            views = nerfstudio.load_transforms_views(source, rel, config, alpha_mode, report, data)
            init_points = nerfstudio.load_ply_init(source, rel, data, config)
            kind, fmt = f"nerfstudio ({rel})", "nerfstudio"
        else:
            rel = nerfstudio.find_transforms(source, "transforms_train.json")
            if rel is not None:
                views, evals, init_points = nerf_synthetic.load_synthetic_views(source, rel, config, alpha_mode,
                                                                                report)
                kind, fmt = f"NeRF-synthetic ({rel})", "nerf-synthetic"
            else:
                views = rgbd.load_rgbd_views(source, config, alpha_mode, report)
                if views is None:
                    raise DatasetError(f"{where}: no cameras found; looked for {LOOKED_FOR}")
                kind, fmt = "RGB-D frames (7-Scenes layout)", "rgbd"
    if config.depth_from_points and fmt != "colmap":
        report.warn(f"{where}: --depth-from-points needs a COLMAP model (points3D and their tracks); "
                    f"ignored for this {kind} dataset")
    warnings = report.flush(where)
    if evals is None:
        train, evals = split_every(views, config.eval_split_every)
    else:
        train = views
    if not train:
        raise DatasetError(
            f"{where}: no usable training views in the {kind} dataset "
            f"({len(views)} loaded, {len(evals)} eval; images missing or filtered out by --max-frames/--subsample-frames?)"
        )
    init_rel = next((f for f in source.files if f.rsplit("/", 1)[-1].lower() == "init.ply"), None)
    if init_rel is not None:
        init_points = InitPoints.from_ply(source.read_bytes(init_rel), source.display_path(init_rel)).subsample(
            config.subsample_points)
        log.info("initial points from %s (%d points)", source.display_path(init_rel), len(init_points))
    scene = Scene(source.name, train, evals, init_points, alpha_mode, source, warnings, config, kind=fmt)
    log.info("%s: %s, %d train + %d eval views, %s initial points, alpha mode %s, %d views with depth", where,
             kind, len(train), len(evals), len(init_points) if init_points is not None else "no", alpha_mode,
             sum(v.depth_spec is not None for v in scene.views))
    if decode:
        scene.decode()
    return scene
