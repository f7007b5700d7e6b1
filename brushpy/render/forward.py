"""Forward Gaussian splat renderer (WGSL), numerically matching gsplat "classic".

The pipeline (``shared/DESIGN.md`` "Forward render"), one compute pass per stage:

1. ``project`` (``shaders/project_forward.wgsl``): per splat, cull (non-finite inputs,
   ``z < 0.01``, opacity ``< 1/255``, 2D determinant ``<= 0``, off screen), 2D mean and
   conic, and the number of 16x16 tiles whose pixel centres the ellipse
   ``o·exp(-σ) >= 1/255`` reaches (its box from the power ``2 ln(255 o)``, then an exact
   per-tile ellipse test with a little slack, so no contributing tile is dropped).
   Visible splats are compacted in input order with a prefix sum
   (``shaders/render_compact.wgsl``); the visible and intersection counts are read back
   once to size the buffers that follow.
2. ``depth_sort``: GPU radix sort of the depth bit patterns (positive floats sort as u32),
   offset by the smallest one so only the bits the depth range needs are sorted.
3. ``project_visible`` (``shaders/project_visible.wgsl``): in depth order, 2D mean, conic,
   SH colour ``max(SH(dir) + 0.5, 0)`` and opacity into ``ForwardState.projected``.
4. ``map_intersections`` (``shaders/map_intersections.wgsl``): (tile id, compact id)
   pairs at offsets from a prefix sum of the tile counts, re-running the tile test of
   stage 1 on the same floats; ``tile_sort``: stable radix sort by tile id over
   ``ceil(log2(T))`` bits, then per-tile ranges (``shaders/render_tile_ranges.wgsl``).
   Should the tile test ever list fewer tiles than stage 1 counted, the spare slots point
   at a null splat (opacity 0) stored as row V of the ``projected`` buffer, one past the
   ``[V,9]`` that :class:`ForwardState` exposes, which every pixel skips.
5. ``rasterize`` (``shaders/rasterize.wgsl``): one workgroup per tile, one thread per
   pixel, splats staged through workgroup memory.

The float64 NumPy reference of the same maths is ``tests/reference/render.py``.
"""

from __future__ import annotations

import math

import numpy as np

from ..gpu import BufferTooLargeError, GpuTensor, Kernel, Recorder, Uniform, get_context, workgroups_for
from .camera import Camera
from .prefix_sum import inclusive_prefix_sum
from .sort import radix_sort_pairs
from .splats import Splats, sh_degree_from_coeffs
from .state import PROJECTED_STRIDE, TILE_SIZE, ForwardState

#: floats per splat in the internal buffer project_forward hands to later stages
#: (x, y, conic a, b, c, extent x, extent y, opacity); see shaders/render_common.wgsl.
AUX_STRIDE = 8
_WG = 256
#: x, y, conic (1, 0, 1), colour 0, opacity 0: alpha is 0 at every pixel, so it is always skipped
_NULL_SPLAT = np.array([0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0], np.float32)
#: extra WGSL defines of the kernels (tests only: TEST_DROP_TILES exercises the miscount path)
_DEFINES: dict = {}


class RenderTooLargeError(BufferTooLargeError):
    """A buffer of the forward render exceeds the device's storage-binding limit.

    The message names the buffer, its size, the limit (``max-storage-buffer-binding-size``)
    and what to lower.
    """

    def __init__(self, what: str, nbytes: int, limit: int, hint: str):
        super().__init__(what, nbytes, limit)
        self.hint = hint
        self.args = (
            f"forward render: buffer {what!r} needs {_fmt_bytes(nbytes)} but this device binds at most "
            f"{_fmt_bytes(limit)} per storage buffer (max-storage-buffer-binding-size); {hint}",
        )


def _fmt_bytes(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


def _alloc(shape, dtype, label: str, hint: str) -> GpuTensor:
    try:
        return GpuTensor.empty(shape, dtype, label)
    except BufferTooLargeError as exc:
        raise RenderTooLargeError(label, exc.nbytes, exc.limit, hint) from None


def _view(t: GpuTensor, n: int, shape=None) -> GpuTensor:
    """``t``'s buffer seen as its first ``n`` elements (optionally reshaped)."""
    shape = (n,) if shape is None else shape
    if t.shape == tuple(shape):
        return t
    if t.numel < math.prod(shape):
        raise RuntimeError(f"{t!r} holds {t.numel} elements, fewer than the {math.prod(shape)} needed")
    return GpuTensor(t.buffer, shape, t.dtype, t.label, t.ctx)


_KERNELS: dict = {}


def _kernels() -> dict[str, Kernel]:
    ctx = get_context()
    key = (id(ctx.device), tuple(sorted(_DEFINES.items())))
    ks = _KERNELS.get(key)
    if ks is None:
        d = dict(_DEFINES)
        ks = {
            "project": Kernel("project_forward.wgsl", defines=d, ctx=ctx),
            "compact": Kernel("render_compact.wgsl", defines=d, ctx=ctx),
            "project_visible": Kernel("project_visible.wgsl", defines=d, ctx=ctx),
            "map": Kernel("map_intersections.wgsl", defines=d, ctx=ctx),
            "tile_ranges": Kernel("render_tile_ranges.wgsl", defines=d, ctx=ctx),
            "rasterize": Kernel("rasterize.wgsl", defines=d, ctx=ctx),
        }
        _KERNELS.clear()
        _KERNELS[key] = ks
    return ks


def render_params(
    camera: Camera,
    background,
    num_splats: int,
    sh_degree: int,
    coeffs_per_splat: int,
    num_visible: int = 0,
    num_intersections: int = 0,
) -> bytes:
    """The ``RenderParams`` uniform block of ``shaders/render_common.wgsl`` (160 bytes).

    Args:
        camera: the view (``world_to_camera`` float64 [4,4], intrinsics in pixels).
        background: (r, g, b).
        num_splats: N. sh_degree: degree evaluated. coeffs_per_splat: K of ``sh_coeffs`` [N,K,3].
        num_visible: V. num_intersections: I.
    """
    w, h = camera.width, camera.height
    tiles_x, tiles_y = -(-w // TILE_SIZE), -(-h // TILE_SIZE)
    f = np.zeros(40, np.float32)
    u = f.view(np.uint32)
    f[0:12] = camera.world_to_camera[:3, :4].reshape(-1)
    f[12:16] = camera.intrinsics
    f[16:19] = camera.position
    fx, fy, cx, cy = camera.intrinsics
    f[20:24] = ((-0.15 * w - cx) / fx, (1.15 * w - cx) / fx, (-0.15 * h - cy) / fy, (1.15 * h - cy) / fy)
    f[24:27] = np.asarray(background, np.float64).reshape(3)
    u[28:32] = (w, h, tiles_x, tiles_y)
    u[32:36] = (num_splats, sh_degree, coeffs_per_splat, num_visible)
    u[36:40] = (num_intersections, tiles_x * tiles_y, 0, 0)
    return f.tobytes()


def render_forward(
    splats: Splats,
    camera: Camera,
    background=(0.0, 0.0, 0.0),
    sh_degree: int | None = None,
    rec: Recorder | None = None,
    profiler=None,
) -> ForwardState:
    """Render ``splats`` seen by ``camera`` on the GPU; keep every buffer the backward needs.

    Args:
        splats: N Gaussians on the GPU: means [N,3], rotations [N,4] (w,x,y,z),
            log_scales [N,3], sh_coeffs [N,K,3], raw_opacities [N] (float32).
        camera: pinhole camera (OpenCV axes, pixel centres at +0.5); its width and
            height give the image size.
        background: (r, g, b) composited behind the splats (``rgb + T·background``).
        sh_degree: SH degree to evaluate (0..degree of ``sh_coeffs``); default: all of it.
        rec: recorder to record into. The render submits it once (after the project
            stage, to read the visible and intersection counts back); the stages after
            that stay recorded but unsubmitted when ``rec`` is given, so the caller can
            append the backward and submit once. Without ``rec`` the render makes its own
            and submits it.
        profiler: :class:`~brushpy.gpu.Profiler` for a recorder created here (stages
            ``project``, ``depth_sort``, ``project_visible``, ``map_intersections``,
            ``tile_sort``, ``rasterize``). Ignored when ``rec`` is given (use the
            recorder's own profiler).

    Returns:
        :class:`~brushpy.render.state.ForwardState`; ``image`` is float32 [H,W,4]
        (RGB + alpha = 1 - final transmittance).

    Raises:
        ValueError: bad ``sh_degree``, image size or splat tensor shapes.
        RenderTooLargeError: a buffer exceeds the device's storage-binding limit (the
            message says which and what to lower).
    """
    n = splats.num_splats
    coeffs = splats.sh_coeffs.shape[1] if len(splats.sh_coeffs.shape) == 3 else -1
    data_degree = sh_degree_from_coeffs(coeffs)
    if sh_degree is None:
        sh_degree = data_degree
    sh_degree = int(sh_degree)
    if not 0 <= sh_degree <= data_degree:
        raise ValueError(f"sh_degree={sh_degree} but sh_coeffs [N,{coeffs},3] holds degree {data_degree}; use 0..{data_degree}")
    for name, t, shape in (
        ("means", splats.means, (n, 3)),
        ("rotations", splats.rotations, (n, 4)),
        ("log_scales", splats.log_scales, (n, 3)),
        ("sh_coeffs", splats.sh_coeffs, (n, coeffs, 3)),
        ("raw_opacities", splats.raw_opacities, (n,)),
    ):
        if tuple(t.shape) != shape or t.dtype != np.float32:
            raise ValueError(f"splats.{name} is {t.dtype} {tuple(t.shape)}; expected float32 {shape}")
    width, height = camera.width, camera.height
    if width <= 0 or height <= 0:
        raise ValueError(f"camera image size {width}x{height}: width and height must be positive")
    background = tuple(float(v) for v in np.asarray(background, np.float64).reshape(3))
    tiles_x, tiles_y = -(-width // TILE_SIZE), -(-height // TILE_SIZE)
    num_tiles = tiles_x * tiles_y

    ks = _kernels()
    own = rec is None
    if own:
        rec = Recorder(profiler=profiler)
    splat_hint = "lower the number of splats"
    pixel_hint = "lower the image width/height"

    # per-pixel buffers first: an oversized image fails before any work is recorded
    image = _alloc((height, width, 4), np.float32, "render.image", pixel_hint)
    final_index = _alloc((height, width), np.uint32, "render.final_index", pixel_hint)
    tile_ranges = _alloc((num_tiles, 2), np.uint32, "render.tile_ranges", pixel_hint)

    # -- 1. project, cull, count tiles; compact the visible splats ----------------------
    aux = _alloc((n, AUX_STRIDE), np.float32, "render.aux", splat_hint)
    tile_counts = _alloc((n,), np.uint32, "render.tile_counts", splat_hint)
    visible = _alloc((n,), np.uint32, "render.visible", splat_hint)
    depth_keys = _alloc((n,), np.uint32, "render.depth_keys", splat_hint)
    sort_keys = _alloc((n,), np.uint32, "render.sort_keys", splat_hint)
    sort_ids = _alloc((n,), np.uint32, "render.sort_ids", splat_hint)
    counters = GpuTensor.empty((4,), np.uint32, "render.counters")
    params1 = Uniform(render_params(camera, background, n, sh_degree, coeffs))
    if n > 0:
        with rec.stage("project"):
            rec.dispatch(
                ks["project"],
                [params1, splats.means, splats.rotations, splats.log_scales, splats.sh_coeffs, splats.raw_opacities,
                 aux, tile_counts, visible, depth_keys, counters],
                workgroups_for(n, _WG),
            )
            visible_prefix = inclusive_prefix_sum(rec, visible, n)
            rec.dispatch(ks["compact"], [params1, visible_prefix, depth_keys, sort_keys, sort_ids, counters], workgroups_for(n, _WG))
    rec.submit()
    num_visible, num_isect, min_key_inv, max_key = (int(v) for v in counters.numpy())
    # keys were offset by the smallest depth key: sort only the bits their range needs
    depth_bits = (max_key - (~min_key_inv & 0xFFFFFFFF)).bit_length() if num_visible else 0

    # -- 2. depth sort ------------------------------------------------------------------
    params2 = Uniform(render_params(camera, background, n, sh_degree, coeffs, num_visible, num_isect))
    if num_visible > 0:
        with rec.stage("depth_sort"):
            _, global_from_compact = radix_sort_pairs(rec, sort_keys, sort_ids, num_visible, num_bits=depth_bits)
        global_from_compact = _view(global_from_compact, num_visible)
    else:
        global_from_compact = GpuTensor.empty((0,), np.uint32, "render.global_from_compact")

    # -- 3. project visible splats in depth order -----------------------------------------
    # one extra row: the null splat (opacity 0) that map_intersections points at should it
    # ever list fewer tiles than project_forward counted; ForwardState sees [V,9]
    projected_rows = _alloc((num_visible + 1, PROJECTED_STRIDE), np.float32, "render.projected", splat_hint)
    projected_rows.write(_NULL_SPLAT, num_visible * PROJECTED_STRIDE)
    projected = _view(projected_rows, num_visible * PROJECTED_STRIDE, (num_visible, PROJECTED_STRIDE))
    counts_sorted = _alloc((num_visible,), np.uint32, "render.tile_counts_sorted", splat_hint)
    if num_visible > 0:
        with rec.stage("project_visible"):
            rec.dispatch(
                ks["project_visible"],
                [params2, splats.means, splats.sh_coeffs, aux, global_from_compact, tile_counts, projected, counts_sorted],
                workgroups_for(num_visible, _WG),
            )

    # -- 4. tile intersections, sorted by tile then depth; per-tile ranges ----------------
    isect_hint = (
        f"the view has {num_isect:,} splat-tile intersections; lower the image width/height, "
        "the number of splats or their size on screen"
    )
    tile_ids = _alloc((num_isect,), np.uint32, "render.isect_tile_ids", isect_hint)
    compact_ids = _alloc((num_isect,), np.uint32, "render.isect_compact_ids", isect_hint)
    if num_isect > 0:
        with rec.stage("map_intersections"):
            isect_end = inclusive_prefix_sum(rec, counts_sorted, num_visible)
            rec.dispatch(
                ks["map"],
                [params2, aux, global_from_compact, isect_end, counts_sorted, tile_ids, compact_ids],
                workgroups_for(num_visible, _WG),
            )
        # tile ids 0..T-1 need ceil(log2(T)) bits
        with rec.stage("tile_sort"):
            sorted_tiles, compact_from_isect = radix_sort_pairs(
                rec, tile_ids, compact_ids, num_isect, num_bits=max(1, (num_tiles - 1).bit_length())
            )
            sorted_tiles = _view(sorted_tiles, num_isect)
            compact_from_isect = _view(compact_from_isect, num_isect)
            rec.dispatch(ks["tile_ranges"], [params2, sorted_tiles, tile_ranges], workgroups_for(num_isect, _WG))
    else:
        compact_from_isect = compact_ids

    # -- 5. rasterize ---------------------------------------------------------------------
    with rec.stage("rasterize"):
        rec.dispatch(
            ks["rasterize"],
            [params2, projected, compact_from_isect, tile_ranges, image, final_index],
            (tiles_x, tiles_y, 1),
        )
    if own:
        rec.submit()

    return ForwardState(
        camera=camera,
        background=background,
        num_splats=n,
        num_visible=num_visible,
        num_intersections=num_isect,
        tiles_x=tiles_x,
        tiles_y=tiles_y,
        image=image,
        projected=projected,
        global_from_compact=global_from_compact,
        compact_from_isect=compact_from_isect,
        tile_ranges=tile_ranges,
        final_index=final_index,
        sh_degree=sh_degree,
    )


def rasterize(
    means,  # [N,3]
    rotations,  # [N,4] (w,x,y,z)
    log_scales,  # [N,3]
    sh_coeffs,  # [N,K,3] (or [N,3] for degree 0)
    raw_opacities,  # [N]
    world_to_camera,  # [4,4]
    intrinsics,  # (fx, fy, cx, cy)
    width: int,
    height: int,
    background=(0.0, 0.0, 0.0),
    sh_degree: int | None = None,
) -> np.ndarray:
    """Render Gaussian splats given as NumPy arrays; returns float32 [H,W,4] (RGB + alpha).

    Args:
        means: [N,3] world-space centres.
        rotations: [N,4] quaternions (w, x, y, z), any norm (zero = identity).
        log_scales: [N,3] natural log of the per-axis standard deviations.
        sh_coeffs: [N,K,3] SH colour coefficients, K = (d+1)^2, d <= 4 ([N,3] = degree 0).
        raw_opacities: [N] opacity logits.
        world_to_camera: [4,4] OpenCV-convention view matrix (``p_cam = R p + t``).
        intrinsics: (fx, fy, cx, cy) in pixels; pixel centres at +0.5.
        width, height: image size in pixels.
        background: (r, g, b) behind the splats.
        sh_degree: SH degree to evaluate (default: all of ``sh_coeffs``); only the
            coefficients it uses are uploaded.

    Raises:
        ValueError: inconsistent shapes, bad intrinsics/size or ``sh_degree``.
        RenderTooLargeError: a GPU buffer exceeds the device's binding limit.
    """
    means = np.asarray(means, np.float32).reshape(-1, 3)
    sh = np.asarray(sh_coeffs, np.float32)
    if sh.ndim == 2 and sh.shape[1] == 3:
        sh = sh[:, None, :]
    if sh.ndim != 3 or sh.shape[2] != 3:
        raise ValueError(f"sh_coeffs has shape {sh.shape}; expected (N, K, 3)")
    data_degree = sh_degree_from_coeffs(sh.shape[1])
    if sh_degree is not None:
        if not 0 <= int(sh_degree) <= data_degree:
            raise ValueError(f"sh_degree={sh_degree} but sh_coeffs holds degree {data_degree}; use 0..{data_degree}")
        sh = sh[:, : (int(sh_degree) + 1) ** 2]
    intrinsics = tuple(float(v) for v in np.asarray(intrinsics, np.float64).reshape(-1))
    if len(intrinsics) != 4:
        raise ValueError(f"intrinsics has {len(intrinsics)} values; expected (fx, fy, cx, cy)")
    w2c = np.asarray(world_to_camera, np.float64)
    if w2c.shape != (4, 4):
        raise ValueError(f"world_to_camera has shape {w2c.shape}; expected (4, 4)")
    camera = Camera(w2c, *intrinsics, width, height)
    try:
        splats = Splats.from_numpy(means, rotations, log_scales, sh, raw_opacities)
    except BufferTooLargeError as exc:
        hint = "lower the number of splats" + (" or sh_degree" if exc.what == "sh_coeffs" else "")
        raise RenderTooLargeError(exc.what, exc.nbytes, exc.limit, hint) from None
    state = render_forward(splats, camera, background)
    return state.image.numpy()
