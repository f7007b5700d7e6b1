"""``brushpy view``: the click command's arguments and its message when no display exists."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

click = pytest.importorskip("click")


def test_view_command_help_and_bad_size():
    from click.testing import CliRunner

    from brushpy.cli.view import view_command

    r = CliRunner().invoke(view_command, ["--help"])
    assert r.exit_code == 0 and "Left drag orbit" in r.output
    r = CliRunner().invoke(view_command, ["--width", "0"])
    assert r.exit_code == 2 and "at least 1x1" in r.output


def test_brushpy_view_is_the_view_command():
    from click.testing import CliRunner

    from brushpy.cli import main

    r = CliRunner().invoke(main, ["view", "--help"])
    assert r.exit_code == 0 and "Left drag orbit" in r.output


def test_view_without_display_says_what_to_do():
    pytest.importorskip("glfw", reason="viewer extras (glfw) not installed")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["PYTHONPATH"] = str(REPO)
    code = (
        "from click.testing import CliRunner; from brushpy.cli.view import view_command; "
        "r = CliRunner().invoke(view_command, []); print(r.exit_code); print(r.output)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    lines = proc.stdout.splitlines()
    assert lines and lines[0] == "1", proc.stdout + proc.stderr
    assert "cannot open a window" in proc.stdout and "xvfb-run" in proc.stdout
