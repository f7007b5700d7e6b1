"""Generate ``docs/options.md``, the options reference, from the CLI's own command objects.

``python3 -m brushpy.cli.options_doc > docs/options.md`` (or ``-o docs/options.md``)
rewrites the file; ``tests/test_options_doc.py`` fails when the checked-in copy differs.

The tables are read from the click commands ``brushpy train`` and ``brushpy mip train``,
so a flag's spelling, default, type and help are exactly what ``--help`` shows. For
``brushpy train`` every option built from a config dataclass field (see
:mod:`brushpy.cli.train`, which turns each field into a flag) takes its default from the
field and its "Brush default" from the field's metadata:

- ``metadata["brush_default"]``: Brush's default, set only where it differs from brushpy's;
- ``metadata["brush_flag"] = False``: Brush has no such option (``brush_default`` may then
  say what Brush does instead).

An empty "Brush default" cell means the option is Brush's, with Brush's default.
"""

from __future__ import annotations

import sys
from dataclasses import MISSING, fields
from pathlib import Path

import click

#: The command that regenerates the checked-in file (quoted in the file and by the test).
REGENERATE = "python3 -m brushpy.cli.options_doc -o docs/options.md"

_TYPE_NAMES = {"integer": "int", "float": "float", "text": "text", "path": "path", "boolean": "bool",
               "file": "file"}


def format_value(value) -> str:
    """A default as the table shows it: ``None`` -> ``unset``, bools ``on``/``off``, tuples
    comma-separated (``0,0,0``), floats in ``%g`` form (``2e-05``), anything else ``str``."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (tuple, list)):
        return ",".join(format_value(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _cell(text: str) -> str:
    """Escape a table cell (pipes, newlines)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _code(text: str) -> str:
    return f"`{text}`" if text else ""


def _flags(param: click.Parameter) -> str:
    names = sorted(param.opts, key=len, reverse=True) + list(param.secondary_opts)
    return " / ".join(_code(n) for n in names)


def _type_name(param: click.Parameter) -> str:
    ptype = param.type
    if getattr(param, "is_flag", False):
        return "flag"
    if isinstance(ptype, click.Choice):
        return " | ".join(_code(str(c)) for c in ptype.choices)
    if isinstance(ptype, click.Tuple):
        name = " ".join(_TYPE_NAMES.get(t.name, t.name) for t in ptype.types)
    else:
        name = _TYPE_NAMES.get(ptype.name, ptype.name)
        if param.nargs > 1:
            name = " ".join([name] * param.nargs)
    if getattr(param, "multiple", False):
        name += " (repeatable)"
    return name


def _param_default(param: click.Parameter):
    # to_info_dict reports an option without a default (click >= 8.2: a sentinel) as None
    default = param.to_info_dict()["default"]
    if isinstance(default, (tuple, list)) and param.nargs > 1:
        return " ".join(format_value(v) for v in default)
    return format_value(default)


def _brush_cell(f) -> str:
    meta = f.metadata
    has_value = "brush_default" in meta
    value = format_value(meta["brush_default"]) if has_value else ""
    if meta.get("brush_flag", True) is False:
        return "no such flag" + (f" (Brush uses {value})" if has_value else "")
    return _code(value) if has_value else ""


def _options(command: click.Command) -> list[click.Option]:
    return [p for p in command.params if isinstance(p, click.Option) and not p.hidden]


def _table(rows: list[list[str]], header: list[str]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out


def _train_sections() -> list[str]:
    from .train import EMBEDDED_DEFAULTS, EMBEDDED_PROCESS_DEFAULTS, GROUPS, train

    by_group: dict[str, list[click.Option]] = {}
    for p in _options(train):
        by_group.setdefault(getattr(p, "brushpy_group", "Other options"), []).append(p)
    classes = dict(GROUPS)
    out = ["## `brushpy train`", ""]
    embedded = {**EMBEDDED_DEFAULTS, **EMBEDDED_PROCESS_DEFAULTS}
    out += [
        "Without a DATASET argument `brushpy train` trains on the embedded 100x100 lego scene, and "
        "options set neither on the command line nor in `args.txt` take these values instead, sized "
        "for a few minutes on a CPU: "
        + ", ".join(f"`--{k.replace('_', '-')}` {format_value(v)}" for k, v in embedded.items())
        + " (the growth stop and the export period only while `--total-steps` is not set either).",
        "",
    ]
    for title in [g for g, _ in GROUPS] + ["Other options"]:
        params = by_group.get(title)
        if not params:
            continue
        cls = classes.get(title)
        field_of = {f.name: f for f in fields(cls)} if cls is not None else {}
        if cls is not None:
            out += [f"### {title} (`{cls.__name__}`, `{cls.__module__}`)", ""]
        else:
            out += [f"### {title} (the command itself)", ""]
        rows = []
        for p in params:
            f = field_of.get(p.name)
            if f is not None and f.default is not MISSING:
                default = format_value(f.default)
                brush = _brush_cell(f)
            else:
                default, brush = _param_default(p), ""
            row = [_flags(p), _code(default), _type_name(p), p.help or ""]
            rows.append(row + [brush] if cls is not None else row)
        header = ["flag", "default", "type", "meaning"]
        out += _table(rows, header + ["Brush default"] if cls is not None else header) + [""]
    return out


def _mip_sections() -> list[str]:
    from .mip import mip_group

    cmd = mip_group.commands["train"]
    out = [
        "## `brushpy mip train`",
        "",
        "MIP mode fits emissive Gaussians to maximum intensity projections of a volume (a brushpy "
        "addition; Brush has no such mode, so there is no Brush column). The training options reach "
        "`brushpy.mip.train.MipTrainConfig`; the others choose the views, the initialisation and the "
        "output folder.",
        "",
    ]
    rows = [[_flags(p), _code(_param_default(p)), _type_name(p), p.help or "", ] for p in _options(cmd)]
    return out + _table(rows, ["flag", "default", "type", "meaning"]) + [""]


def render_options_markdown() -> str:
    """The full text of ``docs/options.md`` (Markdown, ends in one newline)."""
    head = [
        "# brushpy options",
        "",
        f"<!-- Generated by `{REGENERATE}` from the click commands and the config dataclasses "
        "they are built from; edit those, not this file (tests/test_options_doc.py checks it is current). -->",
        "",
        "brushpy's training options have Brush's names (kebab-case flags, `--lr-mean`) and, unless the "
        "\"Brush default\" column says otherwise (an empty cell: the same as Brush's), Brush's defaults, so a command line or an `args.txt` "
        "moves between the two. Where brushpy's default differs, the reason is in "
        "[DEVELOPING.md](DEVELOPING.md#decisions-where-the-spec-was-silent-or-measured-wrong). "
        "`brushpy <command> --help` shows the same options.",
        "",
        "## How a value is chosen",
        "",
        "For each option, later sources win:",
        "",
        "1. the default in the tables below;",
        "2. the dataset's `args.txt` (a text file of flags in the dataset folder, as in Brush; options "
        "brushpy does not know are reported and ignored);",
        "3. the command line.",
        "",
        "One function, `brushpy.train.config.resolve_configs`, applies this order, for `brushpy train` and "
        "for a dataset opened in the viewer alike.",
        "",
        "Two rules then fill options that neither `args.txt` nor the command line set: a NeRF-synthetic "
        "scene trains on a white background (`--background-color 1,1,1`, the convention its published "
        "PSNRs use), and the embedded scene shortens the schedule (below).",
        "",
        "## Where each group is used",
        "",
        "- **Training options** (`TrainConfig`): the `Trainer` (`brushpy/train/trainer.py`): learning "
        "rates, refine schedule, loss weights, background, SH degree, render mode, 3D filter and the "
        "random initialisation.",
        "- **Dataset options** (`LoadConfig`): `brushpy.data.load_dataset`: which frames and points are "
        "read, image resolution, the eval split, masks and alpha.",
        "- **Process options** (`ProcessConfig`): the run loop (`brushpy/train/stream.py`): seed, "
        "evaluation and export cadence, output names.",
        "- **Other options**: the `brushpy train` command itself (resume, viewer, progress bar).",
        "",
    ]
    return "\n".join(head + _train_sections() + _mip_sections()).rstrip("\n") + "\n"


@click.command("options-doc")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write here instead of standard output.")
def options_doc(output: Path | None):
    """Print the options reference (docs/options.md) generated from the CLI."""
    text = render_options_markdown()
    if output is None:
        sys.stdout.write(text)
    else:
        from ..io.atomic import atomic_write

        with atomic_write(output, "w", encoding="utf-8", option="-o/--output") as f:
            f.write(text)


if __name__ == "__main__":  # pragma: no cover
    options_doc()
