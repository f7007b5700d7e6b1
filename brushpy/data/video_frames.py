"""Frames for structure from motion from a video file (OpenCV).

The video is cut into consecutive windows of equal length (``1 / fps`` seconds, or enough
windows for about :data:`TARGET_FRAMES` frames); from each window the sharpest frame is kept,
sharpness being the variance of the Laplacian of the frame's grey image (Pech-Pacheco et al.,
"Diatom autofocusing in brightfield microscopy: a comparative study", ICPR 2000), measured at
:data:`SHARPNESS_SIZE` pixels on the long side so that every video is judged at the same scale.
Kept frames are written as JPEG (quality :data:`JPEG_QUALITY`) named ``frame_00001.jpg``,
``frame_00002.jpg``... in time order, the order sequential matching relies on.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["VIDEO_EXTENSIONS", "TARGET_FRAMES", "FrameExtraction", "VideoError", "extract_frames", "is_video",
           "sharpness"]

log = logging.getLogger("brushpy.data")

#: File name endings read as video (lower case).
VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".3gp", ".mts")
#: Frames kept from a video when no ``fps`` is given.
TARGET_FRAMES = 150
#: Long side, in pixels, of the grey image the sharpness is measured on.
SHARPNESS_SIZE = 640
#: JPEG quality of the written frames (OpenCV's 0-100 scale).
JPEG_QUALITY = 95


class VideoError(InputError):
    """A video that cannot be read (the message names the file and what to do)."""


def is_video(path: str | Path) -> bool:
    """Whether ``path`` is a file whose extension is one of :data:`VIDEO_EXTENSIONS`."""
    p = Path(path)
    return p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file()


def sharpness(image: np.ndarray) -> float:
    """Variance of the Laplacian of ``image`` (uint8 [H,W,3] BGR or [H,W] grey), measured after
    scaling the long side to at most :data:`SHARPNESS_SIZE` pixels; higher is sharper."""
    import cv2

    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    long_side = max(grey.shape[:2])
    if long_side > SHARPNESS_SIZE:
        f = SHARPNESS_SIZE / long_side
        grey = cv2.resize(grey, (max(1, round(grey.shape[1] * f)), max(1, round(grey.shape[0] * f))),
                          interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


@dataclass
class FrameExtraction:
    """What :func:`extract_frames` did.

    Attributes:
        frames: the written frame files, in time order.
        frames_read: frames decoded from the video.
        video_fps: the video's frame rate (0 when the file does not say).
        window: frames per window (a float; one frame is kept per window).
        times_s: time of each kept frame in the video (seconds; frame index / fps, NaN without fps).
        sharpness: the kept frames' sharpness (:func:`sharpness`).
    """

    frames: list[Path]
    frames_read: int
    video_fps: float
    window: float
    times_s: list[float] = field(default_factory=list)
    sharpness: list[float] = field(default_factory=list)

    @property
    def fps_used(self) -> float:
        """Frames kept per second of video (0 when the video's frame rate is unknown)."""
        return self.video_fps / self.window if self.video_fps > 0 else 0.0


def _window_length(total: int, video_fps: float, fps: float | None, target: int) -> float:
    """Frames per window: ``video_fps / fps`` with ``fps``; else ``total / target`` (at least 1)."""
    if fps is not None:
        if video_fps <= 0:
            raise ValueError("the video does not state its frame rate")
        return max(1.0, video_fps / fps)
    if total > 0:
        return max(1.0, total / target)
    return max(1.0, video_fps / 2.0) if video_fps > 0 else 15.0  # unknown length: 2 frames a second


def extract_frames(video: str | Path, out_dir: str | Path, fps: float | None = None, target: int = TARGET_FRAMES,
                   progress: bool = True, on_progress=None) -> FrameExtraction:
    """Write the sharpest frame of each window of ``video`` to ``out_dir`` (see the module docstring).

    Args:
        video: a video file OpenCV can decode.
        out_dir: folder for ``frame_NNNNN.jpg`` (created; existing frame files are replaced).
        fps: frames to keep per second of video; None: enough for about ``target`` frames.
        target: frames to keep when ``fps`` is None.
        progress: show a tqdm bar over the decoded frames.
        on_progress: called as ``on_progress("frames", decoded, total)`` every 10 frames
            (``total`` 0 when the file does not state it).

    Raises:
        VideoError: the file cannot be opened or holds no decodable frame, or ``fps`` is given
            for a video that does not state its frame rate (names the file).
        brushpy.io.atomic.WriteError: a frame cannot be written.
    """
    import cv2
    from tqdm import tqdm

    from ..io.atomic import atomic_write

    video, out_dir = Path(video), Path(out_dir)
    if fps is not None and not (fps > 0 and math.isfinite(fps)):
        raise VideoError(f"--fps {fps}: give a positive number of frames per second")
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise VideoError(f"{video}: OpenCV cannot open this video (unknown container or codec); "
                         "convert it to H.264 .mp4, or extract its frames into a folder and give the folder")
    try:
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        video_fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not math.isfinite(video_fps) or video_fps < 0:
            video_fps = 0.0
        try:
            window = _window_length(total, video_fps, fps, target)
        except ValueError as exc:
            raise VideoError(f"{video}: {exc}; leave out --fps to keep about {target} frames") from None
        out_dir.mkdir(parents=True, exist_ok=True)
        for old in out_dir.glob("frame_*.jpg"):
            old.unlink()
        result = FrameExtraction([], 0, video_fps, window)
        best: tuple[float, int, np.ndarray] | None = None  # (sharpness, frame index, pixels) of this window
        current = 0

        def flush():
            if best is None:
                return
            score, index, pixels = best
            ok, data = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if not ok:  # pragma: no cover - encoding a decoded frame does not fail
                raise VideoError(f"{video}: frame {index} could not be encoded as JPEG")
            path = out_dir / f"frame_{len(result.frames) + 1:05d}.jpg"
            with atomic_write(path) as f:
                f.write(data.tobytes())
            result.frames.append(path)
            result.times_s.append(index / video_fps if video_fps > 0 else float("nan"))
            result.sharpness.append(score)

        with tqdm(total=total or None, desc="frames", unit="frame", disable=not progress, dynamic_ncols=True) as bar:
            index = 0
            while True:
                ok, pixels = cap.read()
                if not ok or pixels is None:
                    break
                w = int(index // window)
                if w != current:
                    flush()
                    best, current = None, w
                score = sharpness(pixels)
                if best is None or score > best[0]:
                    best = (score, index, pixels)
                index += 1
                bar.update(1)
                if on_progress is not None and index % 10 == 0:
                    on_progress("frames", index, total)
                bar.set_postfix(kept=len(result.frames), refresh=False)
            flush()
            result.frames_read = index
            bar.set_postfix(kept=len(result.frames))
    finally:
        cap.release()
    if not result.frames:
        raise VideoError(f"{video}: no frame could be decoded (an empty or corrupt video, or a codec OpenCV lacks); "
                         "convert it to H.264 .mp4, or extract its frames into a folder and give the folder")
    if total and result.frames_read < total * 0.9:
        log.warning("%s: decoded %d of the %d frames the file states (truncated or damaged?)", video,
                    result.frames_read, total)
    return result
