"""Quaternion ↔ rotation matrix on the host (numpy), in the splat convention.

Quaternions are (w, x, y, z), scalar first, as brushpy's splats (``rotations [N,4]``), COLMAP's
``qvec`` and the INRIA PLY ``rot_0..3`` store them; a matrix ``R`` maps local (or camera)
vectors to world as ``R @ v`` (Hamilton product, right-handed). The one owner of this
conversion on the CPU: the viewers, the MIP model and the COLMAP reader use it; the WGSL
kernels have their own (``shaders/render_common.wgsl``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["matrices_to_quaternions", "quaternions_to_matrices"]


def quaternions_to_matrices(wxyz: np.ndarray) -> np.ndarray:
    """Rotation matrices of quaternions.

    Args:
        wxyz: [N,4] (or [4]) quaternions (w, x, y, z), any norm: normalised here; a zero
            quaternion gives the identity.

    Returns:
        float64 [N,3,3] ``R`` with ``R @ v`` rotating local vectors to world.
    """
    q = np.asarray(wxyz, np.float64).reshape(-1, 4)
    norm = np.linalg.norm(q, axis=1, keepdims=True)
    q = np.where(norm > 0, q / np.where(norm > 0, norm, 1.0), np.array([1.0, 0.0, 0.0, 0.0]))
    w, x, y, z = q.T
    r = np.empty((len(q), 3, 3))
    r[:, 0, 0] = 1 - 2 * (y * y + z * z)
    r[:, 0, 1] = 2 * (x * y - w * z)
    r[:, 0, 2] = 2 * (x * z + w * y)
    r[:, 1, 0] = 2 * (x * y + w * z)
    r[:, 1, 1] = 1 - 2 * (x * x + z * z)
    r[:, 1, 2] = 2 * (y * z - w * x)
    r[:, 2, 0] = 2 * (x * z - w * y)
    r[:, 2, 1] = 2 * (y * z + w * x)
    r[:, 2, 2] = 1 - 2 * (x * x + y * y)
    return r


def matrices_to_quaternions(r: np.ndarray) -> np.ndarray:
    """Unit quaternions (w, x, y, z) of proper rotation matrices, with w >= 0.

    Args:
        r: [N,3,3] (or [3,3]) rotation matrices (orthonormal, det +1; scipy's
            ``Rotation.from_matrix`` projects small deviations onto the nearest rotation).

    Returns:
        float64 [N,4].
    """
    from scipy.spatial.transform import Rotation

    xyzw = Rotation.from_matrix(np.asarray(r, np.float64).reshape(-1, 3, 3)).as_quat()
    q = xyzw[:, [3, 0, 1, 2]]
    return np.where(q[:, :1] < 0, -q, q)
