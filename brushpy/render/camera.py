"""Pinhole camera in the OpenCV convention."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Camera:
    """A pinhole camera.

    Attributes:
        world_to_camera: float64 [4,4]; camera axes are OpenCV's (+x right,
            +y down, +z forward). ``p_cam = R @ p_world + t``.
        fx, fy: focal lengths in pixels.
        cx, cy: principal point in pixels; pixel ``(i, j)`` has its centre at
            ``(i + 0.5, j + 0.5)``.
        width, height: image size in pixels.
    """

    world_to_camera: np.ndarray
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self):
        self.world_to_camera = np.asarray(self.world_to_camera, np.float64).reshape(4, 4)
        self.width, self.height = int(self.width), int(self.height)
        self.fx, self.fy, self.cx, self.cy = (float(v) for v in (self.fx, self.fy, self.cx, self.cy))

    @property
    def intrinsics(self) -> tuple[float, float, float, float]:
        """``(fx, fy, cx, cy)`` in pixels."""
        return (self.fx, self.fy, self.cx, self.cy)

    @property
    def camera_to_world(self) -> np.ndarray:
        """float64 [4,4] inverse of ``world_to_camera``."""
        return np.linalg.inv(self.world_to_camera)

    @property
    def position(self) -> np.ndarray:
        """Camera centre in world coordinates, float64 [3]."""
        R, t = self.world_to_camera[:3, :3], self.world_to_camera[:3, 3]
        return -R.T @ t

    def scaled(self, width: int, height: int) -> "Camera":
        """The same camera for an image resized to ``width`` x ``height``."""
        sx, sy = width / self.width, height / self.height
        return Camera(self.world_to_camera.copy(), self.fx * sx, self.fy * sy, self.cx * sx, self.cy * sy, width, height)

    @staticmethod
    def look_at(position, target, up, fov_y_deg: float, width: int, height: int) -> "Camera":
        """Camera at ``position`` looking at ``target``; ``up`` is the world direction shown upwards.

        ``fov_y_deg`` is the vertical field of view in degrees; pixels are square.
        """
        position = np.asarray(position, np.float64)
        forward = np.asarray(target, np.float64) - position
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, np.asarray(up, np.float64))
        if np.linalg.norm(right) < 1e-9:
            raise ValueError("look_at: `up` is parallel to the viewing direction; choose another up vector")
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        R = np.stack([right, down, forward])  # rows: camera axes in world coordinates
        w2c = np.eye(4)
        w2c[:3, :3] = R
        w2c[:3, 3] = -R @ position
        fy = 0.5 * height / np.tan(0.5 * np.deg2rad(fov_y_deg))
        return Camera(w2c, fy, fy, width / 2.0, height / 2.0, width, height)
