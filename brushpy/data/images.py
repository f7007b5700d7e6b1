"""Image decoding: EXIF orientation, resizing to ``max_resolution``, masks, undistortion.

Decoding happens in two steps so cameras are known before any pixel is
decoded: ``read_image_size`` reads only the header (size after EXIF
orientation); ``ImageSpec.decode`` does the work. ``decode_all`` runs many
decodes in a thread pool (Pillow and OpenCV release the GIL) with a tqdm bar.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import InputError
from ..loss.image_loss import pack_rgba8  # noqa: F401  (re-exported: the packed upload format)
from .source import DatasetSource
from .undistort import UndistortPlan

log = logging.getLogger("brushpy.data")

# EXIF orientations 5..8 transpose the image (width and height swap).
_TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}
_EXIF_ORIENTATION = 0x0112
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


class ImageDecodeError(InputError):
    """An image or mask that cannot be decoded (message names the file)."""


def read_image_header(source: DatasetSource, rel: str) -> tuple[int, int, int]:
    """``(stored_width, stored_height, exif_orientation)`` from an image's header (no pixel decode).

    An image with more than twice Pillow's decompression-bomb limit
    (``PIL.Image.MAX_IMAGE_PIXELS``, about 179 MP by default) is refused here, before any
    pixel is decoded; between the limit and twice it (large but real photos, e.g. 100 MP)
    it loads, with Pillow's ``DecompressionBombWarning``.

    Raises:
        ImageDecodeError: the file is not a readable image, or has more than twice Pillow's
            decompression-bomb limit of pixels (names the file).
    """
    try:
        with Image.open(source.open_for_pil(rel)) as im:
            w, h = im.size
            orientation = _header_orientation(im)
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(
            f"image {source.display_path(rel)}: {exc} Refusing to decode it; downscale the image "
            "(or raise PIL.Image.MAX_IMAGE_PIXELS in your own script if the file is trusted)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError(f"cannot read image {source.display_path(rel)}: {exc}") from None
    return w, h, orientation


def read_image_size(source: DatasetSource, rel: str) -> tuple[int, int]:
    """``(width, height)`` of an image as displayed (EXIF orientation applied), from its header.

    Raises:
        ImageDecodeError: the file is not a readable image (names the file).
    """
    w, h, orientation = read_image_header(source, rel)
    return (h, w) if orientation in _TRANSPOSING_ORIENTATIONS else (w, h)


def is_transposing(orientation: int) -> bool:
    """Whether an EXIF orientation swaps width and height (5..8)."""
    return orientation in _TRANSPOSING_ORIENTATIONS


def _header_orientation(im: Image.Image) -> int:
    """EXIF orientation without decoding pixels (PNG's getexif() would decode the whole image)."""
    try:
        if im.format == "PNG":
            raw = im.info.get("exif")
            if not raw:
                return 1
            exif = Image.Exif()
            exif.load(raw)
            return int(exif.get(_EXIF_ORIENTATION, 1))
        return int(im.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # a broken EXIF block should not stop loading; the decode applies what it can
        return 1


def _jpeg_draft(im: Image.Image, target: tuple[int, int]) -> None:
    """Let libjpeg decode at 1/2, 1/4 or 1/8 scale when the target allows it exactly.

    Only scales that divide both sides exactly are used, so the decoded image spans the
    same extent as the original and resizing keeps the pixel geometry.
    """
    if im.format != "JPEG":
        return
    w, h = im.size
    tw, th = target
    for s in (8, 4, 2):
        if w % s == 0 and h % s == 0 and w // s >= tw and h // s >= th:
            im.draft(im.mode, (w // s, h // s))
            return


def scaled_size(width: int, height: int, max_resolution: int) -> tuple[int, int]:
    """Size after capping the long edge at ``max_resolution`` (aspect kept, floor, at least 1)."""
    long_edge = max(width, height)
    if long_edge <= max_resolution:
        return width, height
    s = max_resolution / long_edge
    return max(1, int(width * s)), max(1, int(height * s))


@dataclass
class ImageSpec:
    """Everything needed to decode one view's pixels.

    Attributes:
        source: the dataset the files live in.
        path: image path relative to the dataset.
        mask_path: mask path (a grayscale image; white = keep) or None.
        size: (width, height) after resizing, before undistortion.
        undistort: undistortion applied after resizing, or None.
        alpha_mode: ``"masked"`` or ``"transparent"``.
        invert_mask: invert the mask (white = ignore).
        apply_exif: honour the EXIF orientation (False when the camera was calibrated on
            the stored, unrotated pixels).
    """

    source: DatasetSource
    path: str
    mask_path: str | None
    size: tuple[int, int]
    undistort: UndistortPlan | None
    alpha_mode: str
    invert_mask: bool = False
    apply_exif: bool = True

    @property
    def out_size(self) -> tuple[int, int]:
        """(width, height) of the decoded image."""
        return self.undistort.out_size if self.undistort is not None else self.size

    def decode(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Decode to ``(image, mask)``.

        Returns:
            image: uint8 [H,W,3] or [H,W,4] (RGBA when the file has alpha, or in
                transparent mode when a mask file supplies the alpha).
            mask: uint8 [H,W] (255 = pixel counts in the loss) in masked mode when a
                mask file or an alpha channel exists; else None. In masked mode the
                image is RGB (its alpha, if any, became the mask).

        Raises:
            ImageDecodeError: corrupt or unreadable file (names it).
        """
        img = _load_rgb_or_rgba(self.source, self.path, self.size, self.apply_exif)
        mask = None
        if self.mask_path is not None:
            mask = _load_mask(self.source, self.mask_path, self.size)
            if self.invert_mask:
                mask = 255 - mask
        if img.size != self.size:
            img = img.resize(self.size, Image.Resampling.LANCZOS)
        arr = np.asarray(img)
        if self.undistort is not None:
            arr = self.undistort.apply(arr)
            if mask is not None:
                mask = self.undistort.apply(mask)
        if self.alpha_mode == "masked":
            if mask is None and arr.shape[2] == 4:
                mask = np.ascontiguousarray(arr[..., 3])
            if arr.shape[2] == 4:
                arr = np.ascontiguousarray(arr[..., :3])
        else:
            if mask is not None:
                if arr.shape[2] == 3:
                    arr = np.concatenate([arr, mask[..., None]], axis=2)
                else:
                    arr = arr.copy()
                    arr[..., 3] = mask
                mask = None
        return np.ascontiguousarray(arr), mask


#: Single-channel modes with more than 8 bits, and the value that maps to white.
_WIDE_MODES = {"I;16": 65535.0, "I;16L": 65535.0, "I;16B": 65535.0, "I;16N": 65535.0, "I": None, "F": 1.0}


def to_8bit(im: Image.Image) -> Image.Image:
    """A 16-bit, 32-bit integer or float greyscale image as 8-bit ``L``, scaled (not clipped):
    16-bit codes by 255/65535; ``I`` (32-bit) by 255/65535 when no value exceeds 65535 (Pillow
    opens 16-bit PNGs so), else by 255/(2^31-1); ``F`` taken as [0, 1]; negatives become 0.
    Other modes unchanged.
    (Pillow's own ``convert`` clips these to 0..255.)
    """
    if im.mode not in _WIDE_MODES:
        return im
    arr = np.asarray(im).astype(np.float64)
    white = _WIDE_MODES[im.mode]
    if white is None:
        white = 65535.0 if arr.size == 0 or arr.max() <= 65535 else 2147483647.0
    arr = np.nan_to_num(arr / white, nan=0.0, posinf=1.0, neginf=0.0)
    return Image.fromarray(np.round(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8), "L")


def _load_rgb_or_rgba(source: DatasetSource, rel: str, target: tuple[int, int] | None = None,
                      apply_exif: bool = True) -> Image.Image:
    try:
        with Image.open(source.open_for_pil(rel)) as im:
            orientation = _header_orientation(im) if apply_exif else 1
            if target is not None:
                t = (target[1], target[0]) if orientation in _TRANSPOSING_ORIENTATIONS else target
                _jpeg_draft(im, t)
            if orientation != 1:
                im = ImageOps.exif_transpose(im)
            im = to_8bit(im)
            has_alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (im.mode == "P" and "transparency" in im.info)
            im = im.convert("RGBA" if has_alpha else "RGB")
            im.load()
            return im
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageDecodeError(f"cannot decode image {source.display_path(rel)}: {exc}") from None


def _load_mask(source: DatasetSource, rel: str, size: tuple[int, int]) -> np.ndarray:
    try:
        with Image.open(source.open_for_pil(rel)) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("RGBA", "LA", "PA"):
                im = im.getchannel("A")
            else:
                im = to_8bit(im).convert("L")
            if im.size != size:
                im = im.resize(size, Image.Resampling.BILINEAR)
            return np.asarray(im, np.uint8).copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageDecodeError(f"cannot decode mask {source.display_path(rel)}: {exc}") from None


def find_mask(source: DatasetSource, image_rel: str, index: dict[str, list[str]] | None = None) -> str | None:
    """The mask file of an image: a file under a ``masks/`` folder whose stem is the image's
    name or stem (``img.png`` -> ``masks/img.png``, ``masks/img.jpg``, ``masks/img.mask.png``,
    ``masks/img.png.png``), case-insensitive. Subfolders after ``masks/`` must match the
    end of the image's folder. None when absent.

    ``index`` (from ``mask_index``) avoids rescanning the file list per image.
    """
    index = mask_index(source) if index is None else index
    return find_companion(image_rel, index, ("masks",), ".mask")


def mask_index(source: DatasetSource) -> dict[str, list[str]]:
    """``{lowercase stem: [mask paths]}`` for every file below a ``masks`` folder."""
    return companion_index(source, ("masks",))


def companion_index(source: DatasetSource, folders: tuple[str, ...]) -> dict[str, list[str]]:
    """``{lowercase stem: [paths]}`` for every file below a folder named one of ``folders``
    (lowercase): the per-image files that sit in a folder beside the images (masks, depth maps)."""
    out: dict[str, list[str]] = {}
    for f in source.files:
        parts = f.lower().split("/")
        if any(p in folders for p in parts[:-1]):
            stem = parts[-1].rsplit(".", 1)[0]
            out.setdefault(stem, []).append(f)
    return out


def find_companion(image_rel: str, index: dict[str, list[str]], folders: tuple[str, ...],
                   suffix: str) -> str | None:
    """The file of ``index`` (``companion_index``) belonging to an image: its stem is the image's
    name, stem or stem + ``suffix``; subfolders after the companion folder must match the end of
    the image's folder. None when absent."""
    name = image_rel.rsplit("/", 1)[-1].lower()
    stem = name.rsplit(".", 1)[0]
    image_dir = image_rel.rsplit("/", 1)[0].lower().split("/") if "/" in image_rel else []
    for key in (name, stem, stem + suffix):
        for cand in index.get(key, ()):
            parts = cand.lower().split("/")
            i = max(k for k, p in enumerate(parts[:-1]) if p in folders)
            sub = parts[i + 1:-1]
            if not sub or image_dir[-len(sub):] == sub:
                return cand
    return None


def has_masks_folder(source: DatasetSource) -> bool:
    """Whether any file sits below a folder named ``masks``."""
    return any("masks" in f.lower().split("/")[:-1] for f in source.files)


def decode_all(items: Sequence, decode: Callable, num_workers: int | None = None, progress: bool = True,
               desc: str = "decoding images") -> list:
    """``[decode(item) for item in items]`` in a thread pool, with a tqdm bar when ``progress``."""
    workers = num_workers or os.cpu_count() or 1
    if not items:
        return []
    if workers == 1 or len(items) == 1:
        it = map(decode, items)
        results = list(_progress(it, len(items), desc, progress))
        return results
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(_progress(pool.map(decode, items), len(items), desc, progress))


def _progress(it, total: int, desc: str, enabled: bool):
    if not enabled:
        return it
    from tqdm import tqdm

    return tqdm(it, total=total, desc=desc, unit="img", leave=False)
