"""Errors of a training run (:mod:`brushpy.errors` has the project's base types)."""

from __future__ import annotations

from ..errors import InputError, RunError

__all__ = ["CheckpointError", "TrainingError"]


class TrainingError(RunError):
    """Training cannot go on (non-finite loss or splats, a scene too large for the device)."""


class CheckpointError(TrainingError, InputError):
    """``--resume`` names a file that is not a usable checkpoint for this run (not a brushpy
    checkpoint, another SH degree, another dataset); the message says which and what to pass."""

    exit_code = InputError.exit_code
