"""``brushpy convert IN OUT``: rewrite a splat file in another format, optionally smaller.

Reads any format :func:`brushpy.io.formats.read_splats` reads (detected from the content),
writes the format ``OUT``'s extension names (or ``--format``) through
:func:`brushpy.io.formats.write_splats`. On the way, in this order: ``--prune-alpha`` drops
faint splats, ``--sh-degree`` drops higher SH bands, and ``--lod N`` writes N coarser levels
beside ``OUT`` (:mod:`brushpy.io.lod`: names, selection, and the PSNR it reports).
Bad input (an unreadable file, an option out of range) is reported by the ``brushpy`` group
as one ``Error: …`` line with exit code 2.
"""

from __future__ import annotations

import math
from pathlib import Path

import click

from ..errors import InputError, OptionError
from ..io.formats import WRITE_FORMATS

#: Size of the framing-camera render the LOD PSNRs are measured on.
LOD_RENDER_SIZE = (400, 300)


class _Opacity(click.ParamType):
    """An opacity in [0, 1]: a decimal or a fraction (``1/255``)."""

    name = "A"

    def convert(self, value, param, ctx):
        from ..io.edit import parse_fraction

        if isinstance(value, float):
            return value
        try:
            return parse_fraction(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def human_size(num_bytes: int) -> str:
    """``1536`` -> ``"1.5 KiB"`` (B, KiB, MiB, GiB; powers of 1024)."""
    if num_bytes < 1024:
        return f"{num_bytes} B"
    size = float(num_bytes)
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024 or unit == "GiB":
            return f"{size:.1f} {unit}"


def _write_unavailable(fmt: str, exc: BaseException) -> click.ClickException:
    return click.ClickException(f"writing {fmt} files is not available in this build of brushpy ({exc})")


@click.command("convert")
@click.argument("source", metavar="IN", type=click.Path(exists=True, path_type=Path))
@click.argument("output", metavar="OUT", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(WRITE_FORMATS), default=None,
              help="Format to write. Default: the one OUT's extension names (.ply, .compressed.ply, .spz, .sog, "
                   "meta.json, .splat).")
@click.option("--sh-degree", type=click.IntRange(0, 4), default=None,
              help="Keep SH bands 0..D (drop higher ones). Default: all bands of IN.")
@click.option("--prune-alpha", type=_Opacity(), default=None, metavar="A",
              help="Drop splats whose opacity is below A (a decimal, or a fraction such as 1/255). Default: keep all.")
@click.option("--spz-version", type=click.Choice(["3", "4"]), default=None,
              help="SPZ version to write (.spz output only). Default: the SPZ writer's.")
@click.option("--spz-sh-bits", default=None, metavar="B1,BR",
              help="Bits kept per SH coefficient of band 1 and of bands 2+ in SPZ output (1..8 each). Default: the "
                   "SPZ reference encoder's 5,4; 6,5 keeps more view-dependent colour for about 20% more bytes.")
@click.option("--lod", type=click.IntRange(0, 16), default=0, show_default=True, metavar="N",
              help="Also write N coarser levels of detail beside OUT (OUT_lod1 .. OUT_lodN, each half the splats "
                   "of the one before, the most important by opacity x largest cross-section) and report their PSNR "
                   "against OUT from a framing camera.")
def convert(source: Path, output: Path, fmt, sh_degree, prune_alpha, spz_version, spz_sh_bits, lod):
    """Convert the splat file IN (INRIA or compressed PLY, SPZ, SOG, .splat) to OUT.

    OUT's format is the one its extension names unless --format is given.
    """
    from ..io.edit import file_size, prune_by_opacity, truncate_sh
    from ..io.formats import detect_format, format_from_extension, read_splats, write_splats

    out_fmt = fmt or format_from_extension(output)
    if out_fmt not in WRITE_FORMATS:
        raise OptionError(f"cannot tell which format to write from {output.name} (no known extension); "
                          f"end OUT in .ply, .compressed.ply, .spz, .sog or .splat, or pass --format "
                          f"({', '.join(WRITE_FORMATS)})")
    if spz_version is not None and out_fmt != "spz":
        raise click.BadParameter(f"writes SPZ versions; {output} is written as {out_fmt}", param_hint="'--spz-version'")

    try:  # UnknownFormatError / PlyFormatError are InputErrors: the group prints `Error: …`, exit 2
        in_fmt = detect_format(source)
        data = read_splats(source)
    except FileNotFoundError as exc:
        raise InputError(str(exc)) from exc
    n_in, deg_in = data.num_splats, data.sh_degree
    click.echo(f"read {source}: {in_fmt}, {n_in:,} splats, SH degree {deg_in}")

    if prune_alpha is not None:
        data = prune_by_opacity(data, prune_alpha)
        if data.num_splats == 0 and n_in > 0:
            raise OptionError(f"--prune-alpha {prune_alpha:.6g} removes all {n_in:,} splats of {source} "
                              "(every opacity is below it); choose a smaller value")
        click.echo(f"pruned {n_in - data.num_splats:,} splats with opacity < {prune_alpha:.6g}")
    if sh_degree is not None:
        if sh_degree > deg_in:
            raise click.BadParameter(f"{sh_degree} exceeds the SH degree of {source} ({deg_in}); use at most {deg_in}",
                                     param_hint="'--sh-degree'")
        if sh_degree < deg_in:
            data = truncate_sh(data, sh_degree)
            click.echo(f"dropped SH bands above degree {sh_degree}")

    options = {"version": int(spz_version)} if spz_version is not None else {}
    if spz_sh_bits is not None:
        if out_fmt != "spz":
            raise click.BadParameter(f"applies to SPZ output; {output} is written as {out_fmt}",
                                     param_hint="'--spz-sh-bits'")
        try:
            bits = tuple(int(b) for b in spz_sh_bits.split(","))
        except ValueError:
            bits = ()
        if len(bits) != 2 or not all(1 <= b <= 8 for b in bits):
            raise click.BadParameter(f"{spz_sh_bits!r}: give two numbers 1..8, e.g. 6,5", param_hint="'--spz-sh-bits'")
        options["sh_bits"] = bits
    try:
        if lod:
            from ..io.lod import write_lods

            levels = write_lods(output, data, lod, format=out_fmt, option="OUT", **options)
        else:
            write_splats(output, data, format=out_fmt, option="OUT", **options)
    except NotImplementedError as exc:
        raise _write_unavailable(out_fmt, exc) from exc
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("brushpy.io."):
            raise _write_unavailable(out_fmt, exc) from exc
        raise
    click.echo(f"wrote {output}: {out_fmt}, {data.num_splats:,} splats, SH degree {data.sh_degree}, "
               f"{human_size(file_size(output))}")
    if lod:
        _report_lods(levels, data)


def _report_lods(levels, data) -> None:
    """Print one line per LOD level: file, count, size and PSNR against level 0 (when the GPU renders)."""
    from ..gpu import GpuError
    from ..io.lod import build_lods, render_psnrs

    width, height = LOD_RENDER_SIZE
    psnrs = [None] * len(levels)
    note = ""
    try:
        rasterize = _load_rasterize()
        psnrs = render_psnrs(build_lods(data, len(levels) - 1), width, height, rasterize=rasterize)
    except (GpuError, ModuleNotFoundError) as exc:  # no GPU, a scene too large: the files are written; say why
        note = f" (PSNR not measured: {exc})"
    click.echo(f"levels of detail (PSNR of a {width}x{height} framing-camera render against level 0){note}:")
    name_width = max(len(str(lv.path)) for lv in levels)
    for lv, psnr in zip(levels, psnrs):
        shown = "" if psnr is None else ("reference" if math.isinf(psnr) else f"{psnr:.2f} dB")
        click.echo(f"  {lv.level:>2}  {str(lv.path):<{name_width}}  {lv.num_splats:>12,} splats  "
                   f"{human_size(lv.size_bytes):>9}  {shown}")


def _load_rasterize():
    """The GPU rasterizer (tests replace this with a NumPy reference)."""
    from ..render.forward import rasterize

    return rasterize
