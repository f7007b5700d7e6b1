"""What the viewer shows: a splat set on the GPU plus what the panels say about it.

Opening a path (:func:`list_splat_files`, :func:`read_splat_file`) runs on a
worker thread of the viewer session (file reading and parsing are CPU work); the upload
(:meth:`SplatData.to_gpu`) happens on the thread that owns the window.
Accepted paths: a splat file of any format :func:`brushpy.io.formats.read_splats` reads
(INRIA or compressed ``.ply``, ``.spz``, ``.sog``, an unbundled SOG's ``meta.json``,
``.splat``; recognised by extension, else by content), a folder of such files, or a
``.zip`` of them (a folder or zip is a sequence of frames, e.g. the exports of a training
run, shown one at a time).
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ..io.formats import UnknownFormatError, detect_format, format_from_extension
from ..render.splats import Splats
from .camera import framing_bounds

#: What the viewer's messages list as openable splat files.
SPLAT_FILES = ".ply, .compressed.ply, .spz, .sog, meta.json, .splat"


class SceneLoadError(RuntimeError):
    """A path could not be opened as splats (the message says why and what to do)."""


@dataclass
class SplatSource:
    """One loadable splat file: a path on disk, or a member of a zip archive."""

    path: Path
    member: str | None = None

    @property
    def name(self) -> str:
        return self.member if self.member else self.path.name

    def __str__(self) -> str:
        return f"{self.path}!{self.member}" if self.member else str(self.path)


def _is_splat_name(name: str) -> bool:
    """A file name with a splat format's extension (:func:`brushpy.io.formats.format_from_extension`)."""
    return format_from_extension(name) is not None


def list_splat_files(path) -> list[SplatSource]:
    """The splat files a path stands for, in name order.

    A folder or a ``.zip`` holds the files whose names end in a splat extension
    (:data:`SPLAT_FILES`); a single file of another name is accepted when its content is a
    format brushpy reads.

    Raises:
        SceneLoadError: when the path is missing or holds no splat file.
    """
    p = Path(os.path.expanduser(str(path)))
    if not p.exists():
        raise SceneLoadError(f"{p}: no such file or folder")
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if _is_splat_name(f.name) and f.is_file())
        if not files:
            raise SceneLoadError(
                f"{p} is a folder without .ply or other splat files ({SPLAT_FILES}). The viewer opens a splat "
                "file, a folder or a .zip of them (a dataset folder holds transforms*.json or a COLMAP sparse/ model)."
            )
        return [SplatSource(f) for f in files]
    if p.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(p) as zf:
                names = sorted(n for n in zf.namelist() if _is_splat_name(Path(n).name) and not n.endswith("/"))
        except zipfile.BadZipFile as exc:
            raise SceneLoadError(f"{p}: not a readable zip archive ({exc})") from exc
        if not names:
            raise SceneLoadError(f"{p}: the zip archive holds no .ply or other splat file ({SPLAT_FILES})")
        return [SplatSource(p, n) for n in names]
    if _is_splat_name(p.name):
        return [SplatSource(p)]
    try:
        detect_format(p)
    except (UnknownFormatError, OSError) as exc:
        raise SceneLoadError(f"{p}: unsupported file type {p.suffix!r}; open a splat file ({SPLAT_FILES}), "
                             "a folder or a .zip of them") from exc
    return [SplatSource(p)]


def read_splat_file(source: SplatSource):
    """Parse one splat file on the CPU (:func:`brushpy.io.formats.read_splats`); returns its ``SplatData``.

    A zip member is unpacked to a temporary folder first (a ``meta.json`` with the other
    members of its folder: an unbundled SOG's images).

    Raises:
        SceneLoadError: wrapping any reader error, naming the file.
    """
    from ..io.formats import read_splats

    try:
        if source.member is None:
            return read_splats(source.path)
        with zipfile.ZipFile(source.path) as zf, tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / Path(source.member).name
            if target.name.lower() == "meta.json":
                folder = source.member[: len(source.member) - len(target.name)]
                for name in zf.namelist():
                    if name.startswith(folder) and "/" not in name[len(folder):] and not name.endswith("/"):
                        (Path(tmp) / name[len(folder):]).write_bytes(zf.read(name))
            else:
                target.write_bytes(zf.read(source.member))
            return read_splats(target)
    except SceneLoadError:
        raise
    except Exception as exc:  # the reader's own errors name the problem; add the file
        raise SceneLoadError(f"{source}: {exc}") from exc


def bounds_lines(bounds, title: str) -> list[str]:
    """Scene panel lines for a ``(lo, hi)`` box."""
    lo, hi = bounds
    return [title, f"  min {lo[0]:.3g}, {lo[1]:.3g}, {lo[2]:.3g}", f"  max {hi[0]:.3g}, {hi[1]:.3g}, {hi[2]:.3g}"]


@runtime_checkable
class ViewerScene(Protocol):
    """What the viewer window and its panels need from the scene they show.

    Implemented by :class:`SplatScene` (Gaussian splats, brushpy's
    rasterizer) and :class:`brushpy.viewer.mip_view.MipScene` (a MIP model,
    the soft-MIP blend). The window never asks which kind it holds: it
    renders, frames, and describes the scene only through these members.

    Attributes:
        name: what the scene panel calls it.
        source: the :class:`SplatSource` it came from, or None.
        sources: all files of the opened path (frames of a folder / zip; may be empty).
        frame: index of ``source`` in ``sources``.
        bounds: ``(lo, hi)`` float64 ``[3]`` world-space box "frame scene" (Home) fits.
        num_splats: number of primitives (splats or MIP Gaussians).
        sh_degree: highest spherical-harmonics degree of the colours (0 for a MIP model).
    """

    name: str
    source: SplatSource | None
    sources: list
    frame: int
    bounds: tuple

    @property
    def num_splats(self) -> int: ...

    @property
    def sh_degree(self) -> int: ...

    def view_for(self, splat_view):
        """The renderer that draws this scene: ``splat_view`` (the window's shared
        :class:`~brushpy.viewer.view.SplatView`) or the scene's own view. It has
        ``last_was_cached``, ``renders``, ``state`` and ``invalidate()``."""
        ...

    def render(self, splat_view, camera, settings):
        """Draw the scene from ``camera`` (:class:`~brushpy.render.camera.Camera`, pixels) with
        :class:`~brushpy.viewer.view.RenderSettings`; returns an f32 ``[H,W,4]`` GPU tensor
        (premultiplied RGBA, valid until the next render), drawn by :meth:`view_for` ``(splat_view)``."""
        ...

    def info_lines(self) -> list[str]:
        """Lines of the scene panel describing the scene (counts, mode, bounds)."""
        ...

    def settings_panel(self, imgui) -> bool:
        """Draw this kind's own render settings with ``imgui``; True when one changed."""
        ...


@dataclass
class SplatScene:
    """A splat set shown in the viewer, and what the scene panel says about it.

    (Not :class:`brushpy.data.Scene`, which is a dataset of posed images.)

    Attributes:
        splats: the GPU splat set.
        name: what the scene panel calls it (file name or caller's label).
        source: the file it came from, if any.
        sources: all files of the opened path (frames of a folder / zip).
        frame: index of ``source`` in ``sources``.
        bounds: robust (1-99 percentile) box of the splat centres, ``(lo, hi)``,
            used to frame the view.
        extent: full ``(min, max)`` of the finite splat centres.
        render_mode: ``"default"`` or ``"mip"``, the mode the splats were trained
            in (a PLY's ``SplatRenderMode: mip`` comment, or the live trainer's
            ``--render-mode``); the viewer renders them the same way.
        vertical_axis: the world's up axis when the file names one (``"+z"``, ...;
            :attr:`brushpy.io.ply.SplatData.vertical_axis`), else None (the viewer then keeps -y up).
        forward: the default viewing direction for ``vertical_axis`` (horizontal, at the scene's
            broadest side: :func:`brushpy.io.framing.default_forward`), or None.
    """

    splats: Splats
    name: str = "splats"
    source: SplatSource | None = None
    sources: list = field(default_factory=list)
    frame: int = 0
    bounds: tuple = (np.zeros(3), np.ones(3))
    extent: tuple = (np.zeros(3), np.ones(3))
    render_mode: str = "default"
    vertical_axis: str | None = None
    forward: np.ndarray | None = None

    @property
    def num_splats(self) -> int:
        return self.splats.num_splats

    @property
    def sh_degree(self) -> int:
        return self.splats.sh_degree

    def view_for(self, splat_view):
        """Splats are drawn by the window's shared :class:`~brushpy.viewer.view.SplatView`."""
        return splat_view

    def render(self, splat_view, camera, settings):
        """Rasterize the splats in the mode they were trained in (PLY comment / ``--render-mode``)."""
        return splat_view.render(self.splats, camera, settings, render_mode=self.render_mode)

    def info_lines(self) -> list[str]:
        lines = [f"Splats: {self.num_splats:,}", f"SH degree: {self.sh_degree}"]
        if self.render_mode != "default":
            lines.append(f"Render mode: {self.render_mode}")
        if self.vertical_axis is not None:
            lines.append(f"Vertical axis: {self.vertical_axis}")
        return lines + bounds_lines(self.bounds, "Bounds (1-99%):")

    def settings_panel(self, imgui) -> bool:
        """Splats have no settings beyond the common ones."""
        return False

    @classmethod
    def from_splats(cls, splats: Splats, name: str = "splats", means: np.ndarray | None = None, **kw) -> "SplatScene":
        """Describe a GPU splat set (downloads the means once unless given)."""
        if means is None:
            means = splats.means.numpy()
        means = np.asarray(means, np.float64).reshape(-1, 3)
        finite = means[np.isfinite(means).all(axis=1)]
        if finite.shape[0] == 0:
            raise SceneLoadError(f"{name}: the splat set has no finite positions")
        bounds = framing_bounds(finite)
        extent = (finite.min(axis=0), finite.max(axis=0))
        if kw.get("vertical_axis") is not None and kw.get("forward") is None:
            from ..io.framing import axis_vector, default_forward

            up = axis_vector(kw["vertical_axis"])
            kw["forward"] = None if up is None else default_forward(finite, up)
        return cls(splats=splats, name=name, bounds=bounds, extent=extent, **kw)
