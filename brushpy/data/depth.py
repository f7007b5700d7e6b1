"""Depth maps: finding, checking and decoding them, and sparse depth from COLMAP points.

``View.depth`` is float32 [H,W] in metres (scene units: the poses' units), 0 = invalid, the
same size as ``View.image``; None when the view has no depth. Sources:

* a file per view: a 16-bit PNG in millimetres (scale 0.001; 65535 is invalid too), or a float
  ``.npy`` / TIFF in metres (scale 1). ``LoadConfig.depth_scale`` (``--depth-scale``) replaces
  the per-format scale; nerfstudio's ``depth_unit_scale_factor`` does when the flag is unset.
  Found beside the images (a ``depth/`` or ``depths/`` folder, matched by image stem), named by a
  nerfstudio frame's ``depth_file_path``, or a 7-Scenes ``frame-N.depth.png``;
* sparse depth (``--depth-from-points``, COLMAP): the z of the points3D each image observes,
  written at the nearest pixel (the nearest z where several land on one pixel).

A file's size is checked when the dataset loads (``check_depth_size``): the same aspect as its
image is resized with it (nearest; a warning when only the scale differs), another aspect is an
error. Decoding (``DepthSpec.decode``, with the image) resizes to the image's size, undistorts
with the image's maps (nearest), and turns NaN, infinite and negative values into 0 (a warning
with the count), as it warns about a map with no valid pixel.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import InputError
from .images import companion_index, find_companion
from .source import DatasetSource
from .undistort import UndistortPlan

log = logging.getLogger("brushpy.data")

DEPTH_FOLDERS = ("depth", "depths")
PNG_EXTENSIONS = (".png",)
FLOAT_EXTENSIONS = (".npy", ".tif", ".tiff")
#: Raw value -> metres by format, when neither ``--depth-scale`` nor the dataset says otherwise.
PNG_SCALE = 0.001
FLOAT_SCALE = 1.0
_PNG_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_PNG_INVALID = 65535


class DepthMapError(InputError):
    """A depth map that cannot be used (the message names the file)."""


def depth_index(source: DatasetSource) -> dict[str, list[str]]:
    """``{lowercase stem: [paths]}`` of the files below ``depth/`` or ``depths/`` folders."""
    return companion_index(source, DEPTH_FOLDERS)


def find_depth(image_rel: str, index: dict[str, list[str]]) -> str | None:
    """The depth map of an image in a ``depth/`` (``depths/``) folder: same stem (or
    ``<stem>.depth``), subfolders matching the end of the image's folder; None when absent."""
    return find_companion(image_rel, index, DEPTH_FOLDERS, ".depth")


def default_scale(rel: str) -> float:
    """Raw value -> metres of a depth file by its format: 0.001 for PNG (millimetres), 1 else."""
    return PNG_SCALE if rel.lower().endswith(PNG_EXTENSIONS) else FLOAT_SCALE


def _kind(source: DatasetSource, rel: str) -> str:
    low = rel.lower()
    if low.endswith(PNG_EXTENSIONS):
        return "png"
    if low.endswith(".npy"):
        return "npy"
    if low.endswith((".tif", ".tiff")):
        return "tiff"
    raise DepthMapError(f"depth map {source.display_path(rel)}: unsupported format; give a 16-bit PNG "
                        "(millimetres), a float .npy or a TIFF (metres)")


def read_depth_size(source: DatasetSource, rel: str) -> tuple[int, int]:
    """``(width, height)`` of a depth map from its header.

    Raises:
        DepthMapError: unreadable, not a 16-bit PNG / 2D array, or an unsupported format (names the file).
    """
    return _read(source, rel, header=True)


def read_depth_raw(source: DatasetSource, rel: str) -> np.ndarray:
    """float32 [H,W] raw values of a depth file (not scaled; PNG 65535 -> 0).

    Raises:
        DepthMapError: unreadable file (names it).
    """
    return _read(source, rel, header=False)


def _read(source: DatasetSource, rel: str, header: bool):
    """The size (``header``) or the raw float32 values of a depth file."""
    kind = _kind(source, rel)
    where = source.display_path(rel)
    try:
        if kind == "png":
            with Image.open(source.open_for_pil(rel)) as im:
                if im.mode not in _PNG_MODES:
                    raise DepthMapError(
                        f"depth map {where}: a PNG depth map must be 16-bit greyscale (millimetres), this one "
                        f"is mode {im.mode}; convert it, or remove it from the depth folder")
                if header:
                    return im.size
                raw = np.asarray(im).astype(np.float32)
            raw[raw == _PNG_INVALID] = 0.0
            return raw
        data = io.BytesIO(source.read_bytes(rel))
        if kind == "npy":
            if header:
                version = np.lib.format.read_magic(data)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read_header(data)
                return _shape_size(shape, dtype, where)
            arr = np.load(data, allow_pickle=False)
        else:
            import tifffile

            if header:
                with tifffile.TiffFile(data) as tif:
                    return _shape_size(tif.pages[0].shape, tif.pages[0].dtype, where)
            arr = tifffile.imread(data)
        w, h = _shape_size(arr.shape, arr.dtype, where)
        return np.asarray(arr, np.float32).reshape(h, w)
    except DepthMapError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
        raise DepthMapError(f"cannot read depth map {where}: {exc}") from None


def _shape_size(shape, dtype, where: str) -> tuple[int, int]:
    """(width, height) of a [H,W] or [H,W,1] array of numbers."""
    shape = tuple(shape)
    if len(shape) == 3 and shape[2] == 1:
        shape = shape[:2]
    if len(shape) != 2 or np.dtype(dtype).kind not in "fiu":
        raise DepthMapError(f"depth map {where}: expected a 2D array of numbers, got shape {shape} "
                            f"of {np.dtype(dtype)}")
    return int(shape[1]), int(shape[0])


def check_depth_size(source: DatasetSource, depth_rel: str, image_rel: str, image_size: tuple[int, int],
                     resized: list[str]) -> None:
    """Check a depth map against its image (``image_size`` = (w, h) as the camera sees it).

    Same size: fine. Same aspect (to a pixel), other scale: appended to ``resized`` (the loader
    warns once); it is resized with the image, nearest.

    Raises:
        DepthMapError: unreadable, or another aspect ratio (names both files and sizes).
    """
    dw, dh = read_depth_size(source, depth_rel)
    w, h = image_size
    if (dw, dh) == (w, h):
        return
    if abs(dh * w / dw - h) <= 1.0 and abs(dw * h / dh - w) <= 1.0:
        resized.append(f"{depth_rel} is {dw}x{dh}, image {w}x{h}")
        return
    raise DepthMapError(
        f"depth map {source.display_path(depth_rel)} is {dw}x{dh} but its image {source.display_path(image_rel)} "
        f"is {w}x{h} (another aspect ratio): the depth does not cover the image; give a depth map of the "
        "image's size (or of its aspect), or remove it")


def sparse_depth(camera, xyz: np.ndarray) -> np.ndarray:
    """float32 [H,W]: the camera-space z of world points ``xyz`` [N,3] at the pixel each
    projects into (nearest pixel; where several land on one, the nearest z); 0 elsewhere.
    Points behind the camera or outside the image are dropped."""
    R, t = camera.world_to_camera[:3, :3], camera.world_to_camera[:3, 3]
    p = np.asarray(xyz, np.float64) @ R.T + t
    z = p[:, 2]
    front = z > 1e-9
    p, z = p[front], z[front]
    col = np.floor(camera.fx * p[:, 0] / z + camera.cx).astype(np.int64)
    row = np.floor(camera.fy * p[:, 1] / z + camera.cy).astype(np.int64)
    inside = (col >= 0) & (col < camera.width) & (row >= 0) & (row < camera.height)
    out = np.full((camera.height, camera.width), np.inf, np.float32)
    np.minimum.at(out, (row[inside], col[inside]), z[inside].astype(np.float32))
    out[np.isinf(out)] = 0.0
    return out


@dataclass
class DepthSpec:
    """How one view's depth is made.

    Attributes:
        source: the dataset the file lives in.
        path: depth file relative to the dataset, or None for sparse depth from ``points``.
        scale: raw value -> metres.
        size: (width, height) after resizing, before undistortion (the image's ``ImageSpec.size``).
        undistort: the image's undistortion, or None.
        points: world points [N,3] observed by the view (sparse depth), or None.
    """

    source: DatasetSource
    path: str | None
    scale: float
    size: tuple[int, int]
    undistort: UndistortPlan | None = None
    points: np.ndarray | None = None

    @property
    def display_path(self) -> str:
        return self.source.display_path(self.path) if self.path is not None else "(COLMAP points3D)"

    def decode(self, camera) -> np.ndarray:
        """float32 [H,W] metres, 0 = invalid, at ``camera``'s size (the decoded image's).

        Raises:
            DepthMapError: unreadable file (names it).
        """
        if self.path is None:
            return sparse_depth(camera, self.points if self.points is not None else np.zeros((0, 3)))
        raw = read_depth_raw(self.source, self.path)
        depth = raw * np.float32(self.scale)
        bad = ~np.isfinite(depth) | (depth < 0)
        n_bad = int(bad.sum())
        if n_bad:
            depth[bad] = 0.0
            log.warning("depth map %s: %d value(s) are NaN, infinite or negative; treated as invalid (0)",
                        self.display_path, n_bad)
        if (depth.shape[1], depth.shape[0]) != tuple(self.size):
            depth = cv2.resize(depth, tuple(self.size), interpolation=cv2.INTER_NEAREST_EXACT)
        if self.undistort is not None:
            depth = self.undistort.apply(depth, cv2.INTER_NEAREST)
        if not depth.any():
            log.warning("depth map %s: no valid depth (every value is 0 or invalid); the view trains "
                        "without depth", self.display_path)
        return np.ascontiguousarray(depth, np.float32)
