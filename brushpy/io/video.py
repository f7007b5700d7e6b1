"""MP4 video output (H.264, yuv420p) with PyAV, written atomically.

PyAV (``av`` on PyPI, FFmpeg's libraries with libx264 in its wheels) is the optional
``video`` extra: ``pip install 'brushpy[video]'``. :func:`require_av` says so when it is
missing. :class:`Mp4Writer` encodes RGB frames into a temp file beside the target that
becomes the target only when every frame was written (:func:`brushpy.io.atomic.atomic_write`):
an interrupted render never leaves a truncated video under the final name.

H.264 in yuv420p (the pixel format every player decodes) halves the chroma resolution, so
the width and height must be even (:func:`check_even_size`).
"""

from __future__ import annotations

import contextlib
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import InputError, RunError

__all__ = ["VideoUnavailableError", "Mp4Writer", "check_even_size", "require_av"]

#: The install hint of the optional ``video`` extra.
INSTALL_HINT = "pip install 'brushpy[video]'"


class VideoUnavailableError(InputError):
    """PyAV (the ``video`` extra) is not installed; the message says how to install it."""


def require_av():
    """Import and return PyAV (``av``).

    Raises:
        VideoUnavailableError: ``av`` is not installed (the message says ``pip install 'brushpy[video]'``).
    """
    try:
        import av
    except ImportError as exc:
        raise VideoUnavailableError(f"writing MP4 video needs PyAV, which is not installed ({exc}): {INSTALL_HINT}") from exc
    return av


def check_even_size(width: int, height: int, what: str = "--width/--height") -> None:
    """Raise :class:`~brushpy.errors.InputError` naming ``what`` unless both sides are even
    (H.264 in yuv420p stores colour at half resolution)."""
    odd = [f"{name} {v}" for name, v in (("width", width), ("height", height)) if int(v) % 2]
    if odd:
        fix = ", ".join(f"{int(v) - 1} or {int(v) + 1}" for v in (width, height) if int(v) % 2)
        raise InputError(f"{what}: {' and '.join(odd)} must be even for H.264 video (yuv420p); use {fix}")


class Mp4Writer:
    """Encode RGB frames to an MP4 file (H.264, yuv420p), atomically.

    Use as a context manager; the file appears at ``path`` when the ``with`` block ends
    without an error (an error removes the partial file and keeps any previous one).

    Args:
        path: the ``.mp4`` to write (its folder is created).
        width, height: frame size in pixels (even).
        fps: frames per second (> 0; fractional rates such as 29.97 are kept exactly to 1/1001).
        crf: x264's constant rate factor (0 lossless ... 51 worst; 18 is visually lossless).
        option: the option that chose ``path``, named in write errors.

    Attributes:
        frames: frames written so far.

    Raises:
        VideoUnavailableError: PyAV is missing.
        InputError: odd width or height.
        WriteError: the file cannot be written (names it and the cause).
    """

    def __init__(self, path, width: int, height: int, fps: float, crf: int = 18, option: str | None = "-o/--output"):
        self.av = require_av()
        check_even_size(width, height)
        if not fps > 0:
            raise InputError(f"fps {fps} must be positive")
        self.path = Path(path)
        self.width, self.height, self.fps = int(width), int(height), float(fps)
        self.crf = int(crf)
        self.option = option
        self.frames = 0
        self._stack = None
        self._container = None
        self._stream = None

    def __enter__(self) -> "Mp4Writer":
        from .atomic import atomic_write

        stack = contextlib.ExitStack()
        try:
            f = stack.enter_context(atomic_write(self.path, option=self.option))
            self._container = self.av.open(f, mode="w", format="mp4")
            stream = self._container.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(1001))
            stream.width, stream.height = self.width, self.height
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(self.crf)}
            self._stream = stream
        except BaseException:
            if self._container is not None:
                with contextlib.suppress(Exception):
                    self._container.close()
            stack.__exit__(*sys.exc_info())
            raise
        self._stack = stack
        return self

    def write(self, rgb: np.ndarray) -> None:
        """Encode one frame: uint8 [H,W,3] RGB (or [H,W,4], alpha dropped) of the writer's size."""
        rgb = np.asarray(rgb)
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[:2] != (self.height, self.width) or rgb.shape[2] < 3:
            raise ValueError(f"frame of shape {rgb.shape} and dtype {rgb.dtype}; expected uint8 "
                             f"({self.height}, {self.width}, 3)")
        frame = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[..., :3]), format="rgb24")
        self._container.mux(self._stream.encode(frame))
        self.frames += 1

    def __exit__(self, exc_type, exc, tb):
        stack, self._stack = self._stack, None
        try:
            if exc_type is None:
                try:
                    self._container.mux(self._stream.encode(None))  # flush the encoder's delayed frames
                    self._container.close()
                except self.av.error.FFmpegError as err:
                    raise RunError(f"cannot encode {self.path}: {err}") from err
            else:
                with contextlib.suppress(Exception):
                    self._container.close()
        except BaseException:
            stack.__exit__(*sys.exc_info())
            raise
        return stack.__exit__(exc_type, exc, tb)
