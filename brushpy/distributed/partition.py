"""Divide-and-conquer of one large scene: split its ground plane into R×C blocks, assign views and
points to each, and merge the blocks' splats back into one set. Pure NumPy.

The scheme follows VastGaussian (Lin et al., CVPR 2024, "progressive data partitioning" and
"seamless merging") and CityGaussian (Liu et al., ECCV 2024), simplified:

1. **Ground plane** (:func:`ground_frame`): *up* from the cameras (:func:`estimate_up`: the
   direction perpendicular to every camera's right axis, which also holds for nadir aerial
   views; the mean image-up vector when all cameras share one heading), not snapped to a world
   axis, so a COLMAP world that is not aligned still gets its true ground. The first ground axis *u*
   is the main direction of the camera centres' spread in that plane (PCA), *v* = up × u. Ground
   coordinates of a world point are its offsets along u and v from the camera centres' mean.
2. **Grid** (:func:`partition_scene`): the region is the union of the camera centres' bounding box
   and the points' ``[p, 100 − p]`` percentile box in ground coordinates (``p`` =
   ``percentile``, 1 by default, so stray points do not stretch it). It is cut into ``rows``
   strips along u holding equal numbers of points, and each strip into ``cols`` cells along v
   holding equal numbers of its points (VastGaussian's camera-position-based region division
   balances camera counts the same way; balancing points balances the splat load, which is what
   must fit one device; with fewer points than cells the cameras are balanced instead): the blocks'
   **core** regions. The outer cores extend to infinity on their outer sides, so the cores tile
   the whole plane and every point of the world has exactly one core (far background included).
3. **Expanded region**: each core grown by ``margin`` × its size (its extent inside the region) on
   its inner sides (VastGaussian grows by 20 %). The block trains on the **init points** inside it.
4. **Views**: a view joins a block when its camera centre lies inside the expanded region
   (VastGaussian's position-based selection), or when at least ``visibility`` of the block's
   points (an even sample of at most ``max_visibility_points``) project inside its image, in front
   of it (a point-based form of VastGaussian's visibility-based selection, which thresholds the
   projected area of the block's box at 25 %). A block without points has only the first rule.
   Blocks that no view joins are **skipped** with a note.
5. **Merge** (:func:`merge_splats`): every splat of block *b* whose mean falls in *b*'s core is kept,
   the rest dropped (they are the neighbours' to keep). Where a block was skipped, its core
   goes to the nearest trained block's core (distance in ground coordinates to the core
   rectangles; :meth:`Partition.owner`), so the kept sets still cover the plane: a splat
   position belongs to exactly one trained block.

Arrays: cameras are objects with ``world_to_camera`` (float [4,4], OpenCV axes: +x right, +y down,
+z forward), ``fx, fy, cx, cy`` (pixels) and ``width, height`` (pixels), as
:class:`brushpy.render.camera.Camera`; points and means are float [N,3] world coordinates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..errors import OptionError

__all__ = ["Block", "GroundFrame", "Partition", "estimate_up", "ground_frame", "merge_splats", "parse_grid", "partition_scene"]

#: Fraction of a block's points a camera must see to join the block (VastGaussian thresholds the
#: projected area of the block at 25 % of the image).
DEFAULT_VISIBILITY = 0.25
#: Overlap margin as a fraction of the block's size (VastGaussian: 0.2).
DEFAULT_MARGIN = 0.2


def parse_grid(text: str) -> tuple[int, int]:
    """``"2x1"`` -> ``(2, 1)`` (rows along the ground's main axis, columns across it).

    Raises:
        OptionError: not ``RxC`` with R, C ≥ 1 (names ``--partition``).
    """
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(text))
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise OptionError(f"--partition {text!r}: give the grid as RxC with R, C ≥ 1, e.g. 2x1 or 2x2")
    return int(m.group(1)), int(m.group(2))


def camera_arrays(cameras) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(world_to_camera [N,4,4], intrinsics [N,4] = fx, fy, cx, cy, sizes [N,2] = width, height)``, float64."""
    w2c = np.stack([np.asarray(c.world_to_camera, np.float64).reshape(4, 4) for c in cameras]) if len(cameras) else \
        np.zeros((0, 4, 4))
    intr = np.array([[c.fx, c.fy, c.cx, c.cy] for c in cameras], np.float64).reshape(-1, 4)
    sizes = np.array([[c.width, c.height] for c in cameras], np.float64).reshape(-1, 2)
    return w2c, intr, sizes


def camera_centres(w2c: np.ndarray) -> np.ndarray:
    """World positions [N,3] of cameras given as world_to_camera [N,4,4]: ``-Rᵀ t``."""
    r, t = w2c[:, :3, :3], w2c[:, :3, 3]
    return -np.einsum("nji,nj->ni", r, t)


@dataclass(frozen=True)
class GroundFrame:
    """The ground plane: ``up`` [3] unit, ``axes`` [2,3] unit (u, v; ``v = up × u``), ``origin`` [3].

    Ground coordinates of a world point p: ``((p − origin)·u, (p − origin)·v)``.
    """

    origin: np.ndarray
    up: np.ndarray
    axes: np.ndarray

    def to_ground(self, points) -> np.ndarray:
        """Ground coordinates float64 [N,2] of world points [N,3]."""
        p = np.asarray(points, np.float64).reshape(-1, 3)
        return (p - self.origin) @ self.axes.T


def estimate_up(w2c: np.ndarray) -> np.ndarray:
    """The world's up direction (unit float64 [3]) from cameras given as world_to_camera [N,4,4].

    Cameras are held without roll: a camera's right axis (``world_to_camera[0, :3]``, OpenCV +x) is
    horizontal whether it looks ahead, obliquely or straight down. Up is therefore the direction
    most perpendicular to all right axes, the eigenvector of the smallest eigenvalue of
    ``mean(r rᵀ)``, signed to agree with ``mean(image up) − mean(forward)`` (positive for any
    pitch between level and straight down). This is used when the headings vary enough to fix it
    (second eigenvalue ≥ 0.05); otherwise (one heading: a forward-facing capture, a single
    camera) up is the mean image-up vector ``−world_to_camera[1, :3]``, as
    :func:`brushpy.data.scene.cameras_vertical_axis` reads it (not snapped to a world axis).
    A mean image up alone fails for nadir (straight-down) aerial captures, whose image up is horizontal.

    Raises:
        ValueError: no cameras, or no up can be told (the up vectors cancel out).
    """
    if len(w2c) == 0:
        raise ValueError("a ground plane needs at least one camera")
    image_up = -w2c[:, 1, :3].mean(axis=0)
    forward = w2c[:, 2, :3].mean(axis=0)
    right = w2c[:, 0, :3]
    evals, evecs = np.linalg.eigh(right.T @ right / len(right))
    if evals[1] >= 0.05:
        up = evecs[:, 0]
        hint = image_up - forward
        if up @ hint < 0:
            up = -up
        return up / np.linalg.norm(up)
    norm = np.linalg.norm(image_up)
    if not norm > 1e-6:
        raise ValueError("the cameras' up vectors cancel out: no common ground plane to partition")
    return image_up / norm


def ground_frame(w2c: np.ndarray) -> GroundFrame:
    """The ground plane of cameras given as world_to_camera [N,4,4]: up from :func:`estimate_up`, u the
    main direction of the camera centres' spread in the plane, v = up × u, origin their mean.

    Raises:
        ValueError: no cameras, or no common up direction.
    """
    up = estimate_up(w2c)
    centres = camera_centres(w2c)
    origin = centres.mean(axis=0)
    flat = (centres - origin) - np.outer((centres - origin) @ up, up)
    u = None
    if len(flat) > 1:
        _, s, vt = np.linalg.svd(flat, full_matrices=False)
        if s[0] > 1e-9 * max(1.0, np.abs(centres).max()):
            u = vt[0]
    if u is None:  # one camera or all on a vertical line: any horizontal direction
        helper = np.eye(3)[int(np.argmin(np.abs(up)))]
        u = helper - (helper @ up) * up
    u = u - (u @ up) * up
    u /= np.linalg.norm(u)
    if u[int(np.argmax(np.abs(u)))] < 0:  # a fixed sign: the largest component positive
        u = -u
    v = np.cross(up, u)
    return GroundFrame(origin, up, np.stack([u, v]))


@dataclass
class Block:
    """One cell of the grid.

    Attributes:
        row, col: its place in the grid (row along u, column along v).
        core: float64 [2,2], ``[[u_min, v_min], [u_max, v_max]]`` in ground coordinates; ±inf on the
            grid's outer sides.
        expanded: the core grown by the margin (the same infinities).
        view_indices: int64 [K] indices of the cameras that train this block (sorted).
        point_indices: int64 [M] indices of the init points inside ``expanded`` (sorted).
    """

    row: int
    col: int
    core: np.ndarray
    expanded: np.ndarray
    view_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    point_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def name(self) -> str:
        """``"<row>_<col>"``: the block's output folder name."""
        return f"{self.row}_{self.col}"


@dataclass
class Partition:
    """The result of :func:`partition_scene`.

    Attributes:
        frame: the ground plane.
        grid: ``(rows, cols)``.
        bounds: float64 [2,2], the finite region the grid divides (ground coordinates).
        blocks: the blocks that some camera trains, in row-major order.
        skipped: the blocks no camera sees (not trained; their core goes to the nearest block).
        notes: lines for the user (skipped blocks).
    """

    frame: GroundFrame
    grid: tuple[int, int]
    bounds: np.ndarray
    blocks: list[Block]
    skipped: list[Block] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def owner(self, points) -> np.ndarray:
        """Index into :attr:`blocks` (int64 [N]) of the trained block whose core holds each world point.

        A point in a skipped block's core goes to the nearest trained core (Euclidean distance in
        ground coordinates to the core rectangle; ties to the first block in row-major order).
        Cores are half-open (``[min, max)``), so a point on a shared edge has one owner.

        Raises:
            ValueError: no trained block.
        """
        if not self.blocks:
            raise ValueError("the partition has no trained block")
        g = self.frame.to_ground(points)
        dist = np.stack([_rect_distance(g, b.core) for b in self.blocks], axis=1)  # [N, B]
        return np.argmin(dist, axis=1).astype(np.int64)


def _rect_distance(g: np.ndarray, rect: np.ndarray) -> np.ndarray:
    """Distance [N] of ground points [N,2] to a half-open rectangle [[min], [max]] (0 inside, and a tiny
    positive value on its max edges, so the neighbour that starts there owns them)."""
    lo, hi = rect
    below = np.maximum(lo - g, 0.0)
    above = np.maximum(g - hi, 0.0)
    d = np.hypot(*(below + above).T) if len(g) else np.zeros(0)
    on_max_edge = np.any(np.isfinite(hi) & (g >= hi), axis=1) & (d == 0)
    return np.where(on_max_edge, np.finfo(np.float64).tiny, d)


def _inside(g: np.ndarray, rect: np.ndarray) -> np.ndarray:
    """bool [N]: ground points [N,2] inside a closed rectangle [[min], [max]]."""
    return np.all((g >= rect[0]) & (g <= rect[1]), axis=1)


def _cuts(values: np.ndarray, n: int, lo: float, hi: float) -> np.ndarray:
    """n + 1 cut positions splitting ``values`` into n parts of equal count (their quantiles; equal parts
    of [lo, hi] when there are fewer values than parts), the outer two replaced by ∓inf."""
    if len(values) >= n:
        e = np.quantile(values, np.linspace(0.0, 1.0, n + 1))
    else:
        e = np.linspace(lo, hi, n + 1)
    e[0], e[-1] = -np.inf, np.inf
    return e


def project_fraction(w2c: np.ndarray, intr: np.ndarray, sizes: np.ndarray, points: np.ndarray,
                     near: float = 1e-6) -> np.ndarray:
    """Fraction float64 [N] of ``points`` [P,3] each camera sees: in front (depth > ``near``) and
    projecting inside its image (pinhole, pixel centres at +0.5, the image spans [0, W) × [0, H)).
    0 for every camera when there are no points."""
    if len(points) == 0:
        return np.zeros(len(w2c))
    p = np.asarray(points, np.float64)
    cam = np.einsum("nij,pj->npi", w2c[:, :3, :3], p) + w2c[:, None, :3, 3]  # [N,P,3]
    z = cam[..., 2]
    safe = np.where(z > near, z, 1.0)
    x = intr[:, None, 0] * cam[..., 0] / safe + intr[:, None, 2]
    y = intr[:, None, 1] * cam[..., 1] / safe + intr[:, None, 3]
    seen = (z > near) & (x >= 0) & (x < sizes[:, None, 0]) & (y >= 0) & (y < sizes[:, None, 1])
    return seen.mean(axis=1)


def partition_scene(cameras: Sequence, points, rows: int, cols: int, margin: float = DEFAULT_MARGIN,
                    visibility: float = DEFAULT_VISIBILITY, percentile: float = 1.0,
                    max_visibility_points: int = 4096) -> Partition:
    """Split a scene into ``rows`` × ``cols`` blocks and assign cameras and points (module docstring).

    Args:
        cameras: the training cameras (see the module docstring for what they carry).
        points: float [P,3] init points (world), or None / empty (then views join by position only).
        rows, cols: the grid (rows along the ground's main axis u, columns along v).
        margin: overlap as a fraction of a block's size on each inner side (``--partition-margin``).
        visibility: fraction of a block's points a camera must see to join it, in (0, 1].
        percentile: the points' bounding box is their ``[percentile, 100 − percentile]`` range.
        max_visibility_points: at most this many of a block's points (an even sample) are projected.

    Returns:
        :class:`Partition`.

    Raises:
        OptionError: ``rows``/``cols`` < 1, ``margin`` < 0, ``visibility`` outside (0, 1].
        ValueError: no cameras, or no common up direction.
    """
    if rows < 1 or cols < 1:
        raise OptionError(f"--partition {rows}x{cols}: rows and columns must be ≥ 1")
    if not margin >= 0:
        raise OptionError(f"--partition-margin {margin}: must be ≥ 0 (a fraction of the block size, e.g. 0.2)")
    if not 0 < visibility <= 1:
        raise OptionError(f"--partition-visibility {visibility}: must be in (0, 1]")
    w2c, intr, sizes = camera_arrays(cameras)
    frame = ground_frame(w2c)
    cam_g = frame.to_ground(camera_centres(w2c))
    pts = np.zeros((0, 3)) if points is None else np.asarray(points, np.float64).reshape(-1, 3)
    pts_g = frame.to_ground(pts)
    lo, hi = cam_g.min(axis=0), cam_g.max(axis=0)
    if len(pts_g):
        lo = np.minimum(lo, np.percentile(pts_g, percentile, axis=0))
        hi = np.maximum(hi, np.percentile(pts_g, 100.0 - percentile, axis=0))
    hi = np.where(hi - lo > 0, hi, lo + 1e-6)  # a flat extent still gets cells
    bounds = np.stack([lo, hi])
    ref = pts_g if len(pts_g) >= rows * cols else cam_g  # what the cuts balance: the points (the splat load)
    ue = _cuts(ref[:, 0], rows, lo[0], hi[0])
    blocks, skipped, notes = [], [], []
    for r in range(rows):
        in_row = ref[(ref[:, 0] >= ue[r]) & (ref[:, 0] < ue[r + 1]), 1]
        ve = _cuts(in_row, cols, lo[1], hi[1])
        for c in range(cols):
            core = np.array([[ue[r], ve[c]], [ue[r + 1], ve[c + 1]]])
            size = np.minimum(core[1], hi) - np.maximum(core[0], lo)  # the core's extent inside the region
            size = np.where(size > 0, size, (hi - lo) / np.array([rows, cols]))
            expanded = core + np.array([-1.0, 1.0])[:, None] * margin * size  # (inf ± x stays inf)
            block = Block(r, c, core, expanded)
            in_block = np.flatnonzero(_inside(pts_g, expanded)) if len(pts_g) else np.zeros(0, np.int64)
            block.point_indices = in_block.astype(np.int64)
            by_position = _inside(cam_g, expanded)
            if len(in_block):
                sample = in_block[np.unique(np.linspace(0, len(in_block) - 1, max_visibility_points).astype(np.int64))]
                by_sight = project_fraction(w2c, intr, sizes, pts[sample]) >= visibility
            else:
                by_sight = np.zeros(len(w2c), bool)
            block.view_indices = np.flatnonzero(by_position | by_sight).astype(np.int64)
            if len(block.view_indices):
                blocks.append(block)
            else:
                skipped.append(block)
                notes.append(f"block {block.name}: no camera sees it (no view sees {visibility:.0%} of its "
                             f"{len(in_block)} points and no camera is over it); skipped, its region goes to the "
                             "nearest trained block")
    return Partition(frame, (rows, cols), bounds, blocks, skipped, notes)


def merge_splats(partition: Partition, block_splats: Sequence[dict]) -> tuple[dict, list[int]]:
    """One splat set from the blocks' splats: each block keeps the splats whose means its core owns.

    Args:
        partition: the partition the blocks were trained on.
        block_splats: one dict per trained block (``partition.blocks`` order) of numpy arrays with a
            first axis of length N_b, among them ``means`` [N_b,3] (Splats layout: ``rotations``,
            ``log_scales``, ``sh_coeffs``, ``raw_opacities``; any keys, the same in every dict).

    Returns:
        ``(merged, kept)``: the concatenated kept rows of every array, in block order, and the
        number kept from each block.

    Raises:
        ValueError: the number of dicts differs from the number of trained blocks, or their keys differ.
    """
    if len(block_splats) != len(partition.blocks):
        raise ValueError(f"{len(block_splats)} splat sets for {len(partition.blocks)} trained blocks")
    keys = list(block_splats[0]) if block_splats else []
    parts: dict[str, list] = {k: [] for k in keys}
    kept = []
    for b, splats in enumerate(block_splats):
        if list(splats) != keys:
            raise ValueError(f"block {partition.blocks[b].name}: keys {list(splats)} differ from {keys}")
        mask = partition.owner(splats["means"]) == b
        kept.append(int(mask.sum()))
        for k in keys:
            parts[k].append(np.asarray(splats[k])[mask])
    return {k: np.concatenate(v, axis=0) for k, v in parts.items()}, kept
