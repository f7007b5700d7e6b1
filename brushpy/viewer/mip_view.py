"""MIP models in the viewer: emissive Gaussians shown with the soft-MIP blend (issue 8, item 5).

A MIP model (the ``model.npz`` / ``checkpoint_iter{N}.npz`` files that
``brushpy mip train`` writes, see :mod:`brushpy.mip.model`) opened in the
viewer is drawn by :class:`brushpy.mip.MipRenderer` (the soft maximum
``(Σ_k c_k^p)^(1/p)``, ``p = 1/temperature``) from the viewer's interactive
camera, then mapped to colour by a small kernel
(``shaders/viewer_mip_colormap.wgsl``) and blitted like a splat image.

World coordinates of a MIP scene (documented mapping):

- The viewer's world is the model's **physical box coordinates**
  ``p = u ⊙ E`` (``u`` in [0, 1]^3 the model's box coordinates, ``E`` the box
  extents with the longest side 1, :func:`brushpy.mip.box_extents`; the file's
  ``extents`` array when present, else (1, 1, 1)). Axes as
  :mod:`brushpy.mip.camera`: x along the volume's columns, y along its rows,
  z along its slices. The viewer's default up is -y, so a fresh view looks
  down the stack (+z) with rows going down the screen: the orientation of
  the training view at angle 0 (``volume.max(axis=0)`` as an image).
- The viewer's :class:`~brushpy.render.camera.Camera` (OpenCV,
  ``c = R p + T``; fx, fy, cx, cy in pixels) becomes the perspective
  :class:`~brushpy.mip.MipCamera` with ``M = R · diag(E)``, ``t = T`` and the
  same intrinsics (:func:`mip_camera_from_viewer`): ``c = M u + t`` is the same
  camera-space point, so the two project every point to the same pixel.
- The scene bounds are the box ``[0, E]``, so "frame scene" (Home) fits the
  whole box, not just the Gaussians.

Display: ``v = clamp(gain · m, 0, 1)`` through a colormap (grey by default);
pixels no Gaussian reaches (``m = 0``) show the background colour.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..gpu import GpuTensor, Kernel, Recorder, workgroups_for
from ..gpu.layout import UniformLayout
from ..render.camera import Camera

#: Colormaps offered in the panel: evenly spaced RGB knots, interpolated linearly.
#: "inferno" is an 8-knot approximation of matplotlib's inferno.
COLORMAPS: dict[str, tuple] = {
    "grey": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    "green": ((0.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    "fire": ((0.0, 0.0, 0.0), (0.9, 0.0, 0.0), (1.0, 0.85, 0.0), (1.0, 1.0, 1.0)),
    "inferno": (
        (0.001, 0.000, 0.014), (0.135, 0.042, 0.318), (0.317, 0.071, 0.431), (0.512, 0.140, 0.408),
        (0.698, 0.213, 0.329), (0.868, 0.338, 0.200), (0.975, 0.557, 0.040), (0.988, 0.998, 0.645),
    ),
}


def is_mip_model(path) -> bool:
    """True when ``path`` is an ``.npz`` holding the MIP parameter arrays
    (``means``, ``log_scales``, ``rotations``, ``log_amplitudes``).

    Reads only the archive's directory; never raises (a missing or unreadable
    file is "not a MIP model" and the normal loader reports it).
    """
    from ..mip.model import PARAM_NAMES

    p = Path(str(path)).expanduser()
    if p.suffix.lower() != ".npz" or not p.is_file():
        return False
    try:
        with zipfile.ZipFile(p) as zf:
            names = {n[:-4] if n.endswith(".npy") else n for n in zf.namelist()}
    except (zipfile.BadZipFile, OSError):
        return False
    return all(n in names for n in PARAM_NAMES)


def mip_camera_from_viewer(camera: Camera, extents):
    """The perspective :class:`~brushpy.mip.MipCamera` of a viewer ``camera`` in a MIP scene.

    ``camera.world_to_camera = [R | T]`` acts on physical box coordinates
    ``p = u ⊙ E``; the MIP camera acts on box coordinates ``u``:
    ``M = R · diag(E)``, ``t = T``, same fx, fy, cx, cy, width, height.
    """
    from ..mip.camera import MipCamera

    E = np.asarray(extents, np.float64).reshape(3)
    w2c = np.asarray(camera.world_to_camera, np.float64)
    M = w2c[:3, :3] @ np.diag(E)
    t = w2c[:3, 3].copy()
    return MipCamera(M, t, camera.fx, camera.fy, camera.cx, camera.cy, camera.width, camera.height, orthographic=False)


@dataclass
class MipDisplaySettings:
    """The MIP part of the render settings panel.

    Attributes:
        temperature: soft-maximum temperature ``1/p`` of the blend (> 0; the
            hard maximum is the limit 0). Default: the training default.
        gain: display intensity factor before clamping to [0, 1] (> 0).
        colormap: a key of :data:`COLORMAPS`.
    """

    temperature: float = 0.1
    gain: float = 1.0
    colormap: str = "grey"

    def validate(self):
        """Raises ValueError naming the setting that is out of range."""
        if not self.temperature > 0:
            raise ValueError(f"MIP temperature must be > 0, got {self.temperature}")
        if not self.gain > 0:
            raise ValueError(f"MIP gain must be > 0, got {self.gain}")
        if self.colormap not in COLORMAPS:
            raise ValueError(f"MIP colormap must be one of {sorted(COLORMAPS)}, got {self.colormap!r}")

    def key(self) -> tuple:
        return (float(self.temperature), float(self.gain), self.colormap)


class MipView:
    """Renders a MIP model for the viewer, caching the last image (the :class:`~brushpy.viewer.view.SplatView`
    interface: ``render(model, camera, settings)`` -> f32 ``[H,W,4]`` GPU tensor, :attr:`last_was_cached`,
    :attr:`renders`, :meth:`invalidate`).

    Args:
        extents: the scene's box extents ``E`` (see the module docstring).
        display: :class:`MipDisplaySettings` (shared with the panel).
    """

    def __init__(self, extents, display: MipDisplaySettings | None = None):
        self.extents = np.asarray(extents, np.float64).reshape(3)
        self.display = display or MipDisplaySettings()
        self._renderer = None
        self._key = None
        self.image: GpuTensor | None = None  # the colour image
        self.mip: np.ndarray | None = None
        self.state = None
        self.last_was_cached = False
        self.renders = 0

    def _renderer_for(self, model, height: int, width: int):
        from ..mip.render import MipRenderer

        r = self._renderer
        if r is None or (r.num_gaussians, r.height, r.width) != (model.num_gaussians, height, width):
            r = self._renderer = MipRenderer(model.num_gaussians, height, width, self.display.temperature)
        r.temperature = float(self.display.temperature)
        r.power = 1.0 / r.temperature
        r._views.clear()  # one camera per frame: do not keep packed views of past frames
        return r

    def mip_image(self, model, camera: Camera) -> GpuTensor:
        """Record and run the soft MIP of ``model`` from ``camera``; returns the renderer's
        f32 ``[H,W,4]`` tensor ``(m, m, m, 1)`` (valid until the next render).

        Raises:
            MipOverflowError: the view needs more tile entries than one buffer holds.
        """
        self.display.validate()
        r = self._renderer_for(model, camera.height, camera.width)
        cam = mip_camera_from_viewer(camera, self.extents)
        rec = Recorder()
        image = r.record_forward(rec, model, cam)
        rec.submit()
        r.check_totals(1)
        return image

    def render(self, model, camera: Camera, settings) -> GpuTensor:
        """The coloured MIP of ``model`` seen by ``camera`` (re-rendered only when something changed).

        ``settings`` is the viewer's :class:`~brushpy.viewer.view.RenderSettings` (its background is used).
        """
        d = self.display
        d.validate()
        bg = tuple(float(c) for c in settings.background)
        key = (id(model), camera.world_to_camera.tobytes(), camera.intrinsics, camera.width, camera.height, d.key(), bg)
        if key == self._key and self.image is not None:
            self.last_was_cached = True
            return self.image
        mip = self.mip_image(model, camera)
        h, w = camera.height, camera.width
        if self.image is None or tuple(self.image.shape) != (h, w, 4):
            self.image = GpuTensor.empty((h, w, 4), np.float32, "viewer mip rgba")
        apply_colormap(mip, self.image, stride=4, gain=d.gain, colormap=d.colormap, background=bg)
        self._key = key
        self.last_was_cached = False
        self.renders += 1
        return self.image

    def invalidate(self):
        """Forget the cached image (next render draws again)."""
        self._key = None


#: shaders/viewer_mip_colormap.wgsl
COLORMAP_PARAMS = UniformLayout("Params", [
    ("count", "u32", "pixels"),
    ("gain", "f32", "v = clamp(gain * (m - offset), 0, 1)"),
    ("num_knots", "u32", "2..8"),
    ("offset", "f32", "value shown as the colormap's first knot (0 for a MIP, near for depth)"),
    ("background", "vec4<f32>", "rgb, 1"),
    ("knots", "array<vec4<f32>, 8>", "rgb, 0 each; unused knots 0"),
])


def colormap_params(count: int, gain: float, colormap: str, background, offset: float = 0.0):
    """The uniform block of ``viewer_mip_colormap.wgsl`` (:data:`COLORMAP_PARAMS`), a Uniform."""
    knots = np.zeros((8, 4), np.float32)
    c = np.asarray(COLORMAPS[colormap], np.float32)
    knots[:len(c), :3] = c
    bg = np.ones(4, np.float32)
    bg[:3] = np.asarray(background, np.float32)[:3]
    return COLORMAP_PARAMS.pack(count=count, gain=gain, num_knots=len(c), offset=offset, background=bg, knots=knots)


def apply_colormap(values: GpuTensor, rgba: GpuTensor, *, stride: int, gain: float, colormap: str, background,
                   offset: float = 0.0, rec: Recorder | None = None) -> None:
    """Colour a single-channel GPU image on the GPU (``shaders/viewer_mip_colormap.wgsl``).

    Pixel i's value is ``m = values[stride * i]`` (stride 4: the MIP renderer's ``(m, m, m, 1)``
    image; stride 1: a ``[H,W]`` depth). ``m <= 0`` shows ``background``; else
    ``v = clamp(gain * (m - offset), 0, 1)`` through ``COLORMAPS[colormap]``. Writes ``rgba``
    (f32 ``[H,W,4]``, alpha 1; its pixel count is the count). Submits ``rec`` (a new one by default).
    """
    h, w = rgba.shape[:2]
    kernel = Kernel("viewer_mip_colormap.wgsl", defines={"STRIDE": int(stride)}, structs=[COLORMAP_PARAMS])
    own = rec is None
    rec = rec or Recorder()
    rec.dispatch(kernel, {"params": colormap_params(h * w, gain, colormap, background, offset), "mip": values, "rgba": rgba},
                 workgroups_for(h * w, 256))
    if own:
        rec.submit()


def colormap_numpy(mip: np.ndarray, gain: float = 1.0, colormap: str = "grey", background=(0.0, 0.0, 0.0),
                   offset: float = 0.0) -> np.ndarray:
    """NumPy twin of the colormap kernel: values [H,W] -> RGB float [H,W,3] (for tests)."""
    knots = np.asarray(COLORMAPS[colormap], np.float64)
    m = np.asarray(mip, np.float64)
    v = np.clip(gain * (m - offset), 0, 1) * (len(knots) - 1)
    k = np.minimum(np.floor(v).astype(int), len(knots) - 2)
    f = (v - k)[..., None]
    rgb = knots[k] * (1 - f) + knots[k + 1] * f
    return np.where((m > 0)[..., None], rgb, np.asarray(background, np.float64)[:3])


@dataclass
class MipScene:
    """A MIP model as the viewer's scene (a :class:`~brushpy.viewer.scene.ViewerScene`, drawn by
    its own :attr:`view` with the soft-MIP blend, with temperature / gain / colormap in :meth:`settings_panel`).

    Attributes:
        splats: the :class:`~brushpy.mip.MipGaussians` on the GPU.
        extents: box extents ``E`` (physical units, longest side 1).
        bounds, extent: the box ``(0, E)`` (framing fits the whole volume box).
        display: the MIP display settings (temperature, gain, colormap).
        view: the :class:`MipView` that draws it.
    """

    splats: object
    extents: np.ndarray
    name: str = "MIP model"
    source: object = None
    sources: list = field(default_factory=list)
    frame: int = 0
    display: MipDisplaySettings = field(default_factory=MipDisplaySettings)
    bounds: tuple = ()
    extent: tuple = ()
    view: MipView | None = None
    sh_degree: int = 0

    def __post_init__(self):
        self.extents = np.asarray(self.extents, np.float64).reshape(3)
        self.bounds = (np.zeros(3), self.extents.copy())
        self.extent = self.bounds
        if self.view is None:
            self.view = MipView(self.extents, self.display)

    @property
    def num_splats(self) -> int:
        return self.splats.num_gaussians

    def view_for(self, splat_view):
        """A MIP scene brings its own :class:`MipView` (``splat_view`` is not used)."""
        return self.view

    def render(self, splat_view, camera, settings) -> GpuTensor:
        """The coloured soft MIP from ``camera`` (see :meth:`MipView.render`)."""
        return self.view.render(self.splats, camera, settings)

    def info_lines(self) -> list[str]:
        from .scene import bounds_lines

        d = self.display
        return [f"Gaussians: {self.num_splats:,}", f"Blend: soft MIP (T {d.temperature:.3g})"] + bounds_lines(
            self.bounds, "Volume box:")

    @classmethod
    def from_file(cls, path, display: MipDisplaySettings | None = None) -> "MipScene":
        """Load a MIP model ``.npz`` onto the GPU.

        The box extents come from the file's ``extents`` array when present (as
        ``brushpy mip train`` writes it), else the unit cube.

        Raises:
            SceneLoadError: naming the file and the problem (missing arrays, NaN values, bad extents).
        """
        from ..mip.model import MipGaussians
        from .scene import SceneLoadError, SplatSource

        p = Path(str(path)).expanduser()
        try:
            model, extra = MipGaussians.load(p)
        except Exception as exc:
            raise SceneLoadError(f"{p}: cannot open as a MIP model ({exc})") from exc
        E = np.asarray(extra.get("extents", np.ones(3)), np.float64).reshape(-1)
        if E.shape != (3,) or not np.all(np.isfinite(E)) or not np.all(E > 0):
            raise SceneLoadError(f"{p}: the 'extents' array must hold 3 positive numbers, got {E}")
        if display is None:  # start at the temperature the model was trained with
            t = np.asarray(extra.get("temperature", MipDisplaySettings.temperature), np.float64).reshape(-1)
            display = MipDisplaySettings(temperature=float(t[0]) if t.size == 1 and t[0] > 0 else MipDisplaySettings.temperature)
        src = SplatSource(p)
        return cls(splats=model, extents=E, name=f"{p.name} (MIP)", source=src, sources=[src], display=display)

    def settings_panel(self, imgui) -> bool:
        """Draw the MIP controls (temperature, gain, colormap) in the render settings panel;
        returns True when one changed."""
        d = self.display
        any_changed = False
        imgui.text("MIP blend (soft maximum)")
        changed, v = imgui.slider_float("Temperature", d.temperature, 0.005, 1.0, "%.3f", imgui.SliderFlags_.logarithmic)
        if changed:
            d.temperature = max(float(v), 1e-4)
            any_changed = True
        changed, v = imgui.slider_float("Gain", d.gain, 0.1, 20.0, "%.2f", imgui.SliderFlags_.logarithmic)
        if changed:
            d.gain = max(float(v), 1e-3)
            any_changed = True
        names = list(COLORMAPS)
        changed, idx = imgui.combo("Colormap", names.index(d.colormap), names)
        if changed:
            d.colormap = names[idx]
            any_changed = True
        return any_changed


def open_mip_model(app, path) -> bool:
    """Open a MIP model ``.npz`` in ``app`` (a :class:`~brushpy.viewer.session.ViewerSession`, or the
    :class:`~brushpy.viewer.app.ViewerApp` showing one), framing its box.

    A failure shows in the window (``app.error``) and keeps the current scene. Loading is
    synchronous (a model file is small; the upload must happen on the window's thread).
    Returns True on success.
    """
    from .scene import SceneLoadError

    try:
        display = app.scene.display if isinstance(app.scene, MipScene) else None
        scene = MipScene.from_file(path, display=display)
    except SceneLoadError as exc:
        app.error = str(exc)
        app.request_draw()
        return False
    app.path_input = str(path)
    app.error = None
    app.set_scene(scene)
    return True


__all__ = [
    "COLORMAPS",
    "MipDisplaySettings",
    "MipScene",
    "MipView",
    "apply_colormap",
    "colormap_numpy",
    "is_mip_model",
    "mip_camera_from_viewer",
    "open_mip_model",
]
