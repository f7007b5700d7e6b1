"""Uniform struct layouts written once: the WGSL ``struct`` text and the host packing.

A :class:`UniformLayout` declares a kernel's parameter struct field by field
(name and WGSL type). From it come

* the WGSL declaration, pasted into a shader wherever it says ``#struct Name``
  (see :mod:`brushpy.gpu.shader`; the kernel is built with
  ``Kernel(..., structs=[LAYOUT])``), and
* the bytes: :meth:`UniformLayout.pack` (a :class:`~brushpy.gpu.kernel.Uniform`)
  or :meth:`UniformLayout.pack_bytes`, with every field at the offset WGSL gives
  it in the ``uniform`` address space.

Supported types: ``f32``, ``u32``, ``i32``, ``vecN<T>`` (N = 2, 3, 4),
``matCxR<f32>`` (C, R = 2..4) and ``array<T, N>`` of a type whose stride is a
multiple of 16 (the uniform address space requires it). Alignment follows the
WGSL spec ("Alignment and Size"): a scalar aligns to 4, ``vec2`` to 8,
``vec3``/``vec4`` to 16 (a ``vec3`` is 12 bytes, so a scalar may follow it in
the same 16 bytes), a matrix like its column vector, and the struct's size is
rounded up to its largest alignment. Gaps the rules leave are zero bytes.

Values: a scalar field takes a number, a vector or array field a flat sequence
of its scalars in memory order, a matrix field a NumPy ``[R, C]`` matrix (stored
column by column, as WGSL does) or a flat sequence in memory order (column-major).
Fields whose names start with ``_`` are padding and default to zeros.
"""

from __future__ import annotations

import operator
import re
import struct
from dataclasses import dataclass

import numpy as np

from .kernel import Uniform

_SCALARS = {"f32": "f", "u32": "I", "i32": "i"}
_VEC = re.compile(r"^vec([234])\s*<\s*(f32|u32|i32)\s*>$")
_MAT = re.compile(r"^mat([234])x([234])\s*<\s*f32\s*>$")
_ARRAY = re.compile(r"^array\s*<\s*(.+?)\s*,\s*(\d+)\s*u?\s*>$")


class LayoutError(ValueError):
    """A layout declaration is malformed, or values passed to it do not match it."""


@dataclass(frozen=True)
class _Type:
    wgsl: str
    size: int  # bytes
    align: int  # bytes
    codes: str  # struct codes of the bytes, in memory order; "x" pads
    scalars: int  # number of values the field takes
    matrix: tuple | None = None  # (columns, rows) for matrices


def _parse_type(t: str) -> _Type:
    t = re.sub(r"\s+", "", t).replace(",", ", ")
    if t in _SCALARS:
        return _Type(t, 4, 4, _SCALARS[t], 1)
    m = _VEC.match(t)
    if m:
        n, code = int(m.group(1)), _SCALARS[m.group(2)]
        return _Type(t, 4 * n, 8 if n == 2 else 16, code * n, n)
    m = _MAT.match(t)
    if m:
        cols, rows = int(m.group(1)), int(m.group(2))
        col_align = 8 if rows == 2 else 16
        col = "f" * rows + "x" * (col_align - 4 * rows) if rows == 3 else "f" * rows
        stride = col_align if rows != 3 else 16
        return _Type(t, cols * stride, col_align, col * cols, cols * rows, (cols, rows))
    m = _ARRAY.match(t)
    if m:
        elem, count = _parse_type(m.group(1)), int(m.group(2))
        stride = -(-elem.size // elem.align) * elem.align
        if stride % 16:
            raise LayoutError(f"{t}: a uniform array's element stride must be a multiple of 16 bytes (it is {stride}); use vec4 elements")
        if count < 1:
            raise LayoutError(f"{t}: an array needs at least one element")
        codes = elem.codes + "x" * (stride - elem.size)
        return _Type(t, stride * count, max(16, elem.align), codes * count, elem.scalars * count)
    raise LayoutError(f"unsupported WGSL type {t!r} in a uniform layout (use f32/u32/i32, vecN<T>, matCxR<f32>, array<T, N>)")


def _round_up(n: int, align: int) -> int:
    return -(-n // align) * align


class UniformLayout:
    """One WGSL uniform struct: its declaration and its byte packing.

    Args:
        name: the WGSL struct name (``#struct name`` in a shader pastes it).
        fields: ``(field name, WGSL type)`` or ``(field name, WGSL type, comment)``
            in declaration order.

    Attributes:
        offsets: byte offset of each field, by name.
        size: struct size in bytes (a multiple of its alignment).

    Raises:
        LayoutError: an unsupported type, a repeated or invalid field name.
    """

    def __init__(self, name: str, fields):
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise LayoutError(f"invalid struct name {name!r}")
        self.name = name
        self.fields: tuple = tuple((f[0], _parse_type(f[1]).wgsl if isinstance(f[1], str) else f[1], f[2] if len(f) > 2 else "")
                                   for f in fields)
        if not self.fields:
            raise LayoutError(f"struct {name} has no fields")
        self.types: dict[str, _Type] = {}
        self.offsets: dict[str, int] = {}
        codes = []
        offset = 0
        align = 4
        for fname, ftype, _ in self.fields:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", fname):
                raise LayoutError(f"struct {name}: invalid field name {fname!r}")
            if fname in self.types:
                raise LayoutError(f"struct {name}: field {fname!r} declared twice")
            ty = _parse_type(ftype)
            start = _round_up(offset, ty.align)
            codes.append("x" * (start - offset) + ty.codes)
            self.types[fname] = ty
            self.offsets[fname] = start
            offset = start + ty.size
            align = max(align, ty.align)
        self.size = _round_up(offset, align)
        self.align = align
        fmt = "".join(codes) + "x" * (self.size - offset)
        self._struct = struct.Struct("<" + fmt)
        self._float_slots = [c for c in fmt if c != "x"]
        self._wgsl = self._make_wgsl()
        # a struct of scalars only (most parameter blocks) given exactly its non-padding
        # fields packs in one call: its padding fields become pad bytes of a second format
        self._fast = None
        if all(t.scalars == 1 for t in self.types.values()):
            names = iter(f[0] for f in self.fields)
            fast_fmt = "".join(c if c == "x" else ("4x" if next(names)[0] == "_" else c) for c in fmt)
            required = [f[0] for f in self.fields if f[0][0] != "_"]
            if required:
                get = operator.itemgetter(*required)
                self._fast = (struct.Struct("<" + fast_fmt), get if len(required) > 1 else (lambda v: (get(v),)), len(required))

    def __repr__(self) -> str:
        return f"UniformLayout({self.name!r}, {len(self.fields)} fields, {self.size} bytes)"

    def wgsl(self) -> str:
        """The WGSL ``struct`` declaration (what ``#struct Name`` is replaced by)."""
        return self._wgsl

    def _make_wgsl(self) -> str:
        lines = [f"struct {self.name} {{"]
        for fname, ftype, comment in self.fields:
            lines.append(f"    {fname}: {ftype}," + (f"  // {comment}" if comment else ""))
        lines.append("}")
        return "\n".join(lines)

    def part(self, first: str, last: str) -> UniformLayout:
        """A layout of the fields ``first`` .. ``last`` (inclusive), to pack that byte range
        alone (e.g. a part that is cached). Its bytes equal ``pack_bytes(...)`` of the whole
        struct from ``offsets[first]`` to the end of ``last``'s 16-byte-aligned range.

        Raises:
            LayoutError: unknown names, or a part whose layout differs from its place here
                (it must start at a multiple of 16 and end where the next part starts).
        """
        names = [f[0] for f in self.fields]
        for n in (first, last):
            if n not in self.types:
                raise LayoutError(f"struct {self.name} has no field {n!r}")
        i, j = names.index(first), names.index(last)
        sub = UniformLayout(f"{self.name}_{first}_{last}", self.fields[i : j + 1])
        base = self.offsets[first]
        end = self.offsets[names[j + 1]] if j + 1 < len(names) else self.size
        if base % 16 or any(sub.offsets[n] != self.offsets[n] - base for n in names[i : j + 1]) or sub.size != end - base:
            raise LayoutError(f"struct {self.name}: fields {first}..{last} do not form a 16-byte-aligned part of it")
        return sub

    def _flatten(self, values: dict) -> list:
        flat = []
        types = self.types
        for name in values:
            if name not in types:
                known = ", ".join(types)
                raise LayoutError(f"struct {self.name} has no field {name!r} (fields: {known})")
        for fname, _, _ in self.fields:
            ty = types[fname]
            if fname in values:
                v = values[fname]
            elif fname[0] == "_":
                v = 0 if ty.scalars == 1 else (0,) * ty.scalars
            else:
                raise LayoutError(f"struct {self.name}: no value for field {fname!r}")
            if ty.scalars == 1:
                flat.append(v)
                continue
            if ty.matrix is not None and isinstance(v, np.ndarray) and v.ndim == 2:
                cols, rows = ty.matrix
                if v.shape != (rows, cols):
                    raise LayoutError(f"struct {self.name}: field {fname!r} ({ty.wgsl}) takes a [{rows},{cols}] matrix, got {v.shape}")
                v = v.T.ravel().tolist()  # column by column
            elif isinstance(v, np.ndarray):
                v = v.ravel().tolist()
            elif v == 0 and not hasattr(v, "__len__"):
                v = (0,) * ty.scalars
            if len(v) != ty.scalars:
                raise LayoutError(f"struct {self.name}: field {fname!r} ({ty.wgsl}) takes {ty.scalars} values, got {len(v)}")
            flat.extend(v)
        return flat

    def pack_bytes(self, **values) -> bytes:
        """The struct's bytes (``size`` of them) for ``values`` given by field name.

        Floats are rounded to float32 as a NumPy cast would (beyond its range: +-inf).

        Raises:
            LayoutError: an unknown field, a missing (non-padding) field or a value of
                the wrong length.
        """
        fast = self._fast
        if fast is not None and len(values) == fast[2]:
            try:
                return fast[0].pack(*fast[1](values))
            except (KeyError, struct.error, OverflowError):  # the general path below explains or handles it
                pass
        flat = self._flatten(values)
        try:
            return self._struct.pack(*flat)
        except OverflowError:  # a float beyond float32: let NumPy round it to +-inf
            slots = self._float_slots
            with np.errstate(over="ignore"):
                flat = [float(np.float64(v).astype(np.float32)) if c == "f" else v for c, v in zip(slots, flat)]
            return self._struct.pack(*flat)
        except struct.error as exc:
            raise LayoutError(f"struct {self.name}: {exc}") from None

    def pack_scalars(self, *scalars) -> bytes:
        """The struct's bytes from all its scalars in memory order (padding fields included,
        column-major matrices), the fast path for a struct packed on every dispatch.

        Raises:
            LayoutError: the wrong number of scalars, or one that does not fit its type.
        """
        try:
            return self._struct.pack(*scalars)
        except struct.error as exc:
            raise LayoutError(f"struct {self.name} takes {len(self._float_slots)} scalars in memory order: {exc}") from None

    def pack(self, **values):
        """A :class:`~brushpy.gpu.kernel.Uniform` holding :meth:`pack_bytes` ``(**values)``."""
        fast = self._fast
        if fast is not None and len(values) == fast[2]:
            try:
                return Uniform(fast[0].pack(*fast[1](values)))
            except (KeyError, struct.error, OverflowError):
                pass
        return Uniform(self.pack_bytes(**values))
