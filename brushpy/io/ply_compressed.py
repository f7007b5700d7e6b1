"""PlayCanvas / SuperSplat compressed PLY (``.compressed.ply``): read and write.

Format (PlayCanvas's, as its splat-transform and engine read and write it). A binary
little-endian PLY with two or three elements:

``chunk`` (one row per 256 splats, float32):
    ``min_x min_y min_z max_x max_y max_z`` (position bounds),
    ``min_scale_x .. max_scale_z`` (log-scale bounds, clamped to [-20, 20] by writers),
    and in newer files ``min_r min_g min_b max_r max_g max_b`` (bounds of the band-0
    colour ``SH_C0 * f_dc + 0.5``). Splat i belongs to chunk ``i // 256``.
``vertex`` (one row per splat, four uint32):
    ``packed_position``, ``packed_scale``: 11-10-11 bits (x in bits 21..31, y in
    11..20, z in 0..10), each an unsigned normalised fraction ``q / (2^bits - 1)``
    interpolated between the chunk's min and max;
    ``packed_color``: 8-8-8-8 (R in the top byte, then G, B, and the sigmoid opacity in
    the low byte), R, G, B interpolated between the chunk's colour bounds when it has
    them (else used as they are);
    ``packed_rotation``: "smallest three": bits 30..31 index the largest-magnitude
    component of (rot_0..rot_3) = (w, x, y, z), made positive; the other three, in that
    order, in 10-bit fields (bits 20..29, 10..19, 0..9) mapping [0, 1] to
    [-1/sqrt 2, 1/sqrt 2]; the largest is ``sqrt(1 - sum of their squares)``.
``sh`` (optional, one row per splat): uint8 ``f_rest_0 .. f_rest_{M-1}``, M = 9, 24 or
    45 (SH degree 1..3; INRIA channel-major order). The encoder stores
    ``clamp(trunc((v / 8 + 0.5) * 256), 0, 255)``; decoding takes the middle of that bin,
    ``((q + 0.5) / 256 - 0.5) * 8``, except 0 -> -4 and 255 -> +4 (splat-transform's
    decoder; PlayCanvas's engine uses ``q * 8 / 255 - 4``, within 1/64 of it).

Decoding: opacity bytes 0 and 255 become logits -40 / +40 (the engine's choice:
splat-transform writes -inf / +inf, which the renderer would cull). Writing follows
splat-transform's encoder: splats in Morton (Z-curve) order of their centres, so each
chunk of 256 covers a small box and its bounds are tight; each value rounded to the
nearest step (``floor(t * (2^bits - 1) + 0.5)``) between the chunk's min and max.

Round-trip error, per chunk (the bounds are the chunk's own min/max of the value):
``|means err| <= (max - min) / 4094`` for x and z, ``/ 2046`` for y; the same for log
scales (values outside [-20, 20] are clamped); band-0 colour ``<= (max - min) / 510``;
opacity ``|sigmoid err| <= 1/510``; each stored quaternion component ``<= 1 / (1023
sqrt 2)`` (a rotation error below 0.3 degrees); SH bands 1..3 ``<= 1/64`` for |v| <= 4 - 1/32, ``<= 1/32`` at the ends, clamped
to [-4, 4]. A chunk whose range of a value is below 1e-5 stores its minimum.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np

from .atomic import atomic_write
from .ply import (
    _MAX_LOGIT,
    _REST_COUNT_TO_DEGREE,
    PlyFormatError,
    SplatData,
    _element,
    brush_comments,
    clean_non_finite,
    read_ply,
    rgb_to_sh_dc,
    sh_dc_to_rgb,
)

log = logging.getLogger("brushpy.io")

CHUNK_SIZE = 256
_CHUNK_BOUNDS = ("min_x", "min_y", "min_z", "max_x", "max_y", "max_z",
                 "min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z")
_CHUNK_COLOR = ("min_r", "min_g", "min_b", "max_r", "max_g", "max_b")
_PACKED = ("packed_position", "packed_rotation", "packed_scale", "packed_color")
#: Writers clamp the chunk's log-scale bounds to +-this (splat-transform: "values at infinity").
_SCALE_BOUND = 20.0
#: A chunk whose range of a value is below this stores its minimum (splat-transform's rule).
_MIN_RANGE = 1e-5
#: The highest SH degree the format (and splat-transform's reader) allows in the ``sh`` element.
MAX_SH_DEGREE = 3


# --------------------------------------------------------------------------- format registry


def sniff(head: bytes, path: Path) -> bool:
    """A PLY whose header declares a ``chunk`` element and ``packed_position``."""
    if head[:4] not in (b"ply\n", b"ply\r"):
        return False
    header = head.split(b"end_header", 1)[0]
    return b"element chunk" in header and b"packed_position" in header


def read(path: Path) -> SplatData:
    return read_compressed_ply(path)


def write(path: Path, data: SplatData, option: str | None = None, **options) -> None:
    write_compressed_ply(path, data, option=option, **options)


# --------------------------------------------------------------------------- reading


def read_compressed_ply(path: str | os.PathLike) -> SplatData:
    """Read a PlayCanvas compressed PLY (see the module docstring for the layout).

    Returns:
        :class:`SplatData` (float32; no normals; SH degree 0..3 from the ``sh``
        element), with ``render_mode`` / ``vertical_axis`` from the header comments, as
        :func:`brushpy.io.ply.read_ply` returns it.

    Raises:
        FileNotFoundError: no such file.
        PlyFormatError: not a PLY, or a PLY without the compressed layout (use
            :func:`brushpy.io.ply.read_ply`, which reads both), or a malformed one:
            a missing chunk or packed property, too few chunks, a bad ``sh`` element
            (the message names the file and what is wrong).
    """
    path = Path(path)
    if path.is_file():
        with open(path, "rb") as f:
            head = f.read(4096)
        if head[:4] in (b"ply\n", b"ply\r") and not sniff(head, path):
            raise PlyFormatError(f"{path} is a PLY file but not a compressed PLY (no 'chunk' element with "
                                 "'packed_position' in its header)")
    return read_ply(path)


def _unorm(v: np.ndarray, shift: int, bits: int) -> np.ndarray:
    """Unsigned ``bits``-bit field at ``shift`` of uint32 ``v`` as float64 in [0, 1]."""
    mask = (1 << bits) - 1
    return ((v >> np.uint32(shift)) & np.uint32(mask)).astype(np.float64) / mask


def decode_sh_bytes(q: np.ndarray) -> np.ndarray:
    """uint8 SH bytes -> float64 coefficients (the middle of the encoder's bin; 0 -> -4, 255 -> 4)."""
    q = np.asarray(q, np.float64)
    t = np.where(q == 0, 0.0, np.where(q == 255, 1.0, (q + 0.5) / 256.0))
    return (t - 0.5) * 8.0


def encode_sh_bytes(v: np.ndarray) -> np.ndarray:
    """SH coefficients -> uint8: ``clamp(trunc((v / 8 + 0.5) * 256), 0, 255)`` (splat-transform's encoder)."""
    t = np.trunc((np.asarray(v, np.float64) / 8.0 + 0.5) * 256.0)
    return np.clip(np.nan_to_num(t, nan=0.0), 0, 255).astype(np.uint8)


def decode_compressed(ply, path: Path) -> SplatData:
    """Decode a parsed compressed PLY (a plyfile ``PlyData``) into :class:`SplatData`.

    Values are computed in float64 from the float32 bounds, then stored as float32 (as
    splat-transform does, so the two decoders agree to the last bit); no header comments
    or non-finite clean-up here (:func:`brushpy.io.ply.read_ply` does those).

    Raises:
        PlyFormatError: a missing chunk or packed property, fewer chunks than the splats
            need, an ``sh`` element with a bad property count or row count.
    """
    chunk = _element(ply, "chunk")
    vertex = _element(ply, "vertex")
    cprops = {p.name for p in chunk.properties}
    vprops = {p.name for p in vertex.properties}
    for name in _CHUNK_BOUNDS:
        if name not in cprops:
            raise PlyFormatError(f"{path}: compressed PLY chunk property '{name}' is missing")
    for name in _PACKED:
        if name not in vprops:
            raise PlyFormatError(f"{path}: compressed PLY vertex property '{name}' is missing")
    n = len(vertex.data)
    if len(chunk.data) * CHUNK_SIZE < n:
        raise PlyFormatError(
            f"{path}: {len(chunk.data)} chunks cannot hold {n} splats ({CHUNK_SIZE} per chunk)"
        )
    ci = np.arange(n) // CHUNK_SIZE
    c = {name: np.asarray(chunk.data[name], np.float32).astype(np.float64)[ci] for name in cprops}
    v = {name: np.asarray(vertex.data[name]).astype(np.uint32) for name in _PACKED}

    def lerp(lo, hi, t):
        return lo * (1.0 - t) + hi * t

    def unpack_111011(val, lo, hi):
        ts = (_unorm(val, 21, 11), _unorm(val, 11, 10), _unorm(val, 0, 11))
        return np.stack([lerp(c[lo[i]], c[hi[i]], ts[i]) for i in range(3)], axis=1)

    means = unpack_111011(v["packed_position"], ("min_x", "min_y", "min_z"), ("max_x", "max_y", "max_z"))
    log_scales = unpack_111011(
        v["packed_scale"], ("min_scale_x", "min_scale_y", "min_scale_z"), ("max_scale_x", "max_scale_y", "max_scale_z")
    )

    col = v["packed_color"]
    rgb = np.stack([_unorm(col, 24, 8), _unorm(col, 16, 8), _unorm(col, 8, 8)], axis=1)
    if set(_CHUNK_COLOR) <= cprops:
        lo = np.stack([c["min_r"], c["min_g"], c["min_b"]], axis=1)
        hi = np.stack([c["max_r"], c["max_g"], c["max_b"]], axis=1)
        rgb = lerp(lo, hi, rgb)
    f_dc = rgb_to_sh_dc(rgb)
    alpha_byte = col & np.uint32(0xFF)
    alpha = alpha_byte.astype(np.float64) / 255.0
    with np.errstate(divide="ignore"):
        raw_opacities = -np.log(1.0 / alpha - 1.0)
    # bytes 0 and 255 would decode to -inf/+inf (splat-transform writes those); the engine
    # uses -40/+40, equal under sigmoid in float32.
    raw_opacities = np.where(alpha_byte == 0, -_MAX_LOGIT, np.where(alpha_byte == 255, _MAX_LOGIT, raw_opacities))

    rot = v["packed_rotation"]
    small = np.stack([(_unorm(rot, s, 10) - 0.5) * np.sqrt(2.0) for s in (20, 10, 0)], axis=1)
    largest = np.sqrt(np.maximum(0.0, 1.0 - (small**2).sum(axis=1)))
    which = (rot >> np.uint32(30)).astype(np.int64)
    quats = np.empty((n, 4), np.float64)
    for w in range(4):
        sel = which == w
        others = [i for i in range(4) if i != w]
        quats[sel, w] = largest[sel]
        quats[np.ix_(sel, others)] = small[sel]

    sh_el = _element(ply, "sh")
    k = 1
    rest = None
    if sh_el is not None:
        names = [p.name for p in sh_el.properties if re.fullmatch(r"f_rest_\d+", p.name)]
        m = len(names)
        if m not in _REST_COUNT_TO_DEGREE:
            raise PlyFormatError(f"{path}: 'sh' element has {m} f_rest_* properties; expected 0, 9, 24, 45 or 72")
        if len(sh_el.data) != n:
            raise PlyFormatError(f"{path}: 'sh' element has {len(sh_el.data)} rows; expected {n}")
        for i in range(m):
            if f"f_rest_{i}" not in names:
                raise PlyFormatError(f"{path}: 'sh' element property 'f_rest_{i}' is missing ({m} f_rest_* found)")
        if m:
            k = m // 3 + 1
            q = np.stack([np.asarray(sh_el.data[f"f_rest_{i}"]) for i in range(m)], axis=1)
            rest = decode_sh_bytes(q).reshape(n, 3, k - 1).transpose(0, 2, 1)
    sh = np.empty((n, k, 3), np.float32)
    sh[:, 0, :] = f_dc
    if rest is not None:
        sh[:, 1:, :] = rest
    return SplatData(means=means, rotations=quats, log_scales=log_scales, sh_coeffs=sh, raw_opacities=raw_opacities)


# --------------------------------------------------------------------------- writing


def _spread_bits(v: np.ndarray) -> np.ndarray:
    """Put the low 10 bits of ``v`` (uint32) at every third bit (bit i -> bit 3 i)."""
    v = v.astype(np.uint32) & np.uint32(0x3FF)
    v = (v | (v << np.uint32(16))) & np.uint32(0xFF0000FF)
    v = (v | (v << np.uint32(8))) & np.uint32(0x0300F00F)
    v = (v | (v << np.uint32(4))) & np.uint32(0x030C30C3)
    v = (v | (v << np.uint32(2))) & np.uint32(0x09249249)
    return v


def _morton_sorted(xyz: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``idx`` reordered by the 30-bit Morton code of ``xyz[idx]`` on a 1024^3 grid over their box."""
    p = xyz[idx]
    lo, hi = p.min(axis=0), p.max(axis=0)
    ext = hi - lo
    if not np.isfinite(ext).all() or not ext.any():
        return idx
    with np.errstate(divide="ignore"):
        mul = np.where(ext == 0, 0.0, 1024.0 / ext)
    cell = np.minimum(1023.0, (p - lo) * mul).astype(np.uint32)
    code = _spread_bits(cell[:, 0]) | (_spread_bits(cell[:, 1]) << np.uint32(1)) | (_spread_bits(cell[:, 2]) << np.uint32(2))
    order = np.argsort(code, kind="stable")
    idx, code = idx[order], code[order]
    # refine runs of more than one chunk that share a cell: sort them on their own box
    starts = np.flatnonzero(np.r_[True, code[1:] != code[:-1]])
    ends = np.r_[starts[1:], len(code)]
    for s, e in zip(starts, ends):
        if e - s > CHUNK_SIZE:
            idx[s:e] = _morton_sorted(xyz, idx[s:e])
    return idx


def morton_order(means: np.ndarray) -> np.ndarray:
    """Permutation (int64 [N]) that puts ``means`` [N,3] in Morton (Z-curve) order.

    As splat-transform's writers: 10-bit cells over the points' bounding box, x in the
    lowest bit of each triple; a run of more than 256 points in one cell is sorted again
    over its own box. Ties keep their input order. Non-finite coordinates leave the
    order unchanged.
    """
    means = np.asarray(means, np.float64)
    idx = np.arange(len(means))
    return _morton_sorted(means, idx) if len(means) else idx


def _normalize(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(x - lo) / (hi - lo) in [0, 1]; 0 where the range is below 1e-5 (float64, broadcasting)."""
    rng = hi - lo
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(rng < _MIN_RANGE, 0.0, (x - lo) / rng)
    return np.where(x <= lo, 0.0, np.where(x >= hi, 1.0, t))


def _pack_unorm(t: np.ndarray, bits: int) -> np.ndarray:
    m = (1 << bits) - 1
    return np.clip(np.floor(t * m + 0.5), 0, m).astype(np.uint32)


def _pack_rotations(q: np.ndarray) -> np.ndarray:
    """Quaternions [N,4] (w,x,y,z) -> uint32 smallest-three 2-10-10-10."""
    q = np.asarray(q, np.float64)
    length = np.sqrt((q**2).sum(axis=1))
    zero = length == 0
    q = np.where(zero[:, None], np.array([1.0, 0.0, 0.0, 0.0]), q * (1.0 / np.where(zero, 1.0, length))[:, None])
    largest = np.argmax(np.abs(q), axis=1)
    rows = np.arange(len(q))
    q = np.where((q[rows, largest] < 0)[:, None], -q, q)
    # the three other components, in index order
    others = np.array([[j for j in range(4) if j != w] for w in range(4)])[largest]
    small = np.take_along_axis(q, others, axis=1)
    fields = _pack_unorm(small * np.sqrt(0.5) + 0.5, 10)
    return ((largest.astype(np.uint32) << np.uint32(30)) | (fields[:, 0] << np.uint32(20))
            | (fields[:, 1] << np.uint32(10)) | fields[:, 2])


def write_compressed_ply(path: str | os.PathLike, data, option: str | None = None, comments=()) -> None:
    """Write ``data`` as a PlayCanvas compressed PLY (layout and error bounds: module docstring).

    Args:
        path: output file (``*.compressed.ply`` by convention).
        data: :class:`SplatData` or GPU ``Splats``. SH bands above 3 are dropped (the
            format's ``sh`` element holds 9, 24 or 45 values; a warning says so).
            Non-finite values are first repaired or their splats dropped as on reading
            (:func:`brushpy.io.ply.clean_non_finite`, with its warning).
        option: the command-line option that chose ``path`` (named in a write error).
        comments: extra header comment lines. Brush's ``Vertical axis`` / ``SH degree`` /
            ``SplatRenderMode`` comments are written as :func:`brushpy.io.ply.write_ply`
            writes them (splat-transform writes and reads ``SplatRenderMode`` too).

    Splats are written in Morton order of their centres (:func:`morton_order`), not in
    the input order. Written atomically (:func:`brushpy.io.atomic.atomic_write`).

    Raises:
        WriteError: the file cannot be written.
    """
    path = Path(path)
    data = SplatData.coerce(data, "write_compressed_ply")
    data = clean_non_finite(data, path)
    n = data.num_splats
    degree = data.sh_degree
    if degree > MAX_SH_DEGREE:
        log.warning(f"{path}: compressed PLY holds SH up to degree {MAX_SH_DEGREE}; dropped band 4 of {n:,} splats")
        degree = MAX_SH_DEGREE
    k = (degree + 1) ** 2
    num_chunks = -(-n // CHUNK_SIZE)

    order = morton_order(data.means)
    if n:  # pad the last chunk by repeating the last splat (it changes no bound)
        order = np.concatenate([order, np.full(num_chunks * CHUNK_SIZE - n, order[-1])])
    shape = (num_chunks, CHUNK_SIZE)

    def chunked(a):
        return a[order].reshape(*shape, *a.shape[1:])

    means = chunked(data.means)
    log_scales = chunked(data.log_scales)
    colors = chunked(sh_dc_to_rgb(data.sh_coeffs[:, 0, :]).astype(np.float32))
    bounds = []
    packed = {}
    for name, values, bits, clamp in (("packed_position", means, (11, 10, 11), None),
                                      ("packed_scale", log_scales, (11, 10, 11), _SCALE_BOUND),
                                      ("packed_color", colors, (8, 8, 8), None)):
        lo, hi = values.min(axis=1), values.max(axis=1)  # [C, 3]
        if clamp is not None:
            lo, hi = np.clip(lo, -clamp, clamp), np.clip(hi, -clamp, clamp)
        bounds += [lo, hi]
        t = _normalize(values.astype(np.float64), lo[:, None, :].astype(np.float64), hi[:, None, :].astype(np.float64))
        fields = [_pack_unorm(t[..., i], b) for i, b in enumerate(bits)]
        shifts = (21, 11, 0) if bits[0] == 11 else (24, 16, 8)
        packed[name] = (fields[0] << np.uint32(shifts[0])) | (fields[1] << np.uint32(shifts[1])) | (fields[2] << np.uint32(shifts[2]))
    alpha = 1.0 / (1.0 + np.exp(-chunked(data.raw_opacities).astype(np.float64)))
    packed["packed_color"] |= _pack_unorm(alpha, 8)
    packed["packed_rotation"] = _pack_rotations(data.rotations[order]).reshape(shape)

    chunk_rows = np.concatenate(bounds, axis=1).astype("<f4")  # [C, 18] in _CHUNK_BOUNDS + _CHUNK_COLOR order
    vertex_rows = np.stack([packed[name] for name in _PACKED], axis=-1).reshape(-1, 4)[:n].astype("<u4")
    rest = np.zeros((n, 0), np.uint8)
    if k > 1:
        sh = data.sh_coeffs[order[:n], 1:k, :]  # [N, K-1, 3]
        rest = encode_sh_bytes(sh.transpose(0, 2, 1).reshape(n, 3 * (k - 1)))

    lines = ["ply", "format binary_little_endian 1.0", "comment written by brushpy (PlayCanvas compressed PLY)"]
    lines += [f"comment {c}" for c in (*brush_comments(data, comments), *comments)]
    lines.append(f"element chunk {num_chunks}")
    lines += [f"property float {p}" for p in (*_CHUNK_BOUNDS, *_CHUNK_COLOR)]
    lines.append(f"element vertex {n}")
    lines += [f"property uint {p}" for p in _PACKED]
    if k > 1:
        lines.append(f"element sh {n}")
        lines += [f"property uchar f_rest_{i}" for i in range(rest.shape[1])]
    lines.append("end_header")
    header = ("\n".join(lines) + "\n").encode("ascii", "replace")
    with atomic_write(path, option=option) as f:
        f.write(header)
        f.write(chunk_rows.tobytes())
        f.write(vertex_rows.tobytes())
        f.write(np.ascontiguousarray(rest).tobytes())
