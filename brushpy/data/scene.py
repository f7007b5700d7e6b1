"""``View`` and ``Scene``: posed images ready for training, and how a view is built.

A view's camera is fixed when the dataset is loaded (from file intrinsics and
image headers only); its pixels are decoded lazily on first access or all at
once by ``Scene.decode``.

Camera pipeline per view (``make_view``):

1. image size from the header, EXIF orientation applied -- unless the camera file
   declares the stored (unrotated) size of a 90-degree-rotated image, in which case
   the camera was calibrated on the stored pixels and the rotation is ignored
   (one warning with the count);
2. if it differs from the size the camera file declares, intrinsics are scaled
   to the real size (one warning per dataset with the count);
3. downscale so the long edge is at most ``max_resolution``, intrinsics scaled;
4. distorted lens models are undistorted to pinhole at that size
   (``undistort.plan_undistort``), border cropped.

A view's depth map (``depth.py``) follows the image through steps 3 and 4 (nearest).
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np

from ..io.framing import nearest_axis
from ..render.camera import Camera
from .config import LoadConfig
from .depth import DepthSpec, check_depth_size, default_scale
from .images import ImageSpec, decode_all, is_transposing, pack_rgba8, read_image_header, scaled_size
from .init_points import InitPoints
from .source import DatasetSource
from .undistort import Distortion, plan_undistort, release_undistort_maps

log = logging.getLogger("brushpy.data")


class View:
    """One posed image.

    Attributes:
        name: image file name (``0001.jpg``).
        image_path: where the image lives (``<folder>/<rel>`` or ``<zip>:<rel>``).
        camera: pinhole ``Camera`` (OpenCV axes, world_to_camera) matching the decoded image.
        spec: how the pixels are decoded (``images.ImageSpec``).
        depth_spec: how the depth map is made (``depth.DepthSpec``), or None (no depth).
    """

    def __init__(self, name: str, image_path: str, camera: Camera, spec: ImageSpec,
                 depth_spec: DepthSpec | None = None):
        self.name = name
        self.image_path = image_path
        self.camera = camera
        self.spec = spec
        self.depth_spec = depth_spec
        self._image: np.ndarray | None = None
        self._mask: np.ndarray | None = None
        self._depth: np.ndarray | None = None
        self._lock = threading.Lock()

    @property
    def mask_path(self) -> str | None:
        return self.spec.mask_path

    @property
    def is_loaded(self) -> bool:
        return self._image is not None

    def load(self) -> "View":
        """Decode the pixels (and the depth map, if any) now (no-op when already decoded). Returns self."""
        with self._lock:
            if self._image is None:
                image, mask = self.spec.decode()
                h, w = image.shape[:2]
                if (w, h) != (self.camera.width, self.camera.height):
                    raise RuntimeError(
                        f"{self.image_path}: decoded {w}x{h} but the camera is "
                        f"{self.camera.width}x{self.camera.height} (the file changed while loading?)"
                    )
                depth = self.depth_spec.decode(self.camera) if self.depth_spec is not None else None
                self._image, self._mask, self._depth = image, mask, depth
        return self

    def unload(self) -> None:
        """Drop the decoded pixels and depth (they are decoded again on next access)."""
        with self._lock:
            self._image = self._mask = self._depth = None

    @property
    def image(self) -> np.ndarray:
        """uint8 [H,W,3] or [H,W,4] (RGBA in transparent mode when the file has alpha)."""
        self.load()
        return self._image

    @property
    def mask(self) -> np.ndarray | None:
        """uint8 [H,W], 255 = pixel counts in the loss (masked alpha mode only), or None."""
        self.load()
        return self._mask

    @property
    def depth(self) -> np.ndarray | None:
        """float32 [H,W] depth in metres (scene units), 0 = invalid, the size of ``image``; None
        when the view has no depth. Decoded with the image."""
        if self.depth_spec is None:
            return None
        self.load()
        return self._depth

    @property
    def has_alpha(self) -> bool:
        """Whether the decoded image carries an alpha channel to train against."""
        return self.image.shape[2] == 4

    def packed_rgba8(self) -> np.ndarray:
        """uint32 [H,W] for GPU upload: RGB + (mask, or alpha, or 255); see ``images.pack_rgba8``."""
        return pack_rgba8(self.image, self.mask)

    def __repr__(self) -> str:
        c = self.camera
        return f"View({self.name!r}, {c.width}x{c.height}, f=({c.fx:.1f},{c.fy:.1f}))"


@dataclass
class Scene:
    """A loaded dataset.

    Attributes:
        name: dataset name (folder or zip name).
        train_views: views to train on, sorted by name.
        eval_views: held-out views (eval file, or every n-th view), sorted by name.
        init_points: point cloud for initialisation (COLMAP points3D or a PLY), or None.
        alpha_mode: ``"masked"`` or ``"transparent"``.
        source: the open dataset (views decode lazily from it).
        warnings: the warning lines emitted while loading.
        config: the options used.
        kind: the dataset format: ``"colmap"``, ``"nerfstudio"``, ``"nerf-synthetic"`` or
            ``"rgbd"`` (7-Scenes frames; empty for scenes built by hand).
    """

    name: str
    train_views: list[View]
    eval_views: list[View]
    init_points: InitPoints | None
    alpha_mode: str
    source: DatasetSource
    warnings: list[str] = field(default_factory=list)
    config: LoadConfig = field(default_factory=LoadConfig)
    kind: str = ""

    @property
    def views(self) -> list[View]:
        return self.train_views + self.eval_views

    def decode(self, num_workers: int | None = None, progress: bool | None = None) -> "Scene":
        """Decode every view's pixels in a thread pool (progress bar on by config). Returns self.

        Raises:
            images.ImageDecodeError: a corrupt image or mask (names the file).
        """
        todo = [v for v in self.views if not v.is_loaded]
        workers = num_workers if num_workers is not None else self.config.num_workers
        show = self.config.progress if progress is None else progress
        decode_all(todo, View.load, workers, show, desc=f"decoding {self.name}")
        release_undistort_maps()
        return self

    def subset(self, train_names, point_indices=None, eval_names=()) -> "Scene":
        """This scene restricted to some views and init points (one block of a partitioned scene,
        :mod:`brushpy.distributed`); training it is an ordinary run.

        Args:
            train_names: names of the training views to keep (in this scene's order).
            point_indices: int indices of the init points to keep (None: all of them).
            eval_names: names of the eval views to keep (default none).

        Returns:
            A new :class:`Scene` sharing this one's views (pixels decoded once) and source.

        Raises:
            KeyError: a name that is not a view of this scene.
        """
        def pick(views, names):
            by_name = {v.name: v for v in views}
            missing = [n for n in names if n not in by_name]
            if missing:
                raise KeyError(f"{self.name}: no view named {', '.join(missing[:5])}")
            wanted = set(names)
            return [v for v in views if v.name in wanted]

        points = self.init_points
        if points is not None and point_indices is not None:
            idx = np.asarray(point_indices, np.int64)
            points = InitPoints(points.positions[idx], points.colors[idx])
        return replace(self, train_views=pick(self.train_views, list(train_names)),
                       eval_views=pick(self.eval_views, list(eval_names)), init_points=points,
                       warnings=list(self.warnings))

    @property
    def vertical_axis(self) -> str | None:
        """The world's up axis as the training cameras hold it (:func:`cameras_vertical_axis`)."""
        return cameras_vertical_axis([v.camera for v in self.train_views])

    @property
    def has_depth(self) -> bool:
        """Whether any training view has depth (a depth map or sparse depth; decodes nothing)."""
        return any(v.depth_spec is not None for v in self.train_views)

    @property
    def has_alpha(self) -> bool:
        """Whether training views carry alpha (decodes them if needed)."""
        return self.alpha_mode == "transparent" and any(v.has_alpha for v in self.train_views)


def cameras_vertical_axis(cameras) -> str | None:
    """The world axis closest to the mean *up* direction of ``cameras`` (``"+z"``, ``"-y"``, ...).

    A camera's up is the world direction of its image's up, i.e. of its -y axis (OpenCV
    axes: +y points down the image), ``-world_to_camera[1, :3]``. People hold cameras
    upright, so the mean over a capture is the world's vertical; it is snapped to the nearest
    of ±x, ±y, ±z (:func:`brushpy.io.framing.nearest_axis`). NeRF-synthetic scenes (z-up
    Blender worlds) give ``"+z"``; COLMAP reconstructions, whose world follows the first
    camera, usually ``"-y"``. (Brush estimates its up from a PCA of the camera centres; the
    mean up vector is simpler and does not depend on the capture's path.)

    Returns None for no cameras or when the up vectors cancel out.
    """
    ups = [-np.asarray(c.world_to_camera, np.float64)[1, :3] for c in cameras]
    if not ups:
        return None
    mean = np.mean(ups, axis=0)
    if not np.linalg.norm(mean) > 1e-6:
        return None
    return nearest_axis(mean)


class LoadReport:
    """Collects per-file problems while loading and logs each kind once with a count."""

    def __init__(self):
        self.missing: list[str] = []
        self.size_mismatch: list[str] = []
        self.exif_ignored: list[str] = []
        self.undistorted: dict[str, int] = {}
        self.depth_resized: list[str] = []
        self.lines: list[str] = []

    def flush(self, folder: str) -> list[str]:
        def sample(items):
            head = ", ".join(items[:5])
            return head + (", ..." if len(items) > 5 else "")

        if self.missing:
            self._warn(f"{folder}: skipped {len(self.missing)} frame(s) whose image file is missing ({sample(self.missing)})")
        if self.size_mismatch:
            self._warn(
                f"{folder}: {len(self.size_mismatch)} image(s) differ in size from their camera; intrinsics were "
                f"rescaled to the image size ({sample(self.size_mismatch)})"
            )
        if self.exif_ignored:
            self._warn(
                f"{folder}: {len(self.exif_ignored)} image(s) carry an EXIF rotation but their camera matches the "
                f"stored pixels; the rotation is ignored for them ({sample(self.exif_ignored)})"
            )
        if self.depth_resized:
            self._warn(
                f"{folder}: {len(self.depth_resized)} depth map(s) differ in size from their image (same aspect); "
                f"resized with the image, nearest ({sample(self.depth_resized)})"
            )
        for model, n in self.undistorted.items():
            msg = f"{folder}: {n} image(s) with {model} cameras are undistorted to pinhole (border cropped)"
            log.info(msg)
            self.lines.append(msg)
        self.missing, self.size_mismatch, self.exif_ignored, self.undistorted = [], [], [], {}
        self.depth_resized = []
        return self.lines

    def warn(self, msg: str) -> None:
        """Log a warning now and keep it in the scene's warnings."""
        self._warn(msg)

    def _warn(self, msg: str) -> None:
        log.warning(msg)
        self.lines.append(msg)


def camera_problem(intrinsics, size) -> str | None:
    """What is wrong with a camera from a file, or None: focal lengths must be positive and finite,
    the principal point finite, the size (when known) positive. Loaders raise their own error
    naming the file with this text.
    """
    fx, fy, cx, cy = (float(v) for v in intrinsics)
    for name, f in (("fx", fx), ("fy", fy)):
        if not (np.isfinite(f) and f > 0.0):
            return f"focal length {name} = {f:g} must be a positive number of pixels; fix the calibration"
    if not (np.isfinite(cx) and np.isfinite(cy)):
        return f"principal point ({cx:g}, {cy:g}) must be finite; fix the calibration"
    if size is not None and not all(np.isfinite(v) and v >= 1 for v in size):
        return f"image size {size[0]}x{size[1]} must be at least 1x1; give the image's width and height in pixels"
    return None


@lru_cache(maxsize=256)
def _cached_plan(intrinsics, size, distortion):
    return plan_undistort(intrinsics, size, distortion)


def make_view(source: DatasetSource, rel: str, world_to_camera: np.ndarray,
              intrinsics: tuple[float, float, float, float], declared_size: tuple[int, int] | None,
              distortion: Distortion | None, model_name: str, config: LoadConfig, alpha_mode: str,
              mask_path: str | None, report: LoadReport, depth_path: str | None = None,
              depth_scale: float | None = None, depth_points: np.ndarray | None = None) -> View:
    """Build a view whose camera matches the decoded image (see the module docstring).

    ``intrinsics`` are (fx, fy, cx, cy) in pixels at ``declared_size`` (or at the image's
    real size when ``declared_size`` is None), brushpy pixel convention.

    Depth: ``depth_path`` names the view's depth map (raw value x ``config.depth_scale``, else
    ``depth_scale``, else the format's default = metres); without one, ``depth_points`` (world
    points [N,3]) give sparse depth. The map's size is checked here (``depth.check_depth_size``).

    Raises:
        depth.DepthMapError: an unreadable depth map, or one of another aspect than its image.
    """
    sw, sh, orientation = read_image_header(source, rel)
    apply_exif = True
    w0, h0 = (sh, sw) if is_transposing(orientation) else (sw, sh)
    if declared_size is not None and tuple(declared_size) != (w0, h0) and tuple(declared_size) == (sw, sh):
        # The camera was calibrated on the stored pixels (COLMAP does not rotate by EXIF): keep them.
        apply_exif = False
        w0, h0 = sw, sh
        report.exif_ignored.append(rel)
    fx, fy, cx, cy = intrinsics
    if declared_size is not None and tuple(declared_size) != (w0, h0):
        dw, dh = declared_size
        sx, sy = w0 / dw, h0 / dh
        fx, fy, cx, cy = fx * sx, fy * sy, cx * sx, cy * sy
        report.size_mismatch.append(f"{rel} is {w0}x{h0}, camera says {dw}x{dh}")
    w1, h1 = scaled_size(w0, h0, config.max_resolution)
    if (w1, h1) != (w0, h0):
        sx, sy = w1 / w0, h1 / h0
        fx, fy, cx, cy = fx * sx, fy * sy, cx * sx, cy * sy
    plan = None
    if distortion is not None and not distortion.is_identity():
        try:
            plan = _cached_plan((fx, fy, cx, cy), (w1, h1), distortion)
        except ValueError as exc:
            raise ValueError(f"{source.display_path(rel)}: {exc}") from None
        fx, fy, cx, cy = plan.new_intrinsics
        w1, h1 = plan.out_size
        report.undistorted[model_name] = report.undistorted.get(model_name, 0) + 1
    camera = Camera(world_to_camera, fx, fy, cx, cy, w1, h1)
    size = scaled_size(w0, h0, config.max_resolution)
    spec = ImageSpec(source, rel, mask_path, size, plan, alpha_mode, config.invert_masks, apply_exif)
    depth = None
    if depth_path is not None:
        check_depth_size(source, depth_path, rel, (w0, h0), report.depth_resized)
        scale = config.depth_scale or depth_scale or default_scale(depth_path)
        depth = DepthSpec(source, depth_path, scale, size, plan)
    elif depth_points is not None:
        depth = DepthSpec(source, None, 1.0, size, plan, np.asarray(depth_points, np.float64))
    return View(rel.rsplit("/", 1)[-1], source.display_path(rel), camera, spec, depth)


_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str):
    """Sort key comparing digit runs numerically (``r_2`` < ``r_10``); zero-padded names sort as plain text."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t.lower()) for t in _DIGITS.split(name) if t] + [(2, 0, name)]


def select_frames(items: list, config: LoadConfig) -> list:
    """Every ``subsample_frames``-th item, then at most ``max_frames`` of them."""
    step = config.subsample_frames or 1
    items = items[::step]
    if config.max_frames is not None:
        items = items[: config.max_frames]
    return items


def split_every(views: list[View], every: int | None) -> tuple[list[View], list[View]]:
    """(train, eval): view i goes to eval when ``i % every == 0``; all train when ``every`` is None."""
    if not every:
        return list(views), []
    train = [v for i, v in enumerate(views) if i % every != 0]
    evals = [v for i, v in enumerate(views) if i % every == 0]
    return train, evals
