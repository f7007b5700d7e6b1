"""Encoder weights files: safetensors with the architecture and its configuration in the metadata.

``save_model(path, encoder)`` writes :meth:`Encoder.metadata` (``architecture`` =
:data:`~brushpy.feedforward.encoder.ARCHITECTURE`, ``encoder_config`` = JSON of
:class:`EncoderConfig`) with the weights (:func:`brushpy.io.weights.save_weights`, atomic);
``load_model(path)`` builds the encoder the file describes and loads it.

Errors: a missing, truncated or non-safetensors file raises
:class:`brushpy.io.weights.WeightsFileError`; a file of another architecture (another name, no
configuration, names/shapes that differ) raises :class:`brushpy.nn.WeightsError`; both are
``InputError``s naming the file.
"""

from __future__ import annotations

from pathlib import Path

from ..io.weights import read_weights, save_weights
from ..nn import WeightsError
from .encoder import ARCHITECTURE, Encoder, EncoderConfig


def save_model(path, encoder: Encoder, extra: dict | None = None) -> Path:
    """Write ``encoder``'s weights and configuration to ``path`` (atomically); ``extra``: more metadata."""
    meta = dict(encoder.metadata())
    meta.update({str(k): str(v) for k, v in (extra or {}).items()})
    return save_weights(path, encoder.params, meta)


def load_model(path) -> tuple[Encoder, dict]:
    """``(encoder, metadata)`` from a file written by :func:`save_model`.

    Raises:
        WeightsFileError: missing, truncated or not safetensors.
        WeightsError: another architecture or configuration.
    """
    arrays, meta = read_weights(path)
    found = meta.get("architecture")
    if found != ARCHITECTURE:
        raise WeightsError(f"{path}: weights of architecture {found!r}, but the feed-forward encoder is "
                           f"{ARCHITECTURE!r}; train one with `brushpy feedforward train`")
    if "encoder_config" not in meta:
        raise WeightsError(f"{path}: the file names architecture {found!r} but has no encoder_config metadata")
    encoder = Encoder(EncoderConfig.from_json(meta["encoder_config"], str(path)))
    encoder.params.load_state_dict(arrays, source=str(path))
    return encoder, meta
