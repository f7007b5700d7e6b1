"""``args.txt``: base command-line options stored inside a dataset.

A dataset folder (or zip) may hold an ``args.txt`` at its root with flags in
the CLI's kebab-case form, e.g.::

    --max-resolution 800 --eval-split-every 8
    --alpha-mode masked   # comments run to the end of the line
    --invert-masks

Options given explicitly (on the command line or in code) override these.
"""

from __future__ import annotations

import os
import shlex
from typing import Any, Mapping

from ..errors import OptionError
from .config import LoadConfig
from .source import DatasetSource

ARGS_FILE = "args.txt"


def parse_args_txt(text: str, origin: str = ARGS_FILE) -> dict[str, str | bool]:
    """Parse args.txt text into ``{snake_case_option: value}``.

    ``--name value`` and ``--name=value`` give the string ``value``; a flag
    followed by another flag (or the end) gives ``True``. Values stay strings:
    the caller converts them (``LoadConfig.with_overrides`` does for dataset
    options). A later repetition of a flag wins.

    Raises:
        OptionError: a token that is not part of a ``--flag`` (names ``origin``).
    """
    try:
        tokens = shlex.split(text, comments=True)
    except ValueError as exc:
        raise OptionError(f"{origin}: cannot split into arguments ({exc})") from None
    out: dict[str, str | bool] = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--") or len(tok) == 2:
            raise OptionError(
                f"{origin}: unexpected {tok!r}; write options as kebab-case flags, e.g. `--max-resolution 800`"
            )
        body = tok[2:]
        if "=" in body:
            name, value = body.split("=", 1)
            i += 1
        elif i + 1 < len(tokens) and not _is_flag(tokens[i + 1]):
            name, value = body, tokens[i + 1]
            i += 2
        else:
            name, value = body, True
            i += 1
        out[name.replace("-", "_")] = value
    return out


def _is_flag(token: str) -> bool:
    # "-1" or "-0.5" are values, "--x" is a flag.
    return token.startswith("--") and len(token) > 2 and not token[2:3].isdigit()


def read_args_txt(dataset: str | os.PathLike | DatasetSource) -> dict[str, str | bool]:
    """Options from the dataset's root ``args.txt`` (empty dict when there is none).

    ``dataset`` is a dataset folder, a .zip of one, or an open ``DatasetSource``.

    Raises:
        OptionError: the file is not UTF-8 text or not a list of ``--flag [value]`` (names it).
    """
    source = dataset if isinstance(dataset, DatasetSource) else DatasetSource(dataset)
    rel = source.resolve(ARGS_FILE)
    if rel is None:
        return {}
    try:
        text = source.read_bytes(rel).decode("utf-8")
    except UnicodeDecodeError:
        raise OptionError(f"{source.display_path(rel)}: not UTF-8 text; write the options as plain text") from None
    return parse_args_txt(text, source.display_path(rel))


def merge_options(base: Mapping[str, Any], explicit: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` (from args.txt) updated with the explicit options that are set (not None)."""
    out = {k.replace("-", "_"): v for k, v in base.items()}
    for k, v in explicit.items():
        if v is not None:
            out[k.replace("-", "_")] = v
    return out


def resolve_load_config(dataset: str | os.PathLike | DatasetSource, explicit: Mapping[str, Any] | None = None,
                        base: LoadConfig | None = None) -> LoadConfig:
    """The LoadConfig for ``dataset``: defaults < args.txt < ``explicit`` (None values skipped).

    Raises:
        OptionError: a bad value in args.txt or ``explicit`` (names the flag).
    """
    base = base or LoadConfig()
    return base.with_overrides(merge_options(read_args_txt(dataset), explicit or {}))
