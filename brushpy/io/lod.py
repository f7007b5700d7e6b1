"""Levels of detail (LOD) of a splat scene, as ``brushpy convert --lod N`` writes them.

Levels. Level 0 is the whole scene. Level ``k`` (1..N) keeps the ``ceil(n / 2**k)`` splats
(at least one) that matter most for the image, so each level has half the splats of the one
before it. The ranking is fixed for the scene, so every level is a subset of the finer one.
Kept splats keep their parameters and their order in the file.

Importance (:func:`importance`): ``opacity * exp(l1 + l2)``, where ``l1 >= l2`` are the two
largest of a splat's three log scales. ``exp(l1 + l2)`` is proportional to the area of the
splat's largest cross-section (the ellipse of its two longest axes), which is the most a
splat covers on screen, so the score is the amount of colour it can put on the image. It
ignores view dependence and overlap: a large splat hidden behind others still scores high.
Ties and non-finite scores (ranked last) keep file order. Measured on a trained scene
(guitar_inria_sh0.ply, docs/DEVELOPING.md "CLI and LOD"), the score keeps the large splats and
loses fine detail, and a random subset of the same size scores a higher PSNR from a close
framing camera (34.6 vs 28.7 dB at half the splats).

File names follow Brush's LOD exports (``export_30000.ply``, then
``export_30000_lod1.ply``, ``_lod2``, ...): level ``k`` of ``OUT`` is ``OUT`` with ``_lod{k}``
before its extension (:func:`lod_path`: ``scene.spz`` -> ``scene_lod1.spz``,
``scene.compressed.ply`` -> ``scene_lod1.compressed.ply``); an unbundled SOG ``DIR/meta.json``
gets the folder ``DIR_lod{k}/meta.json``. Brush makes its levels by decimating and then
training each level further on downscaled images; brushpy only selects (no training), so a
level here is what the file alone can give. PlayCanvas splat-transform writes a
``lod-meta.json`` index for its streamed LOD format; brushpy writes none.

Quality (:func:`render_psnrs`): each level rendered with brushpy's rasterizer from the camera
``brushpy render`` would use by default (:func:`brushpy.io.framing.framing_camera`, up from
the scene's ``vertical_axis``) and compared with level 0's render (PSNR over RGB in [0, 1]).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .edit import file_size, select_splats, split_extension
from .formats import format_from_extension, write_splats
from .framing import framing_camera, scene_up
from .ply import SplatData

__all__ = ["LodLevel", "build_lods", "importance", "lod_counts", "lod_path", "render_psnrs", "write_lods"]


def importance(data: SplatData) -> np.ndarray:
    """Per-splat importance ``sigmoid(raw_opacity) * exp(l1 + l2)`` (float64 [N]; ``l1, l2`` the
    two largest log scales); non-finite scores become ``-inf`` (least important)."""
    ls = np.sort(data.log_scales.astype(np.float64), axis=1)
    with np.errstate(over="ignore", invalid="ignore"):
        score = data.opacities.astype(np.float64) * np.exp(ls[:, 1] + ls[:, 2])
    return np.where(np.isfinite(score), score, -np.inf)


def lod_counts(num_splats: int, levels: int) -> list[int]:
    """Splat counts of levels 0..``levels``: ``ceil(num_splats / 2**k)``, at least 1 (0 for an
    empty scene).

    Raises:
        ValueError: negative ``levels`` or ``num_splats``.
    """
    if levels < 0 or num_splats < 0:
        raise ValueError(f"lod_counts: need levels >= 0 and num_splats >= 0, got {levels}, {num_splats}")
    return [min(num_splats, max(1, math.ceil(num_splats / 2**k))) for k in range(levels + 1)]


def build_lods(data: SplatData, levels: int) -> list[SplatData]:
    """Levels 0..``levels`` of ``data`` (level 0 is ``data`` itself), as described in the module
    docstring. Each keeps ``render_mode``, ``vertical_axis`` and normals.

    Raises:
        ValueError: negative ``levels``.
    """
    counts = lod_counts(data.num_splats, levels)
    order = np.argsort(-importance(data), kind="stable")  # most important first
    return [data] + [select_splats(data, order[:c]) for c in counts[1:]]


def lod_path(path: str | os.PathLike, level: int) -> Path:
    """The file of LOD level ``level`` of ``path`` (level 0 is ``path``); see the module docstring."""
    path = Path(path)
    if level == 0:
        return path
    if path.name.lower() == "meta.json":
        return path.parent.with_name(f"{path.parent.name}_lod{level}") / path.name
    stem, ext = split_extension(path.name)
    return path.with_name(f"{stem}_lod{level}{ext}")


def _psnr(image: np.ndarray, reference: np.ndarray) -> float:
    a = np.clip(np.asarray(image, np.float64)[..., :3], 0.0, 1.0)
    b = np.clip(np.asarray(reference, np.float64)[..., :3], 0.0, 1.0)
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(1.0 / mse)


def render_psnrs(lods: list[SplatData], width: int = 400, height: int = 300, fov_y_deg: float = 50.0,
                 background=(0.0, 0.0, 0.0), rasterize=None) -> list[float]:
    """PSNR (dB) of each level's render against level 0's, from level 0's framing camera.

    The camera is :func:`~brushpy.io.framing.framing_camera` of level 0's centres with the
    scene's up (:func:`~brushpy.io.framing.scene_up` of ``vertical_axis``); every level is drawn
    in its ``render_mode`` with all its SH bands. Level 0 scores ``inf``.

    Args:
        rasterize: a function with :func:`brushpy.render.forward.rasterize`'s signature
            (default: that one, on the GPU).

    Raises:
        brushpy.gpu.NoAdapterError: no WebGPU adapter (with the default ``rasterize``).
        ValueError: ``lods`` is empty.
    """
    if not lods:
        raise ValueError("render_psnrs: no levels")
    if rasterize is None:
        from ..render.forward import rasterize
    base = lods[0]
    camera = framing_camera(base.means, width, height, fov_y_deg, up=scene_up(base.vertical_axis))

    def draw(d: SplatData) -> np.ndarray:
        return rasterize(d.means, d.rotations, d.log_scales, d.sh_coeffs, d.raw_opacities, camera.world_to_camera,
                         camera.intrinsics, width, height, background=tuple(background), render_mode=d.render_mode)

    reference = draw(base)
    return [math.inf] + [_psnr(draw(d), reference) for d in lods[1:]]


@dataclass
class LodLevel:
    """One written level: its number, file, splat count, size on disk (bytes) and PSNR against
    level 0 (dB; ``inf`` for level 0; None when not measured)."""

    level: int
    path: Path
    num_splats: int
    size_bytes: int
    psnr: float | None = None


def write_lods(path: str | os.PathLike, data: SplatData, levels: int, format: str | None = None,
               option: str | None = None, **options) -> list[LodLevel]:
    """Write levels 0..``levels`` of ``data`` to :func:`lod_path` ``(path, k)``, each through
    :func:`~brushpy.io.formats.write_splats` (``format``: default from ``path``'s extension;
    ``options`` go to the writer). PSNRs are left None (see :func:`render_psnrs`).

    Raises:
        ValueError: an unknown format or negative ``levels``.
        WriteError: a file cannot be written (the levels written before it stay).
    """
    fmt = format or format_from_extension(path)
    written = []
    for k, level in enumerate(build_lods(data, levels)):
        target = lod_path(path, k)
        write_splats(target, level, format=fmt, option=option, **options)
        written.append(LodLevel(k, target, level.num_splats, file_size(target)))
    return written
