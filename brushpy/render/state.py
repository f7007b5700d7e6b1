"""What the forward render keeps for the backward pass (the forward/backward contract).

All buffers are GPU tensors. V = number of visible splats, I = number of
tile intersections, T = number of 16x16 tiles (``tiles_x * tiles_y``).

Visible splats are stored **compacted and sorted front to back** (by camera
depth; ties keep the original splat order).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..gpu import GpuTensor
from .camera import Camera

TILE_SIZE = 16

#: Floats per projected splat: x, y (pixels), conic a, b, c (inverse 2D
#: covariance [[a, b], [b, c]]), r, g, b (clamped SH colour), opacity (sigmoid).
PROJECTED_STRIDE = 9


@dataclass
class ForwardState:
    """Buffers of one forward render.

    Attributes:
        camera: the camera rendered.
        background: (r, g, b) composited behind the splats.
        num_splats: N, splats in the input.
        num_visible: V.
        num_intersections: I.
        tiles_x, tiles_y: tile grid (ceil(width/16), ceil(height/16)).
        image: f32 [H,W,4] RGB + alpha (alpha = 1 - final transmittance).
        projected: f32 [V,9] see :data:`PROJECTED_STRIDE`, in depth order.
        global_from_compact: u32 [V] input index of each visible splat.
        compact_from_isect: u32 [I] index into ``projected`` per intersection,
            sorted by tile id, then depth.
        tile_ranges: u32 [T,2] ``[start, end)`` into ``compact_from_isect`` per tile.
        final_index: u32 [H,W] per pixel, one past the last intersection index
            (absolute, into ``compact_from_isect``) that the pixel blended or
            rejected before stopping; the backward walks ``[tile start, final_index)``
            in reverse.
        sh_degree: degree used for colour.
        render_mode: ``"default"`` (2D filter 0.3) or ``"mip"`` (filter 0.1, opacity
            times the compensation; ``projected`` then holds the compensated opacity).
            The backward differentiates the mode the forward used.
        outputs: the ``outputs=`` string the render was asked for (canonical, e.g.
            ``"RGB+ED"``; see :func:`brushpy.render.params.parse_outputs`).
        depth: f32 [H,W] or None (no depth asked): the accumulated depth
            ``D = Σ wᵢ zᵢ`` (``"D"``) or the expected depth ``ED = D / max(Σ wᵢ, 1e-10)``
            (``"ED"``; 0 where nothing was blended), ``wᵢ = αᵢ Tᵢ`` the blend weights,
            ``zᵢ`` the camera-space depth of splat i's mean. ``Σ wᵢ`` is ``image[..., 3]``.
        median_depth: f32 [H,W] or None (not asked, ``"+MD"``): z of the splat whose
            blend takes the transmittance from ``>= 0.5`` to ``< 0.5``; 0 where it never
            drops below 0.5. Forward only (no gradient).
        depths: f32 [V] camera-space z of each visible splat (compact order) when a depth
            or the median depth was asked, else None (the backward reads it).
    """

    camera: Camera
    background: tuple
    num_splats: int
    num_visible: int
    num_intersections: int
    tiles_x: int
    tiles_y: int
    image: GpuTensor
    projected: GpuTensor
    global_from_compact: GpuTensor
    compact_from_isect: GpuTensor
    tile_ranges: GpuTensor
    final_index: GpuTensor
    sh_degree: int
    render_mode: str = "default"
    outputs: str = "RGB"
    depth: GpuTensor | None = None
    median_depth: GpuTensor | None = None
    depths: GpuTensor | None = None

    @property
    def depth_mode(self) -> str | None:
        """``"D"``, ``"ED"`` or None: which depth :attr:`depth` holds."""
        if self.depth is None:
            return None
        return "ED" if "ED" in self.outputs.split("+") else "D"
