"""GPU radix sort (brushpy.render.sort) against NumPy's stable argsort."""

import numpy as np
import pytest

from brushpy.gpu import GpuTensor, Recorder, create_context, get_context, set_context
from brushpy.render.sort import BLOCK, num_passes, radix_sort_pairs
from tests.conftest import upload_u32

SIZES = [0, 1, 1023, 1024, 1025, 100_000, 1_000_000]


def _gpu_sort(keys: np.ndarray, values: np.ndarray | None = None, num_bits: int = 32, count=None):
    count = keys.size if count is None else count
    if values is None:
        values = np.arange(keys.size, dtype=np.uint32)
    kt, vt = upload_u32(keys), upload_u32(values)
    rec = Recorder()
    ks, vs = radix_sort_pairs(rec, kt, vt, count, num_bits=num_bits)
    rec.submit()
    assert ks is kt and vs is vt  # documented: sorted in place
    return ks.numpy(), vs.numpy()


def _check(keys: np.ndarray, num_bits: int = 32):
    mask = np.uint32((1 << num_bits) - 1) if num_bits < 32 else np.uint32(0xFFFFFFFF)
    order = np.argsort(keys & mask, kind="stable")
    got_keys, got_values = _gpu_sort(keys, num_bits=num_bits)
    np.testing.assert_array_equal(got_values, order)
    np.testing.assert_array_equal(got_keys, keys[order])


def _random_keys(n, seed, high=2**32):
    rng = np.random.default_rng(seed)
    return rng.integers(0, high, n, dtype=np.uint64).astype(np.uint32)


@pytest.mark.parametrize("n", SIZES)
def test_sort_random_keys(gpu, n):
    _check(_random_keys(n, n))


@pytest.mark.parametrize("n", SIZES)
def test_sort_many_duplicates(gpu, n):
    _check(_random_keys(n, n + 1, high=5))


def test_sort_duplicates_in_every_digit(gpu):
    """Few distinct keys spread over all 32 bits (every pass sees ties)."""
    rng = np.random.default_rng(7)
    distinct = _random_keys(37, 8)
    _check(distinct[rng.integers(0, 37, 300_000)])


@pytest.mark.parametrize("n", [1025, 100_000])
def test_sort_partial_bits(gpu, n):
    _check(_random_keys(n, 9, high=2**13), num_bits=13)
    # Bits above num_bits are not sorted on (and ride along unchanged).
    _check(_random_keys(n, 10), num_bits=13)


@pytest.mark.parametrize("num_bits", [1, 4, 12, 17, 31])
def test_sort_bit_counts(gpu, num_bits):
    """Odd pass counts (result copied back) and partial last digits."""
    assert num_passes(12) == 3
    _check(_random_keys(20_000, num_bits), num_bits=num_bits)


def test_sort_zero_bits_and_partial_count(gpu):
    keys = _random_keys(5000, 11)
    got_k, got_v = _gpu_sort(keys, num_bits=0)
    np.testing.assert_array_equal(got_k, keys)
    np.testing.assert_array_equal(got_v, np.arange(5000))
    # Only the first `count` pairs are sorted; the tail is untouched.
    n = 3333
    got_k, got_v = _gpu_sort(keys, count=n)
    order = np.argsort(keys[:n], kind="stable")
    np.testing.assert_array_equal(got_k[:n], keys[:n][order])
    np.testing.assert_array_equal(got_v[:n], order)
    np.testing.assert_array_equal(got_k[n:], keys[n:])
    np.testing.assert_array_equal(got_v[n:], np.arange(n, 5000))


@pytest.mark.parametrize("n", [1025, 100_000, 1_000_000])
def test_sort_without_subgroups(no_subgroups, n):
    _check(_random_keys(n, n + 2))
    _check(_random_keys(n, n + 3, high=3))


def test_sort_without_subgroups_partial_bits(no_subgroups):
    _check(_random_keys(50_000, 12, high=2**13), num_bits=13)


def test_sort_several_in_one_recorder(gpu):
    """Scratch buffers are shared; sorts recorded back to back must not disturb each other."""
    cases = [_random_keys(n, n + 20, high=h) for n, h in ((200_000, 2**32), (3000, 7), (200_000, 2**20), (5, 2))]
    rec = Recorder()
    tensors = []
    for k in cases:
        kt, vt = GpuTensor.from_numpy(k), GpuTensor.from_numpy(np.arange(k.size, dtype=np.uint32))
        tensors.append(radix_sort_pairs(rec, kt, vt, k.size, num_bits=32))
    rec.submit()
    for k, (kt, vt) in zip(cases, tensors):
        order = np.argsort(k, kind="stable")
        np.testing.assert_array_equal(vt.numpy(), order)
        np.testing.assert_array_equal(kt.numpy(), k[order])


def test_sort_arbitrary_values(gpu):
    keys = _random_keys(4000, 13, high=100)
    values = _random_keys(4000, 14)
    got_k, got_v = _gpu_sort(keys, values)
    order = np.argsort(keys, kind="stable")
    np.testing.assert_array_equal(got_v, values[order])


def test_sort_folded_2d_dispatch(gpu, monkeypatch):
    """More blocks than one dispatch dimension allows: the grid folds into 2D."""
    monkeypatch.setitem(gpu.limits, "max-compute-workgroups-per-dimension", 7)
    _check(_random_keys(60 * BLOCK + 5, 15))


def test_sort_bad_input(gpu):
    u = GpuTensor.empty((10,), np.uint32)
    u2 = GpuTensor.empty((10,), np.uint32)
    f = GpuTensor.empty((10,), np.float32)
    rec = Recorder()
    with pytest.raises(TypeError, match="uint32"):
        radix_sort_pairs(rec, f, u, 10)
    with pytest.raises(ValueError, match="count=11"):
        radix_sort_pairs(rec, u, u2, 11)
    with pytest.raises(ValueError, match="num_bits"):
        radix_sort_pairs(rec, u, u2, 10, num_bits=33)
    with pytest.raises(ValueError, match="different buffers"):
        radix_sort_pairs(rec, u, u, 10)


def test_scratch_grows_inside_one_recorder(gpu):
    """On a fresh context, a small sort then a larger one (scratch reallocated) in one recorder."""
    old = get_context()
    set_context(create_context())
    try:
        cases = [_random_keys(n, n + 30) for n in (2000, 150_000, 40_000)]
        rec = Recorder()
        out = []
        for k in cases:
            kt, vt = GpuTensor.from_numpy(k), GpuTensor.from_numpy(np.arange(k.size, dtype=np.uint32))
            out.append(radix_sort_pairs(rec, kt, vt, k.size))
        rec.submit()
        for k, (kt, vt) in zip(cases, out):
            order = np.argsort(k, kind="stable")
            np.testing.assert_array_equal(vt.numpy(), order)
            np.testing.assert_array_equal(kt.numpy(), k[order])
    finally:
        set_context(old)


@pytest.mark.parametrize("value", [0, 7, 8, 0xFFFFFFFF])
def test_sort_constant_keys(gpu, value):
    """Whole blocks in one digit: counters at their largest (low and high 16-bit halves)."""
    _check(np.full(3 * BLOCK + 11, value, np.uint32))


def test_sort_paths_identical(gpu):
    """Subgroup and workgroup-memory ranking give the very same output."""
    if not gpu.has_subgroups:
        pytest.skip("device has no subgroups: only the fallback path exists")
    keys = _random_keys(70_000, 16, high=1000)
    with_sg = _gpu_sort(keys, num_bits=10)
    old = get_context()
    set_context(create_context(disable={"subgroup"}))
    try:
        without_sg = _gpu_sort(keys, num_bits=10)
    finally:
        set_context(old)
    np.testing.assert_array_equal(with_sg[0], without_sg[0])
    np.testing.assert_array_equal(with_sg[1], without_sg[1])
