"""Niantic SPZ splat files (``.spz``): read versions 1-4, write versions 3 (default) and 4.

Source of the format: Niantic's reference library and its README (github.com/nianticlabs/spz,
``src/cc/load-spz.cc``, ``src/cc/splat-utils.h``, ``src/cc/splat-types.h``), as of 2026-07.
This module is an independent implementation of that description.

Containers
==========

Versions 1-3 ("legacy"): the whole file is one gzip stream. Inflated, it holds a 16-byte
little-endian header::

    magic  u32  0x5053474e ("NGSP" in file order)
    version u32 1, 2 or 3
    numPoints u32
    shDegree u8   0..4
    fractionalBits u8
    flags u8      0x1 antialiased (mip-splatting), 0x2 extension records follow the data
    reserved u8

then one block per attribute, each for all N splats in turn: positions, alphas, colours,
scales, rotations, SH (sizes below), then, with flag 0x2, extension records. A few old tools
wrote this stream without gzip; brushpy reads that too (the reference does not).

Version 4: a 32-byte plaintext header (magic, version 4, numPoints, shDegree, fractionalBits,
flags, ``numStreams`` u8, ``tocByteOffset`` u32, 12 reserved bytes), extension records in
bytes ``[32, tocByteOffset)`` (flag 0x2), a table of contents of ``numStreams`` pairs
``(compressedSize u64, uncompressedSize u64)``, then that many independent zstd frames, one
per non-empty attribute in the order positions, alphas, colours, scales, rotations, SH (so 5
streams for SH degree 0, else 6).

Extension records are ``(type u32, byteLength u32, payload)``. brushpy understands one:
``SPZ_ADOBE_coordinate_system`` (type ``0xADBE0003``, payload u32) that names the axes the
data is stored in (below); others are skipped, as the reference does.

Per-splat attributes (N splats, K = (d+1)^2 - 1 higher SH coefficients)
========================================================================

==============  ==========  ===============================================================
attribute       bytes       decoding (the reference's ``unpackGaussians``)
==============  ==========  ===============================================================
position        9 (v1: 6)   x, y, z as 24-bit signed little-endian fixed point, value
                            ``q / 2^fractionalBits`` (v1: float16)
alpha           1           opacity ``a / 255``; brushpy stores its logit
colour          3           band-0 SH ``(c / 255 - 0.5) / 0.15`` (the reference's
                            ``colorScale`` 0.15, not SH_C0: it leaves room for colours a
                            little outside [0, 1])
scale           3           log scale ``s / 16 - 10``
rotation        4 (v1-2: 3) v3+: "smallest three": bits 30-31 index the largest-magnitude
                            component of (x, y, z, w); the other three, in index order, take
                            10 bits each from the top down (sign bit, then a 9-bit magnitude
                            ``m / 511 / sqrt 2``); the largest is ``sqrt(1 - sum of squares)``,
                            positive. v1-2: x, y, z as ``b / 127.5 - 1``, w >= 0 from the
                            unit norm.
SH              3 K         coefficient-major, channel inner (R, G, B of coefficient 1, then
                            of coefficient 2, ...), each ``(b - 128) / 128``
==============  ==========  ===============================================================

Axes
====

SPZ stores RUB axes (x right, y up, z back: OpenGL / three.js) unless the coordinate-system
extension says otherwise. brushpy keeps INRIA PLY axes (RDF: x right, y down, z forward), so
reading converts RUB -> RDF and writing RDF -> RUB, as the reference does when asked for PLY
axes (its ``spz_to_ply`` / ``ply_to_spz`` tools) and as PlayCanvas splat-transform does
(it reads and writes SPZ through the reference's WebAssembly build with RDF on the caller's
side). The conversion negates y and z: positions ``(x, -y, -z)``; quaternions (w, x, -y, -z)
(a rotation by 180 degrees about x); an SH coefficient changes sign where its basis function
is odd under ``(y, z) -> (-y, -z)`` (band 1: the y and z terms; band 2: xy and xz; band 3:
y(3x^2 - y^2), y(5z^2 - 1), z(5z^2 - 3), z(x^2 - y^2); band 4: the reference's sign table,
which also flips the last coefficient, x^4 - 6x^2y^2 + y^4, though that one is even -- brushpy
follows the reference there so that files agree across tools).

Spark and gsply do not flip: they hand SPZ's stored values through unchanged (Spark's world is
y-up, like RUB), so a file read there and here differs by that 180-degree turn about x. The
reference and splat-transform flip, and so does brushpy: we follow the reference.

A file whose coordinate-system extension names another axis set of the same family (the eight
left/right x up/down x back/front sets) is converted from it; the rotated family (y and z
swapped) is refused with an error.

Writing (the reference's ``packGaussians``, default options)
============================================================

Positions: 12 fractional bits (1/4096 = 0.24 mm at metre scale), fewer when the scene reaches
past +-2048 units (24-bit range; the header records the number and the reference's reader
honours it; a warning says so). Scales ``round((s + 10) * 16)`` clamped to 0..255 (log scales
outside [-10, 5.94] clamp). Alpha ``round(255 sigmoid(o))``. Colour
``round(f_dc * 0.15 * 255 + 127.5)`` clamped. Rotation normalised, smallest three (v3+); a zero
quaternion is written as the identity. SH: ``round(128 x) + 128`` snapped to buckets of 8 (band
1: 5 bits) or 16 (bands 2+: 4 bits) and clamped to 0..255, i.e. values in about [-1, 1].
Rounding is half away from zero (C's ``round``). The antialiased flag is set for
``render_mode == "mip"`` and read back as it. No extension records are written.

SH degree: files of degree 0..4 are read (the reference reads 4 since 2026-03). Version 3 is
written with at most degree 3 (readers written before that, e.g. older builds of the reference,
reject degree 4): a degree-4 scene loses band 4 with a warning. Version 4 keeps degree 4 (the
reference added version 4 after degree 4, so its version-4 readers all read degree 4).

Round-trip bounds (brushpy -> SPZ -> brushpy; asserted in tests/test_spz.py)
=============================================================================

For values inside the representable ranges (outside them the bytes clamp):

- position: ``|error| <= 2^-(fractionalBits+1)`` per axis (1.2e-4 at 12 bits)
- log scale: ``<= 1/32`` inside [-10, 5.94]
- opacity ``sigmoid(logit)``: ``<= 0.5 / 255``
- rotation: angle between input and decoded rotation ``<= 0.25`` degrees (v3/v4; measured
  0.22 on 40,000 random rotations)
- band-0 SH ``f_dc``: ``<= 0.5 / 38.25 = 0.0131`` inside [-3.33, 3.33] (colour
  ``SH_C0 * f_dc`` within 0.0037)
- SH band 1: ``<= 4.5 / 128 = 0.035``; bands 2+: ``<= 8.5 / 128 = 0.066`` inside [-1, 127/128]

brushpy quantises exactly as the reference: splat-transform 2.7.1 (which runs the reference's
WebAssembly build) writes SPZ files of a PLY that decode to the very values of brushpy's own
SPZ of it, and it decodes brushpy's files to brushpy's values up to float32 rounding (tests).
The guitar (90,854 splats, SH degree 0) after a version-3 round trip renders at 63.3 dB PSNR
against the original (800x600, brushpy's default camera; 67.0 dB from the opposite side). That
scene came from a compressed PLY, so its opacities were 8-bit already and survive unchanged;
positions, scales, rotations and colour carry the loss (a few colours and tiny scales clamp).
"""

from __future__ import annotations

import gzip
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np

from .atomic import atomic_write
from .ply import PlyFormatError, SplatData

__all__ = ["SpzFormatError", "read_spz", "write_spz", "sniff", "read", "write"]

MAGIC = b"NGSP"
GZIP_MAGIC = b"\x1f\x8b"
#: Versions brushpy reads; versions it writes.
READ_VERSIONS = (1, 2, 3, 4)
WRITE_VERSIONS = (3, 4)
MAX_SH_DEGREE = 4
#: The reference's scale from band-0 SH to the stored byte (``colorScale``).
COLOR_SCALE = 0.15
#: Fractional bits of positions the reference writes.
FRACTIONAL_BITS = 12
#: Bits kept per SH coefficient (the reference's defaults ``sh1Bits``, ``shRestBits``).
SH1_BITS = 5
SH_REST_BITS = 4
#: zstd level of the reference's version-4 writer.
ZSTD_LEVEL = 12
FLAG_ANTIALIASED = 0x1
FLAG_EXTENSIONS = 0x2
EXT_COORDINATE_SYSTEM = 0xADBE0003
#: Opacity bytes 0 and 255 decode to logits -inf/+inf in the reference; brushpy clamps to
#: +-40, the same opacity in float32 (sigmoid(40) == 1.0f), so the renderer keeps them.
MAX_LOGIT = 40.0

_LEGACY_HEADER = struct.Struct("<4sIIBBBB")  # 16 bytes
_V4_HEADER = struct.Struct("<4sIIBBBBI12s")  # 32 bytes
_TOC_ENTRY = struct.Struct("<QQ")
_SQRT1_2 = np.float32(0.7071067811865476)
_MAX_FIXED = (1 << 23) - 1

#: Reference's coordinate-system codes (``CoordinateSystem``): 1..8 the standard family,
#: 9..16 the rotated one; 0 unspecified (read as RUB).
_AXES_NAMES = {
    0: "UNSPECIFIED", 1: "LDB", 2: "RDB", 3: "LUB", 4: "RUB", 5: "LDF", 6: "RDF", 7: "LUF", 8: "RUF",
    9: "LFD", 10: "RFD", 11: "LFU", 12: "RFU", 13: "LBD", 14: "RBD", 15: "LBU", 16: "RBU",
}
_RUB, _RDF = 4, 6

#: For each of the 24 higher SH coefficients (bands 1..4, m = -l..l, the INRIA/gsplat order):
#: whether the basis function is odd in x, in y, in z. Under an axis flip (fx, fy, fz) the
#: coefficient is multiplied by fx^px fy^py fz^pz. The last entry follows the reference's table
#: (odd in y), see the module docstring.
_SH_PARITY = np.array([
    (0, 1, 0), (0, 0, 1), (1, 0, 0),                                    # band 1: y, z, x
    (1, 1, 0), (0, 1, 1), (0, 0, 0), (1, 0, 1), (0, 0, 0),              # band 2
    (0, 1, 0), (1, 1, 1), (0, 1, 0), (0, 0, 1), (1, 0, 0), (0, 0, 1), (1, 0, 0),  # band 3
    (1, 1, 0), (0, 1, 1), (1, 1, 0), (0, 1, 1), (0, 0, 0), (1, 0, 1), (0, 0, 0), (1, 0, 1),
    (0, 1, 0),                                                          # band 4
], np.int64)


class SpzFormatError(PlyFormatError):
    """A file that is not a readable SPZ file (the message names the file and what is wrong)."""


# --------------------------------------------------------------------------- shared helpers


def _sh_dim(degree: int) -> int:
    """Higher SH coefficients per channel for ``degree`` (0, 3, 8, 15, 24)."""
    return (degree + 1) ** 2 - 1


def _flips_to_rdf(system: int) -> tuple[int, int, int]:
    """Per-axis signs taking standard-family axes ``system`` (1..8) to RDF."""
    bits = system - 1  # bit 0: x right, bit 1: y up, bit 2: z front (the reference's numbering)
    rdf = _RDF - 1
    return tuple(1 if ((bits >> i) & 1) == ((rdf >> i) & 1) else -1 for i in range(3))


def _sh_signs(flips: tuple[int, int, int], dim: int) -> np.ndarray:
    """[dim] float32 signs of the higher SH coefficients under the axis flips."""
    f = np.array(flips, np.int64)
    return np.prod(np.where(_SH_PARITY[:dim] == 1, f[None, :], 1), axis=1).astype(np.float32)


def _round_half_away(x: np.ndarray) -> np.ndarray:
    """C's ``round`` (halves away from zero), in float64 so float32 inputs round exactly."""
    x = np.asarray(x, np.float64)
    return np.copysign(np.floor(np.abs(x) + 0.5), x)


def _to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(_round_half_away(x), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- reading


def sniff(head: bytes, path: Path) -> bool:
    """True for an SPZ file: a version-4 ``NGSP`` header, a gzip stream whose first inflated
    bytes are ``NGSP``, or (so a broken ``.spz`` gets an SPZ error) a ``.spz`` name on content
    no other format claims (not PLY, not zip)."""
    if head[:4] == MAGIC:
        return True
    if head[:2] == GZIP_MAGIC:
        try:
            inflated = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 64)
        except zlib.error:
            inflated = b""
        if inflated[:4] == MAGIC:
            return True
    return Path(path).name.lower().endswith(".spz") and head[:3] != b"ply" and head[:2] != b"PK"


def read(path: Path) -> SplatData:
    """The :mod:`brushpy.io.formats` entry point: :func:`read_spz`."""
    return read_spz(path)


def read_spz(path) -> SplatData:
    """Read a Niantic SPZ file (versions 1-4) into brushpy's convention.

    Args:
        path: the ``.spz`` file.

    Returns:
        :class:`SplatData`, float32, INRIA PLY axes (converted from SPZ's RUB, see the module
        docstring): ``means`` [N,3], ``rotations`` [N,4] (w, x, y, z), unit length,
        ``log_scales`` [N,3], ``sh_coeffs`` [N,K,3] (K = (d+1)^2, d = the file's SH degree
        0..4), ``raw_opacities`` [N] logits clamped to [-40, 40]; ``render_mode`` ``"mip"``
        when the file's antialiased flag is set.

    Raises:
        FileNotFoundError: no such file.
        SpzFormatError (a PlyFormatError, an InputError): the message names the file and
            the fault: neither gzip nor an ``NGSP`` header; a broken gzip or zstd stream;
            wrong magic; a version other than 1-4; zero points; an SH degree above 4; a
            point count the data is too short for (truncated file); a table of contents or
            stream size that disagrees with the header; a coordinate-system extension
            naming the rotated family.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"SPZ file not found: {path}")
    if path.is_dir():
        raise SpzFormatError(f"{path} is a directory, not an SPZ file")
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise SpzFormatError(f"{path} cannot be read: {exc.strerror or exc}") from exc
    if blob[:4] == MAGIC:
        version = struct.unpack_from("<I", blob, 4)[0] if len(blob) >= 8 else None
        if version is not None and version in (1, 2, 3):
            return _read_legacy(blob, path, "raw (not gzipped) legacy")
        return _read_v4(blob, path)
    if blob[:2] == GZIP_MAGIC:
        try:
            inflated = gzip.decompress(blob)
        except (OSError, EOFError, zlib.error) as exc:
            raise SpzFormatError(f"{path}: broken gzip stream (truncated or corrupt SPZ file): {exc}") from exc
        return _read_legacy(inflated, path, "gzip")
    raise SpzFormatError(
        f"{path} is not an SPZ file: it starts with neither a gzip stream (1f 8b, SPZ versions 1-3) "
        f"nor 'NGSP' (version 4); first bytes: {blob[:4].hex(' ') or 'none (empty file)'}"
    )


def _check_header(path: Path, magic: bytes, version: int, n: int, degree: int, where: str) -> None:
    if magic != MAGIC:
        raise SpzFormatError(
            f"{path}: wrong magic {magic!r} in the {where} header (expected b'NGSP'); not an SPZ file"
        )
    if version not in READ_VERSIONS:
        raise SpzFormatError(f"{path}: SPZ version {version} is not supported (brushpy reads versions 1-4)")
    if n == 0:
        raise SpzFormatError(f"{path}: the header says the file holds 0 splats")
    if n > 2**31 - 1:
        raise SpzFormatError(f"{path}: the header's point count {n} is out of range")
    if degree > MAX_SH_DEGREE:
        raise SpzFormatError(f"{path}: SH degree {degree} is out of range (SPZ allows 0..{MAX_SH_DEGREE})")


def _block_sizes(version: int, n: int, degree: int) -> list[tuple[str, int]]:
    """(name, bytes) of the attribute blocks in file order."""
    return [
        ("positions", n * (6 if version == 1 else 9)),
        ("alphas", n),
        ("colors", n * 3),
        ("scales", n * 3),
        ("rotations", n * (4 if version >= 3 else 3)),
        ("sh", n * _sh_dim(degree) * 3),
    ]


def _read_legacy(raw: bytes, path: Path, container: str) -> SplatData:
    if len(raw) < _LEGACY_HEADER.size:
        raise SpzFormatError(
            f"{path}: the {container} stream holds {len(raw)} bytes, "
            f"fewer than the {_LEGACY_HEADER.size}-byte SPZ header"
        )
    magic, version, n, degree, frac, flags, _ = _LEGACY_HEADER.unpack_from(raw)
    _check_header(path, magic, version, n, degree, container)
    if version == 4:  # a gzipped stream with a version-4 header is neither container
        raise SpzFormatError(f"{path}: a version-4 header inside a gzip stream; version 4 files are not gzipped")
    sizes = _block_sizes(version, n, degree)
    need = sum(s for _, s in sizes)
    have = len(raw) - _LEGACY_HEADER.size
    if have < need:
        raise SpzFormatError(
            f"{path}: truncated SPZ file: the header says {n} splats of SH degree {degree} "
            f"(needs {need} bytes of data) but the {container} stream holds only {have}"
        )
    blocks, off = {}, _LEGACY_HEADER.size
    for name, size in sizes:
        blocks[name] = raw[off:off + size]
        off += size
    exts = raw[off:] if flags & FLAG_EXTENSIONS else b""
    return _decode(blocks, version, n, degree, frac, flags, exts, path)


def _read_v4(blob: bytes, path: Path) -> SplatData:
    import zstandard

    if len(blob) < _V4_HEADER.size:
        raise SpzFormatError(
            f"{path}: truncated SPZ file: {len(blob)} bytes, fewer than the 32-byte version-4 header"
        )
    magic, version, n, degree, frac, flags, n_streams, toc_at, _ = _V4_HEADER.unpack_from(blob)
    _check_header(path, magic, version, n, degree, "version-4")
    sizes = [(name, size) for name, size in _block_sizes(version, n, degree) if size > 0]
    if n_streams != len(sizes):
        raise SpzFormatError(
            f"{path}: the header lists {n_streams} attribute streams; {len(sizes)} expected for SH degree {degree}"
        )
    toc_end = toc_at + n_streams * _TOC_ENTRY.size
    if toc_at < _V4_HEADER.size or toc_end > len(blob):
        raise SpzFormatError(
            f"{path}: truncated or corrupt SPZ file: its table of contents (bytes {toc_at}..{toc_end}) "
            f"lies outside the file ({len(blob)} bytes)"
        )
    off = toc_end
    blocks = {}
    dctx = zstandard.ZstdDecompressor()
    for i, (name, expected) in enumerate(sizes):
        csize, usize = _TOC_ENTRY.unpack_from(blob, toc_at + i * _TOC_ENTRY.size)
        if usize != expected:
            raise SpzFormatError(
                f"{path}: the {name} stream holds {usize} bytes but the header's {n} splats "
                f"of SH degree {degree} need {expected}"
            )
        if csize > len(blob) - off:
            raise SpzFormatError(
                f"{path}: truncated SPZ file: the {name} stream ({csize} bytes at byte {off}) runs past "
                f"the end of the file ({len(blob)} bytes)"
            )
        try:
            data = dctx.decompress(blob[off:off + csize], max_output_size=expected)
        except zstandard.ZstdError as exc:
            raise SpzFormatError(f"{path}: broken zstd stream for {name}: {exc}") from exc
        if len(data) != expected:
            raise SpzFormatError(f"{path}: the {name} stream inflates to {len(data)} bytes; expected {expected}")
        blocks[name] = data
        off += csize
    exts = blob[_V4_HEADER.size:toc_at] if flags & FLAG_EXTENSIONS else b""
    blocks["sh"] = blocks.get("sh", b"")
    return _decode(blocks, version, n, degree, frac, flags, exts, path)


def _stored_axes(exts: bytes, path: Path) -> int:
    """The coordinate-system code from the extension records (RUB when none says)."""
    off, system = 0, _RUB
    while off + 8 <= len(exts):
        kind, length = struct.unpack_from("<II", exts, off)
        payload = exts[off + 8:off + 8 + length]
        if len(payload) < length:
            break  # a torn record: nothing further can be parsed (the reference stops too)
        if kind == EXT_COORDINATE_SYSTEM and length >= 4:
            system = struct.unpack_from("<I", payload)[0]
            if system > 16:
                raise SpzFormatError(f"{path}: coordinate-system extension names unknown axes code {system}")
        off += 8 + length
    if system == 0:
        system = _RUB  # UNSPECIFIED: the reference falls back to RUB
    if system > 8:
        raise SpzFormatError(
            f"{path} stores its splats in {_AXES_NAMES[system]} axes (SPZ_ADOBE_coordinate_system extension); "
            "brushpy reads only the axis sets that differ from RUB by sign flips (LDB..RUF), not the rotated ones"
        )
    return system


def _decode(
    blocks: dict, version: int, n: int, degree: int, frac: int, flags: int, exts: bytes, path: Path
) -> SplatData:
    """The attribute blocks (bytes, file order) -> :class:`SplatData` in PLY axes."""
    flips = _flips_to_rdf(_stored_axes(exts, path))
    fx, fy, fz = flips
    # positions
    if version == 1:
        means = np.frombuffer(blocks["positions"], "<f2").reshape(n, 3).astype(np.float64)
    else:
        b = np.frombuffer(blocks["positions"], np.uint8).reshape(n, 3, 3).astype(np.int64)
        fixed = b[..., 0] | (b[..., 1] << 8) | (b[..., 2] << 16)
        fixed = (fixed ^ 0x800000) - 0x800000  # sign-extend 24 bits
        means = fixed.astype(np.float64) * 2.0 ** -frac
    means = means * np.array(flips, np.float64) + 0.0  # + 0.0: no negative zeros
    # opacity, colour, scale
    alpha = np.frombuffer(blocks["alphas"], np.uint8).astype(np.float64) / 255.0
    with np.errstate(divide="ignore"):
        logits = np.log(alpha) - np.log1p(-alpha)
    logits = np.clip(logits, -MAX_LOGIT, MAX_LOGIT)
    colors = np.frombuffer(blocks["colors"], np.uint8).reshape(n, 3).astype(np.float64)
    f_dc = (colors / 255.0 - 0.5) / COLOR_SCALE
    log_scales = np.frombuffer(blocks["scales"], np.uint8).reshape(n, 3).astype(np.float64) / 16.0 - 10.0
    # rotations, (x, y, z, w) as the reference keeps them
    if version >= 3:
        xyzw = _unpack_smallest_three(np.frombuffer(blocks["rotations"], "<u4"))
    else:
        xyz = np.frombuffer(blocks["rotations"], np.uint8).reshape(n, 3).astype(np.float64) / 127.5 - 1.0
        w = np.sqrt(np.maximum(0.0, 1.0 - (xyz**2).sum(axis=1)))
        xyzw = np.concatenate([xyz, w[:, None]], axis=1)
    qflip = np.array([fy * fz, fx * fz, fx * fy], np.float64)
    rotations = np.concatenate([xyzw[:, 3:4], xyzw[:, :3] * qflip], axis=1)
    # SH
    dim = _sh_dim(degree)
    sh = np.empty((n, dim + 1, 3), np.float32)
    sh[:, 0, :] = f_dc
    if dim:
        rest = (np.frombuffer(blocks["sh"], np.uint8).reshape(n, dim, 3).astype(np.float32) - 128.0) / 128.0
        sh[:, 1:, :] = rest * _sh_signs(flips, dim)[None, :, None]
    return SplatData(
        means=means,
        rotations=rotations,
        log_scales=log_scales,
        sh_coeffs=sh,
        raw_opacities=logits,
        render_mode="mip" if flags & FLAG_ANTIALIASED else "default",
    )


def _unpack_smallest_three(comp: np.ndarray) -> np.ndarray:
    """[N] uint32 -> [N,4] float64 (x, y, z, w)."""
    n = comp.shape[0]
    comp = comp.astype(np.uint32)
    largest = (comp >> np.uint32(30)).astype(np.int64)
    q = np.zeros((n, 4), np.float64)
    rest = comp.copy()
    for i in (3, 2, 1, 0):  # the last stored component sits in the lowest bits
        here = largest != i
        mag = (rest & np.uint32(511)).astype(np.float64)
        neg = ((rest >> np.uint32(9)) & np.uint32(1)).astype(bool)
        value = float(_SQRT1_2) * mag / 511.0
        q[here, i] = np.where(neg, -value, value)[here]
        rest = np.where(here, rest >> np.uint32(10), rest)
    q[np.arange(n), largest] = np.sqrt(np.maximum(0.0, 1.0 - (q**2).sum(axis=1)))
    return q


# --------------------------------------------------------------------------- writing


def write(path: Path, data: SplatData, option: str | None = None, **options) -> None:
    """The :mod:`brushpy.io.formats` entry point: :func:`write_spz` (``options``: ``version``, ``sh_bits``).

    Raises:
        TypeError: an option other than ``version`` or ``sh_bits``.
    """
    unknown = set(options) - {"version", "sh_bits"}
    if unknown:
        raise TypeError(f"SPZ writer options are: version, sh_bits; got {', '.join(sorted(unknown))}")
    write_spz(path, data, version=options.get("version", 3), option=option,
              sh_bits=options.get("sh_bits", (SH1_BITS, SH_REST_BITS)))


def write_spz(path, data, version: int = 3, option: str | None = None, sh_bits: tuple[int, int] = (SH1_BITS, SH_REST_BITS)) -> None:
    """Write ``data`` as a Niantic SPZ file, atomically (old file or whole new one).

    Args:
        path: the output file (``.spz`` by convention; not enforced).
        data: :class:`SplatData` (or GPU ``Splats``) in brushpy's convention (INRIA PLY axes;
            converted to SPZ's RUB, see the module docstring).
        version: 3 (gzip; the default, read by every SPZ reader) or 4 (zstd streams; readers
            from 2026-03 on). Quantisation as the reference's defaults (module docstring).
        option: the command-line option that chose ``path`` (named in a write error).

    SH degree 4 is kept in version 4; version 3 drops band 4 (with a warning), keeping
    degrees 0..3. Scenes reaching past +-2048 units get fewer than 12 fractional position
    bits (with a warning).

    Raises:
        ValueError: ``version`` not 3 or 4; no splats (SPZ readers reject 0 points);
            non-finite values (the message names the array and counts the rows);
            positions beyond the 24-bit range even with 0 fractional bits (+-8.4e6).
        WriteError: the file cannot be written.
    """
    path = Path(path)
    if version not in WRITE_VERSIONS:
        raise ValueError(f"SPZ version {version!r} cannot be written; brushpy writes versions 3 and 4")
    data = SplatData.coerce(data, "write_spz")
    payload = encode_spz(data, version, name=str(path), sh_bits=sh_bits)
    with atomic_write(path, option=option) as f:
        f.write(payload)


def encode_spz(data: SplatData, version: int = 3, name: str = "SPZ",
               sh_bits: tuple[int, int] = (SH1_BITS, SH_REST_BITS)) -> bytes:
    """The bytes of the SPZ file :func:`write_spz` writes (``name`` labels errors/warnings).

    ``sh_bits``: bits kept per SH coefficient of band 1 and of bands 2+ (1..8 each; the
    reference encoder's defaults are 5 and 4). Every reader decodes any byte, so more bits cost
    only size (less for gzip/zstd to squeeze) and buy accuracy: on a brushpy-trained lego at SH
    degree 3 the render PSNR of the round trip is 43.3 dB at (5, 4) and 47.8 dB at (6, 5), 55.5 dB at (8, 8).
    """
    sh1_bits, rest_bits = (int(b) for b in sh_bits)
    if not (1 <= sh1_bits <= 8 and 1 <= rest_bits <= 8):
        raise ValueError(f"{name}: SPZ SH bits must be 1..8 each, got {tuple(sh_bits)}")
    if version not in WRITE_VERSIONS:
        raise ValueError(f"SPZ version {version!r} cannot be written; brushpy writes versions 3 and 4")
    n = data.num_splats
    if n == 0:
        raise ValueError(f"{name}: cannot write an SPZ file with no splats (SPZ readers reject 0 points)")
    for label, arr in (("means", data.means), ("rotations", data.rotations), ("log_scales", data.log_scales),
                       ("sh_coeffs", data.sh_coeffs), ("raw_opacities", data.raw_opacities)):
        bad = ~np.isfinite(arr.reshape(n, -1)).all(axis=1)
        if bad.any():
            raise ValueError(
                f"{name}: cannot write SPZ: {label} has non-finite values in {int(bad.sum())} of {n} splats"
            )
    degree = data.sh_degree
    if degree == 4 and version == 3:
        warnings.warn(
            f"{name}: SPZ version 3 is written with SH degree 3 (readers before 2026-03 reject degree 4); "
            "band 4 is dropped. Write version 4 to keep it.",
            stacklevel=3,
        )
        degree = 3
    dim = _sh_dim(degree)
    flips = _flips_to_rdf(_RUB)  # RDF <-> RUB is its own inverse

    # positions: 24-bit fixed point
    means = data.means.astype(np.float32) * np.array(flips, np.float32)
    extent = float(np.abs(means).max())
    frac = FRACTIONAL_BITS
    while frac > 0 and _round_half_away(extent * 2.0**frac) > _MAX_FIXED:
        frac -= 1
    if _round_half_away(extent * 2.0**frac) > _MAX_FIXED:
        raise ValueError(f"{name}: positions reach {extent:.6g}, beyond SPZ's 24-bit range (+-8388607)")
    if frac < FRACTIONAL_BITS:
        warnings.warn(
            f"{name}: positions reach {extent:.6g}; SPZ stores them with {frac} fractional bits "
            f"(step {2.0**-frac:.3g}) instead of {FRACTIONAL_BITS}",
            stacklevel=3,
        )
    fixed = _round_half_away(means * np.float32(2.0**frac)).astype(np.int64) & 0xFFFFFF
    positions = np.stack([fixed & 0xFF, (fixed >> 8) & 0xFF, (fixed >> 16) & 0xFF], axis=-1).astype(np.uint8)

    # opacity, colour, scale (float32 arithmetic, as the reference)
    with np.errstate(over="ignore"):
        sig = np.float32(1.0) / (np.float32(1.0) + np.exp(-data.raw_opacities.astype(np.float32)))
    alphas = _to_u8(sig * np.float32(255.0))
    f_dc = data.sh_coeffs[:, 0, :].astype(np.float32)
    colors = _to_u8(f_dc * np.float32(COLOR_SCALE * 255.0) + np.float32(127.5))
    scales = _to_u8((data.log_scales.astype(np.float32) + np.float32(10.0)) * np.float32(16.0))

    # rotations: smallest three of the normalised (x, y, z, w)
    q = data.rotations.astype(np.float32)
    xyzw = np.concatenate([q[:, 1:4], q[:, 0:1]], axis=1)
    norm = np.sqrt((xyzw * xyzw).sum(axis=1, keepdims=True))
    zero = norm[:, 0] == 0
    xyzw = xyzw / np.where(norm > 0, norm, np.float32(1.0))
    xyzw[zero] = np.array([0, 0, 0, 1], np.float32)
    fx, fy, fz = flips
    xyzw[:, :3] *= np.array([fy * fz, fx * fz, fx * fy], np.float32)
    rotations = _pack_smallest_three(xyzw)

    # SH: flip, then quantise to buckets
    if dim:
        rest = data.sh_coeffs[:, 1:dim + 1, :].astype(np.float32) * _sh_signs(flips, dim)[None, :, None]
        qsh = _round_half_away(rest * np.float32(128.0)).astype(np.int64) + 128
        bucket = np.where(np.arange(dim) < 3, 1 << (8 - sh1_bits), 1 << (8 - rest_bits))[None, :, None]
        qsh = (qsh + bucket // 2) // bucket * bucket  # negatives clamp to 0 either way
        sh = np.clip(qsh, 0, 255).astype(np.uint8)
    else:
        sh = np.zeros((n, 0, 3), np.uint8)

    streams = [a.tobytes() for a in (positions, alphas, colors, scales, rotations, sh)]
    flags = FLAG_ANTIALIASED if data.render_mode == "mip" else 0
    if version == 3:
        header = _LEGACY_HEADER.pack(MAGIC, version, n, degree, frac, flags, 0)
        return gzip.compress(header + b"".join(streams), compresslevel=6, mtime=0)
    import zstandard

    cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    parts = [(len(s), cctx.compress(s)) for s in streams if s]
    header = _V4_HEADER.pack(MAGIC, version, n, degree, frac, flags, len(parts), _V4_HEADER.size, bytes(12))
    toc = b"".join(_TOC_ENTRY.pack(len(c), u) for u, c in parts)
    return header + toc + b"".join(c for _, c in parts)


def _pack_smallest_three(xyzw: np.ndarray) -> np.ndarray:
    """[N,4] float32 unit (x, y, z, w) -> [N] little-endian uint32 (the reference's v3 packing)."""
    n = xyzw.shape[0]
    largest = np.argmax(np.abs(xyzw), axis=1)  # first of equals, as the reference's strict '>'
    negate = xyzw[np.arange(n), largest] < 0
    comp = largest.astype(np.uint32)
    for i in range(4):
        here = largest != i
        negbit = ((xyzw[:, i] < 0) ^ negate).astype(np.uint32)
        mag = np.float32(511.0) * (np.abs(xyzw[:, i]) / _SQRT1_2) + np.float32(0.5)
        mag = np.minimum(np.floor(mag.astype(np.float64)), 511).astype(np.uint32)
        packed = (comp << np.uint32(10)) | (negbit << np.uint32(9)) | mag
        comp = np.where(here, packed, comp)
    return comp.astype("<u4")
