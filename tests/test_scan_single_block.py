"""The one-dispatch path of the prefix sum (BLOCK < count <= SINGLE_BLOCK) and the
radix sort that uses it, against NumPy, with and without subgroups."""

import numpy as np
import pytest

from brushpy.gpu import GpuTensor, Recorder, create_context, get_context, set_context
from brushpy.render import prefix_sum
from brushpy.render.prefix_sum import BLOCK, SINGLE_BLOCK, inclusive_prefix_sum
from brushpy.render.sort import radix_sort_pairs

SIZES = [BLOCK + 1, 5000, SINGLE_BLOCK - 1, SINGLE_BLOCK, SINGLE_BLOCK + 1]


@pytest.fixture(params=["subgroups", "no_subgroups"])
def ctx(gpu, request):
    if request.param == "subgroups":
        if not gpu.has_subgroups:
            pytest.skip("device has no subgroups")
        yield gpu
        return
    old = get_context()
    c = create_context(disable={"subgroup"})
    set_context(c)
    try:
        yield c
    finally:
        set_context(old)


def _count_dispatches(monkeypatch):
    calls = []
    real = Recorder.dispatch

    def counting(self, kernel, *a, **k):
        calls.append(kernel.name)
        return real(self, kernel, *a, **k)

    monkeypatch.setattr(Recorder, "dispatch", counting)
    return calls


@pytest.mark.parametrize("n", SIZES)
def test_single_block_scan_matches_cumsum(ctx, n, monkeypatch):
    rng = np.random.default_rng(n)
    a = rng.integers(0, 2**28, n).astype(np.uint32)  # large values: sums wrap
    t = GpuTensor.from_numpy(a)
    out = GpuTensor.from_numpy(np.full(n + 7, 99, np.uint32))
    calls = _count_dispatches(monkeypatch)
    rec = Recorder()
    inclusive_prefix_sum(rec, t, n, out=out)  # into a longer buffer: the tail stays
    inclusive_prefix_sum(rec, t, n, out=t)  # in place, after the first scan read t
    rec.submit()
    expect = np.cumsum(a, dtype=np.uint32)
    got = out.numpy()
    np.testing.assert_array_equal(got[:n], expect)
    np.testing.assert_array_equal(got[n:], 99)
    np.testing.assert_array_equal(t.numpy(), expect)
    assert len(calls) == (2 if n <= SINGLE_BLOCK else 2 * 3)


@pytest.mark.parametrize("n", [BLOCK + 1, 5000, SINGLE_BLOCK])
def test_single_block_scan_in_place(ctx, n):
    a = np.random.default_rng(n + 1).integers(0, 50, n).astype(np.uint32)
    t = GpuTensor.from_numpy(a)
    rec = Recorder()
    inclusive_prefix_sum(rec, t, n, out=t)
    rec.submit()
    np.testing.assert_array_equal(t.numpy(), np.cumsum(a, dtype=np.uint32))


def test_single_block_equals_multi_level(gpu, monkeypatch):
    """The one-dispatch scan and the three-dispatch scan give the same output."""
    a = np.random.default_rng(9).integers(0, 2**32 - 1, 12_345, dtype=np.uint64).astype(np.uint32)
    t = GpuTensor.from_numpy(a)
    rec = Recorder()
    single = inclusive_prefix_sum(rec, t, a.size)
    rec.submit()
    monkeypatch.setattr(prefix_sum, "SINGLE_BLOCK", 0)  # force the levels
    multi = inclusive_prefix_sum(rec, t, a.size)
    rec.submit()
    np.testing.assert_array_equal(single.numpy(), multi.numpy())


@pytest.mark.parametrize("n", [200_000, 2**20])
def test_sort_with_single_block_scans(ctx, n):
    """Radix sorts whose digit-count scans (16 per 1024 keys) take the one-dispatch path."""
    assert BLOCK < 16 * -(-n // 1024) <= SINGLE_BLOCK
    rng = np.random.default_rng(n)
    keys = rng.integers(0, 2**20, n).astype(np.uint32)
    keys[::7] = keys[0]  # duplicates: stability matters
    vals = np.arange(n, dtype=np.uint32)
    k, v = GpuTensor.from_numpy(keys), GpuTensor.from_numpy(vals)
    rec = Recorder()
    radix_sort_pairs(rec, k, v, n, num_bits=20)
    rec.submit()
    order = np.argsort(keys, kind="stable")
    np.testing.assert_array_equal(k.numpy(), keys[order])
    np.testing.assert_array_equal(v.numpy(), vals[order])
