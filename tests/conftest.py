"""Shared test fixtures.

``SHARED`` is the ``../shared`` folder beside the checkout (datasets, splats,
gsplat reference). Tests that read it use ``requires_shared(...)`` so a user's
clone without it skips them with a reason.
"""

from __future__ import annotations

import os
from pathlib import Path

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
