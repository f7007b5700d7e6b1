"""Gaussian splat PLY files: the INRIA 3DGS layout and PlayCanvas's compressed PLY.

INRIA layout (written by the reference 3DGS code, gsplat, Brush, nerfstudio; read by
every splat viewer). One ``vertex`` element, one float property per value, looked up
by name (order and extra properties do not matter when reading):

=====================  =====================================================
``x, y, z``            centre (world units)
``nx, ny, nz``         optional normals (unused by splatting; INRIA writes zeros)
``f_dc_0..2``          SH band-0 coefficient of R, G, B
``f_rest_0..M-1``      SH bands 1..d, *channel-major*: the K-1 coefficients of R,
                       then those of G, then those of B (M = 3 (K-1), K = (d+1)^2)
``opacity``            opacity logit (opacity = sigmoid(value))
``scale_0..2``         natural log of the standard deviations
``rot_0..3``           quaternion (w, x, y, z), not necessarily normalised
=====================  =====================================================

The SH degree d (0..4) is inferred from M: 0, 9, 24, 45 or 72 ``f_rest_*`` values.
In memory brushpy keeps ``sh_coeffs [N, K, 3]`` (coefficient index, then channel), so
``f_rest_{c (K-1) + k - 1}`` is ``sh_coeffs[:, k, c]`` for k >= 1.

PlayCanvas / SuperSplat "compressed PLY": a ``chunk`` element with per-256-splat bounds
(``min_x .. max_scale_z`` and, in newer files, ``min_r .. max_b``) and a ``vertex``
element of four packed uint32 per splat (``packed_position``, ``packed_rotation``,
``packed_scale``, ``packed_color``), optionally an ``sh`` element of uint8
``f_rest_*``. :func:`read_ply` detects and decodes it (read only). The decoding
follows PlayCanvas's format description (see :func:`_decode_compressed`).
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ..errors import InputError
from .atomic import atomic_write

try:  # plyfile >= 1.0 names its parse error class like this
    from plyfile import PlyData, PlyElement, PlyParseError
except ImportError:  # pragma: no cover - very old plyfile
    from plyfile import PlyData, PlyElement

    PlyParseError = Exception

#: Real SH basis constant of band 0: 1 / (2 sqrt(pi)).
SH_C0 = 0.28209479177387814

#: Number of ``f_rest_*`` properties for SH degree 0..4 (3 channels x ((d+1)^2 - 1)).
_REST_COUNT_TO_DEGREE = {3 * ((d + 1) ** 2 - 1): d for d in range(5)}

_REQUIRED_GROUPS = (
    ("means", ("x", "y", "z")),
    ("sh band 0", ("f_dc_0", "f_dc_1", "f_dc_2")),
    ("opacity", ("opacity",)),
    ("log_scales", ("scale_0", "scale_1", "scale_2")),
    ("rotations", ("rot_0", "rot_1", "rot_2", "rot_3")),
)


class PlyFormatError(InputError):
    """A PLY file that is not a readable Gaussian splat file (message names the file)."""


@dataclass
class SplatData:
    """A splat set on the host (numpy float32 arrays), as read from / written to a file.

    Attributes:
        means: [N,3] centres.
        rotations: [N,4] quaternions (w, x, y, z), not necessarily normalised.
        log_scales: [N,3] natural log of the standard deviations.
        sh_coeffs: [N,K,3] SH coefficients, K = (degree+1)^2, band 0 first; last axis
            is the colour channel (R, G, B).
        raw_opacities: [N] opacity logits.
        normals: optional [N,3] normals (kept only so files round-trip; splatting
            ignores them). ``None`` when the file had none.
        render_mode: ``"default"`` or ``"mip"``: the render mode the splats were trained
            for, from a ``SplatRenderMode: mip`` header comment (Brush's convention,
            written by brushpy's trainer too); ``"default"`` when the file has none.
        vertical_axis: the world's up direction when the file says it (``"+y"``, ``"-y"``,
            ``"+z"``, ...; PLY's ``Vertical axis`` header comment), else None. Viewers use it
            for their default camera.

    Raises:
        ValueError: on construction, when shapes disagree (the message names the array).
    """

    means: np.ndarray
    rotations: np.ndarray
    log_scales: np.ndarray
    sh_coeffs: np.ndarray
    raw_opacities: np.ndarray
    normals: np.ndarray | None = field(default=None)
    render_mode: str = field(default="default")
    vertical_axis: str | None = field(default=None)

    def __post_init__(self):
        self.means = np.ascontiguousarray(self.means, np.float32)
        if self.means.ndim != 2 or self.means.shape[1] != 3:
            raise ValueError(f"means has shape {self.means.shape}; expected (N, 3)")
        n = self.means.shape[0]
        self.rotations = np.ascontiguousarray(self.rotations, np.float32)
        self.log_scales = np.ascontiguousarray(self.log_scales, np.float32)
        self.raw_opacities = np.ascontiguousarray(self.raw_opacities, np.float32).reshape(-1)
        self.sh_coeffs = np.ascontiguousarray(self.sh_coeffs, np.float32)
        if self.sh_coeffs.ndim == 2 and self.sh_coeffs.shape[1] == 3:
            self.sh_coeffs = self.sh_coeffs[:, None, :]
        checks = {
            "rotations": (self.rotations, (n, 4)),
            "log_scales": (self.log_scales, (n, 3)),
            "raw_opacities": (self.raw_opacities, (n,)),
        }
        if self.normals is not None:
            self.normals = np.ascontiguousarray(self.normals, np.float32)
            checks["normals"] = (self.normals, (n, 3))
        for name, (arr, shape) in checks.items():
            if arr.shape != shape:
                raise ValueError(f"{name} has shape {arr.shape}; expected {shape} for {n} splats")
        sh = self.sh_coeffs
        k = sh.shape[1] if sh.ndim == 3 else -1
        if sh.ndim != 3 or sh.shape[0] != n or sh.shape[2] != 3 or k not in {(d + 1) ** 2 for d in range(5)}:
            raise ValueError(
                f"sh_coeffs has shape {sh.shape}; expected ({n}, K, 3) with K = (d+1)^2, d in 0..4"
            )

    @property
    def num_splats(self) -> int:
        return int(self.means.shape[0])

    @property
    def sh_degree(self) -> int:
        """SH degree d (0..4), from K = (d+1)^2."""
        return int(round(np.sqrt(self.sh_coeffs.shape[1]))) - 1

    @property
    def opacities(self) -> np.ndarray:
        """[N] opacities in [0, 1] (sigmoid of the logits), float32."""
        return (1.0 / (1.0 + np.exp(-self.raw_opacities.astype(np.float64)))).astype(np.float32)

    @property
    def colors(self) -> np.ndarray:
        """[N,3] view-independent colour ``SH_C0 * f_dc + 0.5`` (unclamped), float32."""
        return (SH_C0 * self.sh_coeffs[:, 0, :].astype(np.float64) + 0.5).astype(np.float32)

    def to_gpu(self):
        """Upload as a :class:`brushpy.render.splats.Splats` (GPU tensors).

        Raises:
            brushpy.gpu.NoAdapterError: when no WebGPU adapter exists.
        """
        from ..render.splats import Splats

        return Splats.from_numpy(self.means, self.rotations, self.log_scales, self.sh_coeffs, self.raw_opacities)

    @classmethod
    def from_gpu(cls, splats) -> "SplatData":
        """Copy a :class:`brushpy.render.splats.Splats` back to the host."""
        return cls(**splats.numpy())


# --------------------------------------------------------------------------- reading


def _open_ply(path: Path, name: Path | None = None) -> PlyData:
    """Parse the PLY at ``path``; error messages call it ``name`` (default ``path``)."""
    name = path if name is None else name
    if not path.exists():
        raise FileNotFoundError(f"PLY file not found: {name}")
    if path.is_dir():
        raise PlyFormatError(f"{name} is a directory, not a PLY file")
    return _parse_ply(str(path), name)


def _parse_ply(stream, name: Path) -> PlyData:
    """``PlyData.read(stream)`` (a path or a binary file object), parse errors named after ``name``."""
    try:
        return PlyData.read(stream)
    except PlyParseError as exc:
        raise PlyFormatError(f"{name} is not a valid PLY file: {exc}") from exc
    except (ValueError, EOFError, UnicodeDecodeError) as exc:
        raise PlyFormatError(f"{name} could not be parsed as PLY: {exc}") from exc


def _element(ply: PlyData, name: str):
    for el in ply.elements:
        if el.name == name:
            return el
    return None


def read_ply(path: str | os.PathLike) -> SplatData:
    """Read a Gaussian splat PLY: INRIA 3DGS layout (binary or ascii) or PlayCanvas compressed.

    Args:
        path: the ``.ply`` file.

    Returns:
        :class:`SplatData` with float32 arrays; ``normals`` set when the file has
        ``nx, ny, nz``.

    Raises:
        FileNotFoundError: the file does not exist (message names it).
        PlyFormatError: not a PLY file; no ``vertex`` element; a required property is
            missing (message names the property and the file); a point cloud without
            splat properties (message says so: use it as initial points for training
            instead); an ``f_rest_*`` count that is not 0/9/24/45/72.
    """
    path = Path(path)
    ply = _open_ply(path)
    vertex = _element(ply, "vertex")
    if vertex is None:
        names = ", ".join(el.name for el in ply.elements) or "none"
        raise PlyFormatError(f"{path} has no 'vertex' element (elements: {names}); not a splat file")
    props = {p.name for p in vertex.properties}
    if _element(ply, "chunk") is not None and "packed_position" in props:
        data = _decode_compressed(ply, path)
    else:
        data = _decode_inria(vertex, props, path)
    data.render_mode = _render_mode_comment(ply)
    return data


def _render_mode_comment(ply: PlyData) -> str:
    """``"mip"`` when a header comment reads ``SplatRenderMode: mip`` (Brush), else ``"default"``."""
    for c in list(ply.comments) + list(getattr(ply, "obj_info", [])):
        key, _, value = str(c).partition(":")
        if key.strip().lower() == "splatrendermode" and value.strip().lower() == "mip":
            return "mip"
    return "default"


def _decode_inria(vertex, props: set, path: Path) -> SplatData:
    splat_props = {"f_dc_0", "opacity", "scale_0", "rot_0"}
    if not props & splat_props:
        raise PlyFormatError(
            f"{path} is a point cloud (properties: {', '.join(sorted(props))}), not a Gaussian splat file: "
            "it has none of f_dc_*, opacity, scale_*, rot_*. Splat files use the INRIA 3DGS layout; "
            "a point cloud can only serve as initial points for training."
        )
    for what, names in _REQUIRED_GROUPS:
        for name in names:
            if name not in props:
                raise PlyFormatError(f"{path}: required vertex property '{name}' ({what}) is missing")
    data = vertex.data

    def cols(names):
        return np.stack([np.asarray(data[n], np.float32) for n in names], axis=1)

    n = len(data)
    rest_names = [p for p in props if re.fullmatch(r"f_rest_\d+", p)]
    m = len(rest_names)
    if m not in _REST_COUNT_TO_DEGREE:
        raise PlyFormatError(
            f"{path} has {m} f_rest_* properties; expected 0, 9, 24, 45 or 72 (SH degree 0..4)"
        )
    for i in range(m):
        if f"f_rest_{i}" not in props:
            raise PlyFormatError(f"{path}: required vertex property 'f_rest_{i}' is missing ({m} f_rest_* found)")
    k = m // 3 + 1
    sh = np.empty((n, k, 3), np.float32)
    sh[:, 0, :] = cols(("f_dc_0", "f_dc_1", "f_dc_2"))
    if m:
        rest = cols([f"f_rest_{i}" for i in range(m)])  # [N, 3 (K-1)], channel-major
        sh[:, 1:, :] = rest.reshape(n, 3, k - 1).transpose(0, 2, 1)
    normals = cols(("nx", "ny", "nz")) if {"nx", "ny", "nz"} <= props else None
    return SplatData(
        means=cols(("x", "y", "z")),
        rotations=cols(("rot_0", "rot_1", "rot_2", "rot_3")),
        log_scales=cols(("scale_0", "scale_1", "scale_2")),
        sh_coeffs=sh,
        raw_opacities=np.asarray(data["opacity"], np.float32),
        normals=normals,
    )


_CHUNK_BOUNDS = ("min_x", "min_y", "min_z", "max_x", "max_y", "max_z",
                 "min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z")
_CHUNK_COLOR = ("min_r", "min_g", "min_b", "max_r", "max_g", "max_b")
_PACKED = ("packed_position", "packed_rotation", "packed_scale", "packed_color")
_CHUNK_SIZE = 256
_MAX_LOGIT = 40.0


def _unorm(v: np.ndarray, shift: int, bits: int) -> np.ndarray:
    """Unsigned ``bits``-bit field at ``shift`` of uint32 ``v`` as float64 in [0, 1]."""
    mask = (1 << bits) - 1
    return ((v >> np.uint32(shift)) & np.uint32(mask)).astype(np.float64) / mask


def _decode_compressed(ply: PlyData, path: Path) -> SplatData:
    """Decode PlayCanvas's compressed PLY.

    Layout (PlayCanvas engine / splat-transform, "compressed PLY"): splat i belongs to
    chunk ``i // 256``. Per splat:

    - ``packed_position``: 11-10-11 bits (x in bits 21..31, y in 11..20, z in 0..10),
      unsigned normalised, interpolated between the chunk's ``min_*`` and ``max_*``.
    - ``packed_scale``: same 11-10-11 packing between ``min_scale_*``/``max_scale_*``
      (values are log scales).
    - ``packed_color``: 8-8-8-8 (R in the top byte, then G, B, opacity); R, G, B are
      interpolated between ``min_r..max_r`` etc. when the chunk has them (else used as
      is), and are the band-0 colour ``SH_C0 * f_dc + 0.5``; the low byte is the
      sigmoid opacity; its logit is clamped to [-40, 40] (bytes 0 and 255 would give
      -inf/+inf).
    - ``packed_rotation``: "smallest three": bits 30..31 index the largest-magnitude
      component of (rot_0..rot_3) = (w, x, y, z), the other three in file order in
      10-bit fields (bits 20..29, 10..19, 0..9), each mapping [0, 1] to
      ``[-1/sqrt(2), 1/sqrt(2)]``; the largest is ``sqrt(1 - sum of squares)``.

    Optional ``sh`` element: uint8 ``f_rest_*`` (INRIA channel-major order), value
    ``(q / 256 - 0.5) * 8``.
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
    if len(chunk.data) * _CHUNK_SIZE < n:
        raise PlyFormatError(
            f"{path}: {len(chunk.data)} chunks cannot hold {n} splats ({_CHUNK_SIZE} per chunk)"
        )
    ci = np.arange(n) // _CHUNK_SIZE
    c = {name: np.asarray(chunk.data[name], np.float64)[ci] for name in cprops}
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
    f_dc = (rgb - 0.5) / SH_C0
    alpha = _unorm(col, 0, 8)
    with np.errstate(divide="ignore"):
        raw_opacities = -np.log(1.0 / alpha - 1.0)
    # alpha 0 and 1 decode to -inf/+inf logits, which the renderer would cull as non-finite;
    # +-40 is sigmoid-equivalent in float32 (sigmoid(40) == 1.0f).
    raw_opacities = np.clip(raw_opacities, -_MAX_LOGIT, _MAX_LOGIT)

    rot = v["packed_rotation"]
    norm = np.sqrt(2.0)  # 1 / (0.5 sqrt 2)
    small = np.stack([(_unorm(rot, s, 10) - 0.5) * norm for s in (20, 10, 0)], axis=1)
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
        if m:
            k = m // 3 + 1
            q = np.stack([np.asarray(sh_el.data[f"f_rest_{i}"], np.float64) for i in range(m)], axis=1)
            rest = ((q / 256.0 - 0.5) * 8.0).reshape(n, 3, k - 1).transpose(0, 2, 1)
    sh = np.empty((n, k, 3), np.float32)
    sh[:, 0, :] = f_dc
    if rest is not None:
        sh[:, 1:, :] = rest
    return SplatData(means=means, rotations=quats, log_scales=log_scales, sh_coeffs=sh, raw_opacities=raw_opacities)


def read_ply_points(source: str | os.PathLike | bytes, origin: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a point-cloud PLY (e.g. COLMAP/OpenMVS export): positions and optional colours.

    Args:
        source: a PLY file path, or the bytes of one (e.g. read from a zipped dataset).
            Its ``vertex`` element has ``x, y, z`` and optionally ``red, green, blue``
            (uint8 0..255, or float 0..1) or SH band 0 ``f_dc_0..2``.
        origin: the name error messages give the file (default: the path, or ``points.ply``
            for bytes).

    Returns:
        ``(points float32 [N,3], colors float32 [N,3] in [0, 1] or None)``. Colours come from
        ``red/green/blue`` when present, else from band 0 (``SH_C0 * f_dc + 0.5``); a splat
        PLY, INRIA or compressed, also works (colours are then its band-0 colours); all
        colours are clipped to [0, 1].

    Raises:
        FileNotFoundError, PlyFormatError: as :func:`read_ply`; missing ``x``/``y``/``z``.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        path = Path(origin or "points.ply")
        ply = _parse_ply(io.BytesIO(bytes(source)), path)
    else:
        path = Path(source) if origin is None else Path(origin)
        ply = _open_ply(Path(source), path)
    vertex = _element(ply, "vertex")
    if vertex is None:
        raise PlyFormatError(f"{path} has no 'vertex' element")
    props = {p.name for p in vertex.properties}
    if _element(ply, "chunk") is not None and "packed_position" in props:
        d = _decode_compressed(ply, path)
        return d.means, np.clip(d.colors, 0.0, 1.0)
    for name in ("x", "y", "z"):
        if name not in props:
            raise PlyFormatError(f"{path}: required vertex property '{name}' is missing")
    data = vertex.data
    pts = np.stack([np.asarray(data[a], np.float32) for a in ("x", "y", "z")], axis=1)
    if {"red", "green", "blue"} <= props:
        raw = [np.asarray(data[a]) for a in ("red", "green", "blue")]
        scale = 255.0 if np.issubdtype(raw[0].dtype, np.integer) else 1.0
        return pts, np.clip(np.stack(raw, axis=1).astype(np.float32) / scale, 0.0, 1.0)
    if {"f_dc_0", "f_dc_1", "f_dc_2"} <= props:
        f_dc = np.stack([np.asarray(data[a], np.float64) for a in ("f_dc_0", "f_dc_1", "f_dc_2")], axis=1)
        return pts, np.clip(SH_C0 * f_dc + 0.5, 0.0, 1.0).astype(np.float32)
    return pts, None


# --------------------------------------------------------------------------- writing


def write_ply(path: str | os.PathLike, data, ascii: bool = False, comments=(), option: str | None = None) -> None:
    """Write ``data`` as an INRIA 3DGS PLY (binary little-endian float32, or ascii).

    ``data`` is a :class:`SplatData` or a GPU :class:`brushpy.render.splats.Splats`
    (copied to the host first; no normals then).

    Property order is INRIA's: ``x y z [nx ny nz] f_dc_0..2 f_rest_* opacity scale_0..2
    rot_0..3``; normals are written only when ``data.normals`` is set. ``f_rest_*`` are
    channel-major (see the module docstring). Values round-trip exactly through
    :func:`read_ply` in both modes (ascii uses 9 significant digits, enough for float32).
    ``comments``: extra header comment lines (e.g. ``"SplatRenderMode: mip"``); a
    :class:`SplatData` whose ``render_mode`` is ``"mip"`` gets that line automatically.

    The file is written atomically (:func:`brushpy.io.atomic.atomic_write`): an
    interrupted or failed write leaves the previous file, if any, intact.
    ``option``: the command-line option that chose ``path`` (named in a write error).

    Raises:
        WriteError: the file cannot be written (full disk, no permission...).
    """
    path = Path(path)
    if not isinstance(data, SplatData):
        if not hasattr(data, "numpy"):
            raise TypeError(f"write_ply needs a SplatData or Splats, not {type(data).__name__}")
        data = SplatData.from_gpu(data)
    n = data.num_splats
    k = data.sh_coeffs.shape[1]
    columns: list[tuple[str, np.ndarray]] = [(a, data.means[:, i]) for i, a in enumerate("xyz")]
    if data.normals is not None:
        columns += [(a, data.normals[:, i]) for i, a in enumerate(("nx", "ny", "nz"))]
    columns += [(f"f_dc_{c}", data.sh_coeffs[:, 0, c]) for c in range(3)]
    if k > 1:
        rest = data.sh_coeffs[:, 1:, :].transpose(0, 2, 1).reshape(n, 3 * (k - 1))
        columns += [(f"f_rest_{i}", rest[:, i]) for i in range(rest.shape[1])]
    columns.append(("opacity", data.raw_opacities))
    columns += [(f"scale_{i}", data.log_scales[:, i]) for i in range(3)]
    columns += [(f"rot_{i}", data.rotations[:, i]) for i in range(4)]

    arr = np.empty(n, dtype=[(name, "<f4") for name, _ in columns])
    for name, values in columns:
        arr[name] = values
    element = PlyElement.describe(arr, "vertex")
    header = ["written by brushpy (INRIA 3DGS layout)", *comments]
    if data.render_mode == "mip" and not any(str(c).replace(" ", "").lower() == "splatrendermode:mip" for c in header):
        header.append("SplatRenderMode: mip")
    ply = PlyData([element], text=ascii, byte_order="<", comments=header)
    with atomic_write(path, option=option) as f:
        if not ascii:
            ply.write(f)
            return
        # plyfile writes ascii one row at a time; the header is its, the body written here
        # in one call (9 significant digits round-trip float32 exactly).
        f.write(ply.header.encode("ascii") + b"\n")
        if n:
            table = np.stack([arr[name].astype(np.float64) for name, _ in columns], axis=1)
            np.savetxt(f, table, fmt="%.9g", delimiter=" ", newline="\n")


# --------------------------------------------------------------------------- format registry
# (brushpy.io.formats: sniff / read / write for the INRIA layout)


def sniff(head: bytes, path: Path) -> bool:
    """True for a PLY file (the compressed layout is claimed first by ``ply_compressed``)."""
    return head[:3] == b"ply"


def read(path: Path) -> SplatData:
    return read_ply(path)


def write(path: Path, data: SplatData, option: str | None = None, **options) -> None:
    write_ply(path, data, option=option, **options)
