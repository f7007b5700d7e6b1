"""The ``RenderParams`` uniform block of ``shaders/render_common.wgsl``, packed on the host.

The camera part (view matrix, intrinsics, position, Jacobian clamp bounds,
background) is cached by the camera's exact values, since training cycles through
a fixed set of views; the counts part changes between the stages of one render.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from ..gpu.layout import UniformLayout
from .camera import Camera
from .state import TILE_SIZE

#: the render kernels' parameter block (``#struct RenderParams`` in shaders/render_common.wgsl)
RENDER_PARAMS = UniformLayout("RenderParams", [
    ("w2c_row0", "vec4<f32>", "world_to_camera rows: R row, t component in w"),
    ("w2c_row1", "vec4<f32>"),
    ("w2c_row2", "vec4<f32>"),
    ("intrin", "vec4<f32>", "fx, fy, cx, cy (pixels)"),
    ("cam_pos", "vec4<f32>", "camera centre in world coordinates (xyz)"),
    ("clamp_lim", "vec4<f32>", "x/z min, x/z max, y/z min, y/z max used in the Jacobian"),
    ("background", "vec4<f32>", "rgb, unused"),
    ("image", "vec4<u32>", "width, height, tiles_x, tiles_y"),
    ("counts", "vec4<u32>", "num_splats N, sh_degree, coefficients per splat K, num_visible V"),
    ("counts2", "vec4<u32>", "num_intersections I, num_tiles T, render mode (0 default, 1 mip), 0"),
])
#: the camera part (cached per view) and the counts part (changes between stages)
_CAMERA_PART = RENDER_PARAMS.part("w2c_row0", "background")
_COUNTS_PART = RENDER_PARAMS.part("image", "counts2")

#: render modes and their code in RenderParams.counts2.z (shaders/render_common.wgsl)
RENDER_MODES = {"default": 0, "mip": 1}


def check_render_mode(render_mode: str) -> str:
    """Return ``render_mode`` if it is ``"default"`` or ``"mip"``; raise ValueError otherwise."""
    if render_mode not in RENDER_MODES:
        raise ValueError(f"render_mode={render_mode!r}; use 'default' (2D filter 0.3) or 'mip' (2D filter 0.1 with opacity compensation)")
    return render_mode


#: the outputs a render can produce: colour, one depth (accumulated or expected), median depth
OUTPUT_TOKENS = ("RGB", "D", "ED", "MD")


@dataclass(frozen=True)
class RenderOutputs:
    """What ``outputs=`` asked of a render (see :func:`parse_outputs`).

    Attributes:
        rgb: the colour image was asked for (``ForwardState.image`` is always rendered).
        depth: ``None``, ``"D"`` (accumulated depth ``Σ wᵢ zᵢ``) or ``"ED"`` (expected
            depth ``Σ wᵢ zᵢ / Σ wᵢ``), ``wᵢ = αᵢ Tᵢ``, ``zᵢ`` the camera-space depth of
            splat i's mean; differentiable.
        median: the median depth (forward only).
    """

    rgb: bool = True
    depth: str | None = None
    median: bool = False

    @property
    def name(self) -> str:
        """The canonical ``outputs`` string (``"RGB+ED"``, ``"D+MD"``, ...)."""
        return "+".join(t for t, on in (("RGB", self.rgb), (self.depth, self.depth is not None), ("MD", self.median)) if on)

    def kernel_defines(self) -> dict:
        """Template defines of the depth variants (empty for plain RGB: today's kernels)."""
        d = {}
        if self.depth is not None or self.median:
            d["SPLAT_DEPTHS"] = True
        if self.depth is not None:
            d["ACC_DEPTH"] = True
        if self.depth == "ED":
            d["EXPECTED_DEPTH"] = True
        if self.median:
            d["MEDIAN_DEPTH"] = True
        return d


def parse_outputs(outputs) -> RenderOutputs:
    """Parse ``outputs=``: gsplat's ``"RGB"``, ``"D"``, ``"ED"``, ``"RGB+D"``, ``"RGB+ED"``,
    optionally with ``"+MD"`` (median depth), e.g. ``"RGB+ED+MD"`` or ``"MD"``.

    A :class:`RenderOutputs` is returned as it is.

    Raises:
        ValueError: unknown token, a repeated one, both ``D`` and ``ED``, or nothing asked.
    """
    if isinstance(outputs, RenderOutputs):
        return outputs
    text = str(outputs)
    tokens = [t.strip().upper() for t in text.split("+")]
    bad = [t for t in tokens if t not in OUTPUT_TOKENS]
    if bad or len(set(tokens)) != len(tokens) or ("D" in tokens and "ED" in tokens) or not tokens:
        raise ValueError(
            f"outputs={outputs!r}; use 'RGB', 'D', 'ED', 'RGB+D' or 'RGB+ED' (gsplat's render modes), "
            "optionally with '+MD' for the median depth (forward only)"
        )
    depth = "ED" if "ED" in tokens else "D" if "D" in tokens else None
    return RenderOutputs(rgb="RGB" in tokens, depth=depth, median="MD" in tokens)


def render_params(
    camera: Camera,
    background,
    num_splats: int,
    sh_degree: int,
    coeffs_per_splat: int,
    num_visible: int = 0,
    num_intersections: int = 0,
    render_mode: str = "default",
) -> bytes:
    """The ``RenderParams`` uniform block of ``shaders/render_common.wgsl`` (160 bytes).

    Args:
        camera: the view (``world_to_camera`` float64 [4,4], intrinsics in pixels).
        background: (r, g, b).
        num_splats: N. sh_degree: degree evaluated. coeffs_per_splat: K of ``sh_coeffs`` [N,K,3].
        num_visible: V. num_intersections: I.
        render_mode: ``"default"`` or ``"mip"`` (see the module docstring).
    """
    background = tuple(np.asarray(background, np.float64).reshape(3).tolist())
    return _camera_block(camera, background) + _counts_block(
        camera, num_splats, sh_degree, coeffs_per_splat, num_visible, num_intersections, RENDER_MODES[check_render_mode(render_mode)]
    )


def _camera_block(camera: Camera, background: tuple) -> bytes:
    """The first 112 bytes of ``RenderParams``: view matrix rows, intrinsics, camera
    position, the clamp bounds of the projection Jacobian, background (float32; each
    value rounded from float64 as a NumPy cast would)."""
    w, h = camera.width, camera.height
    fx, fy, cx, cy = camera.intrinsics
    return _CAMERA_PART.pack_bytes(
        w2c_row0=camera.world_to_camera[0, :4], w2c_row1=camera.world_to_camera[1, :4], w2c_row2=camera.world_to_camera[2, :4],
        intrin=(fx, fy, cx, cy),
        cam_pos=(*camera.position.tolist(), 0.0),
        clamp_lim=((-0.15 * w - cx) / fx, (1.15 * w - cx) / fx, (-0.15 * h - cy) / fy, (1.15 * h - cy) / fy),
        background=(*background, 0.0),
    )


#: camera blocks by (view matrix bytes, intrinsics, size, background): training cycles
#: through a fixed set of views, and a small NumPy product costs ~50 us of host time
#: right after the GPU ran (cold caches)
_CAMERA_BLOCKS: dict = {}
_CAMERA_BLOCKS_MAX = 1024
_KEY = struct.Struct("<7d")


def _cached_camera_block(camera: Camera, background: tuple) -> bytes:
    # keyed on the exact bits (so -0.0 and 0.0, or NaNs, never share an entry)
    key = (camera.world_to_camera.tobytes(), _KEY.pack(*camera.intrinsics, *background), camera.width, camera.height)
    block = _CAMERA_BLOCKS.get(key)
    if block is None:
        if len(_CAMERA_BLOCKS) >= _CAMERA_BLOCKS_MAX:
            _CAMERA_BLOCKS.clear()
        block = _CAMERA_BLOCKS[key] = _camera_block(camera, background)
    return block


def _counts_block(camera: Camera, num_splats, sh_degree, coeffs_per_splat, num_visible, num_intersections, mode_code: int = 0) -> bytes:
    """The last 48 bytes of ``RenderParams``: image and tile sizes, splat counts, render mode code."""
    w, h = camera.width, camera.height
    tiles_x, tiles_y = -(-w // TILE_SIZE), -(-h // TILE_SIZE)
    # per stage of every render: the part's scalars in memory order (no per-field dict)
    return _COUNTS_PART.pack_scalars(
        w, h, tiles_x, tiles_y,
        num_splats, sh_degree, coeffs_per_splat, num_visible,
        num_intersections, tiles_x * tiles_y, mode_code, 0,
    )

