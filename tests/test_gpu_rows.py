"""brushpy.gpu.rows: the one row gather / row zeroing that refine and Adam's moments share."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("shape, dtype", [((40,), np.float32), ((40, 3), np.int32), ((40, 16, 3), np.float32),
                                          ((40, 2), np.uint32)])
def test_out_of_range_index_gives_zero_row(gpu, shape, dtype, masked):
    from brushpy.gpu import GpuTensor, Recorder
    from brushpy.gpu.rows import gather_rows

    rng = np.random.default_rng(11)
    src = (rng.normal(size=shape) * 100 + 1000).astype(dtype)  # no zero entries
    rows = np.concatenate([rng.integers(0, 40, 50), [40, 41, 0xFFFFFFFF, 1 << 31]]).astype(np.uint32)
    rng.shuffle(rows)
    mask = (rng.random(len(rows)) < 0.25).astype(np.uint32)
    out = GpuTensor.from_numpy(np.full((len(rows) + 3,) + shape[1:], 5, dtype))  # the tail rows stay untouched
    rec = Recorder()
    gather_rows(rec, GpuTensor.from_numpy(src), GpuTensor.from_numpy(rows), len(rows), out=out,
                zero_mask=GpuTensor.from_numpy(mask) if masked else None)
    rec.submit()
    got = out.numpy()
    valid = rows < 40
    expect = np.zeros((len(rows),) + shape[1:], dtype)
    expect[valid] = src[rows[valid]]
    if masked:
        expect[mask != 0] = 0
    np.testing.assert_array_equal(got[: len(rows)], expect)
    assert np.all(got[len(rows):] == 5)
    assert got.dtype == dtype


def test_zero_rows_count_limits_the_rows(gpu):
    from brushpy.gpu import GpuTensor, Recorder
    from brushpy.gpu.rows import zero_rows

    t = GpuTensor.from_numpy(np.arange(30, dtype=np.float32).reshape(10, 3) + 1)
    mask = GpuTensor.from_numpy(np.ones(10, np.uint32))
    rec = Recorder()
    zero_rows(rec, t, mask, count=4)
    rec.submit()
    got = t.numpy()
    assert np.all(got[:4] == 0) and np.all(got[4:] == np.arange(12, 30, dtype=np.float32).reshape(6, 3) + 1)
    with pytest.raises(ValueError, match="row_mask"):
        zero_rows(Recorder(), t, GpuTensor.from_numpy(np.ones(3, np.uint32)))


def test_one_shader_serves_refine_and_adam():
    """Adam's moment gather is the refine row gather (no second copy of the kernel)."""
    from brushpy.gpu.shader import shader_dir
    from brushpy.optim import adam
    from brushpy.train import refine
    from brushpy.gpu import rows

    assert refine.gather_rows is rows.gather_rows
    assert adam.gather_rows is rows.gather_rows and adam.zero_rows is rows.zero_rows
    assert not (shader_dir() / "adam_state.wgsl").exists()
    assert "#struct RowParams" in (shader_dir() / "gather_rows.wgsl").read_text()
