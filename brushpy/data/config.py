"""Dataset loading options (``LoadConfig``), named and defaulted as Brush's CLI.

See ``docs/options.md`` ("Dataset options"). Field names are the
snake_case form of the kebab-case flags (``--max-resolution`` ->
``max_resolution``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

ALPHA_MODES = ("masked", "transparent")


def _opt(default, help: str, **kw):
    """A field with ``metadata["help"]`` (CLI help text); ``cli=False`` marks options that are
    programmatic only."""
    return field(default=default, metadata={"help": help, **kw})
SYNTHETIC_EVAL_SPLITS = ("test", "val")


@dataclass(frozen=True)
class LoadConfig:
    """How a dataset is loaded.

    Attributes:
        max_frames: load at most this many frames per split file (None: all).
        max_resolution: images are downscaled so their long edge is at most this
            many pixels (intrinsics scaled to match). Default 1920.
        eval_split_every: every n-th view (after sorting by name) goes to the eval
            set; ignored when the dataset ships its own eval file
            (``transforms_test.json`` / ``transforms_val.json``).
        subsample_frames: load only every n-th frame.
        subsample_points: load only every n-th initial point.
        alpha_mode: ``"masked"`` (mask/alpha multiplies the loss), ``"transparent"``
            (alpha is trained) or None = auto: masked when a ``masks/`` folder
            exists, transparent otherwise.
        invert_masks: masks are white where pixels should be ignored.
        synthetic_eval_split: which NeRF-synthetic file is the eval set when both
            exist: ``"test"`` (default: the split published numbers are measured
            on) or ``"val"`` (Brush's choice). The other is used when one is absent.
        num_workers: image decoding threads (None: ``os.cpu_count()``).
        progress: show a tqdm progress bar while decoding.
    """

    max_frames: int | None = _opt(None, "Load at most this many frames.")
    max_resolution: int = _opt(1920, "Downscale images so the long edge is at most this many pixels.")
    eval_split_every: int | None = _opt(None, "Every n-th image (after sorting by name) goes to the eval set.")
    subsample_frames: int | None = _opt(None, "Load only every n-th frame.")
    subsample_points: int | None = _opt(None, "Load only every n-th initial point.")
    alpha_mode: str | None = _opt(None, "`masked` (mask multiplies the loss) or `transparent` (train alpha); "
                                        "default: masked when a masks/ folder exists.", choices=ALPHA_MODES)
    invert_masks: bool = _opt(False, "Masks are white where pixels should be ignored.")
    synthetic_eval_split: str = _opt("test", "NeRF-synthetic eval file: `test` or `val` (the other when absent).",
                                     choices=SYNTHETIC_EVAL_SPLITS, brush_flag=False, brush_default="val")
    num_workers: int | None = _opt(None, "Image decoding threads (default: all cores).", brush_flag=False)
    progress: bool = _opt(True, "Show a progress bar while decoding.", cli=False)

    def __post_init__(self):
        for name in ("max_frames", "eval_split_every", "subsample_frames", "subsample_points", "num_workers"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise ValueError(f"--{_kebab(name)} must be a positive integer or unset, got {v!r}")
        if not isinstance(self.max_resolution, int) or self.max_resolution < 1:
            raise ValueError(f"--max-resolution must be a positive integer, got {self.max_resolution!r}")
        if self.alpha_mode is not None and self.alpha_mode not in ALPHA_MODES:
            raise ValueError(f"--alpha-mode must be one of {', '.join(ALPHA_MODES)} (or unset for auto), got {self.alpha_mode!r}")
        if self.synthetic_eval_split not in SYNTHETIC_EVAL_SPLITS:
            raise ValueError(f"synthetic_eval_split must be 'test' or 'val', got {self.synthetic_eval_split!r}")

    def replace(self, **changes) -> "LoadConfig":
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        """snake_case names of all fields."""
        return tuple(f.name for f in fields(cls))

    def with_overrides(self, overrides: Mapping[str, Any]) -> "LoadConfig":
        """Apply option values given as strings or typed values; keys may be kebab- or snake_case.

        Keys that are not LoadConfig fields are ignored (they belong to other
        option groups, e.g. training). ``None`` values are ignored. String values
        are converted to the field's type (``"none"`` clears an optional field).

        Raises:
            ValueError: a value that cannot be converted (names the flag).
        """
        known = {f.name for f in fields(self)}
        changes = {}
        for key, value in overrides.items():
            name = key.lstrip("-").replace("-", "_")
            if name not in known or value is None:
                continue
            changes[name] = convert_option(type(self), name, value)
        return dataclasses.replace(self, **changes) if changes else self


def _kebab(name: str) -> str:
    return name.replace("_", "-")


_TRUE = ("1", "true", "yes", "on", "")
_FALSE = ("0", "false", "no", "off")


def convert_option(cls, name: str, value: Any) -> Any:
    """``value`` as the type of the option dataclass ``cls``'s field ``name`` (the one conversion of
    option values read as text: ``args.txt``, the CLI's view of it, ``with_overrides``).

    Strings are read by the field's annotation: ``bool`` (``true/yes/on/1`` or ``false/no/off/0``;
    a bare flag in args.txt is ``True``), ``int``, ``float``, ``str`` (one of
    ``metadata["choices"]`` when given), ``tuple`` (``R,G,B``: three comma-separated floats);
    ``none`` or ``auto`` clear an optional (``X | None``) field. Other values pass through, except
    an integral float for an ``int`` field, which becomes an ``int``.

    Raises:
        ValueError: a value that cannot be read (names the flag: ``--max-frames: ...``).
    """
    f = {f.name: f for f in fields(cls)}[name]
    kind, optional = _field_kind(cls, name)
    flag = f"--{_kebab(name)}"
    if not isinstance(value, str):
        if kind is int and isinstance(value, float) and value.is_integer():
            return int(value)
        if kind is tuple and isinstance(value, list):
            return tuple(value)
        return value
    text = value.strip()
    if optional and text.lower() in ("none", "auto"):
        return None
    try:
        if kind is bool:
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError(text)
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if kind is tuple:
            out = tuple(float(v) for v in text.replace(" ", "").split(","))
            if len(out) != len(f.default):
                raise ValueError(text)
            return out
    except ValueError:
        raise ValueError(f"{flag}: cannot read {value!r} as a value for this option") from None
    choices = f.metadata.get("choices")
    if choices and text not in choices:
        raise ValueError(f"{flag}: {value!r} is not one of {', '.join(map(str, choices))}")
    return text


def _field_kind(cls, name: str) -> tuple[type, bool]:
    """(the base type of field ``name`` of ``cls``: bool, int, float, tuple or str; whether it may be None)."""
    hint = typing.get_type_hints(cls)[name]
    args = typing.get_args(hint)
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        optional = type(None) in args
        hint = next(a for a in args if a is not type(None))
    base = typing.get_origin(hint) or hint
    for kind in (bool, int, float, tuple):
        if base is kind:
            return kind, optional
    return str, optional
