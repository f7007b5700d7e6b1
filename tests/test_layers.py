"""The layer rule: a layer imports only from layers below it (pyproject's import-linter contract).

The layers, top to bottom, are listed in ``[tool.importlinter]`` in pyproject.toml
(README "Layers"). These tests run the contract on the checkout, check that every
package of brushpy sits in a layer, and check that the contract does catch an
upward import (on a copy of the package with one injected).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO

pytest.importorskip("importlinter", reason="import-linter is not installed (pip install '.[test]')")

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli", reason="reading pyproject.toml on Python 3.10 needs tomli")

_LINT = (
    "import sys; from importlinter.cli import lint_imports; "
    "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))"
)


def _lint(root) -> subprocess.CompletedProcess:
    """Run the contract in ``root`` (a folder holding pyproject.toml and brushpy/) in a fresh process,
    so the brushpy found is the one under ``root``."""
    return subprocess.run([sys.executable, "-c", _LINT], cwd=root, capture_output=True, text=True, timeout=300)


def _layers() -> list[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["type"] == "layers"]
    return contract["layers"]


def test_layer_contract_is_kept():
    res = _lint(REPO)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "brushpy layers KEPT" in res.stdout


def test_every_package_is_in_a_layer():
    in_layers = {name.strip() for layer in _layers() for name in layer.split("|")}
    pkg = REPO / "brushpy"
    modules = {f"brushpy.{p.name}" for p in pkg.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules |= {f"brushpy.{p.stem}" for p in pkg.glob("*.py") if p.stem not in ("__init__", "__main__")}
    assert modules - in_layers == set(), "add these to [tool.importlinter] layers in pyproject.toml"
    assert in_layers - modules == set(), "the contract names packages that do not exist"


@pytest.mark.parametrize(
    "where, bad_import, message",
    [
        ("gpu/_upward.py", "import brushpy.train.config", "brushpy.gpu is not allowed to import brushpy.train"),
        ("data/_upward.py", "from brushpy.viewer import run_viewer", "brushpy.data is not allowed to import brushpy.viewer"),
        ("train/_sideways.py", "from ..mip import model", "brushpy.train is not allowed to import brushpy.mip"),
        ("viewer/_upward.py", "from .. import cli", "brushpy.viewer is not allowed to import brushpy.cli"),
    ],
)
def test_upward_import_breaks_the_contract(tmp_path, where, bad_import, message):
    shutil.copytree(REPO / "brushpy", tmp_path / "brushpy", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "brushpy" / where).write_text(textwrap.dedent(f'"""An injected bad import."""\n{bad_import}\n'))
    res = _lint(tmp_path)
    assert res.returncode != 0, res.stdout
    assert "brushpy layers BROKEN" in res.stdout
    assert message in res.stdout, res.stdout
    assert "brushpy." + where[:-3].replace("/", ".") in res.stdout
