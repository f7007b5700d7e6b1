"""nerfstudio / instant-ngp ``transforms.json`` datasets.

Per file: intrinsics ``fl_x, fl_y, cx, cy, w, h`` (or ``camera_angle_x/y``,
the full field of view in radians: ``f = 0.5 w / tan(angle / 2)``), optional
``camera_model`` (``OPENCV``, ``OPENCV_FISHEYE``, ``PINHOLE``/``PERSPECTIVE``)
with distortion ``k1 k2 [k3] p1 p2`` (fisheye: ``k1..k4``); without
``camera_model``, non-zero ``k*``/``p*`` mean ``OPENCV`` (instant-ngp files).
Every one of these can be overridden per frame. ``w``/``h`` default to the
image's size, ``cx``/``cy`` to the image centre, a missing ``fl_y`` to ``fl_x``.

``transform_matrix`` is camera-to-world in the OpenGL/Blender convention
(+x right, +y up, camera looks down -z); brushpy's cameras are OpenCV's, so the
camera's y and z axes are flipped: ``c2w_cv = c2w_gl @ diag(1, -1, -1, 1)``.

``file_path`` is relative to the json's folder; a path without extension gets
``.png`` (NeRF-synthetic). ``ply_file_path`` names an initial point cloud.

Depth (``depth.py``): a frame's ``depth_file_path`` (relative to the json's folder), else a
file in a ``depth/`` (``depths/``) folder matched by image stem. ``depth_unit_scale_factor``
(top level or per frame) turns raw values into metres, as in nerfstudio, unless
``--depth-scale`` is given.
"""

from __future__ import annotations

import json
import logging
import math
import posixpath

import numpy as np

from ..errors import InputError
from .depth import depth_index, find_depth
from .images import find_mask, mask_index, read_image_size
from .init_points import InitPoints
from .scene import LoadReport, View, make_view, natural_key, select_frames
from .undistort import Distortion

log = logging.getLogger("brushpy.data")

OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])
SUPPORTED_NERFSTUDIO_MODELS = ("PINHOLE", "PERSPECTIVE", "OPENCV", "OPENCV_FISHEYE")


class TransformsFormatError(InputError):
    """A transforms.json that cannot be used (the message names the file)."""


def read_json(source, rel: str) -> dict:
    try:
        data = json.loads(source.read_bytes(rel).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise TransformsFormatError(f"{source.display_path(rel)}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("frames"), list):
        raise TransformsFormatError(f"{source.display_path(rel)}: expected an object with a `frames` list")
    return data


def opengl_c2w_to_world_to_camera(c2w_gl) -> np.ndarray:
    """world_to_camera (OpenCV axes) from an OpenGL camera-to-world 4x4 (or 3x4) matrix."""
    m = np.asarray(c2w_gl, np.float64)
    if m.shape == (3, 4):
        m = np.vstack([m, [0.0, 0.0, 0.0, 1.0]])
    if m.shape != (4, 4):
        raise ValueError(f"transform_matrix has shape {m.shape}, expected 4x4")
    return np.linalg.inv(m @ OPENGL_TO_OPENCV)


def _get(frame: dict, scene: dict, key: str):
    v = frame.get(key)
    return scene.get(key) if v is None else v


def _distortion(frame: dict, scene: dict, origin: str) -> tuple[Distortion | None, str]:
    model = _get(frame, scene, "camera_model")
    k = [float(_get(frame, scene, f"k{i}") or 0.0) for i in (1, 2, 3, 4)]
    p = [float(_get(frame, scene, f"p{i}") or 0.0) for i in (1, 2)]
    if model is None:
        model = "OPENCV" if any(k) or any(p) else "PINHOLE"
    model = str(model).upper()
    if model in ("PINHOLE", "PERSPECTIVE"):
        return None, model
    if model == "OPENCV":
        return Distortion("opencv", (k[0], k[1], p[0], p[1], k[2])), model
    if model == "OPENCV_FISHEYE":
        return Distortion("fisheye", (k[0], k[1], k[2], k[3])), model
    raise TransformsFormatError(
        f"{origin}: camera_model {model} is not supported; supported: {', '.join(SUPPORTED_NERFSTUDIO_MODELS)}"
    )


def _number(value, key: str, where: str) -> float:
    """``value`` of ``key`` as a finite float, or a TransformsFormatError naming ``where`` and the key."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        out = math.nan
    if isinstance(value, bool) or not math.isfinite(out):
        raise TransformsFormatError(f"{where}: `{key}` is {json.dumps(value)}, not a finite number; give a number")
    return out


def _focal(frame: dict, scene: dict, fl_key: str, angle_key: str, size: float | None, where: str) -> float | None:
    """Focal length in pixels from ``fl_key`` or the full field of view ``angle_key`` (radians);
    None when neither is given.

    Raises:
        TransformsFormatError: a value that is not a number, a focal length <= 0 or a field of
            view outside (0, pi) (names ``where`` and the key).
    """
    for src in (frame, scene):
        if src.get(fl_key) is not None:
            f = _number(src[fl_key], fl_key, where)
            if f <= 0.0:
                raise TransformsFormatError(f"{where}: `{fl_key}` = {f:g}; the focal length must be > 0 pixels")
            return f
        if src.get(angle_key) is not None and size is not None:
            a = _number(src[angle_key], angle_key, where)
            if not 0.0 < a < math.pi:
                raise TransformsFormatError(
                    f"{where}: `{angle_key}` = {a:g}; the field of view must be in (0, pi) radians")
            return 0.5 * size / math.tan(0.5 * a)
    return None


def frame_image_path(source, json_rel: str, file_path: str) -> tuple[str, str | None]:
    """(path as named, resolved dataset path or None) for a frame's ``file_path``."""
    base = posixpath.dirname(json_rel)
    rel = posixpath.normpath(posixpath.join(base, file_path.replace("\\", "/")))
    hit = source.resolve(rel)
    if hit is None and not posixpath.splitext(rel)[1]:
        rel = rel + ".png"
        hit = source.resolve(rel)
    return rel, hit


def load_transforms_views(source, json_rel: str, config, alpha_mode: str, report: LoadReport,
                          data: dict | None = None) -> list[View]:
    """Views of one transforms file, sorted by image name, frame options applied.

    Frames whose image is missing are counted in ``report.missing`` (skipped).

    Raises:
        TransformsFormatError: a frame without focal length or transform, a value that is not a
            number, a non-positive focal length or size, a field of view outside (0, pi), a
            non-finite ``transform_matrix``, a ``depth_file_path`` that is missing, a
            ``depth_unit_scale_factor`` that is not a positive number (names the file and the frame).
        depth.DepthMapError: an unreadable depth map or one of another aspect than its image.
    """
    data = read_json(source, json_rel) if data is None else data
    origin = source.display_path(json_rel)
    masks = mask_index(source)
    depths = depth_index(source)
    entries = []
    for i, frame in enumerate(data["frames"]):
        if "file_path" not in frame or "transform_matrix" not in frame:
            raise TransformsFormatError(f"{origin}: frame {i} needs `file_path` and `transform_matrix`")
        named, rel = frame_image_path(source, json_rel, str(frame["file_path"]))
        if rel is None:
            report.missing.append(named)
            continue
        entries.append((rel, frame))
    entries.sort(key=lambda e: natural_key(e[0]))
    views = []
    for rel, frame in select_frames(entries, config):
        where = f"{origin}: frame {frame.get('file_path')!r}"
        w, h = _get(frame, data, "w"), _get(frame, data, "h")
        declared = None
        if w is not None and h is not None:
            declared = (int(round(_number(w, "w", where))), int(round(_number(h, "h", where))))
            if min(declared) < 1:
                raise TransformsFormatError(f"{where}: image size w x h = {declared[0]}x{declared[1]}; "
                                            "give the image's width and height in pixels (or leave them out)")
        size = declared if declared is not None else read_image_size(source, rel)
        fx = _focal(frame, data, "fl_x", "camera_angle_x", size[0], where)
        fy = _focal(frame, data, "fl_y", "camera_angle_y", size[1], where)
        if fx is None and fy is None:
            raise TransformsFormatError(
                f"{origin}: frame {frame.get('file_path')!r} has no focal length (fl_x/fl_y or camera_angle_x/y)"
            )
        fx = fy if fx is None else fx
        fy = fx if fy is None else fy
        cx = _get(frame, data, "cx")
        cy = _get(frame, data, "cy")
        cx = size[0] / 2.0 if cx is None else _number(cx, "cx", where)
        cy = size[1] / 2.0 if cy is None else _number(cy, "cy", where)
        dist, model = _distortion(frame, data, origin)
        try:
            c2w = np.asarray(frame["transform_matrix"], np.float64)
            if not np.all(np.isfinite(c2w)):
                raise ValueError("transform_matrix has NaN or infinite entries; fix or remove this frame")
            w2c = opengl_c2w_to_world_to_camera(c2w)
        except (ValueError, TypeError, np.linalg.LinAlgError) as exc:
            raise TransformsFormatError(f"{where}: {exc}") from None
        if not np.all(np.isfinite(w2c)):
            raise TransformsFormatError(f"{where}: transform_matrix is not invertible; fix or remove this frame")
        depth_rel, depth_scale = _frame_depth(source, json_rel, frame, data, where)
        views.append(make_view(source, rel, w2c, (fx, fy, cx, cy), declared, dist, model, config, alpha_mode,
                               find_mask(source, rel, masks), report,
                               depth_path=depth_rel or find_depth(rel, depths), depth_scale=depth_scale))
    return views


def _frame_depth(source, json_rel: str, frame: dict, data: dict, where: str) -> tuple[str | None, float | None]:
    """(the frame's ``depth_file_path`` resolved, or None; ``depth_unit_scale_factor`` or None)."""
    factor = _get(frame, data, "depth_unit_scale_factor")
    if factor is not None:
        factor = _number(factor, "depth_unit_scale_factor", where)
        if factor <= 0.0:
            raise TransformsFormatError(f"{where}: `depth_unit_scale_factor` = {factor:g}; give a positive "
                                        "number (raw depth x factor = metres)")
    named = frame.get("depth_file_path")
    if not named:
        return None, factor
    _, rel = frame_image_path(source, json_rel, str(named))
    if rel is None:
        raise TransformsFormatError(f"{where}: depth_file_path {named!r} not found in the dataset; fix the path "
                                    "(relative to the json's folder) or remove the key")
    return rel, factor


def load_ply_init(source, json_rel: str, data: dict, config) -> InitPoints | None:
    """Points from the file's ``ply_file_path`` (None when unset).

    Raises:
        TransformsFormatError: the named PLY does not exist in the dataset (names both).
    """
    ply = data.get("ply_file_path")
    if not ply:
        return None
    rel = source.resolve(posixpath.normpath(posixpath.join(posixpath.dirname(json_rel), str(ply))))
    if rel is None:
        raise TransformsFormatError(
            f"{source.display_path(json_rel)}: ply_file_path {ply!r} not found in the dataset; "
            "fix the path (relative to the json's folder) or remove the key to start from random points")
    pts = InitPoints.from_ply(source.read_bytes(rel), source.display_path(rel))
    log.info("initial points from %s (%d points)", source.display_path(rel), len(pts))
    return pts.subsample(config.subsample_points)


def find_transforms(source, name: str) -> str | None:
    """Shallowest file called ``name`` (case-insensitive) in the dataset."""
    hits = [f for f in source.files if f.rsplit("/", 1)[-1].lower() == name]
    return min(hits, key=lambda f: (f.count("/"), f)) if hits else None
