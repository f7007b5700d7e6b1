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

from ..errors import OptionError

ALPHA_MODES = ("masked", "transparent")


def _opt(default, help: str, **kw):
    """A field with ``metadata["help"]`` (CLI help text); ``cli=False`` marks options that are
    programmatic only; ``min``/``max`` bound a number, ``positive=True`` asks for a finite number
    > 0 (checked by :func:`convert_option`)."""
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
        depth_scale: multiplies raw depth-map values to get metres (scene units); None = the
            dataset's ``depth_unit_scale_factor`` (nerfstudio) or the format's default (0.001
            for 16-bit PNG in millimetres, 1 for float ``.npy`` / TIFF in metres).
        depth_from_points: COLMAP datasets: views without a depth map get sparse depth from
            the points3D they observe (``depth.sparse_depth``).
        num_workers: image decoding threads (None: ``os.cpu_count()``).
        progress: show a tqdm progress bar while decoding.
    """

    max_frames: int | None = _opt(None, "Load at most this many frames.", min=1)
    max_resolution: int = _opt(1920, "Downscale images so the long edge is at most this many pixels.", min=1)
    eval_split_every: int | None = _opt(None, "Every n-th image (after sorting by name) goes to the eval set.", min=1)
    subsample_frames: int | None = _opt(None, "Load only every n-th frame.", min=1)
    subsample_points: int | None = _opt(None, "Load only every n-th initial point.", min=1)
    alpha_mode: str | None = _opt(None, "`masked` (mask multiplies the loss) or `transparent` (train alpha); "
                                        "default: masked when a masks/ folder exists.", choices=ALPHA_MODES)
    invert_masks: bool = _opt(False, "Masks are white where pixels should be ignored.")
    synthetic_eval_split: str = _opt("test", "NeRF-synthetic eval file: `test` or `val` (the other when absent).",
                                     choices=SYNTHETIC_EVAL_SPLITS, brush_flag=False, brush_default="val")
    depth_scale: float | None = _opt(None, "Multiply raw depth-map values by this to get metres (scene units); "
                                           "default: the dataset's `depth_unit_scale_factor`, else 0.001 for "
                                           "16-bit PNG (millimetres), 1 for `.npy`/TIFF (metres).",
                                     brush_flag=False, positive=True)
    depth_from_points: bool = _opt(False, "COLMAP: views without a depth map get sparse depth from the "
                                          "points3D each image observes.", brush_flag=False)
    num_workers: int | None = _opt(None, "Image decoding threads (default: all cores).", brush_flag=False, min=1)
    progress: bool = _opt(True, "Show a progress bar while decoding.", cli=False)

    def __post_init__(self):
        """Check every field (:func:`check_option`).

        Raises:
            OptionError: a value out of range or of the wrong type (names the flag).
        """
        for f in fields(self):
            if f.name != "progress":
                check_option(type(self), f.name, getattr(self, f.name))

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
            OptionError: a value that cannot be converted or is out of range (names the flag).
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
    an integral float for an ``int`` field, which becomes an ``int``. The result is checked by
    :func:`check_option` (type, ``choices``, the field's ``min``/``max``).

    Raises:
        OptionError: a value that cannot be read or is out of range (names the flag:
            ``--max-frames: ...``).
    """
    return check_option(cls, name, _convert(cls, name, value))


def check_option(cls, name: str, value: Any) -> Any:
    """``value`` if it suits field ``name`` of the option dataclass ``cls`` (an ``int``/``float`` for
    number fields, within ``metadata["min"]``/``["max"]``; one of ``metadata["choices"]``; ``None``
    only for optional fields); the one range check of option values.

    Raises:
        OptionError: naming the flag, the value and what to give instead.
    """
    f = {f.name: f for f in fields(cls)}[name]
    kind, optional = _field_kind(cls, name)
    flag = f"--{_kebab(name)}"
    unset = " (or leave it unset)" if optional else ""
    if value is None:
        if optional:
            return value
        raise OptionError(f"{flag}: a value is required")
    lo, hi = f.metadata.get("min"), f.metadata.get("max")
    if kind in (int, float):
        wrong = isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int)
        if wrong or (kind is float and value != value):
            what = "an integer" if kind is int else "a number"
            raise OptionError(f"{flag}: {value!r} is not {what}; give {what}{unset}")
        if f.metadata.get("positive") and not 0 < value < float("inf"):
            raise OptionError(f"{flag}: {value!r} is out of range; give a positive number{unset}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            if hi is None:
                want = "a positive integer" if (kind is int and lo == 1) else f"a value >= {lo}"
            elif lo is None:
                want = f"a value <= {hi}"
            else:
                want = f"a value in {lo}..{hi}" if kind is int else f"a value in [{lo}, {hi}]"
            raise OptionError(f"{flag}: {value!r} is out of range; give {want}{unset}")
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        raise OptionError(f"{flag}: {value!r} is not one of {', '.join(map(str, choices))}{unset}")
    return value


def _convert(cls, name: str, value: Any) -> Any:
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
        raise OptionError(f"{flag}: cannot read {value!r} as a value for this option") from None
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
