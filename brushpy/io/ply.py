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

Header comments (Brush's convention, brush-serde ``export.rs`` / ``import.rs``; read
case-insensitively, the last of each kind wins):

=============================  ======================================================
``Vertical axis: <axis>``      the world's up direction: ``x``, ``y`` or ``z`` (Brush
                               reads these as +x, -y and -z: ``y`` is the INRIA /
                               COLMAP y-down default), or a vector ``a b c``.
                               -> :attr:`SplatData.vertical_axis`
``SH degree: <d>``             informational (the degree comes from ``f_rest_*``)
``SplatRenderMode: <mode>``    ``default`` or ``mip`` -> :attr:`SplatData.render_mode`
                               (Postshot's ``antialiased 1`` / ``antialiased 0`` too)
=============================  ======================================================

:func:`write_ply` writes ``Vertical axis`` (when known), ``SH degree`` and
``SplatRenderMode`` as Brush does.

Non-finite values: converters write them (splat-transform writes ``+inf`` opacity for
splats whose 8-bit alpha is 255 when it turns a compressed PLY or SPZ into a PLY), and
the renderer culls any splat with a non-finite parameter. :func:`read_ply` therefore
repairs what has a clear meaning and drops the rest (:func:`clean_non_finite`), with one
logged warning that gives the counts and the file.

PlayCanvas / SuperSplat "compressed PLY" (a ``chunk`` element and packed uint32
properties) is decoded by :mod:`brushpy.io.ply_compressed`; :func:`read_ply` delegates to
it, so one call reads either layout.
"""

from __future__ import annotations

import io
import logging
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

log = logging.getLogger("brushpy.io")

#: Real SH basis constant of band 0: 1 / (2 sqrt(pi)).
SH_C0 = 0.28209479177387814


def sh_dc_to_rgb(f_dc) -> np.ndarray:
    """The view-independent colour ``SH_C0 * f_dc + 0.5`` of SH band-0 coefficients.

    Args:
        f_dc: float array [..., 3] (any leading shape), the band-0 coefficients per channel.

    Returns:
        float64 array of the same shape, RGB in [0, 1] for coefficients of in-range colours;
        not clamped (callers clip where a format needs it). The +0.5 offset is the INRIA/gsplat
        convention (the renderer adds it too).
    """
    return SH_C0 * np.asarray(f_dc, np.float64) + 0.5


def rgb_to_sh_dc(rgb) -> np.ndarray:
    """SH band-0 coefficients ``(rgb - 0.5) / SH_C0`` that render as ``rgb``: the inverse of
    :func:`sh_dc_to_rgb`. ``rgb``: float array [..., 3] in [0, 1]; returns float64 of the same shape."""
    return (np.asarray(rgb, np.float64) - 0.5) / SH_C0

#: Opacity logits are clamped to +-this on reading where a file holds +-inf (or an 8-bit
#: alpha of 0 or 255): sigmoid(40) == 1.0 and sigmoid(-40) ~ 4e-18 in float32, so nothing
#: changes on screen, and the value stays finite (PlayCanvas's engine uses the same 40).
_MAX_LOGIT = 40.0

#: ``-inf`` log scales (a zero extent along an axis: a flat splat) are raised to this on
#: reading: exp(-30) ~ 1e-13 world units, whose square is still a normal float32.
_MIN_LOG_SCALE = -30.0

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
        vertical_axis: the world's up direction when the file says it, else None: a
            signed axis (``"+y"``, ``"-y"``, ``"+z"``, ...) or, for another direction, its
            components ``"a b c"`` (PLY's ``Vertical axis`` header comment, Brush's
            convention). :func:`vertical_axis_vector` turns it into a unit vector.
            Viewers use it for their default camera.

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
        return sh_dc_to_rgb(self.sh_coeffs[:, 0, :]).astype(np.float32)

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

    @classmethod
    def coerce(cls, data, who: str) -> "SplatData":
        """``data`` itself when it is a :class:`SplatData`, else a GPU ``Splats`` copied to the host.

        Raises:
            TypeError: ``data`` is neither (the message names the caller ``who``).
        """
        if isinstance(data, cls):
            return data
        if not hasattr(data, "numpy"):
            raise TypeError(f"{who} needs a SplatData or Splats, not {type(data).__name__}")
        return cls.from_gpu(data)


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
        ``nx, ny, nz``; ``render_mode`` and ``vertical_axis`` from the header comments
        (see the module docstring). Non-finite values are repaired or their splats
        dropped (:func:`clean_non_finite`; one logged warning on the ``brushpy.io``
        logger names the file and gives the counts), so every value is finite.

    Raises:
        FileNotFoundError: the file does not exist (message names it).
        PlyFormatError: not a PLY file; no ``vertex`` element; a required property is
            missing (message names the property and the file); a point cloud without
            splat properties (message says so: use it as initial points for training
            instead); an ``f_rest_*`` count that is not 0/9/24/45/72; a malformed
            compressed PLY (see :func:`brushpy.io.ply_compressed.read_compressed_ply`).
    """
    path = Path(path)
    ply = _open_ply(path)
    vertex = _element(ply, "vertex")
    if vertex is None:
        names = ", ".join(el.name for el in ply.elements) or "none"
        raise PlyFormatError(f"{path} has no 'vertex' element (elements: {names}); not a splat file")
    props = {p.name for p in vertex.properties}
    if _is_compressed(ply, props):
        from .ply_compressed import decode_compressed

        data = decode_compressed(ply, path)
    else:
        data = _decode_inria(vertex, props, path)
    comments = _header_comments(ply)
    data.render_mode = render_mode_from_comments(comments)
    data.vertical_axis = vertical_axis_from_comments(comments)
    return clean_non_finite(data, path)


def _is_compressed(ply: PlyData, vertex_props: set) -> bool:
    return _element(ply, "chunk") is not None and "packed_position" in vertex_props


def _header_comments(ply: PlyData) -> list[str]:
    return [str(c) for c in list(ply.comments) + list(getattr(ply, "obj_info", []))]


# --------------------------------------------------------------------------- header comments


_AXES = {"+x": (1, 0, 0), "-x": (-1, 0, 0), "+y": (0, 1, 0), "-y": (0, -1, 0), "+z": (0, 0, 1), "-z": (0, 0, -1)}
#: Brush's one-letter forms (brush-serde import.rs): ``y`` is its y-down default, so -y is up.
_BRUSH_LETTERS = {"x": "+x", "y": "-y", "z": "-z"}


def render_mode_from_comments(comments) -> str:
    """The render mode PLY header ``comments`` declare: ``"mip"`` or ``"default"``.

    Brush's ``SplatRenderMode: default|mip`` and Postshot's ``antialiased 1|0`` are read,
    case-insensitively; the last one wins (as Brush and splat-transform do). Other
    values (e.g. ``2dgs``) are ignored; no comment means ``"default"``.
    """
    mode = "default"
    for c in comments:
        text = str(c).strip().lower()
        key, sep, value = text.partition(":")
        if sep and key.strip() == "splatrendermode" and value.strip() in ("mip", "default"):
            mode = value.strip()
        elif text.startswith("antialiased ") and text[len("antialiased "):].strip() in ("0", "1"):
            mode = "mip" if text.endswith("1") else "default"
    return mode


def vertical_axis_from_comments(comments) -> str | None:
    """The up direction PLY header ``comments`` declare (``Vertical axis: ...``), or None.

    Returns a signed axis (``"+x"``, ``"-y"``, ...) or, for a direction that is not an
    axis, its three components as ``"a b c"``. Brush's letters map as Brush reads them:
    ``x`` -> ``"+x"``, ``y`` -> ``"-y"``, ``z`` -> ``"-z"``; a vector ``a b c`` (also
    ``[a, b, c]``) is kept as written; brushpy's signed forms (``-y``) are accepted too.
    The last parsable comment wins; a zero or unparsable vector is ignored.
    """
    axis = None
    for c in comments:
        key, sep, value = str(c).partition(":")
        if not sep or key.strip().lower() != "vertical axis":
            continue
        value = value.strip().lower()
        if value in _BRUSH_LETTERS:
            axis = _BRUSH_LETTERS[value]
        elif value in _AXES:
            axis = value
        else:
            parts = [t for t in re.split(r"[,\s\[\]]+", value) if t]
            try:
                vec = [float(t) for t in parts]
            except ValueError:
                continue
            if len(vec) == 3 and all(np.isfinite(vec)) and any(vec):
                axis = _axis_name(vec)
    return axis


def _axis_name(vec) -> str:
    """``"+y"`` etc. for an axis-aligned vector, else ``"a b c"`` (shortest float32 text)."""
    v = np.asarray(vec, np.float64)
    for name, e in _AXES.items():
        if np.allclose(v / np.linalg.norm(v), e, atol=1e-6, rtol=0):
            return name
    return " ".join(np.format_float_positional(np.float32(x), trim="-") for x in v)


def vertical_axis_vector(axis: str) -> np.ndarray:
    """The unit vector (float64 [3]) of a :attr:`SplatData.vertical_axis` value.

    ``axis`` is a signed axis (``"+x"`` ... ``"-z"``) or three components ``"a b c"``.

    Raises:
        ValueError: anything else, or a zero vector (the message quotes it).
    """
    text = str(axis).strip().lower()
    if text in _AXES:
        return np.asarray(_AXES[text], np.float64)
    try:
        vec = np.asarray([float(t) for t in text.replace(",", " ").split()], np.float64)
    except ValueError:
        vec = np.zeros(0)
    if vec.shape != (3,) or not np.isfinite(vec).all() or not vec.any():
        raise ValueError(f"vertical axis {axis!r} is neither a signed axis (+x, -y, ...) nor a vector 'a b c'")
    return vec / np.linalg.norm(vec)


def _vertical_axis_comment(axis: str) -> str:
    """Brush's spelling: ``Vertical axis: a b c`` (the components of the up vector)."""
    if str(axis).strip().lower() in _AXES:
        vec = _AXES[str(axis).strip().lower()]
    else:
        vertical_axis_vector(axis)  # validates
        vec = [float(t) for t in str(axis).replace(",", " ").split()]
    return "Vertical axis: " + " ".join(np.format_float_positional(np.float32(x), trim="-") for x in vec)


# --------------------------------------------------------------------------- non-finite values


def clean_non_finite(data: SplatData, source) -> SplatData:
    """``data`` with its non-finite values repaired where that has a clear meaning, else dropped.

    ==================  ====================================================
    ``raw_opacities``   +-inf -> +-40 (:data:`_MAX_LOGIT`; fully opaque / fully
                        transparent, unchanged on screen); NaN -> dropped
    ``log_scales``      -inf -> -30 (a zero extent: a flat splat); +inf, NaN
                        -> dropped
    ``means``,          +-inf, NaN -> dropped
    ``rotations``,
    ``sh_coeffs``
    ==================  ====================================================

    ``normals`` are not looked at (splatting does not use them). When anything changed,
    one warning goes to the ``brushpy.io`` logger: the file (``source``) and, per array
    and kind, how many splats. Returns ``data`` itself when every value is finite, else a
    new :class:`SplatData` (same ``render_mode`` and ``vertical_axis``).
    """
    n = data.num_splats
    arrays = {
        "means": data.means,
        "rotations": data.rotations,
        "log_scales": data.log_scales,
        "sh_coeffs": data.sh_coeffs.reshape(n, data.sh_coeffs.shape[1] * 3),
        "raw_opacities": data.raw_opacities.reshape(n, 1),
    }
    if all(np.isfinite(a).all() for a in arrays.values()):
        return data
    drop = np.zeros(n, bool)
    dropped_notes, fixed_notes = [], []
    for name, a in arrays.items():
        nan = np.isnan(a).any(axis=1)
        pos = (a == np.inf).any(axis=1)
        neg = (a == -np.inf).any(axis=1)
        if name == "raw_opacities":
            bad = {"NaN": nan}
            if pos.any():
                fixed_notes.append(f"+inf raw_opacities {int(pos.sum()):,} (set to logit +{_MAX_LOGIT:g})")
            if neg.any():
                fixed_notes.append(f"-inf raw_opacities {int(neg.sum()):,} (set to logit -{_MAX_LOGIT:g})")
        elif name == "log_scales":
            bad = {"NaN": nan, "+inf": pos}
            if neg.any():
                fixed_notes.append(f"-inf log_scales {int(neg.sum()):,} (set to {_MIN_LOG_SCALE:g}: flat)")
        else:
            bad = {"NaN": nan, "+-inf": pos | neg}
        for kind, rows in bad.items():
            if rows.any():
                dropped_notes.append(f"{kind} {name} {int(rows.sum()):,}")
                drop |= rows
    opacities = np.where(np.isinf(data.raw_opacities), np.sign(data.raw_opacities) * _MAX_LOGIT, data.raw_opacities)
    log_scales = np.where(data.log_scales == -np.inf, _MIN_LOG_SCALE, data.log_scales)
    keep = ~drop
    out = SplatData(
        means=data.means[keep],
        rotations=data.rotations[keep],
        log_scales=log_scales[keep],
        sh_coeffs=data.sh_coeffs[keep],
        raw_opacities=opacities[keep],
        normals=None if data.normals is None else data.normals[keep],
        render_mode=data.render_mode,
        vertical_axis=data.vertical_axis,
    )
    parts = []
    if fixed_notes:
        parts.append("repaired " + ", ".join(fixed_notes))
    if dropped_notes:
        parts.append(f"dropped {int(drop.sum()):,} of {n:,} splats (" + ", ".join(dropped_notes) + ")")
    log.warning(f"{source}: non-finite values (splats per kind): " + "; ".join(parts))
    return out


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
    if _is_compressed(ply, props):
        from .ply_compressed import decode_compressed

        d = decode_compressed(ply, path)
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
        return pts, np.clip(sh_dc_to_rgb(f_dc), 0.0, 1.0).astype(np.float32)
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
    Header comments, as Brush writes them (see the module docstring): ``Vertical axis:
    a b c`` when ``data.vertical_axis`` is set, ``SH degree: d`` and ``SplatRenderMode:
    default|mip`` (from ``data.render_mode``). ``comments``: extra header comment lines;
    one of those kinds given there replaces the automatic line (e.g. the trainer's
    ``"SplatRenderMode: mip"``).

    The file is written atomically (:func:`brushpy.io.atomic.atomic_write`): an
    interrupted or failed write leaves the previous file, if any, intact.
    ``option``: the command-line option that chose ``path`` (named in a write error).

    Raises:
        WriteError: the file cannot be written (full disk, no permission...).
    """
    path = Path(path)
    data = SplatData.coerce(data, "write_ply")
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
    header = ["written by brushpy (INRIA 3DGS layout)", *brush_comments(data, comments), *comments]
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


def brush_comments(data: SplatData, extra=()) -> list[str]:
    """Brush's header comments for ``data`` (``Vertical axis`` when known, ``SH degree``,
    ``SplatRenderMode``), leaving out each kind that ``extra`` already has."""
    keys = {str(c).partition(":")[0].strip().lower() for c in extra if ":" in str(c)}
    out = []
    if data.vertical_axis is not None and "vertical axis" not in keys:
        out.append(_vertical_axis_comment(data.vertical_axis))
    if "sh degree" not in keys:
        out.append(f"SH degree: {data.sh_degree}")
    if "splatrendermode" not in keys:
        out.append(f"SplatRenderMode: {data.render_mode}")
    return out


# --------------------------------------------------------------------------- format registry
# (brushpy.io.formats: sniff / read / write for the INRIA layout)


def sniff(head: bytes, path: Path) -> bool:
    """True for a PLY file (the compressed layout is claimed first by ``ply_compressed``)."""
    return head[:4] in (b"ply\n", b"ply\r")


def read(path: Path) -> SplatData:
    return read_ply(path)


def write(path: Path, data: SplatData, option: str | None = None, **options) -> None:
    write_ply(path, data, option=option, **options)
