"""Network weights files: safetensors (Hugging Face's format: a JSON header of names, dtypes and
shapes, then the raw little-endian tensors; https://huggingface.co/docs/safetensors).

:func:`save_weights` writes a :class:`brushpy.nn.NetParams` (or a ``{name: array}`` dict) as
float32 tensors by name, atomically (:func:`brushpy.io.atomic.atomic_write`), with string
metadata (``"format": "brushpy.nn"``, plus what the caller adds, e.g. an architecture name and
its options). :func:`load_weights` reads one back into a ``NetParams``, checking that the file is
whole and that its names, shapes and dtype are exactly the network's.

Errors (all :class:`~brushpy.errors.InputError` subclasses naming the file): a missing,
truncated or non-safetensors file (:class:`WeightsFileError`); another architecture (the
metadata's ``architecture`` differs from the one asked for, or names/shapes differ:
:class:`brushpy.nn.WeightsError`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..nn.params import NetParams, WeightsError
from .atomic import atomic_write

#: the ``format`` metadata value of brushpy's network weights
WEIGHTS_FORMAT = "brushpy.nn"

__all__ = ["WEIGHTS_FORMAT", "WeightsFileError", "load_weights", "read_weights", "save_weights"]


class WeightsFileError(InputError):
    """A weights file that cannot be read (missing, truncated, not safetensors); the message names it."""


def _arrays(params) -> dict[str, np.ndarray]:
    if isinstance(params, NetParams):
        return params.state_dict()
    return {str(k): np.ascontiguousarray(v, np.float32) for k, v in dict(params).items()}


def save_weights(path, params, metadata: dict | None = None) -> Path:
    """Write ``params`` (a :class:`~brushpy.nn.NetParams` or ``{name: array}``) to ``path`` as
    float32 safetensors; ``metadata``: extra ``{str: str}`` entries (``architecture`` is checked
    by :func:`load_weights`). Returns the path.

    Raises:
        brushpy.io.atomic.WriteError: the file cannot be written (the previous file is intact).
    """
    import safetensors.numpy as st

    meta = {"format": WEIGHTS_FORMAT}
    meta.update({str(k): str(v) for k, v in (metadata or {}).items()})
    data = st.save(_arrays(params), metadata=meta)
    path = Path(path)
    with atomic_write(path, "wb") as f:
        f.write(data)
    return path


def read_weights(path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """``({name: array}, metadata)`` of a safetensors file.

    Raises:
        WeightsFileError: the file is missing, unreadable, truncated or not safetensors.
    """
    import safetensors.numpy as st
    from safetensors import SafetensorError

    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise WeightsFileError(f"{path}: weights file not found") from None
    except OSError as exc:
        raise WeightsFileError(f"{path}: cannot read the weights file ({exc.strerror or exc})") from None
    try:
        arrays = st.load(data)
    except SafetensorError as exc:
        raise WeightsFileError(f"{path}: not a whole safetensors weights file ({exc}); "
                               "it may be truncated (an interrupted copy) or another kind of file") from None
    # the header: 8-byte little-endian length, then JSON (safetensors' layout)
    n = int.from_bytes(data[:8], "little")
    meta = json.loads(data[8:8 + n]).get("__metadata__") or {}
    return arrays, meta


def load_weights(path, params: NetParams, architecture: str | None = None) -> dict[str, str]:
    """Read ``path`` into ``params`` (every tensor overwritten); returns the file's metadata.

    Args:
        path: a file written by :func:`save_weights` (or any float32 safetensors file with the
            network's names and shapes).
        params: the network's weights; its names and shapes are the architecture expected.
        architecture: when given and the file's metadata names another ``architecture``, the
            load is refused.

    Raises:
        WeightsFileError: missing, truncated or not safetensors.
        brushpy.nn.WeightsError: another architecture (metadata, names, shapes or dtype differ).
    """
    arrays, meta = read_weights(path)
    found = meta.get("architecture")
    if architecture is not None and found is not None and found != architecture:
        raise WeightsError(f"{path}: weights of architecture {found!r}, but this network is {architecture!r}")
    params.load_state_dict(arrays, source=str(path))
    return meta
