"""Compare two sets of camera poses of the same images up to a similarity transform; find jumps
in a camera path.

Used to measure structure from motion against a reference model (``brushpy sfm``'s
acceptance figures, ``benchmarks/bench_sfm.py``, ``tests/test_sfm.py``). Poses are
world-to-camera 4x4 matrices in OpenCV camera axes (+x right, +y down, +z forward), as
COLMAP stores them and :meth:`brushpy.data.colmap.ColmapImage.world_to_camera` returns.

The similarity is the least-squares one between the camera centres (Umeyama, "Least-squares
estimation of transformation parameters between two point patterns", IEEE TPAMI 13(4), 1991):
an SfM model is defined only up to scale, rotation and translation, so errors are measured
after mapping the estimated centres onto the reference ones. With ``robust=True`` the similarity
is fitted to the largest set of images that agree (RANSAC over triplets of centres, then
Umeyama on the inliers), so a few images placed wrongly in either model (e.g. a segment of an
orbit flipped by a symmetric object) do not tilt the alignment of all the others; the errors
are still reported for every image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PoseComparison", "camera_centre", "compare_poses", "path_jumps", "read_poses", "umeyama"]


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """The similarity ``dst ≈ scale * R @ src + t`` with the least squared error.

    Args:
        src: float [N,3] points (N >= 3, not all on one line).
        dst: float [N,3] corresponding points.

    Returns:
        ``(scale, R, t)``: a positive float, float64 [3,3] proper rotation (det +1), float64 [3].

    Raises:
        ValueError: fewer than 3 points, shapes that differ, or ``src`` with no spread
            (all points equal).
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3:
        raise ValueError(f"umeyama needs two [N,3] arrays of the same shape, got {src.shape} and {dst.shape}")
    if len(src) < 3:
        raise ValueError(f"umeyama needs at least 3 point pairs, got {len(src)}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s_c, d_c = src - mu_s, dst - mu_d
    var_s = float((s_c ** 2).sum(1).mean())
    if var_s <= 0.0:
        raise ValueError("umeyama: the source points are all equal (no spread to fit a scale)")
    cov = d_c.T @ s_c / len(src)
    u, d, vt = np.linalg.svd(cov)
    sign = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:  # a reflection: flip the weakest axis
        sign[2] = -1.0
    rot = (u * sign) @ vt
    scale = float((d * sign).sum() / var_s)
    return scale, rot, mu_d - scale * rot @ mu_s


def camera_centre(world_to_camera: np.ndarray) -> np.ndarray:
    """Camera centre in world coordinates, float64 [3], of a [4,4] world-to-camera matrix: ``-R^T t``."""
    m = np.asarray(world_to_camera, np.float64)
    return -m[:3, :3].T @ m[:3, 3]


@dataclass
class PoseComparison:
    """Estimated poses against reference poses after the best similarity of the centres.

    Attributes:
        names: the images both sets have (sorted).
        inliers: bool [N], the images the similarity was fitted to (all of them unless robust).
        rotation_error_deg: float64 [N] angle of ``R_ref^T R_aligned`` per image (degrees;
            camera-to-world rotations).
        centre_error: float64 [N] distance of the aligned centre to the reference centre
            (reference units).
        relative_rotation_error_deg: float64 [N(N-1)/2] per pair of images (i < j), the angle
            between the estimated and the reference relative rotation ``R_i R_j^T``: free of
            the alignment, so meaningful also where the centres barely constrain it (a short arc).
        extent: the reference scene's extent: the largest distance between two reference
            camera centres (reference units).
        scale, rotation, translation: the similarity, estimated -> reference world.
    """

    names: list[str]
    inliers: np.ndarray
    rotation_error_deg: np.ndarray
    centre_error: np.ndarray
    relative_rotation_error_deg: np.ndarray
    extent: float
    scale: float
    rotation: np.ndarray
    translation: np.ndarray

    @property
    def median_rotation_deg(self) -> float:
        return float(np.median(self.rotation_error_deg))

    @property
    def median_relative_rotation_deg(self) -> float:
        return float(np.median(self.relative_rotation_error_deg))

    @property
    def median_centre_error(self) -> float:
        return float(np.median(self.centre_error))

    @property
    def median_centre_error_fraction(self) -> float:
        """Median centre error as a fraction of :attr:`extent`."""
        return self.median_centre_error / self.extent if self.extent > 0 else float("inf")


def compare_poses(estimated: dict[str, np.ndarray], reference: dict[str, np.ndarray], robust: bool = False,
                  inlier_threshold: float = 0.05, trials: int = 500, seed: int = 0) -> PoseComparison:
    """Align ``estimated`` to ``reference`` (Umeyama on the camera centres of the images both
    have) and measure each image's rotation and centre error.

    Args:
        estimated, reference: ``{image name: float [4,4] world-to-camera matrix}`` (OpenCV axes).
        robust: fit the similarity to the largest agreeing subset (RANSAC over ``trials``
            random triplets, seeded by ``seed``), then refit on it.
        inlier_threshold: with ``robust``, an image agrees when its aligned centre lies within
            this fraction of the reference extent of its reference centre.

    Raises:
        ValueError: fewer than 3 images in common, or estimated centres that all coincide.
    """
    names = sorted(set(estimated) & set(reference))
    if len(names) < 3:
        raise ValueError(f"compare_poses needs at least 3 images in common, got {len(names)}")
    est = [np.asarray(estimated[n], np.float64) for n in names]
    ref = [np.asarray(reference[n], np.float64) for n in names]
    c_est = np.stack([camera_centre(m) for m in est])
    c_ref = np.stack([camera_centre(m) for m in ref])
    diffs = c_ref[:, None, :] - c_ref[None, :, :]
    extent = float(np.sqrt((diffs ** 2).sum(-1)).max())
    inliers = np.ones(len(names), bool)
    if robust and len(names) > 3:
        inliers = _ransac_inliers(c_est, c_ref, inlier_threshold * extent, trials, seed)
    scale, rot, trans = umeyama(c_est[inliers], c_ref[inliers])
    aligned = (scale * (rot @ c_est.T)).T + trans
    centre_err = np.linalg.norm(aligned - c_ref, axis=1)
    rot_err = np.empty(len(names))
    for i, (me, mr) in enumerate(zip(est, ref)):
        cam_to_world_est = rot @ me[:3, :3].T  # the estimated camera's axes in the reference world
        rel = mr[:3, :3] @ cam_to_world_est  # R_ref_c2w^T @ R_aligned_c2w (R_ref_c2w^T = R_ref_w2c)
        cos = np.clip((np.trace(rel) - 1.0) / 2.0, -1.0, 1.0)
        rot_err[i] = np.degrees(np.arccos(cos))
    r_est = np.stack([m[:3, :3] for m in est])
    r_ref = np.stack([m[:3, :3] for m in ref])
    i, j = np.triu_indices(len(names), 1)
    rel_est = r_est[i] @ np.transpose(r_est[j], (0, 2, 1))
    rel_ref = r_ref[i] @ np.transpose(r_ref[j], (0, 2, 1))
    trace = np.einsum("nab,nab->n", rel_est, rel_ref)  # trace(rel_est^T rel_ref)
    rel_err = np.degrees(np.arccos(np.clip((trace - 1.0) / 2.0, -1.0, 1.0)))
    return PoseComparison(names, inliers, rot_err, centre_err, rel_err, extent, scale, rot, trans)


def _ransac_inliers(c_est: np.ndarray, c_ref: np.ndarray, threshold: float, trials: int, seed: int) -> np.ndarray:
    """bool [N]: the largest set of centres one similarity (fitted to 3 of them) maps within
    ``threshold`` of their reference; all True when no triplet gives a similarity."""
    rng = np.random.default_rng(seed)
    n = len(c_est)
    best = np.ones(n, bool)
    best_count = -1
    for _ in range(trials):
        pick = rng.choice(n, 3, replace=False)
        try:
            scale, rot, trans = umeyama(c_est[pick], c_ref[pick])
        except ValueError:
            continue
        err = np.linalg.norm((scale * (rot @ c_est.T)).T + trans - c_ref, axis=1)
        ok = err < threshold
        if ok.sum() > best_count:
            best, best_count = ok, int(ok.sum())
    return best if best_count >= 3 else np.ones(n, bool)


def path_jumps(centres: np.ndarray, ratio: float = 6.0) -> list[int]:
    """Where a camera path jumps: indices ``i`` whose step ``|c[i+1] - c[i]|`` exceeds ``ratio``
    times the median step.

    For photos taken in order (a video, a walk around an object) every step is short, so a
    jump means that a segment of the path was placed wrongly, e.g. folded onto the far side of
    an object printed alike on opposite sides. On the beer orbit the folded models jump by
    8.8-15.7x the median step, while the same cameras in a random order never step more than
    3x (an orbit's distances are bounded).

    Args:
        centres: float [N,3] camera centres in capture order.
        ratio: a step longer than this many median steps is a jump.

    Returns:
        The indices of the jumps (empty for fewer than 3 centres or a zero median step).
    """
    c = np.asarray(centres, np.float64)
    if len(c) < 3:
        return []
    steps = np.linalg.norm(np.diff(c, axis=0), axis=1)
    med = float(np.median(steps))
    if med <= 0.0:
        return []
    return [int(i) for i in np.nonzero(steps > ratio * med)[0]]


def read_poses(folder, sub: str = "sparse/0") -> dict[str, np.ndarray]:
    """The poses of a COLMAP model, by image name.

    Args:
        folder: the project folder (str or Path; a folder or zip :class:`brushpy.data.source.DatasetSource` reads).
        sub: the model's folder inside it.

    Returns:
        ``{image name: float64 [4,4] world_to_camera}`` (OpenCV camera axes).

    Raises:
        brushpy.errors.InputError: the model is missing or unreadable (named by the reader).
    """
    from . import colmap
    from .source import DatasetSource

    model = colmap.read_model(DatasetSource(folder), sub, True, with_points=False)
    return {im.name: im.world_to_camera() for im in model.images.values()}
