"""Context and target views for the encoder: resizing, the depth range, the overlap check.

A :class:`ViewSample` is one dataset view at the encoder's resolution: RGB float32 [H, W, 3] in
[0, 1] (an RGBA image composited over black), its camera scaled to that size
(:meth:`Camera.scaled`), and the ground-truth depth (nearest-resized, 0 = invalid) when the
dataset has one. Resizing is Pillow's bilinear (antialiased when shrinking).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..gpu import GpuTensor
from ..nn.reference import plane_sweep_samples
from ..nn.warp import intrinsics_matrix
from ..render.camera import Camera
from .encoder import FeedForwardInputError


@dataclass
class ViewSample:
    """One view at the encoder's resolution (see the module docstring)."""

    name: str
    image: np.ndarray
    camera: Camera
    depth: np.ndarray | None = None

    def tensor(self) -> GpuTensor:
        """The image as a float32 GpuTensor [1, 3, H, W]."""
        return GpuTensor.from_numpy(np.ascontiguousarray(self.image.transpose(2, 0, 1)[None]), f"image {self.name}")

    def target(self) -> GpuTensor:
        """The image as float32 [H, W, 4] with alpha 1 (the MSE target of a render)."""
        h, w = self.image.shape[:2]
        return GpuTensor.from_numpy(np.concatenate([self.image, np.ones((h, w, 1), np.float32)], 2),
                                    f"target {self.name}")


def parse_resolution(text) -> tuple[int, int]:
    """``"128"`` → (128, 128); ``"160x120"`` → (160, 120) (width x height).

    Raises:
        FeedForwardInputError: not that form, or sizes that are not positive multiples of 8.
    """
    try:
        parts = [int(p) for p in str(text).lower().split("x")]
        w, h = (parts[0], parts[0]) if len(parts) == 1 else tuple(parts)
    except ValueError:
        raise FeedForwardInputError(f"--resolution {text!r}: give N or WxH, e.g. 128 or 160x120") from None
    if w <= 0 or h <= 0 or w % 8 or h % 8:
        raise FeedForwardInputError(f"--resolution {text!r}: width and height must be positive multiples of 8")
    return w, h


def view_sample(view, size: tuple[int, int]) -> ViewSample:
    """A dataset :class:`~brushpy.data.View` at ``size`` = (W, H)."""
    from PIL import Image

    w, h = size
    img = np.asarray(view.image)
    if img.shape[2] == 4:  # composite over black
        a = img[..., 3:4].astype(np.float32) / 255.0
        img = (img[..., :3].astype(np.float32) * a).round().astype(np.uint8)
    rgb = np.asarray(Image.fromarray(np.ascontiguousarray(img[..., :3])).resize((w, h), Image.BILINEAR),
                     np.float32) / 255.0
    depth = None
    if view.depth is not None:
        d = np.asarray(view.depth, np.float32)
        dh, dw = d.shape[:2]
        rows = np.minimum(((np.arange(h) + 0.5) * dh / h).astype(np.int64), dh - 1)
        cols = np.minimum(((np.arange(w) + 0.5) * dw / w).astype(np.int64), dw - 1)
        depth = np.where(np.isfinite(d), d, 0.0)[rows[:, None], cols[None, :]].astype(np.float32)
    return ViewSample(view.name, rgb, view.camera.scaled(w, h), depth)


def check_same_size(views, what: str = "context views") -> None:
    """Raise :class:`FeedForwardInputError` when the dataset images differ in size."""
    sizes = {(v.camera.width, v.camera.height) for v in views}
    if len(sizes) > 1:
        shown = ", ".join(f"{v.name} {v.camera.width}x{v.camera.height}" for v in views)
        raise FeedForwardInputError(f"{what} have images of different sizes ({shown}); choose views of one size")


def depth_range(samples, init_points=None, percentiles=(2.0, 98.0), margin: float = 1.25) -> tuple[float, float]:
    """A cost-volume range ``(near, far)`` for these views: the ``percentiles`` of their ground-truth
    depths, else of the dataset's points in front of the first camera, widened by ``margin``.

    Raises:
        FeedForwardInputError: neither depths nor points (give --near and --far).
    """
    zs = [s.depth[s.depth > 0] for s in samples if s.depth is not None]
    z = np.concatenate(zs) if zs else np.zeros(0)
    if z.size < 16 and init_points is not None and len(init_points.positions):
        cam = samples[0].camera
        p = init_points.positions.astype(np.float64) @ cam.world_to_camera[:3, :3].T + cam.world_to_camera[:3, 3]
        front = p[:, 2] > 0
        u = cam.fx * p[front, 0] / p[front, 2] + cam.cx
        v = cam.fy * p[front, 1] / p[front, 2] + cam.cy
        inside = (u >= 0) & (u <= cam.width) & (v >= 0) & (v <= cam.height)
        z = p[front, 2][inside]
    if z.size < 16:
        raise FeedForwardInputError("no depth range for the cost volume: the dataset has no depth maps and no "
                                    "points in view; give --near and --far (scene units)")
    lo, hi = np.percentile(z, percentiles)
    return float(lo / margin), float(hi * margin)


def overlap_fraction(ref: Camera, src: Camera, near: float, far: float, planes: int = 8, grid: int = 16) -> float:
    """Fraction of (reference pixel, plane) samples that land inside ``src`` (coarse ``grid``²)."""
    depths = 1.0 / np.linspace(1.0 / near, 1.0 / far, planes)
    a, b = ref.scaled(grid, grid), src.scaled(grid, grid)
    u, v, z = plane_sweep_samples((grid, grid), intrinsics_matrix(a.intrinsics), a.world_to_camera,
                                  intrinsics_matrix(b.intrinsics), b.world_to_camera, depths)
    with np.errstate(invalid="ignore"):
        ok = (z > 1e-6) & (u >= 0) & (u <= grid) & (v >= 0) & (v <= grid)
    return float(ok.mean())


def check_overlap(samples, near: float, far: float, names=None) -> None:
    """Raise :class:`FeedForwardInputError` when the two context views see nothing in common
    between ``near`` and ``far`` (no valid cost-volume sample either way)."""
    a, b = samples
    f = max(overlap_fraction(a.camera, b.camera, near, far), overlap_fraction(b.camera, a.camera, near, far))
    if f == 0.0:
        na, nb = names or (a.name, b.name)
        raise FeedForwardInputError(
            f"context views {na} and {nb} do not overlap: between depth {near:.3g} and {far:.3g} no pixel of one "
            "projects into the other (no valid cost-volume sample); choose nearer views (--context) or another "
            "depth range (--near/--far)")
