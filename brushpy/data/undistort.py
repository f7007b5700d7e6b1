"""Undistortion of images from distorted camera models to pinhole cameras (OpenCV).

brushpy renders pinhole cameras only, so images taken through a lens model
with distortion are resampled at load time onto an ideal pinhole camera:

* Brown-Conrady models (COLMAP SIMPLE_RADIAL, RADIAL, OPENCV, FULL_OPENCV;
  nerfstudio OPENCV): ``cv2.getOptimalNewCameraMatrix`` with alpha = 0 (the new
  camera sees only valid pixels) and ``cv2.initUndistortRectifyMap``.
* Kannala-Brandt fisheye (COLMAP / nerfstudio OPENCV_FISHEYE):
  ``cv2.fisheye.estimateNewCameraMatrixForUndistortRectify`` with balance = 0
  and ``cv2.fisheye.initUndistortRectifyMap``.

Any row or column of the result that still samples outside the source image
is cropped away (the largest rectangle found by peeling off the worst border
line), and the principal point is shifted by the crop.

Pixel convention: brushpy/COLMAP put the centre of the top-left pixel at
(0.5, 0.5); OpenCV puts it at (0, 0). Principal points are shifted by 0.5 on
the way into and out of OpenCV.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np
from ..errors import InputError


@dataclass(frozen=True)
class Distortion:
    """Lens distortion in normalised image coordinates (independent of image scale).

    Attributes:
        model: ``"opencv"`` (coeffs = k1, k2, p1, p2[, k3, k4, k5, k6], OpenCV's
            order) or ``"fisheye"`` (coeffs = k1, k2, k3, k4).
        coeffs: tuple of floats.
    """

    model: str
    coeffs: tuple[float, ...]

    def is_identity(self) -> bool:
        return all(c == 0.0 for c in self.coeffs)


SUPPORTED_COLMAP_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV", "FULL_OPENCV", "OPENCV_FISHEYE")


class UnsupportedCameraModel(InputError):
    """A camera model that brushpy cannot turn into a pinhole camera."""


def colmap_camera_intrinsics(model: str, params, origin: str = "cameras") -> tuple[float, float, float, float, Distortion | None]:
    """``(fx, fy, cx, cy, distortion or None)`` of a COLMAP camera (params in COLMAP's order).

    Raises:
        UnsupportedCameraModel: for models other than ``SUPPORTED_COLMAP_MODELS`` (message lists them).
    """
    p = [float(v) for v in params]
    if model == "SIMPLE_PINHOLE":
        return p[0], p[0], p[1], p[2], None
    if model == "PINHOLE":
        return p[0], p[1], p[2], p[3], None
    if model == "SIMPLE_RADIAL":
        return p[0], p[0], p[1], p[2], Distortion("opencv", (p[3], 0.0, 0.0, 0.0))
    if model == "RADIAL":
        return p[0], p[0], p[1], p[2], Distortion("opencv", (p[3], p[4], 0.0, 0.0))
    if model == "OPENCV":
        return p[0], p[1], p[2], p[3], Distortion("opencv", tuple(p[4:8]))
    if model == "FULL_OPENCV":
        # COLMAP: k1 k2 p1 p2 k3 k4 k5 k6 -- OpenCV's rational model order.
        return p[0], p[1], p[2], p[3], Distortion("opencv", tuple(p[4:12]))
    if model == "OPENCV_FISHEYE":
        return p[0], p[1], p[2], p[3], Distortion("fisheye", tuple(p[4:8]))
    raise UnsupportedCameraModel(
        f"{origin}: camera model {model} is not supported; supported COLMAP models: {', '.join(SUPPORTED_COLMAP_MODELS)}"
        " (re-run COLMAP's image_undistorter to get PINHOLE cameras)"
    )


@dataclass(frozen=True)
class UndistortPlan:
    """How one image size + camera is undistorted.

    Attributes:
        src: (fx, fy, cx, cy) of the distorted camera at ``size`` (brushpy pixel convention).
        size: (width, height) of the distorted input image.
        distortion: the lens model.
        new_intrinsics: (fx, fy, cx, cy) of the output pinhole camera, after the crop
            (brushpy convention).
        crop: (x0, y0, width, height) kept from the full undistorted image; the output size
            is (width, height).
    """

    src: tuple[float, float, float, float]
    size: tuple[int, int]
    distortion: Distortion
    new_intrinsics: tuple[float, float, float, float]
    crop: tuple[int, int, int, int]

    @property
    def out_size(self) -> tuple[int, int]:
        return self.crop[2], self.crop[3]

    def apply(self, image: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
        """Undistort ``image`` (uint8 [H,W], [H,W,3] or [H,W,4] at ``size``) and crop."""
        w, h = self.size
        if image.shape[1] != w or image.shape[0] != h:
            raise ValueError(f"undistort: image is {image.shape[1]}x{image.shape[0]}, plan expects {w}x{h}")
        map_x, map_y = _maps(self.src, self.size, self.distortion)
        out = cv2.remap(image, map_x, map_y, interpolation, borderMode=cv2.BORDER_REPLICATE)
        x0, y0, cw, ch = self.crop
        return np.ascontiguousarray(out[y0:y0 + ch, x0:x0 + cw])

    def distorted_to_undistorted(self, xy: np.ndarray) -> np.ndarray:
        """Map pixel positions [N,2] of the distorted image into the output image (brushpy convention)."""
        K = _cv_matrix(self.src)
        pts = np.asarray(xy, np.float64).reshape(-1, 1, 2) - 0.5
        fx, fy, cx, cy = self.new_intrinsics
        P = _cv_matrix((fx, fy, cx, cy))
        if self.distortion.model == "fisheye":
            out = cv2.fisheye.undistortPoints(pts, K, np.array(self.distortion.coeffs), P=P)
        else:
            out = cv2.undistortPoints(pts, K, np.array(self.distortion.coeffs), P=P)
        return out.reshape(-1, 2) + 0.5


def _cv_matrix(intr) -> np.ndarray:
    fx, fy, cx, cy = intr
    return np.array([[fx, 0.0, cx - 0.5], [0.0, fy, cy - 0.5], [0.0, 0.0, 1.0]])


def _new_matrix(src, size, distortion: Distortion) -> np.ndarray:
    K = _cv_matrix(src)
    D = np.array(distortion.coeffs, np.float64)
    if distortion.model == "fisheye":
        return cv2.fisheye.estimateNewCameraMatrixForUndistortRectify(K, D, size, np.eye(3), balance=0.0, new_size=size)
    if distortion.model == "opencv":
        new_k, _roi = cv2.getOptimalNewCameraMatrix(K, D, size, 0.0, size)
        return new_k
    raise ValueError(f"unknown distortion model {distortion.model!r}")


@functools.lru_cache(maxsize=4)
def _maps(src, size, distortion: Distortion) -> tuple[np.ndarray, np.ndarray]:
    K = _cv_matrix(src)
    D = np.array(distortion.coeffs, np.float64)
    new_k = _new_matrix(src, size, distortion)
    if distortion.model == "fisheye":
        return cv2.fisheye.initUndistortRectifyMap(K, D, np.eye(3), new_k, size, cv2.CV_32FC1)
    return cv2.initUndistortRectifyMap(K, D, None, new_k, size, cv2.CV_32FC1)


def release_undistort_maps() -> None:
    """Free the cached remap tables (a few per distinct camera; ~16 MiB each at 1080p)."""
    _maps.cache_clear()


def _valid_rect(valid: np.ndarray) -> tuple[int, int, int, int]:
    """Largest rectangle of all-True found by repeatedly dropping the border line with most False."""
    top, left = 0, 0
    bottom, right = valid.shape
    while bottom > top and right > left:
        sub = valid[top:bottom, left:right]
        if sub.all():
            break
        bad = [
            (~sub[0]).sum() / sub.shape[1],
            (~sub[-1]).sum() / sub.shape[1],
            (~sub[:, 0]).sum() / sub.shape[0],
            (~sub[:, -1]).sum() / sub.shape[0],
        ]
        k = int(np.argmax(bad))
        if k == 0:
            top += 1
        elif k == 1:
            bottom -= 1
        elif k == 2:
            left += 1
        else:
            right -= 1
    if bottom <= top or right <= left:
        raise ValueError("undistortion leaves no valid pixels: check the distortion coefficients")
    return left, top, right - left, bottom - top


def plan_undistort(intrinsics: tuple[float, float, float, float], size: tuple[int, int],
                   distortion: Distortion) -> UndistortPlan:
    """Compute the pinhole camera and crop for undistorting images of ``size`` = (w, h).

    ``intrinsics`` = (fx, fy, cx, cy) of the distorted camera at that size, brushpy
    convention. Raises ValueError when nothing valid is left.
    """
    size = (int(size[0]), int(size[1]))
    src = tuple(float(v) for v in intrinsics)
    new_k = _new_matrix(src, size, distortion)
    map_x, map_y = _maps(src, size, distortion)
    w, h = size
    # remap with BORDER_REPLICATE reads sample positions up to half a pixel outside safely.
    valid = (map_x >= -0.5) & (map_x <= w - 0.5) & (map_y >= -0.5) & (map_y <= h - 0.5)
    crop = _valid_rect(valid)
    x0, y0 = crop[0], crop[1]
    new = (float(new_k[0, 0]), float(new_k[1, 1]), float(new_k[0, 2]) + 0.5 - x0, float(new_k[1, 2]) + 0.5 - y0)
    return UndistortPlan(src, size, distortion, new, crop)
