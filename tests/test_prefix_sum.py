"""GPU inclusive prefix sum (brushpy.render.prefix_sum) against np.cumsum."""

import numpy as np
import pytest

from brushpy.gpu import GpuTensor, Recorder, create_context, get_context, set_context
from brushpy.render.prefix_sum import BLOCK, inclusive_prefix_sum, level_sizes
from tests.conftest import upload_u32

SIZES = [0, 1, 1023, 1024, 1025, 100_000, 1_000_000]


def _scan(values: np.ndarray, count=None, out=None) -> np.ndarray:
    count = values.size if count is None else count
    t = upload_u32(values)
    rec = Recorder()
    res = inclusive_prefix_sum(rec, t, count, out=out)
    rec.submit()
    return res.numpy()


@pytest.mark.parametrize("n", SIZES)
def test_prefix_sum_matches_cumsum(gpu, n):
    rng = np.random.default_rng(n)
    a = rng.integers(0, 8, n).astype(np.uint32)
    got = _scan(a)
    assert got.shape == (n,)
    np.testing.assert_array_equal(got, np.cumsum(a, dtype=np.uint32))


@pytest.mark.parametrize("n", [1025, 100_000, 1_000_000])
def test_prefix_sum_without_subgroups(no_subgroups, n):
    rng = np.random.default_rng(n + 1)
    a = rng.integers(0, 8, n).astype(np.uint32)
    np.testing.assert_array_equal(_scan(a), np.cumsum(a, dtype=np.uint32))


def test_prefix_sum_wraps_modulo_2_32(gpu):
    a = np.full(5000, 2**31 + 12345, np.uint32)
    np.testing.assert_array_equal(_scan(a), np.cumsum(a, dtype=np.uint32))


def test_prefix_sum_partial_count_in_place_and_out(gpu):
    rng = np.random.default_rng(3)
    a = rng.integers(0, 100, 5000).astype(np.uint32)
    n = 3001
    # count < length: the tail of `out` is left alone
    out = GpuTensor.from_numpy(np.full(5000, 7, np.uint32))
    got = _scan(a, n, out=out)
    np.testing.assert_array_equal(got[:n], np.cumsum(a[:n], dtype=np.uint32))
    np.testing.assert_array_equal(got[n:], 7)
    # in place
    t = GpuTensor.from_numpy(a)
    rec = Recorder()
    res = inclusive_prefix_sum(rec, t, a.size, out=t)
    rec.submit()
    assert res is t
    np.testing.assert_array_equal(t.numpy(), np.cumsum(a, dtype=np.uint32))


def test_prefix_sum_several_in_one_recorder(gpu):
    """Scratch buffers are shared; scans recorded back to back must not disturb each other."""
    rng = np.random.default_rng(4)
    arrays = [rng.integers(0, 5, n).astype(np.uint32) for n in (300_000, 2_000, 300_000, 70_000)]
    rec = Recorder()
    outs = [inclusive_prefix_sum(rec, GpuTensor.from_numpy(a), a.size) for a in arrays]
    rec.submit()
    for a, o in zip(arrays, outs):
        np.testing.assert_array_equal(o.numpy(), np.cumsum(a, dtype=np.uint32))


def test_prefix_sum_folded_2d_dispatch(gpu, monkeypatch):
    """More blocks than one dispatch dimension allows: the grid folds into 2D."""
    monkeypatch.setitem(gpu.limits, "max-compute-workgroups-per-dimension", 7)
    rng = np.random.default_rng(5)
    a = rng.integers(0, 9, 100 * BLOCK + 17).astype(np.uint32)
    np.testing.assert_array_equal(_scan(a), np.cumsum(a, dtype=np.uint32))


def test_prefix_sum_longer_than_2_24(gpu):
    n = 2**24 + 1000
    assert len(level_sizes(n)) == 3
    rng = np.random.default_rng(6)
    a = rng.integers(0, 3, n).astype(np.uint32)
    got = _scan(a)
    expect = np.cumsum(a, dtype=np.uint32)
    np.testing.assert_array_equal(got, expect)


def test_prefix_sum_bad_input(gpu):
    f = GpuTensor.empty((10,), np.float32)
    u = GpuTensor.empty((10,), np.uint32)
    rec = Recorder()
    with pytest.raises(TypeError, match="uint32"):
        inclusive_prefix_sum(rec, f, 10)
    with pytest.raises(ValueError, match="count=11"):
        inclusive_prefix_sum(rec, u, 11)
    with pytest.raises(ValueError, match=">= 0"):
        inclusive_prefix_sum(rec, u, -1)


def test_prefix_sum_paths_identical(gpu):
    """Subgroup and workgroup-memory block scans give the very same output."""
    if not gpu.has_subgroups:
        pytest.skip("device has no subgroups: only the fallback path exists")
    a = np.random.default_rng(7).integers(0, 2**20, 300_000).astype(np.uint32)
    with_sg = _scan(a)
    old = get_context()
    set_context(create_context(disable={"subgroup"}))
    try:
        without_sg = _scan(a)
    finally:
        set_context(old)
    np.testing.assert_array_equal(with_sg, without_sg)
