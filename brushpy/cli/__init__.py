"""The ``brushpy`` command line (click).

``brushpy info`` and ``brushpy render`` live here. Other subcommands live beside the
code they drive and are loaded lazily: a module listed in :data:`SUBCOMMAND_MODULES`
that defines a click command of the same name (e.g. ``brushpy/cli/train.py`` with
``@click.command("train") def train(...)``) becomes ``brushpy train`` without
touching this file; until that module exists the subcommand is simply not offered.
``register(command)`` adds a command object directly.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from pathlib import Path

import click
import numpy as np

from .. import __version__
from ..errors import BrushpyError, OptionError

#: Lazily loaded subcommands: name -> module that defines a click command ``name``.
SUBCOMMAND_MODULES = {
    "train": "brushpy.cli.train",
    "view": "brushpy.cli.view",
    "mip": "brushpy.cli.mip",
}


class ReportingGroup(click.Group):
    """A click group that prints brushpy's own errors as one ``Error: …`` line with the error's
    exit code (see :mod:`brushpy.errors`), also when used on its own (``mip_group`` in tests);
    ``--debug`` on the ``brushpy`` group or ``BRUSHPY_DEBUG=1`` re-raises them instead."""

    def invoke(self, ctx):
        """Run the subcommand; brushpy's own errors become one ``Error: …`` line (see :mod:`brushpy.errors`)."""
        try:
            return super().invoke(ctx)
        except BrushpyError as exc:
            if ctx.find_root().params.get("debug") or _env_debug():
                raise
            raise ReportedError(exc) from exc


def _env_debug() -> bool:
    import os

    return os.environ.get("BRUSHPY_DEBUG", "").strip().lower() not in ("", "0", "false", "no", "off")


class _LazyGroup(ReportingGroup):
    """A click group that imports :data:`SUBCOMMAND_MODULES` on demand.

    A module that does not exist hides its subcommand; any other import error is
    raised (a broken module should fail loudly, not vanish).
    """

    def _load(self, name: str):
        module_name = SUBCOMMAND_MODULES.get(name)
        if module_name is None:
            return None
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
                return None
            raise
        cmd = getattr(module, name, None) or getattr(module, name.replace("-", "_"), None)
        if not isinstance(cmd, click.Command):
            raise click.ClickException(f"{module_name} defines no click command named {name!r}")
        return cmd

    def list_commands(self, ctx):
        names = set(super().list_commands(ctx))
        names |= {n for n in SUBCOMMAND_MODULES if n not in names and self._load(n) is not None}
        return sorted(names)

    def get_command(self, ctx, name):
        cmd = super().get_command(ctx, name)
        return cmd if cmd is not None else self._load(name)

class ReportedError(click.ClickException):
    """A :class:`~brushpy.errors.BrushpyError` as click shows it: ``Error: <message>``, exit code
    ``exc.exit_code`` (2 bad input, 1 a failed run)."""

    def __init__(self, exc: BrushpyError):
        super().__init__(str(exc))
        self.exit_code = exc.exit_code


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version=__version__, prog_name="brushpy", message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, envvar="BRUSHPY_DEBUG",
              help="Show the full traceback of an error instead of one line (also BRUSHPY_DEBUG=1).")
def main(debug: bool):
    """brushpy: 3D Gaussian Splatting on WebGPU."""
    _show_warnings()


class _EchoWarnings(logging.Handler):
    """Shows brushpy's logged warnings on stderr as ``warning: <message>``, once each (the one
    place the command line prints them; without a handler Python's last-resort handler would
    print them bare, beside any copy the command printed itself)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(f"{record.levelname.lower()}: {record.getMessage()}", err=True)
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


def _show_warnings() -> None:
    """Attach :class:`_EchoWarnings` to the ``brushpy`` logger (once per process)."""
    logger = logging.getLogger("brushpy")
    if not any(isinstance(h, _EchoWarnings) for h in logger.handlers):
        logger.addHandler(_EchoWarnings(logging.WARNING))


def register(command: click.Command) -> click.Command:
    """Add ``command`` to the ``brushpy`` group (usable as a decorator)."""
    main.add_command(command)
    return command


# --------------------------------------------------------------------------- info


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
def info(as_json: bool):
    """Show the WebGPU adapter, backend, optional features and limits in use."""
    from ..gpu import OPTIONAL_FEATURES, NoAdapterError, get_context

    try:
        desc = get_context().describe()
    except NoAdapterError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(desc, indent=2, default=str))
        return
    click.echo(f"adapter:      {desc['adapter']}" + (f" ({desc['description']})" if desc["description"] else ""))
    click.echo(f"adapter type: {desc['adapter_type']}")
    click.echo(f"vendor:       {desc['vendor']}")
    click.echo(f"backend:      {desc['backend']}")
    enabled = set(desc["features"])
    click.echo("features:     " + ", ".join(f"{f}: {'yes' if f in enabled else 'no (fallback)'}" for f in OPTIONAL_FEATURES))
    click.echo("limits:")
    for key, value in desc["limits"].items():
        click.echo(f"  {key}: {value}")


# --------------------------------------------------------------------------- render


def parse_background(text: str) -> tuple[float, float, float]:
    """``"R,G,B"`` with components in [0, 1] (or ``black``/``white``) -> floats.

    Raises:
        ValueError: anything else (message shows the expected form).
    """
    named = {"black": (0.0, 0.0, 0.0), "white": (1.0, 1.0, 1.0)}
    if text.strip().lower() in named:
        return named[text.strip().lower()]
    parts = text.split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or not all(np.isfinite(v) and 0.0 <= v <= 1.0 for v in values):
        raise ValueError(f"{text!r} is not a colour; use R,G,B with each in [0, 1], e.g. 0,0,0 or 1,1,1 or 0.2,0.3,0.4")
    return values


class _Background(click.ParamType):
    name = "R,G,B"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            return parse_background(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _load_rasterize():
    try:
        from ..render.forward import rasterize
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("brushpy.render"):
            raise click.ClickException(
                "this build of brushpy has no splat rasterizer (brushpy.render.forward is missing)"
            ) from exc
        raise
    return rasterize


def to_png_array(image: np.ndarray, alpha: bool) -> np.ndarray:
    """float [H,W,4] render (RGB already composited over the background) -> uint8 image.

    With ``alpha``, the RGB of a render over a *black* background is divided by its
    alpha (straight, not premultiplied, alpha as PNG expects) and alpha is kept.
    """
    image = np.asarray(image, np.float64)
    if alpha:
        a = image[..., 3:4]
        rgb = np.divide(image[..., :3], a, out=np.zeros_like(image[..., :3]), where=a > 1e-8)
        out = np.concatenate([rgb, a], axis=-1)
    else:
        out = image[..., :3]
    out = np.nan_to_num(out, nan=0.0, posinf=1.0, neginf=0.0)
    return np.round(np.clip(out, 0.0, 1.0) * 255.0).astype(np.uint8)


@main.command()
@click.argument("scene", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="PNG file to write.")
@click.option("--width", type=click.IntRange(1, 16384), default=800, show_default=True, help="Image width in pixels.")
@click.option("--height", type=click.IntRange(1, 16384), default=600, show_default=True, help="Image height in pixels.")
@click.option("--fov", type=click.FloatRange(0.0, 180.0, min_open=True, max_open=True), default=50.0,
              show_default=True, help="Vertical field of view in degrees.")
@click.option("--position", type=(float, float, float), default=None, metavar="X Y Z",
              help="Camera centre (world). Default: level with the target, facing the scene's broadest side, far enough to frame it.")
@click.option("--look-at", type=(float, float, float), default=None, metavar="X Y Z",
              help="Point the camera looks at. Default: centre of the scene's 2-98 percentile box.")
@click.option("--up", type=(float, float, float), default=(0.0, -1.0, 0.0), show_default=True, metavar="X Y Z",
              help="World direction shown upwards. Default -y (COLMAP/INRIA scenes are y-down); "
                   "use 0 0 1 for z-up, 0 1 0 for y-up scenes.")
@click.option("--background", type=_Background(), default="0,0,0", show_default=True,
              help="Background colour R,G,B in [0,1] (or black/white).")
@click.option("--sh-degree", type=click.IntRange(0, 4), default=None,
              help="SH degree to render (<= the file's). Default: all bands in the file.")
@click.option("--alpha", is_flag=True, help="Write RGBA with straight alpha (the background is then ignored).")
def render(scene, output, width, height, fov, position, look_at, up, background, sh_degree, alpha):
    """Render the splat file SCENE (INRIA 3DGS PLY, or PlayCanvas compressed PLY) to a PNG.

    The default camera frames the middle 96% of the splat centres (2-98 percentiles
    per axis) with -y up, looking horizontally at the scene's broadest side
    (see brushpy.io.framing).
    """
    from PIL import Image

    from ..gpu import BufferTooLargeError, NoAdapterError
    from ..io.atomic import atomic_write
    from ..io.framing import framing_camera
    from ..io.ply import read_ply

    if output.suffix.lower() != ".png":
        raise click.BadParameter(f"{output} must end in .png", param_hint="'-o' / '--output'")
    try:
        data = read_ply(scene)  # a PlyFormatError (an InputError) reaches the group: `Error: …`, exit 2
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from exc
    if sh_degree is not None and sh_degree > data.sh_degree:
        raise click.BadParameter(
            f"{sh_degree} exceeds the SH degree of {scene} ({data.sh_degree}); use at most {data.sh_degree}",
            param_hint="'--sh-degree'",
        )
    try:
        camera = framing_camera(data.means, width, height, fov, position=position, look_at=look_at, up=up)
    except ValueError as exc:
        raise OptionError(f"camera: {exc} (options --position/--look-at/--up)") from exc
    rasterize = _load_rasterize()
    try:
        image = rasterize(
            data.means, data.rotations, data.log_scales, data.sh_coeffs, data.raw_opacities,
            camera.world_to_camera, camera.intrinsics, width, height,
            background=(0.0, 0.0, 0.0) if alpha else background, sh_degree=sh_degree,
            render_mode=data.render_mode,  # as trained (a `SplatRenderMode: mip` header comment)
        )
    except NoAdapterError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    except BufferTooLargeError as exc:
        raise click.ClickException(f"{exc} (options --width/--height)") from exc
    pixels = to_png_array(image, alpha)
    with atomic_write(output, option="-o/--output") as f:
        Image.fromarray(pixels, "RGBA" if alpha else "RGB").save(f, format="PNG")
    pos = ", ".join(f"{v:.3g}" for v in camera.position)
    click.echo(f"wrote {output} ({width}x{height}, {data.num_splats} splats, SH degree "
               f"{data.sh_degree if sh_degree is None else sh_degree}, camera at ({pos}))")


if __name__ == "__main__":  # pragma: no cover
    main()
