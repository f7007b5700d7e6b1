"""Dataset loading options (``LoadConfig``), named and defaulted as Brush's CLI.

See ``docs/options.md`` ("Dataset options"). Field names are the
snake_case form of the kebab-case flags (``--max-resolution`` ->
``max_resolution``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

ALPHA_MODES = ("masked", "transparent")


def _opt(default, help: str, **kw):
    """A field with ``metadata["help"]`` (CLI help text); ``cli=False`` marks options that another
    config group already exposes on the command line (``--seed``, ``--random-init-scene-scale``) or
    that are programmatic only."""
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
        seed: random seed for random init and the per-epoch view order (default 42).
        random_init_scene_scale: scene scale S for random init; None = 3 x the mean
            nearest-camera distance, at least 1.
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
    seed: int = _opt(42, "Random seed (random init, view order).", cli=False)
    random_init_scene_scale: float | None = _opt(None, "Scene scale for random init (default: 3 x mean "
                                                       "nearest-camera distance, min 1).", cli=False)
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
        if self.random_init_scene_scale is not None and not self.random_init_scene_scale > 0:
            raise ValueError(f"--random-init-scene-scale must be > 0, got {self.random_init_scene_scale!r}")

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
        known = {f.name: f for f in fields(self)}
        changes = {}
        for key, value in overrides.items():
            name = key.lstrip("-").replace("-", "_")
            if name not in known or value is None:
                continue
            changes[name] = _convert(name, value)
        return dataclasses.replace(self, **changes) if changes else self


_INT_FIELDS = {"max_frames", "max_resolution", "eval_split_every", "subsample_frames", "subsample_points", "seed", "num_workers"}
_BOOL_FIELDS = {"invert_masks", "progress"}


def _kebab(name: str) -> str:
    return name.replace("_", "-")


def _convert(name: str, value: Any) -> Any:
    if not isinstance(value, str):
        if name in _INT_FIELDS and isinstance(value, float) and value.is_integer():
            return int(value)
        return value
    text = value.strip()
    try:
        if name in _BOOL_FIELDS:
            low = text.lower()
            if low in ("1", "true", "yes", "on", ""):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if text.lower() in ("none", "auto") and name in (
            "max_frames", "eval_split_every", "subsample_frames", "subsample_points", "alpha_mode",
            "random_init_scene_scale", "num_workers",
        ):
            return None
        if name in _INT_FIELDS:
            return int(text)
        if name == "random_init_scene_scale":
            return float(text)
        return text
    except ValueError:
        raise ValueError(f"--{_kebab(name)}: cannot read {value!r} as a value for this option") from None
