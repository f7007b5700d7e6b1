"""antimatter15's ``.splat`` files (the WebGL viewer github:antimatter15/splat): read and write.

The file is a bare array of 32-byte records, one per splat, no header, little-endian:

=========  ==========  ==================================================================
bytes      type        value
=========  ==========  ==================================================================
0..11      3 float32   centre x, y, z (INRIA PLY axes, as the converter copies them)
12..23     3 float32   standard deviations (linear: ``exp(log_scale)``)
24..27     4 uint8     R, G, B: the band-0 colour ``SH_C0 * f_dc + 0.5`` times 255; A: the
                       opacity ``sigmoid(logit)`` times 255 (rounded, clamped to 0..255)
28..31     4 uint8     quaternion (w, x, y, z), normalised, stored as ``q * 128 + 128``
                       (rounded, clamped to 0..255); read back as ``(b - 128) / 128``
=========  ==========  ==================================================================

Only SH band 0 is stored: writing drops higher bands (with a warning). The reference
converter orders splats by importance, ``exp(sum of log scales) * sigmoid(opacity)``
(volume times opacity), largest first, so a viewer that streams the file shows the big
opaque splats first; :func:`write_splat_file` does the same.

No magic number: a file is taken for ``.splat`` by its name (``*.splat``) and its size
(a multiple of 32 bytes); :func:`sniff` checks exactly that.

Round-trip error: means and scales exact (float32; a log scale beyond float32's
``exp`` range saturates to 0 / inf and reads back as the -30 floor / is dropped);
colour ``<= 0.5/255`` (band-0 colour units, values outside [0, 1] are clamped); opacity
``|sigmoid err| <= 0.5/255`` (bytes 0 and 255 read back as logits -40 / +40); quaternion
components ``<= 0.5/128`` before renormalising (rotation error below about 0.9 degrees).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from .atomic import atomic_write
from .ply import _MAX_LOGIT, PlyFormatError, SplatData, clean_non_finite, rgb_to_sh_dc, sh_dc_to_rgb

log = logging.getLogger("brushpy.io")

RECORD_BYTES = 32
_RECORD = np.dtype([("position", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
assert _RECORD.itemsize == RECORD_BYTES


class SplatFileError(PlyFormatError):
    """A ``.splat`` file that cannot be read (message names the file and the problem)."""


# --------------------------------------------------------------------------- format registry


def sniff(head: bytes, path: Path) -> bool:
    """``*.splat`` (any case) whose size is a multiple of 32 bytes (the format has no magic)."""
    path = Path(path)
    if path.suffix.lower() != ".splat" or not path.is_file():
        return False
    return path.stat().st_size % RECORD_BYTES == 0


def read(path: Path) -> SplatData:
    return read_splat_file(path)


def write(path: Path, data: SplatData, option: str | None = None, **options) -> None:
    write_splat_file(path, data, option=option, **options)


# --------------------------------------------------------------------------- reading


def read_splat_file(path: str | os.PathLike) -> SplatData:
    """Read an antimatter15 ``.splat`` file (layout: module docstring).

    Returns:
        :class:`SplatData` (float32, SH degree 0, no normals, ``render_mode`` default,
        ``vertical_axis`` None: the format stores neither). Log scales are ``log`` of the
        stored ones; opacity logits from the alpha byte (0 -> -40, 255 -> +40); the
        quaternion bytes decode to ``(b - 128) / 128``, normalised (all-128 -> identity).
        Non-finite values (a zero scale, NaN) are handled as for PLY
        (:func:`brushpy.io.ply.clean_non_finite`, with its warning).

    Raises:
        FileNotFoundError: no such file.
        SplatFileError (a PlyFormatError): a directory, or a size that is not a multiple
            of 32 bytes (the message names the file and its size).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"splat file not found: {path}")
    if path.is_dir():
        raise SplatFileError(f"{path} is a directory, not a .splat file")
    raw = path.read_bytes()
    if len(raw) % RECORD_BYTES:
        raise SplatFileError(
            f"{path}: {len(raw):,} bytes is not a whole number of 32-byte .splat records "
            f"({len(raw) // RECORD_BYTES:,} records and {len(raw) % RECORD_BYTES} bytes left over); "
            "the file is truncated or not a .splat file"
        )
    rec = np.frombuffer(raw, dtype=_RECORD)
    n = len(rec)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_scales = np.log(rec["scale"].astype(np.float64))
    rgba = rec["rgba"].astype(np.float64)
    f_dc = rgb_to_sh_dc(rgba[:, :3] / 255.0)
    a = rgba[:, 3] / 255.0
    with np.errstate(divide="ignore"):
        logits = np.log(a) - np.log1p(-a)
    logits = np.clip(logits, -_MAX_LOGIT, _MAX_LOGIT)
    q = (rec["rot"].astype(np.float64) - 128.0) / 128.0
    length = np.linalg.norm(q, axis=1, keepdims=True)
    q = np.where(length > 0, q / np.where(length > 0, length, 1.0), np.array([1.0, 0.0, 0.0, 0.0]))
    data = SplatData(
        means=rec["position"],
        rotations=q,
        log_scales=log_scales,
        sh_coeffs=f_dc.reshape(n, 1, 3),
        raw_opacities=logits,
    )
    return clean_non_finite(data, path)


# --------------------------------------------------------------------------- writing


def importance_order(data: SplatData) -> np.ndarray:
    """Indices (int64 [N]) of ``data``'s splats by volume times opacity, largest first (stable).

    Compares ``sum(log_scales) + log(sigmoid(logit))``, the logarithm of the reference
    converter's ``exp(s0 + s1 + s2) * sigmoid(opacity)``, so huge values cannot overflow.
    """
    x = data.raw_opacities.astype(np.float64)
    log_sigmoid = -np.logaddexp(0.0, -x)
    key = data.log_scales.astype(np.float64).sum(axis=1) + log_sigmoid
    return np.argsort(-key, kind="stable")


def _to_byte(v: np.ndarray, scale: float, offset: float) -> np.ndarray:
    return np.clip(np.rint(np.asarray(v, np.float64) * scale + offset), 0, 255).astype(np.uint8)


def write_splat_file(path: str | os.PathLike, data, option: str | None = None, sort: bool = True) -> None:
    """Write ``data`` as an antimatter15 ``.splat`` file (layout, error bounds: module docstring).

    Args:
        path: output file (``*.splat``: readers recognise the format by its name).
        data: :class:`SplatData` or GPU ``Splats``. SH bands above 0 are dropped (with a
            warning). Non-finite values are first repaired or their splats dropped
            (:func:`brushpy.io.ply.clean_non_finite`, with its warning).
        option: the command-line option that chose ``path`` (named in a write error).
        sort: order splats by :func:`importance_order` as the reference converter does
            (default); False keeps the input order.

    Written atomically (:func:`brushpy.io.atomic.atomic_write`).

    Raises:
        WriteError: the file cannot be written.
    """
    path = Path(path)
    data = SplatData.coerce(data, "write_splat_file")
    data = clean_non_finite(data, path)
    n = data.num_splats
    if data.sh_degree > 0:
        log.warning(f"{path}: .splat stores SH band 0 only; dropped bands 1..{data.sh_degree} of {n:,} splats")
    order = importance_order(data) if sort else np.arange(n)
    rec = np.empty(n, dtype=_RECORD)
    rec["position"] = data.means[order]
    with np.errstate(over="ignore"):
        rec["scale"] = np.exp(data.log_scales[order].astype(np.float64)).astype(np.float32)
    colour = sh_dc_to_rgb(data.sh_coeffs[order, 0, :])
    rec["rgba"][:, :3] = _to_byte(colour, 255.0, 0.0)
    with np.errstate(over="ignore"):
        alpha = 1.0 / (1.0 + np.exp(-data.raw_opacities[order].astype(np.float64)))
    rec["rgba"][:, 3] = _to_byte(alpha, 255.0, 0.0)
    q = data.rotations[order].astype(np.float64)
    length = np.linalg.norm(q, axis=1, keepdims=True)
    q = np.where(length > 0, q / np.where(length > 0, length, 1.0), np.array([1.0, 0.0, 0.0, 0.0]))
    rec["rot"] = _to_byte(q, 128.0, 128.0)
    with atomic_write(path, option=option) as f:
        f.write(rec.tobytes())
