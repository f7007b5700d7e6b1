"""Shared test fixtures.

``SHARED`` is the ``../shared`` folder beside the checkout (datasets, splats,
gsplat reference). Tests that read it use ``requires_shared(...)`` so a user's
clone without it skips them with a reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("BRUSHPY_SHARED", REPO.parent / "shared"))


def requires_shared(*parts: str):
    """Skip marker unless ``SHARED/parts...`` exists."""
    path = SHARED.joinpath(*parts)
    return pytest.mark.skipif(not path.exists(), reason=f"{path} not found (the ../shared folder beside the checkout)")


@pytest.fixture(scope="session")
def gpu():
    """The process-wide GPU context; skips the test when no adapter exists."""
    from brushpy.gpu import NoAdapterError, get_context

    try:
        return get_context()
    except NoAdapterError as exc:
        pytest.skip(f"no WebGPU adapter: {exc}")


@pytest.fixture
def no_subgroups(gpu):
    """A fresh GPU context without the ``subgroup`` feature, current for the test (the old one is put back)."""
    from brushpy.gpu import create_context, get_context, set_context

    old = get_context()
    ctx = create_context(disable={"subgroup"})
    assert not ctx.has_subgroups
    set_context(ctx)
    try:
        yield ctx
    finally:
        set_context(old)


def upload_u32(a):
    """``a`` uploaded as a GpuTensor; an empty array as an empty ``[0]`` uint32 tensor."""
    from brushpy.gpu import GpuTensor

    return GpuTensor.from_numpy(a) if a.size else GpuTensor.empty((0,), np.uint32)
