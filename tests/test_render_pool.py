"""The forward renderer's buffer pool: reused buffers give bit-identical renders and
never alias a result that is still in use (see ``release_forward_state``)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_render_forward import INTR, look_w2c, random_scene

W, H = 96, 64
FIELDS = ("image", "projected", "global_from_compact", "compact_from_isect", "tile_ranges", "final_index")


def _splats(scene):
    from brushpy.render.splats import Splats

    return Splats.from_numpy(scene["means"], scene["rotations"], scene["log_scales"], scene["sh_coeffs"], scene["raw_opacities"])


def _camera(w2c, width=W, height=H):
    from brushpy.render.camera import Camera

    return Camera(w2c, *INTR, width, height)


def _read(state) -> dict:
    return {f: getattr(state, f).numpy() for f in FIELDS}


def _assert_same(a: dict, b: dict, what: str):
    for f in FIELDS:
        assert a[f].shape == b[f].shape, f"{what}: {f} shape {a[f].shape} != {b[f].shape}"
        np.testing.assert_array_equal(a[f], b[f], err_msg=f"{what}: {f}")


def _swap_pool(saved):
    """Replace the context's renderer pool by ``saved`` (None: an empty one on next use);
    returns the pool that was there."""
    from brushpy.gpu import get_context
    from brushpy.render import pool

    ctx = get_context()
    old = ctx.forget(pool._RenderPool)
    if saved is not None:
        ctx.cache(pool._RenderPool, lambda _ctx: saved)
    return old


@pytest.fixture
def fresh_pool(gpu):
    """An empty renderer pool for this test (so 'fresh' renders get zero-filled buffers)."""
    from brushpy.render import forward

    saved = _swap_pool(None)
    yield forward
    _swap_pool(saved)


def _fresh_render(forward, splats, camera, background=(0.0, 0.0, 0.0)):
    """A render into brand-new (zeroed) buffers: the pool is emptied around it."""
    saved = _swap_pool(None)
    try:
        return _read(forward.render_forward(splats, camera, background))
    finally:
        _swap_pool(saved)


def test_reused_buffers_give_identical_renders(fresh_pool):
    """Render a large scene, release it, then smaller scenes and image sizes into the
    recycled (dirty, larger) buffers: every ForwardState field equals a render into
    fresh buffers, and the buffers really were reused."""
    forward = fresh_pool
    rng = np.random.default_rng(21)
    big = _splats(random_scene(rng, 2500, 1, log_scale=-1.8))
    first = forward.render_forward(big, _camera(look_w2c(), 128, 96), (0.3, 0.1, 0.2))
    first.image.numpy()
    image_buffer = first.image.buffer
    forward.release_forward_state(first)
    cases = [
        (random_scene(rng, 400, 1), look_w2c(0.1, 0.1), (W, H), (0.0, 0.0, 0.0)),
        (random_scene(rng, 700, 2), np.eye(4), (80, 40), (1.0, 0.5, 0.25)),
        (random_scene(rng, 5, 0, depth=-3.0), np.eye(4), (W, H), (0.2, 0.2, 0.2)),  # nothing visible
    ]
    reused = []
    for scene, w2c, (width, height), bg in cases:
        splats = _splats(scene)
        cam = _camera(w2c, width, height)
        state = forward.render_forward(splats, cam, bg)
        reused.append(state.image.buffer is image_buffer)
        got = _read(state)
        forward.release_forward_state(state)
        _assert_same(got, _fresh_render(forward, splats, cam, bg), f"{len(scene['means'])} splats {width}x{height}")
    assert all(reused)


def test_unreleased_state_keeps_its_buffers(fresh_pool):
    """A state that is not released is never overwritten by later renders."""
    forward = fresh_pool
    rng = np.random.default_rng(22)
    splats = _splats(random_scene(rng, 600, 1))
    kept = forward.render_forward(splats, _camera(look_w2c()))
    expected = _read(kept)
    for yaw in (0.0, 0.5, -0.4):
        other = forward.render_forward(splats, _camera(look_w2c(yaw, 0.2)))
        assert other.image.buffer is not kept.image.buffer
        forward.release_forward_state(other)  # released ones are recycled among themselves
    _assert_same(_read(kept), expected, "kept state")


def test_side_by_side_recorders_do_not_share_scratch(fresh_pool):
    """A render whose later stages sit unsubmitted in the caller's recorder, while another
    render runs and submits in between, still gives the same result."""
    from brushpy.gpu import Recorder

    forward = fresh_pool
    rng = np.random.default_rng(23)
    splats_a = _splats(random_scene(rng, 800, 1))
    splats_b = _splats(random_scene(rng, 900, 0, spread=2.0))
    cam_a, cam_b = _camera(look_w2c()), _camera(look_w2c(-0.3, 0.1))
    expected_a = _fresh_render(forward, splats_a, cam_a)
    expected_b = _fresh_render(forward, splats_b, cam_b)
    for _ in range(2):  # the second round runs on recycled buffers
        rec = Recorder()
        state_a = forward.render_forward(splats_a, cam_a, rec=rec)  # stages 2-5 pending in rec
        state_b = forward.render_forward(splats_b, cam_b)  # own recorder, submitted now
        got_b = _read(state_b)
        rec.submit()
        got_a = _read(state_a)
        _assert_same(got_a, expected_a, "pending render")
        _assert_same(got_b, expected_b, "render in between")
        forward.release_forward_state(state_b)
        forward.release_forward_state(state_a)


def test_release_with_recorder_waits_for_submit(fresh_pool):
    from brushpy.gpu import Recorder

    forward = fresh_pool
    rng = np.random.default_rng(24)
    splats = _splats(random_scene(rng, 100, 0))
    rec = Recorder()
    state = forward.render_forward(splats, _camera(look_w2c()), rec=rec)
    pool = forward._pool()
    forward.release_forward_state(state, rec)
    assert pool.outputs == []  # still in use by rec's pending commands
    rec.submit()
    assert len(pool.outputs) == 1 and len(pool.scratch) == 1
    forward.release_forward_state(state)  # twice: nothing happens
    assert len(pool.outputs) == 1


def test_camera_block_cache_follows_the_camera(fresh_pool):
    """The cached uniform camera block is keyed on the exact values: a camera moved in
    place, or a -0.0 background, gets its own block, equal to render_params' bytes."""
    forward = fresh_pool
    rng = np.random.default_rng(25)
    splats = _splats(random_scene(rng, 300, 1))
    cam = _camera(look_w2c())
    forward.render_forward(splats, cam)
    cam.world_to_camera[:3, 3] += (0.2, -0.1, 0.3)  # moved in place
    moved = _read(forward.render_forward(splats, cam))
    _assert_same(moved, _fresh_render(forward, splats, _camera(cam.world_to_camera.copy())), "moved camera")
    for bg in ((0.0, 0.0, 0.0), (-0.0, 0.0, 0.0), (0.5, 0.25, 1.0)):
        block = forward._cached_camera_block(cam, bg)
        assert block == forward.render_params(cam, bg, 1, 0, 1)[: len(block)]
    assert forward._cached_camera_block(cam, (-0.0, 0.0, 0.0)) != forward._cached_camera_block(cam, (0.0, 0.0, 0.0))
