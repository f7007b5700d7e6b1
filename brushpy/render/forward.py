"""Forward Gaussian splat renderer (WGSL), numerically matching gsplat "classic".

The pipeline (contract in ``docs/DEVELOPING.md`` "Render contract"), one compute pass per stage:

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

Render modes (``render_mode``, the ``--render-mode`` option): ``"default"`` adds the
0.3 px² low-pass to the 2D covariance (original 3DGS, gsplat "classic");
``"mip"`` is Mip-Splatting's 2D filter (Yu et al. 2024; gsplat
``rasterize_mode="antialiased"``; Brush's mip mode): ``+ 0.1 I``, and the opacity is
multiplied by ``sqrt(max(det Σ2D, 0) / det(Σ2D + 0.1 I))`` (``Σ2D`` before the filter),
so a splat keeps its integrated footprint when it is blurred. The cull (opacity
``< 1/255``) and the 1/255 extent use the compensated opacity, which is what
``ForwardState.projected`` holds.

Host cost: buffers come from a per-context pool of grow-only sets (:mod:`brushpy.render.pool`) (internal scratch
goes back when the recorder holding the render is submitted; the ForwardState's
buffers when the caller passes the state to :func:`release_forward_state`), so a
steady loop creates no buffers or bind groups; with the runtime's uniform arena
(``brushpy.gpu.kernel``) recording a render costs ~1 ms of host time on lavapipe
(``benchmarks/bench_render.py``: ``host_record_ms``).

The float64 NumPy reference of the same maths is ``tests/reference/render.py``.
"""

from __future__ import annotations

import numpy as np

from ..gpu import BufferTooLargeError, Kernel, Recorder, Uniform, get_context, workgroups_for
from .camera import Camera
from .params import (  # noqa: F401  (re-exported: brushpy.render.forward is where callers find them)
    RENDER_MODES,
    RENDER_PARAMS,
    _cached_camera_block,
    _camera_block,
    _counts_block,
    RenderOutputs,
    check_render_mode,
    parse_outputs,
    render_params,
)
from .pool import RenderTooLargeError, _pool, _view, release_forward_state  # noqa: F401  (re-exported)
from .prefix_sum import inclusive_prefix_sum
from .sort import radix_sort_pairs
from .splats import Splats, sh_degree_from_coeffs
from .state import PROJECTED_STRIDE, TILE_SIZE, ForwardState

#: floats per splat in the internal buffer project_forward hands to later stages
#: (x, y, conic a, b, c, extent x, extent y, opacity); see shaders/render_common.wgsl.
AUX_STRIDE = 8
_WG = 256
_F32 = np.dtype(np.float32)
#: SH degree by coefficients per channel, (d+1)^2 -> d
_SH_DEGREES = {(d + 1) ** 2: d for d in range(5)}
#: extra WGSL defines of the kernels (tests only: TEST_DROP_TILES exercises the miscount path)
_DEFINES: dict = {}


def default_pixels_per_thread(ctx) -> int:
    """Pixels each rasterize / rasterize-backward thread walks: 4 on CPU devices (lavapipe), else 1.

    On a CPU device reading a staged splat, a subgroup reduction or an atomic
    add costs more than one pixel's arithmetic, so sharing them between 4
    pixels makes both kernels about 2x faster there
    (``benchmarks/bench_backward.py --pixels-per-thread``); GPUs keep one pixel
    per thread, as gsplat and Brush do. ``_DEFINES["PIXELS_PER_THREAD"]``
    overrides it for the forward (tests).
    """
    return 4 if ctx.is_cpu else 1


def raster_defines(defines: dict | None, ctx) -> dict:
    """Template defines of ``rasterize.wgsl`` / ``rasterize_backward.wgsl``: ``defines``
    plus ``PIXELS_PER_THREAD`` (default :func:`default_pixels_per_thread`) and the
    matching ``WG_SIZE``.

    Raises:
        ValueError: ``PIXELS_PER_THREAD`` is not 1, 2, 4 or 8.
    """
    d = {"PIXELS_PER_THREAD": default_pixels_per_thread(ctx), **(defines or {})}
    ppt = int(d["PIXELS_PER_THREAD"])
    if ppt not in (1, 2, 4, 8):
        raise ValueError(f"PIXELS_PER_THREAD must be 1, 2, 4 or 8, got {ppt}")
    d["WG_SIZE"] = 256 // ppt
    return d


def _kernels(ctx=None) -> dict[str, Kernel]:
    """The forward kernels of the context for the current ``_DEFINES`` (in the context's cache)."""
    ctx = ctx or get_context()
    return ctx.cache(("brushpy.render.forward", tuple(sorted(_DEFINES.items()))), _new_kernels)


def _depth_kernels(ctx, out: RenderOutputs) -> dict[str, Kernel]:
    """``project_visible`` and ``rasterize`` compiled with the depth defines of ``out`` (cached)."""
    key = ("brushpy.render.forward.depth", tuple(sorted(_DEFINES.items())), out.depth, out.median)

    def build(ctx):
        d = {**_DEFINES, **out.kernel_defines()}
        rp = [RENDER_PARAMS]
        return {
            "project_visible": Kernel("project_visible.wgsl", defines=d, ctx=ctx, structs=rp),
            "rasterize": Kernel("rasterize.wgsl", defines=raster_defines(d, ctx), ctx=ctx, structs=rp),
        }

    return ctx.cache(key, build)


def _new_kernels(ctx) -> dict[str, Kernel]:
    d = dict(_DEFINES)
    rp = [RENDER_PARAMS]
    return {
        "project": Kernel("project_forward.wgsl", defines=d, ctx=ctx, structs=rp),
        "compact": Kernel("render_compact.wgsl", defines=d, ctx=ctx, structs=rp),
        "project_visible": Kernel("project_visible.wgsl", defines=d, ctx=ctx, structs=rp),
        "map": Kernel("map_intersections.wgsl", defines=d, ctx=ctx, structs=rp),
        "tile_ranges": Kernel("render_tile_ranges.wgsl", defines=d, ctx=ctx, structs=rp),
        "rasterize": Kernel("rasterize.wgsl", defines=raster_defines(d, ctx), ctx=ctx, structs=rp),
    }


def render_forward(
    splats: Splats,
    camera: Camera,
    background=(0.0, 0.0, 0.0),
    sh_degree: int | None = None,
    rec: Recorder | None = None,
    profiler=None,
    render_mode: str = "default",
    outputs: str = "RGB",
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
        render_mode: ``"default"`` (2D filter 0.3) or ``"mip"`` (Mip-Splatting's 2D filter
            0.1 with opacity compensation; see the module docstring). Recorded in
            ``ForwardState.render_mode`` so the backward uses the same mode.
        outputs: gsplat's names: ``"RGB"`` (default), ``"D"`` (accumulated depth
            ``Σ wᵢ zᵢ``, ``wᵢ = αᵢ Tᵢ``), ``"ED"`` (expected depth ``Σ wᵢ zᵢ / Σ wᵢ``),
            ``"RGB+D"``, ``"RGB+ED"``; any of them (or nothing else) ``+ "MD"`` adds the
            median depth (forward only). ``zᵢ`` is the camera-space depth of splat i's
            mean. The RGBA ``image`` is always rendered; a depth goes to
            ``ForwardState.depth`` [H,W], the median to ``ForwardState.median_depth``
            [H,W]. Plain ``"RGB"`` runs the kernels without any depth code.

    Returns:
        :class:`~brushpy.render.state.ForwardState`; ``image`` is float32 [H,W,4]
        (RGB + alpha = 1 - final transmittance). Its tensors are views of pooled,
        possibly larger buffers; they stay valid (never written by later renders)
        until the state is handed to :func:`release_forward_state`. A training loop
        should release each step's state once the step is recorded (see that
        function), so the next render reuses its buffers and bind groups.

    Raises:
        ValueError: bad ``sh_degree``, ``render_mode``, image size or splat tensor shapes.
        RenderTooLargeError: a buffer exceeds the device's storage-binding limit (the
            message says which and what to lower).
    """
    mode_code = RENDER_MODES[check_render_mode(render_mode)]
    want = parse_outputs(outputs)
    with_depths = want.depth is not None or want.median
    n = splats.num_splats
    coeffs = splats.sh_coeffs.shape[1] if len(splats.sh_coeffs.shape) == 3 else -1
    data_degree = _SH_DEGREES.get(coeffs)
    if data_degree is None:
        data_degree = sh_degree_from_coeffs(coeffs)  # raises the error
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
        if tuple(t.shape) != shape or t.dtype != _F32:
            raise ValueError(f"splats.{name} is {t.dtype} {tuple(t.shape)}; expected float32 {shape}")
    width, height = camera.width, camera.height
    if width <= 0 or height <= 0:
        raise ValueError(f"camera image size {width}x{height}: width and height must be positive")
    background = tuple(float(v) for v in np.asarray(background, np.float64).reshape(3))
    tiles_x, tiles_y = -(-width // TILE_SIZE), -(-height // TILE_SIZE)
    num_tiles = tiles_x * tiles_y

    ctx = get_context()
    ks = _kernels(ctx)
    if with_depths:
        ks = {**ks, **_depth_kernels(ctx, want)}
    own = rec is None
    if own:
        rec = Recorder(profiler=profiler)
    splat_hint = "lower the number of splats"
    pixel_hint = "lower the image width/height"
    pool = _pool(ctx)
    outputs = pool.take("outputs")
    scratch = pool.take("scratch")

    # per-pixel buffers first: an oversized image fails before any work is recorded
    image = outputs.get("image", (height, width, 4), np.float32, pixel_hint)
    final_index = outputs.get("final_index", (height, width), np.uint32, pixel_hint)
    tile_ranges = outputs.get("tile_ranges", (num_tiles, 2), np.uint32, pixel_hint)
    depth = outputs.get("depth", (height, width), np.float32, pixel_hint) if want.depth else None
    median_depth = outputs.get("median_depth", (height, width), np.float32, pixel_hint) if want.median else None

    # -- 1. project, cull, count tiles; compact the visible splats ----------------------
    aux = scratch.get("aux", (n, AUX_STRIDE), np.float32, splat_hint)
    tile_counts = scratch.get("tile_counts", (n,), np.uint32, splat_hint)
    visible = scratch.get("visible", (n,), np.uint32, splat_hint)
    visible_prefix = scratch.get("visible_prefix", (n,), np.uint32, splat_hint)
    depth_keys = scratch.get("depth_keys", (n,), np.uint32, splat_hint)
    sort_keys = scratch.get("sort_keys", (n,), np.uint32, splat_hint)
    sort_ids = outputs.get("sort_ids", (n,), np.uint32, splat_hint)
    counters = scratch.get("counters", (4,), np.uint32, splat_hint)
    camera_block = _cached_camera_block(camera, background)  # shared by both uniform blocks
    params1 = Uniform(camera_block + _counts_block(camera, n, sh_degree, coeffs, 0, 0, mode_code))
    # pooled buffers hold old data: zero what the kernels accumulate into
    rec.clear(counters, 16)
    rec.clear(tile_ranges, 8 * num_tiles)
    if n > 0:
        with rec.stage("project"):
            rec.dispatch(
                ks["project"],
                {"params": params1, "means": splats.means, "rotations": splats.rotations, "log_scales": splats.log_scales,
                 "sh_coeffs": splats.sh_coeffs, "raw_opacities": splats.raw_opacities, "aux": aux,
                 "tile_counts": tile_counts, "visible": visible, "depth_keys": depth_keys, "counters": counters},
                workgroups_for(n, _WG, ctx),
            )
            inclusive_prefix_sum(rec, visible, n, out=visible_prefix)
            rec.dispatch(ks["compact"], {"params": params1, "visible_prefix": visible_prefix, "depth_keys": depth_keys,
                                         "sort_keys": sort_keys, "sort_ids": sort_ids, "counters": counters},
                         workgroups_for(n, _WG, ctx))
    rec.submit()
    num_visible, num_isect, min_key_inv, max_key = (int(v) for v in counters.numpy())
    # keys were offset by the smallest depth key: sort only the bits their range needs
    depth_bits = (max_key - (~min_key_inv & 0xFFFFFFFF)).bit_length() if num_visible else 0

    # one extra row: the null splat (opacity 0) that map_intersections points at should it
    # ever list fewer tiles than project_forward counted; ForwardState sees [V,9]. (Copied
    # here, before the passes of the stages below, so the copy does not split a pass.)
    projected_rows = outputs.get("projected", ((num_visible + 1) * PROJECTED_STRIDE,), np.float32, splat_hint)
    rec.copy(pool.null_splat, projected_rows, 4 * PROJECTED_STRIDE, dst_offset=4 * PROJECTED_STRIDE * num_visible)
    projected = _view(projected_rows, num_visible * PROJECTED_STRIDE, (num_visible, PROJECTED_STRIDE))

    # -- 2. depth sort ------------------------------------------------------------------
    params2 = Uniform(camera_block + _counts_block(camera, n, sh_degree, coeffs, num_visible, num_isect, mode_code))
    if num_visible > 0:
        with rec.stage("depth_sort"):
            radix_sort_pairs(rec, sort_keys, sort_ids, num_visible, num_bits=depth_bits)
    # sorted in place
    global_from_compact = _view(sort_ids, num_visible)

    # -- 3. project visible splats in depth order -----------------------------------------
    counts_sorted = scratch.get("tile_counts_sorted", (num_visible,), np.uint32, splat_hint)
    depth_binds = {}
    depths = None
    if with_depths:
        # one row past V for the null splat (never blended, so its value is never used)
        depths_rows = outputs.get("depths", (num_visible + 1,), np.float32, splat_hint)
        depths = _view(depths_rows, num_visible)
        depth_binds["depths"] = depths_rows
    if num_visible > 0:
        with rec.stage("project_visible"):
            rec.dispatch(
                ks["project_visible"],
                {"params": params2, "means": splats.means, "sh_coeffs": splats.sh_coeffs, "aux": aux,
                 "global_from_compact": global_from_compact, "tile_counts": tile_counts, "projected": projected,
                 "tile_counts_sorted": counts_sorted, **({"depth_keys": depth_keys, **depth_binds} if with_depths else {})},
                workgroups_for(num_visible, _WG, ctx),
            )

    # -- 4. tile intersections, sorted by tile then depth; per-tile ranges ----------------
    isect_hint = (
        f"the view has {num_isect:,} splat-tile intersections; lower the image width/height, "
        "the number of splats or their size on screen"
    )
    tile_ids = scratch.get("isect_tile_ids", (num_isect,), np.uint32, isect_hint)
    compact_ids = outputs.get("isect_compact_ids", (num_isect,), np.uint32, isect_hint)
    if num_isect > 0:
        with rec.stage("map_intersections"):
            isect_end = scratch.get("isect_end", (num_visible,), np.uint32, splat_hint)
            inclusive_prefix_sum(rec, counts_sorted, num_visible, out=isect_end)
            rec.dispatch(
                ks["map"],
                {"params": params2, "aux": aux, "global_from_compact": global_from_compact, "isect_end": isect_end,
                 "tile_counts_sorted": counts_sorted, "tile_ids": tile_ids, "compact_ids": compact_ids},
                workgroups_for(num_visible, _WG, ctx),
            )
        # tile ids 0..T-1 need ceil(log2(T)) bits; sorted in place
        with rec.stage("tile_sort"):
            radix_sort_pairs(rec, tile_ids, compact_ids, num_isect, num_bits=max(1, (num_tiles - 1).bit_length()))
            rec.dispatch(ks["tile_ranges"], {"params": params2, "sorted_tile_ids": tile_ids, "tile_ranges": tile_ranges},
                         workgroups_for(num_isect, _WG, ctx))
    compact_from_isect = compact_ids

    # -- 5. rasterize ---------------------------------------------------------------------
    if depth is not None:
        depth_binds["depth"] = depth
    if median_depth is not None:
        depth_binds["median_depth"] = median_depth
    with rec.stage("rasterize"):
        rec.dispatch(
            ks["rasterize"],
            {"params": params2, "projected": projected, "compact_from_isect": compact_from_isect,
             "tile_ranges": tile_ranges, "image": image, "final_index": final_index, **depth_binds},
            (tiles_x, tiles_y, 1),
        )
    if own:
        rec.submit()
        pool.give("scratch", scratch)
    else:
        rec.on_submit(lambda: pool.give("scratch", scratch))

    state = ForwardState(
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
        render_mode=render_mode,
        outputs=want.name,
        depth=depth,
        median_depth=median_depth,
        depths=depths,
    )
    state._pooled_outputs = (pool, outputs)  # see release_forward_state
    return state


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
    render_mode: str = "default",
    outputs: str = "RGB",
) -> np.ndarray:
    """Render Gaussian splats given as NumPy arrays; returns float32 [H,W,C] (channels + alpha).

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
        render_mode: ``"default"`` or ``"mip"`` (see :func:`render_forward`).
        outputs: ``"RGB"`` (default), ``"D"``, ``"ED"``, ``"RGB+D"``, ``"RGB+ED"``, each
            optionally ``+ "MD"`` (see :func:`render_forward`). The channels are stacked
            as gsplat does, alpha last: ``"RGB"`` → [H,W,4] R,G,B,A; ``"RGB+ED"`` →
            [H,W,5] R,G,B,depth,A; ``"D"``/``"ED"`` → [H,W,2] depth,A; a median depth
            comes after the depth: ``"RGB+ED+MD"`` → [H,W,6] R,G,B,ED,MD,A.

    Raises:
        ValueError: inconsistent shapes, bad intrinsics/size, ``sh_degree``, ``render_mode``
            or ``outputs``.
        RenderTooLargeError: a GPU buffer exceeds the device's binding limit.
    """
    check_render_mode(render_mode)
    want = parse_outputs(outputs)
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
    state = render_forward(splats, camera, background, render_mode=render_mode, outputs=want)
    return stack_outputs(state)


def stack_outputs(state: ForwardState) -> np.ndarray:
    """The state's outputs read back and stacked as gsplat does: the colour channels (when
    ``"RGB"`` was asked), the depth, the median depth, then alpha (float32 [H,W,C])."""
    want = parse_outputs(state.outputs)
    image = state.image.numpy()
    if want.name == "RGB":
        return image
    parts = [image[..., :3]] if want.rgb else []
    parts += [t.numpy()[..., None] for t in (state.depth, state.median_depth) if t is not None]
    return np.concatenate(parts + [image[..., 3:4]], -1)
