"""A real client for the format tests: PlayCanvas's ``splat-transform`` (npm).

The pinned version runs on Node 20 (3.x needs Node 22). It is installed once with npm into a
cache folder (``$BRUSHPY_NPM_CACHE``, default ``~/.cache/brushpy-npm``); ``.ci/run`` does that
before the suite. Tests that need it skip with a reason where npm is absent.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

#: The splat-transform release the tests pin (the newest whose engines admit Node 20).
SPLAT_TRANSFORM_VERSION = "2.7.1"


def cache_dir() -> Path:
    return Path(os.environ.get("BRUSHPY_NPM_CACHE", Path.home() / ".cache" / "brushpy-npm"))


def splat_transform_bin() -> Path:
    """The splat-transform executable, installed into the cache on first use; skips without npm."""
    exe = cache_dir() / "node_modules" / ".bin" / "splat-transform"
    if exe.exists():
        return exe
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.skip("npm/node not installed: the splat-transform client tests need them (CI installs them)")
    cache_dir().mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--prefix", str(cache_dir()),
         f"@playcanvas/splat-transform@{SPLAT_TRANSFORM_VERSION}"],
        capture_output=True, text=True, timeout=600,
    )
    if proc.returncode != 0 or not exe.exists():
        pytest.skip(f"could not install splat-transform with npm: {proc.stderr[-500:]}")
    return exe


def run_splat_transform(*args: str | os.PathLike, timeout: float = 600) -> str:
    """Run ``splat-transform -w ARGS...``; fails the test with its output when it exits non-zero."""
    exe = splat_transform_bin()
    proc = subprocess.run([str(exe), "-w", *map(str, args)], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"splat-transform {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc.stdout
