"""docs/options.md is generated from the CLI (brushpy.cli.options_doc) and kept current."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import click
from click.testing import CliRunner

from brushpy.cli import main
from brushpy.cli.options_doc import REGENERATE, _brush_cell, format_value, options_doc, render_options_markdown

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "options.md"


def _command(*path: str) -> click.Command:
    ctx = click.Context(main)
    cmd: click.Command = main
    for name in path:
        cmd = cmd.get_command(ctx, name)
        assert cmd is not None, f"brushpy {' '.join(path)} is missing"
    return cmd


def _rows(text: str) -> dict[str, list[str]]:
    """First flag of each table row -> its cells."""
    rows = {}
    for line in text.splitlines():
        m = re.match(r"\| `(--[\w-]+)`", line)
        if m:
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
            rows.setdefault(m.group(1), cells)
    return rows


def test_checked_in_options_doc_is_current():
    expected = render_options_markdown()
    actual = DOC.read_text(encoding="utf-8") if DOC.is_file() else ""
    assert actual == expected, f"docs/options.md is stale or missing; regenerate it with `{REGENERATE}`"


def test_every_train_and_mip_train_option_is_documented():
    text = DOC.read_text(encoding="utf-8")
    for path in (("train",), ("mip", "train")):
        options = [p for p in _command(*path).params if isinstance(p, click.Option)]
        assert len(options) > 5
        missing = [o for p in options for o in [*p.opts, *p.secondary_opts] if f"`{o}`" not in text]
        assert not missing, f"brushpy {' '.join(path)} options missing from docs/options.md: {missing}; run `{REGENERATE}`"


def test_rows_take_defaults_from_the_dataclasses_and_brush_defaults_from_metadata():
    from brushpy.data import LoadConfig
    from brushpy.train.config import TrainConfig

    rows = _rows(render_options_markdown())
    lr = rows["--lr-mean"]
    assert lr[1] == f"`{format_value(TrainConfig().lr_mean)}`"
    assert lr[4] == "`2e-05`"  # Brush's default differs
    assert rows["--refine-every"][4] == ""  # same as Brush
    assert rows["--background-color"][1:3] == ["`0,0,0`", "R,G,B"]
    assert rows["--synthetic-eval-split"][4] == "no such flag (Brush uses val)"
    assert rows["--max-resolution"][1] == f"`{LoadConfig().max_resolution}`"
    assert rows["--alpha-mode"][2] == "`masked` \\| `transparent`"
    assert rows["--invert-masks"][0] == "`--invert-masks` / `--no-invert-masks`"
    assert len(rows["--resume"]) == 4  # no Brush column outside the config groups


def test_brush_cell_and_format_value():
    @dataclass
    class C:
        a: float = field(default=1.0, metadata={"brush_default": 2e-5})
        b: int = field(default=3, metadata={})
        c: str = field(default="x", metadata={"brush_flag": False})

    cells = {f: _brush_cell(f) for f in C.__dataclass_fields__.values()}
    assert list(cells.values()) == ["`2e-05`", "", "no such flag"]
    assert [format_value(v) for v in (None, True, False, (1.0, 0.5, 0.0), 2e-4, 30000, "a")] == [
        "unset", "on", "off", "1,0.5,0", "0.0002", "30000", "a"]


def test_options_doc_command_writes_the_file(tmp_path):
    out = tmp_path / "options.md"
    result = CliRunner().invoke(options_doc, ["-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8") == render_options_markdown()
    printed = CliRunner().invoke(options_doc, [])
    assert printed.output == render_options_markdown()


def test_no_module_points_into_shared():
    """Docstrings point to docs/ in the repo, not to the workspace's ../shared folder."""
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in sorted((ROOT / "brushpy").rglob("*.py"))
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if "shared/" in line]
    assert not hits, f"references to shared/ (outside the repo): {hits}; point to docs/options.md or docs/DEVELOPING.md"


def test_mip_train_flags_default_to_mip_train_config():
    """The mip table shows the click defaults; they must be MipTrainConfig's (one value per option)."""
    from dataclasses import fields

    from brushpy.mip.train import MipTrainConfig

    params = {p.name: p for p in _command("mip", "train").params}
    defaults = MipTrainConfig()
    shared = [f.name for f in fields(MipTrainConfig) if f.name in params]
    assert {"iterations", "lr", "lambda_mse", "lambda_ssim", "temperature"} <= set(shared)
    rows = _rows(DOC.read_text(encoding="utf-8"))
    for name in shared:
        assert params[name].default == getattr(defaults, name), name
        assert rows["--" + name.replace("_", "-")][1] == f"`{format_value(getattr(defaults, name))}`", name
