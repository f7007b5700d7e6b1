"""WGSL loading with a tiny include/template step.

Shaders live in the top-level ``shaders/`` folder of the source tree and are
shipped inside the wheel as ``brushpy/shaders``. The template language has
four constructs, applied in this order:

``#include "file.wgsl"``
    Pastes another shader file (each file at most once per shader).
``#if NAME`` / ``#else`` / ``#endif``
    Keeps a block when the define ``NAME`` is truthy (nesting allowed).
    ``#if !NAME`` negates.
``#struct Name``
    Replaced by the WGSL declaration of the :class:`~brushpy.gpu.layout.UniformLayout`
    named ``Name`` that the kernel was built with (``Kernel(..., structs=[...])``),
    so a uniform struct is written once, in Python, for both sides; a name with no
    layout is an error.
``{{NAME}}``
    Replaced by ``str(defines[NAME])``; an unknown name is an error.

Every shader also gets the defines ``HAS_SUBGROUPS`` and ``HAS_FLOAT_ATOMICS``
from the device unless the caller sets them.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

_INCLUDE = re.compile(r'^\s*#include\s+"([^"]+)"\s*$')
_IF = re.compile(r"^\s*#if\s+(!?)([A-Za-z_][A-Za-z0-9_]*)\s*$")
_ELSE = re.compile(r"^\s*#else\s*$")
_ENDIF = re.compile(r"^\s*#endif\s*$")
_STRUCT = re.compile(r"^\s*#struct\s+([A-Za-z_][A-Za-z0-9_]*)\s*$")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class ShaderError(ValueError):
    """A shader file is missing or its template is malformed."""


def shader_dir() -> Path:
    """Folder holding the ``.wgsl`` files (wheel: ``brushpy/shaders``; source tree: ``shaders/``)."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "shaders", here.parent / "shaders"):
        if candidate.is_dir():
            return candidate
    raise ShaderError(f"brushpy's shaders folder was not found next to {here}; reinstall the package")


@lru_cache(maxsize=None)
def _read(name: str) -> str:
    path = shader_dir() / name
    if not path.is_file():
        raise ShaderError(f"shader file {name!r} not found in {shader_dir()}")
    return path.read_text(encoding="utf-8")


def _expand_includes(name: str, seen: set) -> list[str]:
    out = []
    for line in _read(name).splitlines():
        m = _INCLUDE.match(line)
        if m:
            inc = m.group(1)
            if inc not in seen:
                seen.add(inc)
                out.extend(_expand_includes(inc, seen))
            continue
        out.append(line)
    return out


def _apply_conditionals(lines: list[str], defines: dict, name: str) -> list[str]:
    out = []
    stack: list[tuple[bool, bool]] = []  # (parent_active, condition)
    active = True
    for lineno, line in enumerate(lines, 1):
        m = _IF.match(line)
        if m:
            cond = bool(defines.get(m.group(2), False))
            if m.group(1):
                cond = not cond
            stack.append((active, cond))
            active = active and cond
            continue
        if _ELSE.match(line):
            if not stack:
                raise ShaderError(f"{name}: #else without #if (line {lineno} after includes)")
            parent, cond = stack[-1]
            active = parent and not cond
            continue
        if _ENDIF.match(line):
            if not stack:
                raise ShaderError(f"{name}: #endif without #if (line {lineno} after includes)")
            parent, _ = stack.pop()
            active = parent
            continue
        if active:
            out.append(line)
    if stack:
        raise ShaderError(f"{name}: #if without #endif")
    return out


def _paste_structs(lines: list[str], structs: dict, name: str) -> list[str]:
    out = []
    pasted = set()
    for line in lines:
        m = _STRUCT.match(line)
        if m is None:
            out.append(line)
            continue
        sname = m.group(1)
        layout = structs.get(sname)
        if layout is None:
            given = ", ".join(sorted(structs)) or "none"
            raise ShaderError(f"{name}: '#struct {sname}' but the kernel was given no layout named {sname} (given: {given})")
        if sname not in pasted:  # an include may ask for it again
            pasted.add(sname)
            out.extend(layout.wgsl().splitlines())
    return out


def preprocess(name: str, defines: dict | None = None, structs=None) -> str:
    """Return the WGSL source of shader ``name`` with includes, conditionals, struct
    layouts and placeholders applied.

    Args:
        name: file in :func:`shader_dir`.
        defines: template values (``#if`` and ``{{NAME}}``).
        structs: :class:`~brushpy.gpu.layout.UniformLayout` objects (or a dict of them by
            struct name) that ``#struct Name`` lines are replaced with.

    Raises:
        ShaderError: missing file, unbalanced ``#if``, a placeholder with no define, or a
            ``#struct`` with no layout.
    """
    defines = dict(defines or {})
    if structs is None:
        structs = {}
    elif not isinstance(structs, dict):
        structs = {s.name: s for s in structs}
    lines = _apply_conditionals(_expand_includes(name, {name}), defines, name)
    lines = _paste_structs(lines, structs, name)
    src = "\n".join(lines) + "\n"

    def sub(m):
        key = m.group(1)
        if key not in defines:
            raise ShaderError(f"{name}: placeholder {{{{{key}}}}} has no value; pass it in defines")
        val = defines[key]
        if isinstance(val, bool):
            return "true" if val else "false"
        return str(val)

    return _PLACEHOLDER.sub(sub, src)


_BINDING = re.compile(
    r"@group\(\s*(\d+)\s*\)\s*@binding\(\s*(\d+)\s*\)\s*var\s*<\s*(storage|uniform)\s*(?:,\s*(read_write|read))?\s*>"
)


_BINDING_NAME = re.compile(
    r"@group\(\s*0\s*\)\s*@binding\(\s*(\d+)\s*\)\s*var\s*<[^>]*>\s*([A-Za-z_][A-Za-z0-9_]*)\s*:"
)


def parse_binding_names(src: str) -> dict[int, str]:
    """Map binding index (group 0) to the WGSL variable name declared there.

    Raises:
        ShaderError: two bindings share a name.
    """
    out = {}
    for m in _BINDING_NAME.finditer(src):
        name = m.group(2)
        if name in out.values():
            raise ShaderError(f"binding name {name!r} declared twice")
        out[int(m.group(1))] = name
    return out


def parse_bindings(src: str) -> dict[int, str]:
    """Map binding index (group 0) to ``"uniform"``, ``"read-only-storage"`` or ``"storage"``."""
    out = {}
    for m in _BINDING.finditer(src):
        if int(m.group(1)) != 0:
            raise ShaderError("brushpy kernels use bind group 0 only")
        kind = m.group(3)
        if kind == "uniform":
            out[int(m.group(2))] = "uniform"
        else:
            out[int(m.group(2))] = "storage" if m.group(4) == "read_write" else "read-only-storage"
    return out
