"""GPU side of the viewer: render settings, the splat render, and the blit to a framebuffer.

:class:`SplatView` draws the scene with the project's rasterizer
(:func:`brushpy.render.forward.render_forward`) into an f32 ``[H,W,4]`` GPU
tensor, and only again when the camera, the settings, the size or the
scene changed. :class:`Blitter` shows such a tensor on any colour target
(window surface or offscreen texture) with a fullscreen triangle whose
fragment shader reads the storage buffer directly, so the image never visits
the CPU. The window and the offscreen renderer share both.

Depth view (``RenderSettings.view_mode == "depth"``): the splats are rendered
with ``outputs="RGB+ED"`` and the expected depth ``ED = Σ wᵢ zᵢ / Σ wᵢ``
(camera-space z of the splat means, scene units; 0 where nothing was blended,
see docs/DEVELOPING.md "Render contract") is coloured on the GPU by the MIP
viewer's colormap kernel (:func:`brushpy.viewer.mip_view.apply_colormap`):
``near`` is the colormap's first knot, ``far`` its last (clamped beyond), empty
pixels show the background colour. Automatic near/far (``depth_near`` /
``depth_far`` None) are the 2nd / 98th percentile of the current frame's
nonzero depths (:func:`auto_depth_range`), recomputed for every new render
(no running estimate: the range follows the view at once). That costs one
read-back of the ``[H,W]`` float depth per new render; cached frames cost nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import wgpu

from ..gpu import GpuTensor, Kernel, Recorder, get_context, preprocess, workgroups_for
from ..gpu.layout import UniformLayout
from ..render.camera import Camera
from ..render.splats import Splats

#: shaders/viewer_scale_splats.wgsl
SCALE_PARAMS = UniformLayout("Params", [
    ("count", "u32", "number of floats (3 per splat)"),
    ("log_factor", "f32"),
    ("_pad0", "u32"),
    ("_pad1", "u32"),
])

#: shaders/viewer_blit.wgsl
BLIT_PARAMS = UniformLayout("Params", [
    ("image_size", "vec2<u32>", "W, H of the splat image"),
    ("target_size", "vec2<u32>", "framebuffer width, height in pixels"),
    ("srgb_target", "u32"),
    ("_pad0", "u32"),
    ("_pad1", "u32"),
    ("_pad2", "u32"),
])


@dataclass
class RenderSettings:
    """User-facing render options (the render settings panel).

    Attributes:
        sh_degree: SH degree used for colour, clamped to the scene's; None = the scene's.
        splat_scale: factor on every Gaussian's standard deviations (> 0).
        fov_y_deg: vertical field of view of the viewer camera in degrees.
        background: (r, g, b) in [0, 1] composited behind the splats.
        render_scale: splat image size relative to the window (0 < s <= 1);
            the image is stretched bilinearly to the window.
        moving_render_scale: the same while the camera is moving (the full
            ``render_scale`` image follows once it stops); keeps slow devices
            responsive. 1 = no change.
        view_mode: ``"color"`` (the splats' colours) or ``"depth"`` (expected depth through
            ``depth_colormap``; see the module docstring). MIP scenes ignore it.
        depth_near, depth_far: camera-space depths (scene units, along the view axis) shown as
            the colormap's first / last colour; None = automatic, the 2nd / 98th percentile
            of the current frame's depth (:func:`auto_depth_range`). Each may be set alone.
        depth_colormap: a key of :data:`brushpy.viewer.mip_view.COLORMAPS`.
    """

    sh_degree: int | None = None
    splat_scale: float = 1.0
    fov_y_deg: float = 50.0
    background: tuple = (0.0, 0.0, 0.0)
    render_scale: float = 1.0
    moving_render_scale: float = 1.0
    view_mode: str = "color"
    depth_near: float | None = None
    depth_far: float | None = None
    depth_colormap: str = "inferno"

    def key(self) -> tuple:
        return tuple(tuple(v) if isinstance(v, (list, tuple, np.ndarray)) else v for v in (getattr(self, f.name) for f in fields(self)))

    def validate(self):
        """Raises ValueError naming the setting that is out of range."""
        if not self.splat_scale > 0:
            raise ValueError(f"splat_scale must be > 0, got {self.splat_scale}")
        if not 0 < self.render_scale <= 1:
            raise ValueError(f"render_scale must be in (0, 1], got {self.render_scale}")
        if not 0 < self.moving_render_scale <= 1:
            raise ValueError(f"moving_render_scale must be in (0, 1], got {self.moving_render_scale}")
        if not 0 < self.fov_y_deg < 180:
            raise ValueError(f"fov_y_deg must be in (0, 180), got {self.fov_y_deg}")
        if len(self.background) != 3:
            raise ValueError(f"background must be (r, g, b), got {self.background}")
        if self.view_mode not in VIEW_MODES:
            raise ValueError(f"view_mode must be one of {VIEW_MODES}, got {self.view_mode!r}")
        from .mip_view import COLORMAPS

        if self.depth_colormap not in COLORMAPS:
            raise ValueError(f"depth_colormap must be one of {sorted(COLORMAPS)}, got {self.depth_colormap!r}")
        for name in ("depth_near", "depth_far"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be None (auto) or a finite depth >= 0, got {v}")
        if self.depth_near is not None and self.depth_far is not None and not self.depth_far > self.depth_near:
            raise ValueError(f"depth_far must be > depth_near, got near {self.depth_near}, far {self.depth_far}")


#: RenderSettings.view_mode values.
VIEW_MODES = ("color", "depth")

#: Percentiles of the frame's nonzero depths used as automatic near / far.
AUTO_DEPTH_PERCENTILES = (2.0, 98.0)


def auto_depth_range(depth: np.ndarray, max_samples: int = 1 << 16) -> tuple[float, float] | None:
    """Automatic (near, far) of a depth image: the :data:`AUTO_DEPTH_PERCENTILES` of its
    values > 0 (empty pixels are 0), from at most ``max_samples`` evenly strided pixels.

    Returns None when no pixel has a depth; far > near always (a flat range is widened).
    """
    d = np.asarray(depth, np.float32).reshape(-1)
    d = d[d > 0]
    if d.size == 0:
        return None
    if d.size > max_samples:
        d = d[:: -(-d.size // max_samples)]
    near, far = (float(v) for v in np.percentile(d, AUTO_DEPTH_PERCENTILES))
    if not far > near:
        far = near + max(abs(near) * 1e-3, 1e-6)
    return near, far


def depth_range(settings: "RenderSettings", depth: np.ndarray | None) -> tuple[float, float]:
    """The (near, far) the depth view uses: the settings' fixed values, automatic ones where None.

    ``depth`` (the frame's [H,W] depth on the CPU) is only needed when one is automatic.
    """
    near, far = settings.depth_near, settings.depth_far
    if near is None or far is None:
        auto = auto_depth_range(depth) if depth is not None else None
        a_near, a_far = auto if auto is not None else (0.0, 1.0)
        if near is None:
            near = a_near if far is None else min(a_near, far * 0.999)
        if far is None:
            far = max(a_far, near + max(abs(near) * 1e-3, 1e-6))
    return float(near), float(far)


class SplatView:
    """Renders a splat set with :class:`RenderSettings`, caching the last image.

    ``render(splats, camera, settings)`` returns the f32 ``[H,W,4]`` image
    tensor; calling it again with the same splats object, an equal camera and
    equal settings returns the cached tensor without GPU work
    (:attr:`last_was_cached`). Call :meth:`invalidate` after changing the
    splats' contents in place (e.g. a training step).

    In depth view (``settings.view_mode == "depth"``) the returned tensor is the
    colormapped depth (:attr:`depth_image`), :attr:`depth_range` the (near, far)
    it used, ``state.depth`` the [H,W] expected depth.
    """

    def __init__(self):
        self._scale_kernel = None
        self._scaled: tuple | None = None  # (splats id, factor, scaled log_scales tensor)
        self._key = None
        self.image: GpuTensor | None = None
        self.state = None  # the last ForwardState
        self.depth_image: GpuTensor | None = None  # the depth view's colours [H,W,4]
        self.depth_range: tuple[float, float] | None = None  # (near, far) of the last depth view
        self.last_was_cached = False
        self.renders = 0

    @staticmethod
    def _camera_key(camera: Camera) -> tuple:
        return (camera.world_to_camera.tobytes(), camera.intrinsics, camera.width, camera.height)

    def _scaled_splats(self, splats: Splats, factor: float) -> Splats:
        if factor == 1.0:
            return splats
        cached = self._scaled
        if cached is not None and cached[0] is splats and cached[1] == factor:
            out = cached[2]
        else:
            if self._scale_kernel is None:
                self._scale_kernel = Kernel("viewer_scale_splats.wgsl", structs=[SCALE_PARAMS])
            src = splats.log_scales
            out = cached[2] if (cached is not None and cached[2].shape == src.shape) else GpuTensor.empty(src.shape, np.float32, "viewer_log_scales")
            count = src.numel
            params = SCALE_PARAMS.pack(count=count, log_factor=math.log(factor))
            rec = Recorder()
            rec.dispatch(self._scale_kernel, {"params": params, "log_scales": src, "out_log_scales": out},
                         workgroups_for(count, 256))
            rec.submit()
            self._scaled = (splats, factor, out)
        return Splats(splats.means, splats.rotations, out, splats.sh_coeffs, splats.raw_opacities)

    def render(self, splats: Splats, camera: Camera, settings: RenderSettings, render_mode: str = "default") -> GpuTensor:
        """The image of ``splats`` seen by ``camera`` (re-rendered only when something changed).

        ``render_mode`` (``"default"`` or ``"mip"``) is the renderer's mode, the one
        the splats were trained in (:func:`brushpy.render.forward.render_forward`).
        Colour view renders ``outputs="RGB"`` exactly as before the depth view existed;
        depth view renders ``"RGB+ED"`` and returns the colormapped depth.
        """
        from ..render.forward import render_forward

        settings.validate()
        sh = splats.sh_degree if settings.sh_degree is None else max(0, min(int(settings.sh_degree), splats.sh_degree))
        bg = tuple(float(c) for c in settings.background)
        key = (id(splats), self._camera_key(camera), sh, float(settings.splat_scale), bg, render_mode)
        depth_view = settings.view_mode == "depth"
        if depth_view:
            key += ("depth", settings.depth_near, settings.depth_far, settings.depth_colormap)
        if key == self._key and self.image is not None:
            self.last_was_cached = True
            return self.image
        view_splats = self._scaled_splats(splats, float(settings.splat_scale))
        if not depth_view:
            state = render_forward(view_splats, camera, background=bg, sh_degree=sh, render_mode=render_mode)
            self.state, self.image, self._key = state, state.image, key
            self.depth_range = None
        else:
            state = render_forward(view_splats, camera, background=bg, sh_degree=sh, render_mode=render_mode,
                                   outputs="RGB+ED")
            self.state, self.image, self._key = state, self._color_depth(state.depth, settings, bg), key
        self.last_was_cached = False
        self.renders += 1
        return self.image

    def _color_depth(self, depth: GpuTensor, settings: RenderSettings, background) -> GpuTensor:
        """The depth view of a [H,W] expected depth: colormapped on the GPU into :attr:`depth_image`."""
        from .mip_view import apply_colormap

        h, w = depth.shape
        if self.depth_image is None or tuple(self.depth_image.shape) != (h, w, 4):
            self.depth_image = GpuTensor.empty((h, w, 4), np.float32, "viewer depth rgba")
        auto = settings.depth_near is None or settings.depth_far is None
        near, far = depth_range(settings, depth.numpy() if auto else None)
        self.depth_range = (near, far)
        apply_colormap(depth, self.depth_image, stride=1, gain=1.0 / (far - near), offset=near,
                       colormap=settings.depth_colormap, background=background)
        return self.depth_image

    def invalidate(self):
        """Forget the cached image (next render draws again), e.g. after the splats changed in place."""
        self._key = None
        if self._scaled is not None:  # the scaled copy of log_scales is stale too
            self._scaled = (None, None, self._scaled[2])


class Blitter:
    """Draws an f32 ``[H,W,4]`` image tensor over a whole colour target.

    Args:
        target_format: the colour attachment's texture format; for ``*-srgb``
            formats the shader decodes sRGB so the stored colours reach the
            screen unchanged.
    """

    def __init__(self, target_format: str, device=None):
        self.device = device or get_context().device
        self.target_format = target_format
        self.srgb_target = str(target_format).endswith("srgb")
        src = preprocess("viewer_blit.wgsl", structs=[BLIT_PARAMS])
        module = self.device.create_shader_module(code=src, label="viewer_blit")
        self.layout = self.device.create_bind_group_layout(
            entries=[
                {"binding": 0, "visibility": wgpu.ShaderStage.FRAGMENT, "buffer": {"type": "uniform"}},
                {"binding": 1, "visibility": wgpu.ShaderStage.FRAGMENT, "buffer": {"type": "read-only-storage"}},
            ],
            label="viewer_blit",
        )
        self.pipeline = self.device.create_render_pipeline(
            layout=self.device.create_pipeline_layout(bind_group_layouts=[self.layout]),
            vertex={"module": module, "entry_point": "vs_main", "buffers": []},
            primitive={"topology": "triangle-list"},
            fragment={"module": module, "entry_point": "fs_main", "targets": [{"format": target_format}]},
            label="viewer_blit",
        )
        self.uniform = self.device.create_buffer(size=BLIT_PARAMS.size, usage=wgpu.BufferUsage.UNIFORM | wgpu.BufferUsage.COPY_DST, label="viewer_blit_params")
        self._bind = None  # (buffer, bind group)

    def clear_value(self, background) -> tuple:
        """The render-pass clear colour that shows ``background`` like the blit does."""
        c = np.clip(np.asarray(background, np.float64), 0, 1)
        if self.srgb_target:
            c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
        return (float(c[0]), float(c[1]), float(c[2]), 1.0)

    def draw(self, render_pass, image: GpuTensor, target_size: tuple[int, int]):
        """Record the fullscreen draw of ``image`` (shape [H,W,4] float32) into ``render_pass``."""
        if len(image.shape) != 3 or image.shape[2] != 4:
            raise ValueError(f"blit expects an image tensor [H,W,4], got {image.shape}")
        h, w = image.shape[:2]
        params = BLIT_PARAMS.pack_bytes(image_size=(w, h), target_size=(int(target_size[0]), int(target_size[1])),
                                        srgb_target=int(self.srgb_target))
        self.device.queue.write_buffer(self.uniform, 0, params)
        if self._bind is None or self._bind[0] is not image.buffer:
            bg = self.device.create_bind_group(
                layout=self.layout,
                entries=[
                    {"binding": 0, "resource": {"buffer": self.uniform, "offset": 0, "size": BLIT_PARAMS.size}},
                    {"binding": 1, "resource": {"buffer": image.buffer, "offset": 0, "size": image.buffer.size}},
                ],
                label="viewer_blit",
            )
            self._bind = (image.buffer, bg)
        render_pass.set_pipeline(self.pipeline)
        render_pass.set_bind_group(0, self._bind[1])
        render_pass.draw(3, 1, 0, 0)
