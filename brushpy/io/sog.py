"""PlayCanvas SOG ("Spatially Ordered Gaussians"): read and write.

Source of the format: the PlayCanvas SOG specification
(developer.playcanvas.com, user-manual/gaussian-splatting/formats/sog) and its
reference implementation, ``@playcanvas/splat-transform`` (``src/lib/readers/read-sog.ts``,
``read-sog-v1.ts``, ``src/lib/writers/write-sog.ts``; version 2.7.1 is the client the tests
run), cross-checked with the PlayCanvas engine's loader (``gsplat-sog-data.js``).

Layout
------
A SOG scene is a ``meta.json`` plus 8-bit RGBA images (lossless WebP), either as files
side by side (``meta.json`` names them, relative to its folder) or *bundled*: the same
files at the root of a zip archive (``scene.sog``). Every per-splat image holds splat
``i`` in pixel ``i`` in row-major order (``x = i % W``, ``y = i // W``); ``count <= W*H``
and trailing pixels are ignored.

=====================  =========================================================
``means_l/means_u``    RGB = low/high byte of a 16-bit value per axis. Decoded:
                       ``v = mins + (maxs - mins) * q / 65535`` (a zero span reads
                       as 1, as the reference decoder does), then the inverse of
                       ``sign(x) * ln(1 + |x|)``: ``x = sign(v) * (exp(|v|) - 1)``.
``quats``              "smallest three": A = 252 + index of the largest component
                       of the unit quaternion (w, x, y, z) made positive; RGB = the
                       other three in (w, x, y, z) order, ``byte/255 * 2 - 1``
                       divided by sqrt(2); the largest is ``sqrt(1 - sum of
                       squares)``. An A outside 252..255 decodes as the identity
                       (as the reference decoder does).
``scales``             RGB = indices into ``scales.codebook`` (256 log scales).
``sh0``                RGB = indices into ``sh0.codebook`` (256 band-0 SH
                       coefficients, i.e. ``f_dc``); A = ``sigmoid(opacity) * 255``,
                       decoded as ``logit(clamp(A/255, 1e-6, 1 - 1e-6))``.
``shN_labels``         RG = 16-bit palette index (R low byte), bands 1..3 only.
``shN_centroids``      the palette: entry ``j`` spans pixels ``(j % 64) * C + c``,
                       row ``j // 64`` (C = 3, 8, 15 coefficients for 1..3 bands);
                       RGB = indices into ``shN.codebook`` for the R, G, B
                       channel of coefficient ``c``.
=====================  =========================================================

Versions: meta.json ``version: 2`` (codebooks, above) is read and written. Version 1
(no ``version`` key: per-channel ``mins``/``maxs`` instead of codebooks, ``means.shape``
for the count, opacity stored as a lerped logit) is read, as splat-transform reads it.
The PlayCanvas manual also names a version 3; neither splat-transform (up to 3.10.2) nor
the engine (up to 2.23.3) reads or writes one, so without a reference decoder brushpy
refuses it, and any other version, with an error naming the version. brushpy writes
version 2, the newest splat-transform 2.7.1 reads (it rejects every other version).
A ``null`` first codebook entry (written by old tools for ``-inf`` values) is replaced
as the PlayCanvas engine does.

Axes and conventions: SOG stores splats in the INRIA 3DGS PLY frame (splat-transform
converts to ``Transform.PLY`` before writing and tags what it reads with it; the spec
says "the same coordinate system as 3DGS PLY files"), with quaternions in (w, x, y, z)
order (``rot_0`` = w), log scales, band-0 SH coefficients and channel-major higher bands,
exactly brushpy's :class:`~brushpy.io.ply.SplatData` convention: no axis flip or
reordering on read or write. The optional ``model`` key (newer splat-transform) maps
``"antialiased"`` to brushpy's ``render_mode="mip"`` and back; 2.7.1 ignores it.

Writing
-------
:func:`write_sog` sorts splats in Morton (Z-curve) order of their centres by default, as
splat-transform does (``order="input"`` keeps the input order). Positions, quaternion
components and opacity round to the nearest 16/8-bit step (splat-transform truncates).
The two 256-entry 1D codebooks (log scales, ``f_dc``) are k-means centroids
(``scipy.cluster.vq.kmeans2``, quantile-initialised, deterministic) of at most 32,768
values drawn in equal parts by density, by square-root density (splat-transform weights
by ``count ** 0.5``) and evenly over the range, so sparse tails such as the few large
splats keep entries, plus the data's minimum and maximum; each value takes its nearest
entry. The SH palette has the size the reference uses (``min(64, 2**floor(log2(N /
1024))) * 1024`` entries, at most 65,536; all splats when fewer) and comes from a
hierarchical k-means (see :func:`_sh_palette`: splits of at most 64, each child a share of
the palette proportional to its population, leaves of at most 128 entries, k-means on at
most 256 samples per cluster from k-means++ seeds, every splat assigned to its nearest
centroid in its node), run with one BLAS thread (threadpoolctl: scipy's ``vq`` is a BLAS
product and its many small calls stall on thread hand-offs). The palette's values go
through a third 256-entry codebook. Degree-4 SH is cut to degree 3 (SOG stores at most 3
bands), with a warning; non-finite values are refused (ValueError). Images are lossless
WebP through Pillow (``method=1``: within 0.5 % of the smallest size at a tenth of the
default's time; ``exact=True`` keeps colour under zero alpha). The bundle is a zip of
stored entries (WebP is compressed already; the PlayCanvas engine reads stored and
deflated entries, no Zip64) written through :func:`brushpy.io.atomic.atomic_write`; an
unbundled write (a path ending in ``meta.json``) writes each image atomically, then
``meta.json``.

Measured bounds (brushpy -> SOG -> brushpy; asserted in ``tests/test_sog.py``)
------------------------------------------------------------------------------
Random scenes (1,500 splats, centres within a few units, log scales in [-7, -1]; SH
bands 1..3 clustered round 48 prototypes, as trained scenes' are), measured / asserted:

- positions: 1.8e-5 / 5e-5 of the scene extent (16-bit steps of ``sign(x) ln(1 + |x|)``);
- rotations: at most 0.87 / 1.0 degrees, mean 0.34 / 0.4 degrees;
- opacity ``sigmoid``: at most half an 8-bit step, 1/510;
- colour ``SH_C0 * f_dc``: mean 0.0004 / 0.001, max 0.003 / 0.006;
- log scales: max 0.015 / 0.02;
- SH bands 1..3: rms 0.0026 / 0.005, max 0.018 / 0.03.

The guitar (90,854 trained splats, SH 0): positions 1.6e-5 of the extent; rotations max
0.81, mean 0.34 degrees; colour mean 0.0013, max 0.011 (asserted 0.002, 0.015); log scales
median 0.009, 99th percentile 0.041, max 0.10 (asserted 0.01, 0.05, 0.15). Rendered by
brushpy's rasterizer from its framing camera (240x320, 40 degrees) before and after a
round trip: PSNR 62.0 dB over the image, 54.4 dB over the pixels the guitar covers
(asserted >= 45 dB); splat-transform's own SOG of it gives 57.7 and 50.1 dB. With
synthetic SH degree 3 added: 60.1 / 52.6 dB for clustered bands, 52.7 / 45.1 dB for
unclustered N(0, 0.05) noise (the hardest case for a palette).

Times on the 2 shared cores of the development machine (load 8-10): 100,000 splats
write in 2.0 s (SH 0) and 8.6 s (SH 3; 5.4 s of CPU), read in 0.06 s and 0.23 s;
1,000,000 splats of SH 3 write in 25 s (16 s of CPU, 1.1 GB peak) and read in 2.4 s.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np

from .. import __version__
from .atomic import atomic_write
from .ply import PlyFormatError, SplatData
from .ply_compressed import morton_order

__all__ = ["SogFormatError", "read_sog", "write_sog", "sniff", "read", "write", "SOG_WRITE_VERSION"]

#: The meta.json version :func:`write_sog` writes (the newest splat-transform 2.7.1 reads).
SOG_WRITE_VERSION = 2

#: SH coefficients per colour channel beyond band 0, for 1..3 bands.
_SH_REST = {1: 3, 2: 8, 3: 15}
#: Legacy (version 1) palette: centroid image width -> bands.
_V1_WIDTH_BANDS = {64 * c: b for b, c in _SH_REST.items()}

_MEANS_FILES = ("means_l.webp", "means_u.webp")
_ZIP_MAGIC = b"PK\x03\x04"

#: k-means sample sizes (documented in the module docstring).
_CODEBOOK_SAMPLE = 32768
_SAMPLES_PER_CLUSTER = 256
_BRANCH = 64
_LEAF_BUDGET = 128


class SogFormatError(PlyFormatError):
    """A SOG scene (``.sog`` bundle or ``meta.json`` with its images) that cannot be read.

    The message names the file (and, inside a bundle, the member) and what is wrong.
    """


# --------------------------------------------------------------------------- contract


def sniff(head: bytes, path: Path) -> bool:
    """A zip holding ``meta.json``; a ``meta.json`` (not ``lod-meta.json``) that starts as JSON; a folder with one."""
    path = Path(path)
    if head[:4] == _ZIP_MAGIC:
        try:
            with zipfile.ZipFile(path) as zf:
                return _find_member(zf.namelist(), "meta.json") is not None
        except (OSError, zipfile.BadZipFile):
            return path.name.lower().endswith(".sog")
    name = path.name.lower()
    if path.is_dir():
        return (path / "meta.json").is_file()
    return name.endswith("meta.json") and not name.endswith("lod-meta.json") and head.lstrip()[:1] == b"{"


def read(path: Path) -> SplatData:
    return read_sog(path)


def write(path: Path, data: SplatData, option: str | None = None, **options) -> None:
    write_sog(path, data, option=option, **options)


# --------------------------------------------------------------------------- reading


class _Source:
    """Where a scene's files come from: a zip bundle or a folder. ``load(name)`` gives the bytes."""

    def __init__(self, path: Path):
        self.path = path
        self.zip = None
        if path.is_dir():
            self.folder, self.meta_name = path, "meta.json"
            if not (path / "meta.json").is_file():
                raise SogFormatError(f"{path} is a folder without meta.json; not a SOG scene")
        elif zipfile.is_zipfile(path):
            try:
                self.zip = zipfile.ZipFile(path)
                self.names = self.zip.namelist()
            except (OSError, zipfile.BadZipFile, ValueError) as exc:
                raise SogFormatError(f"{path} is not a readable SOG bundle (zip): {exc}") from exc
            self.meta_name = _find_member(self.names, "meta.json")
            if self.meta_name is None:
                raise SogFormatError(f"{path}: the SOG bundle has no meta.json (it holds {', '.join(self.names) or 'nothing'})")
        elif path.name.lower().endswith(".sog"):
            raise SogFormatError(f"{path} is not a SOG bundle: a .sog file is a zip archive and this is not one")
        else:
            self.folder, self.meta_name = path.parent, path.name

    def where(self, name: str) -> str:
        """How an error names file ``name``: ``bundle.sog (name)`` or the file's path."""
        return f"{self.path} ({name})" if self.zip is not None else str(self.folder / name)

    def load(self, name: str) -> bytes:
        if not isinstance(name, str) or not name:
            raise SogFormatError(f"{self.where(self.meta_name)}: a file name in meta.json is {name!r}, not a name")
        if self.zip is not None:
            member = _find_member(self.names, name)
            if member is None:
                raise SogFormatError(f"{self.path}: the SOG bundle lacks {name}, which meta.json names")
            try:
                return self.zip.read(member)
            except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
                raise SogFormatError(f"{self.where(name)}: cannot extract it from the bundle: {exc}") from exc
        file = self.folder / name
        if not file.is_file():
            raise SogFormatError(f"{file} not found: meta.json {self.folder / self.meta_name} names it")
        try:
            return file.read_bytes()
        except OSError as exc:
            raise SogFormatError(f"{file}: cannot read it: {exc}") from exc

    def close(self):
        if self.zip is not None:
            self.zip.close()


def _find_member(names, name: str) -> str | None:
    """``name`` in a zip listing: at the root, else the one member with that base name."""
    if name in names:
        return name
    hits = [n for n in names if n.rsplit("/", 1)[-1] == name]
    return hits[0] if len(hits) == 1 else None


def read_sog(path: str | os.PathLike) -> SplatData:
    """Read a PlayCanvas SOG scene: a ``.sog`` bundle, a ``meta.json`` beside its images, or their folder.

    Decoding follows splat-transform's reference reader (see the module docstring for
    the layout and the versions read: 1 and 2).

    Returns:
        :class:`SplatData` (float32) in brushpy's convention (INRIA PLY axes, which SOG
        also uses): means [N,3]; rotations [N,4] unit quaternions (w, x, y, z); log_scales
        [N,3]; sh_coeffs [N,K,3] with K = 1, 4, 9 or 16; raw_opacities [N] logits (finite:
        the opacity byte is clamped to [1e-6, 1 - 1e-6] before the logit). Splats come in
        the file's pixel order. ``render_mode`` is ``"mip"`` for ``model: "antialiased"``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        SogFormatError (a PlyFormatError, an InputError): a bundle that is not a zip or lacks
            meta.json or an image it names; meta.json that is not JSON, has an unknown
            version or a missing/ill-typed field; an image that does not decode or holds
            fewer pixels than ``count``; a codebook or palette index out of range. The
            message names the file (and the bundle member).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"SOG file not found: {path}")
    src = _Source(path)
    try:
        meta_where = src.where(src.meta_name)
        raw = src.load(src.meta_name)
        try:
            meta = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SogFormatError(f"{meta_where} is not valid JSON: {exc}") from exc
        if not isinstance(meta, dict):
            raise SogFormatError(f"{meta_where}: expected a JSON object, got {type(meta).__name__}")
        version = meta.get("version")
        if version is None:
            return _decode_v1(src, meta, meta_where)
        if isinstance(version, (int, float)) and not isinstance(version, bool) and version == 2:
            return _decode_v2(src, meta, meta_where)
        raise SogFormatError(
            f"{meta_where}: SOG meta.json version {version!r} is not supported "
            "(brushpy reads versions 1 and 2; splat-transform 2.7.1 writes 2)"
        )
    finally:
        src.close()


class _Meta:
    """Typed access to meta.json fields; a missing or ill-typed one is a SogFormatError naming it."""

    def __init__(self, meta: dict, where: str):
        self.meta, self.where = meta, where

    def get(self, dotted: str, optional: bool = False):
        node = self.meta
        for key in dotted.split("."):
            if not isinstance(node, dict) or key not in node:
                if optional:
                    return None
                raise SogFormatError(f"{self.where}: required field '{dotted}' is missing")
            node = node[key]
        return node

    def numbers(self, dotted: str, length: int | None = None, codebook: bool = False) -> np.ndarray:
        value = self.get(dotted)
        if not isinstance(value, list) or (length is not None and len(value) != length) or not value:
            want = f"a list of {length} numbers" if length else "a non-empty list of numbers"
            raise SogFormatError(f"{self.where}: '{dotted}' should be {want}")
        value = list(value)
        if codebook and len(value) > 1 and value[0] is None and all(_is_number(v) for v in value[1:]):
            # Old tools wrote null for a -inf first entry; the engine synthesises this value.
            value[0] = value[1] + (value[1] - value[-1]) / 255
        if not all(_is_number(v) for v in value):
            raise SogFormatError(f"{self.where}: '{dotted}' holds a value that is not a finite number")
        return np.asarray(value, np.float64)

    def number(self, dotted: str) -> float:
        value = self.get(dotted)
        if not _is_number(value):
            raise SogFormatError(f"{self.where}: '{dotted}' should be a number, got {value!r}")
        return float(value)

    def count(self, dotted: str) -> int:
        value = self.get(dotted)
        if not _is_number(value) or value < 0 or value != int(value):
            raise SogFormatError(f"{self.where}: '{dotted}' should be a non-negative integer, got {value!r}")
        return int(value)

    def files(self, dotted: str, n: int) -> list[str]:
        value = self.get(dotted)
        if not isinstance(value, list) or len(value) < n or not all(isinstance(v, str) and v for v in value[:n]):
            raise SogFormatError(f"{self.where}: '{dotted}' should list {n} file name(s), got {value!r}")
        return value[:n]


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _image(src: _Source, name: str, count: int) -> tuple[np.ndarray, int, int]:
    """Decode image ``name`` to uint8 [W*H, 4] RGBA; it must hold at least ``count`` pixels."""
    from PIL import Image, UnidentifiedImageError

    data = src.load(name)
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            rgba = np.asarray(im.convert("RGBA"), np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise SogFormatError(f"{src.where(name)}: cannot decode the image: {exc}") from exc
    h, w = rgba.shape[:2]
    if w * h < count:
        raise SogFormatError(
            f"{src.where(name)}: the {w}x{h} image holds {w * h} splats but meta.json's count is {count}"
        )
    return rgba.reshape(-1, 4), w, h


def _lookup(codebook: np.ndarray, index: np.ndarray, what: str, where: str) -> np.ndarray:
    if index.size and int(index.max()) >= len(codebook):
        raise SogFormatError(f"{where}: {what} uses codebook entry {int(index.max())} but the codebook has {len(codebook)}")
    return codebook[index]


def _decode_means(src: _Source, m: _Meta, count: int) -> np.ndarray:
    names = m.files("means.files", 2)
    mins = m.numbers("means.mins", 3)
    maxs = m.numbers("means.maxs", 3)
    lo, _, _ = _image(src, names[0], count)
    hi, _, _ = _image(src, names[1], count)
    q = lo[:count, :3].astype(np.float64) + 256.0 * hi[:count, :3].astype(np.float64)
    span = maxs - mins
    span[span == 0] = 1.0  # as the reference decoder: a zero span reads as 1
    v = mins + span * (q / 65535.0)
    return (np.sign(v) * np.expm1(np.abs(v))).astype(np.float32)


def _decode_quats(src: _Source, m: _Meta, count: int) -> np.ndarray:
    (name,) = m.files("quats.files", 1)
    px, _, _ = _image(src, name, count)
    px = px[:count]
    tag = px[:, 3].astype(np.int64)
    valid = (tag >= 252) & (tag <= 255)
    largest = np.where(valid, tag - 252, 0)
    small = (px[:, :3].astype(np.float64) / 255.0 * 2.0 - 1.0) / math.sqrt(2.0)
    # the three stored components fill the slots other than the largest, in (w, x, y, z) order
    slots = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])[largest]
    q = np.zeros((count, 4))
    rows = np.arange(count)[:, None]
    q[rows, slots] = small
    q[np.arange(count), largest] = np.sqrt(np.maximum(0.0, 1.0 - (small * small).sum(1)))
    q[~valid] = (1.0, 0.0, 0.0, 0.0)  # the reference decoder's identity for an invalid tag
    return q.astype(np.float32)


def _logit_of_byte(a: np.ndarray) -> np.ndarray:
    p = np.clip(a.astype(np.float64) / 255.0, 1e-6, 1.0 - 1e-6)
    return np.log(p / (1.0 - p)).astype(np.float32)


def _decode_v2(src: _Source, meta: dict, where: str) -> SplatData:
    m = _Meta(meta, where)
    count = m.count("count")
    means = _decode_means(src, m, count)
    rotations = _decode_quats(src, m, count)

    (name,) = m.files("scales.files", 1)
    px, _, _ = _image(src, name, count)
    log_scales = _lookup(m.numbers("scales.codebook", codebook=True), px[:count, :3], "scales", src.where(name))

    (name,) = m.files("sh0.files", 1)
    px, _, _ = _image(src, name, count)
    dc = _lookup(m.numbers("sh0.codebook", codebook=True), px[:count, :3], "sh0", src.where(name))
    opacities = _logit_of_byte(px[:count, 3])

    rest = None
    if m.get("shN", optional=True) is not None:
        bands = m.count("shN.bands")
        if bands not in (0, 1, 2, 3):
            raise SogFormatError(f"{where}: 'shN.bands' is {bands}; SOG stores 1 to 3 SH bands")
        if bands:
            c = _SH_REST[bands]
            palette = m.count("shN.count")
            codebook = m.numbers("shN.codebook", codebook=True)
            cen_name, lab_name = m.files("shN.files", 2)
            cen, cw, ch = _image(src, cen_name, 0)
            if cw != 64 * c:
                raise SogFormatError(
                    f"{src.where(cen_name)}: the SH palette image is {cw} pixels wide; "
                    f"{bands} bands need {64 * c} (64 entries of {c} coefficients per row)"
                )
            lab, _, _ = _image(src, lab_name, count)
            labels = lab[:count, 0].astype(np.int64) | (lab[:count, 1].astype(np.int64) << 8)
            rest = _palette_rest(src, lab_name, cen_name, labels, min(palette, (cw // c) * ch), cen, cw, c,
                                 lambda idx: _lookup(codebook, idx, "shN", src.where(cen_name)))

    return _assemble(means, rotations, log_scales, dc, opacities, rest, _render_mode(meta))


def _palette_rest(src, lab_name, cen_name, labels, palette, cen, cw, c, dequant) -> np.ndarray:
    """[N, C, 3] SH bands 1..3 from palette labels; a label past the palette is an error."""
    if labels.size and int(labels.max()) >= palette:
        raise SogFormatError(
            f"{src.where(lab_name)}: a splat points at SH palette entry {int(labels.max())} "
            f"but {src.where(cen_name)} holds {palette}"
        )
    # pixel index of (entry, coefficient) in the centroid image
    pix = (labels // 64)[:, None] * cw + (labels % 64)[:, None] * c + np.arange(c)[None, :]
    return dequant(cen[pix, :3]).astype(np.float32)  # [N, C, 3] channel last


def _decode_v1(src: _Source, meta: dict, where: str) -> SplatData:
    m = _Meta(meta, where)
    shape = m.get("means.shape")
    if not isinstance(shape, list) or not shape or not _is_number(shape[0]) or shape[0] < 0:
        raise SogFormatError(f"{where}: version-1 meta.json needs 'means.shape' [count, 3] (or a 'version' key)")
    count = int(shape[0])
    means = _decode_means(src, m, count)
    rotations = _decode_quats(src, m, count)

    (name,) = m.files("scales.files", 1)
    px, _, _ = _image(src, name, count)
    lo, hi = m.numbers("scales.mins", 3), m.numbers("scales.maxs", 3)
    log_scales = lo + (hi - lo) * (px[:count, :3] / 255.0)

    (name,) = m.files("sh0.files", 1)
    px, _, _ = _image(src, name, count)
    lo, hi = m.numbers("sh0.mins", 4), m.numbers("sh0.maxs", 4)
    lerp = lo + (hi - lo) * (px[:count, :4] / 255.0)
    dc, opacities = lerp[:, :3], lerp[:, 3]  # version 1 stores the opacity logit itself

    rest = None
    if m.get("shN", optional=True) is not None:
        lo, hi = m.number("shN.mins"), m.number("shN.maxs")
        cen_name, lab_name = m.files("shN.files", 2)
        cen, cw, ch = _image(src, cen_name, 0)
        bands = _V1_WIDTH_BANDS.get(cw)
        if bands is None:
            raise SogFormatError(
                f"{src.where(cen_name)}: the SH palette image is {cw} pixels wide; version 1 uses 192, 512 or 960"
            )
        c = _SH_REST[bands]
        lab, _, _ = _image(src, lab_name, count)
        labels = lab[:count, 0].astype(np.int64) | (lab[:count, 1].astype(np.int64) << 8)
        rest = _palette_rest(src, lab_name, cen_name, labels, (cw // c) * ch, cen, cw, c,
                             lambda idx: lo + (hi - lo) * (idx / 255.0))
    return _assemble(means, rotations, log_scales, dc, opacities, rest, "default")


def _render_mode(meta: dict) -> str:
    return "mip" if meta.get("model") == "antialiased" or meta.get("antialias") is True else "default"


def _assemble(means, rotations, log_scales, dc, opacities, rest, render_mode) -> SplatData:
    n = means.shape[0]
    k = 1 if rest is None else 1 + rest.shape[1]
    sh = np.empty((n, k, 3), np.float32)
    sh[:, 0, :] = dc
    if rest is not None:
        sh[:, 1:, :] = rest
    data = SplatData(means=means, rotations=rotations, log_scales=log_scales, sh_coeffs=sh,
                     raw_opacities=opacities)
    data.render_mode = render_mode
    return data


# --------------------------------------------------------------------------- writing


def _log_transform(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def _kmeans(points: np.ndarray, init: np.ndarray, iterations: int) -> np.ndarray:
    """k-means centroids of ``points`` [n, d] from ``init`` [k, d] (scipy's kmeans2; empty clusters keep their seed)."""
    from scipy.cluster.vq import kmeans2

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="One of the clusters is empty")
        centroids, _ = kmeans2(points, init, iter=iterations, minit="matrix", missing="warn")
    return centroids


def _codebook_1d(values: np.ndarray, k: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """A sorted ``k``-entry codebook for ``values`` (any shape) and each value's nearest entry (uint8).

    k-means (``k - 2`` clusters, quantile-initialised) on a sample drawn in three equal
    parts: by density (evenly spaced ranks of the sorted values), by square-root density
    (as splat-transform's ``alpha = 0.5`` weighting) and evenly over the value range, so
    that sparse tails, e.g. the few large splats, get entries too; the data's minimum and
    maximum are the two other entries.
    """
    flat = values.astype(np.float64).reshape(-1)
    if flat.size == 0:
        return np.zeros(k), np.zeros(values.shape, np.uint8)
    srt = np.sort(flat)
    if np.unique(srt).size <= k:
        book = np.unique(srt)
    else:
        part = min(srt.size, _CODEBOOK_SAMPLE // 3)
        dense = srt[np.linspace(0, srt.size - 1, part).round().astype(np.int64)]
        # square-root density: quantile bins of equal count c and width w have density
        # c / w, so the sampling mass is sqrt(c / w) * w ~ sqrt(w), spread evenly in the bin
        edges = srt[np.linspace(0, srt.size - 1, min(srt.size, 4097)).round().astype(np.int64)]
        mass = np.sqrt(np.diff(edges))
        cdf = np.concatenate([[0.0], np.cumsum(mass)]) / mass.sum()
        root = np.interp((np.arange(part) + 0.5) / part, cdf, edges)
        even = np.linspace(srt[0], srt[-1], part)
        sample = np.concatenate([dense, root, even])
        init = np.quantile(sample, (np.arange(k - 2) + 0.5) / (k - 2))
        book = _kmeans(sample[:, None], init[:, None], 20)[:, 0]
        book = np.unique(np.concatenate([[srt[0]], book, [srt[-1]]]))
    book = np.concatenate([book, np.full(k - book.size, book[-1])])
    labels = _nearest_1d(book, flat)
    return book, labels.reshape(values.shape).astype(np.uint8)


def _nearest_1d(book: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Index of the nearest entry of sorted ``book`` for each ``x`` (ties to the lower entry)."""
    mid = (book[1:] + book[:-1]) * 0.5
    return np.searchsorted(mid, x, side="right")


def _nearest(points: np.ndarray, centroids: np.ndarray, block: int = 65536) -> np.ndarray:
    """Index of the nearest centroid (squared Euclidean) of each point (scipy's vq), in blocks."""
    from scipy.cluster.vq import vq

    out = np.empty(points.shape[0], np.int64)
    for s in range(0, points.shape[0], block):
        out[s:s + block] = vq(points[s:s + block], centroids, check_finite=False)[0]
    return out


def _one_blas_thread():
    """Run with one BLAS thread (threadpoolctl): the palette's thousands of small k-means
    distance products (scipy's ``vq`` uses BLAS) ran 38 times slower per call with the
    default threads on a busy 2-core machine (11.5 ms vs 0.3 ms for 512 x 128 x 45)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency; without it, only slower
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _palette_size(n: int) -> int:
    """The SH palette size splat-transform uses for ``n`` splats (at most 65,536)."""
    if n <= 0:
        return 0
    return int(min(64.0, 2.0 ** math.floor(math.log2(n / 1024.0))) * 1024)


def _sh_palette(features: np.ndarray, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Cluster ``features`` [N, D] into at most ``size`` centroids; returns (centroids [K, D], labels [N]).

    Hierarchical k-means: a node holding ``m`` splats and a budget of ``s`` palette entries
    is split by k-means into ``min(64, ceil(s / 128))`` clusters, each child getting a share
    of ``s`` proportional to its population (at least 1), until a budget of at most 128 is
    spent by one k-means (a budget >= m keeps the splats themselves, a budget of 1 their
    mean). k-means (scipy's kmeans2, 10 iterations, k-means++ seeds) runs on at most 256
    samples per cluster; every splat is then assigned to its nearest centroid within its
    node. Unused entries are dropped.
    """
    n = features.shape[0]
    if n <= size:
        return features.copy(), np.arange(n)
    centroids: list[np.ndarray] = []
    labels = np.empty(n, np.int64)
    count = 0

    def emit(members: np.ndarray, c: np.ndarray, lab: np.ndarray) -> None:
        nonlocal count
        centroids.append(c.astype(np.float32))
        labels[members] = count + lab
        count += c.shape[0]

    def cluster(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        cap = _SAMPLES_PER_CLUSTER * k
        sample = x if x.shape[0] <= cap else x[rng.choice(x.shape[0], cap, replace=False)]
        c = _kmeans(sample, _seeds(sample, k, rng), 10).astype(np.float32)
        return c, _nearest(x, c)

    stack = [(np.arange(n), size)]
    while stack:
        members, budget = stack.pop()
        m = members.size
        x = features[members]
        if budget >= m:
            emit(members, x, np.arange(m))
        elif budget == 1:
            emit(members, x.mean(0, keepdims=True), np.zeros(m, np.int64))
        elif budget <= _LEAF_BUDGET:
            emit(members, *cluster(x, budget))
        else:
            k = min(_BRANCH, -(-budget // _LEAF_BUDGET))
            _, lab = cluster(x, k)
            pops = np.bincount(lab, minlength=k)
            if pops.max() == m:
                # k-means++ seeds distinct points where there are any, so a split that leaves
                # every member in one cluster means the members are all equal (e.g. the zero
                # higher bands of a fresh training run): one entry holds them all (re-pushing
                # the same node would never end).
                emit(members, x.mean(0, keepdims=True), np.zeros(m, np.int64))
                continue
            for j, share in enumerate(_shares(pops, budget)):
                if pops[j]:
                    stack.append((members[lab == j], int(share)))
    palette = np.concatenate(centroids)
    used = np.unique(labels)  # drop entries no splat took (k-means empty clusters)
    remap = np.zeros(palette.shape[0], np.int64)
    remap[used] = np.arange(used.size)
    return palette[used], remap[labels]


def _seeds(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): each next seed drawn with probability
    proportional to the squared distance to the nearest seed so far, among at most ``4 k``
    random points of ``x``. (scipy's ``minit="++"`` seeds from all points and took 9 s for
    32,768 x 45 values and 128 seeds here.)"""
    if x.shape[0] > 4 * k:  # seeds come from a random subset of 4 per seed
        x = x[rng.choice(x.shape[0], 4 * k, replace=False)]
    # (no matrix product here: BLAS threads on many small products stall a busy machine)
    x64 = x.astype(np.float64)
    draws = rng.random(k)
    picks = [int(draws[0] * x.shape[0])]
    d2 = ((x64 - x64[picks[0]]) ** 2).sum(1)
    for j in range(1, k):
        cum = np.cumsum(d2)
        i = int(np.searchsorted(cum, draws[j] * cum[-1], side="right")) if cum[-1] > 0 else int(draws[j] * x.shape[0])
        i = min(i, x.shape[0] - 1)
        picks.append(i)
        np.minimum(d2, ((x64 - x64[i]) ** 2).sum(1), out=d2)
    return x[picks]


def _shares(pops: np.ndarray, budget: int) -> np.ndarray:
    """Split ``budget`` over groups of ``pops`` members: 1 per non-empty group, the rest by population
    (largest remainder), never more than a group's members; the shares sum to at most ``budget``."""
    base = (pops > 0).astype(np.int64)
    rest = budget - int(base.sum())
    exact = pops * (rest / max(1, int(pops.sum())))
    share = np.floor(exact).astype(np.int64)
    left = rest - int(share.sum())
    if left > 0:
        share[np.argsort(share - exact, kind="stable")[:left]] += 1
    return np.minimum(share + base, pops)


def _quats_px(rotations: np.ndarray) -> np.ndarray:
    q = rotations.astype(np.float64)
    norm = np.linalg.norm(q, axis=1, keepdims=True)
    q = np.where(norm > 0, q / np.where(norm > 0, norm, 1.0), (1.0, 0.0, 0.0, 0.0))
    largest = np.abs(q).argmax(1)
    q *= np.where(q[np.arange(q.shape[0]), largest] < 0, -1.0, 1.0)[:, None]
    slots = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])[largest]
    small = np.take_along_axis(q, slots, 1) * math.sqrt(2.0)
    px = np.empty((q.shape[0], 4), np.uint8)
    px[:, :3] = np.clip(np.rint((small * 0.5 + 0.5) * 255.0), 0, 255)
    px[:, 3] = 252 + largest
    return px


def _webp(rgba: np.ndarray, width: int, height: int) -> bytes:
    """Lossless WebP of ``rgba`` [n<=W*H, 4] uint8 laid out row-major in a ``width`` x ``height`` image."""
    from PIL import Image

    img = np.zeros((height * width, 4), np.uint8)
    img[:, 3] = 255
    img[: rgba.shape[0]] = rgba
    buf = io.BytesIO()
    Image.fromarray(img.reshape(height, width, 4), "RGBA").save(
        buf, format="WEBP", lossless=True, quality=25, method=1, exact=True
    )
    return buf.getvalue()


def encode_sog(data: SplatData, order: str = "morton", seed: int = 0) -> dict[str, bytes]:
    """Encode ``data`` as SOG version 2: ``{file name: bytes}`` with ``meta.json`` and the WebP images.

    See :func:`write_sog` (which writes these) for the options and errors.
    """
    if order not in ("morton", "input"):
        raise ValueError(f"order={order!r}; use 'morton' (smaller files) or 'input'")
    for name in ("means", "rotations", "log_scales", "sh_coeffs", "raw_opacities"):
        arr = getattr(data, name)
        bad = int((~np.isfinite(arr.reshape(arr.shape[0], -1))).any(1).sum()) if arr.size else 0
        if bad:
            raise ValueError(f"{bad} splats have non-finite {name}; SOG cannot store them (filter them first)")
    n = data.num_splats
    idx = morton_order(data.means) if order == "morton" else np.arange(n)
    width = max(4, math.ceil(math.sqrt(n) / 4) * 4)
    height = max(4, math.ceil(n / width / 4) * 4)
    files: dict[str, bytes] = {}

    means = _log_transform(data.means[idx].astype(np.float64))
    mins = means.min(0) if n else np.zeros(3)
    maxs = means.max(0) if n else np.zeros(3)
    span = maxs - mins
    q = np.where(span > 0, np.rint((means - mins) / np.where(span > 0, span, 1.0) * 65535.0), 0.0)
    q = np.clip(q, 0, 65535).astype(np.uint32)
    lo = np.full((n, 4), 255, np.uint8)
    hi = np.full((n, 4), 255, np.uint8)
    lo[:, :3] = q & 0xFF
    hi[:, :3] = q >> 8
    files["means_l.webp"] = _webp(lo, width, height)
    files["means_u.webp"] = _webp(hi, width, height)

    files["quats.webp"] = _webp(_quats_px(data.rotations[idx]), width, height)

    scale_book, scale_idx = _codebook_1d(data.log_scales[idx])
    px = np.full((n, 4), 255, np.uint8)
    px[:, :3] = scale_idx
    files["scales.webp"] = _webp(px, width, height)

    dc_book, dc_idx = _codebook_1d(data.sh_coeffs[idx, 0, :])
    px = np.empty((n, 4), np.uint8)
    px[:, :3] = dc_idx
    alpha = 1.0 / (1.0 + np.exp(-data.raw_opacities[idx].astype(np.float64)))
    px[:, 3] = np.clip(np.rint(alpha * 255.0), 0, 255)
    files["sh0.webp"] = _webp(px, width, height)

    meta = {
        "version": SOG_WRITE_VERSION,
        "asset": {"generator": f"brushpy v{__version__}"},
        "count": n,
        "means": {"mins": mins.tolist(), "maxs": maxs.tolist(), "files": list(_MEANS_FILES)},
        "scales": {"codebook": _json_floats(scale_book), "files": ["scales.webp"]},
        "quats": {"files": ["quats.webp"]},
        "sh0": {"codebook": _json_floats(dc_book), "files": ["sh0.webp"]},
    }
    degree = data.sh_degree
    if degree > 3:
        warnings.warn(f"SOG stores SH up to degree 3; band 4 of the degree-{degree} scene is dropped", stacklevel=3)
        degree = 3
    if degree > 0 and n > 0:
        c = _SH_REST[degree]
        feats = data.sh_coeffs[idx, 1:1 + c, :].transpose(0, 2, 1).reshape(n, 3 * c).astype(np.float32)
        with _one_blas_thread():
            centroids, labels = _sh_palette(feats, _palette_size(n), np.random.default_rng(seed))
        k = centroids.shape[0]
        sh_book, sh_idx = _codebook_1d(centroids)  # [K, 3C] channel-major
        rows = math.ceil(k / 64)
        cen = np.zeros((rows * 64, c, 4), np.uint8)
        cen[..., 3] = 255
        cen[:k, :, :3] = sh_idx.reshape(k, 3, c).transpose(0, 2, 1)
        lab = np.zeros((n, 4), np.uint8)
        lab[:, 0] = labels & 0xFF
        lab[:, 1] = labels >> 8
        lab[:, 3] = 255
        files["shN_centroids.webp"] = _webp(cen.reshape(-1, 4), 64 * c, rows)
        files["shN_labels.webp"] = _webp(lab, width, height)
        meta["shN"] = {"count": int(k), "bands": degree, "codebook": _json_floats(sh_book),
                       "files": ["shN_centroids.webp", "shN_labels.webp"]}
    if data.render_mode == "mip":
        meta["model"] = "antialiased"
    files["meta.json"] = json.dumps(meta, allow_nan=False).encode("utf-8")
    return files


def _json_floats(a: np.ndarray) -> list[float]:
    return [float(np.float32(v)) for v in a]


def write_sog(path: str | os.PathLike, data, option: str | None = None, order: str = "morton", seed: int = 0) -> None:
    """Write ``data`` as a PlayCanvas SOG scene (meta.json version 2, lossless WebP).

    Args:
        path: ``*.sog`` (or any name not ending in ``meta.json``) writes one zip bundle;
            a name ending in ``meta.json`` writes that file with the images beside it
            (``means_l.webp`` ... ``shN_labels.webp``, overwriting those names).
        data: :class:`SplatData` or GPU ``Splats`` in brushpy's convention (INRIA PLY axes,
            quaternions (w, x, y, z), log scales, opacity logits, SH channel last); SOG uses
            the same axes, so nothing is flipped. SH degree 4 is cut to 3 (a warning).
        option: the command-line option that chose ``path`` (named in a write error).
        order: ``"morton"`` (default: Z-curve order of the centres, smaller files, as
            splat-transform writes) or ``"input"`` (pixel ``i`` is splat ``i``).
        seed: seed of the SH palette's k-means sampling (the output is deterministic).

    The quantisation, the k-means codebooks and the measured round-trip error are in the
    module docstring. Every file is written atomically. An empty scene gives ``count: 0``
    and 4x4 images (brushpy reads it; splat-transform refuses empty scenes in any format).

    Raises:
        ValueError: ``order`` unknown, or splats with non-finite values (SOG cannot store them).
        WriteError: a file cannot be written (full disk, no permission...).
    """
    path = Path(path)
    data = SplatData.coerce(data, "write_sog")
    files = encode_sog(data, order=order, seed=seed)
    if path.name.lower().endswith("meta.json"):
        for name, payload in files.items():
            if name != "meta.json":
                with atomic_write(path.parent / name, option=option) as f:
                    f.write(payload)
        with atomic_write(path, option=option) as f:  # last: a reader never sees meta.json before its images
            f.write(files["meta.json"])
        return
    with atomic_write(path, option=option) as f:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
            for name in ["meta.json", *sorted(n for n in files if n != "meta.json")]:
                info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_STORED
                info.external_attr = 0o644 << 16
                zf.writestr(info, files[name])
