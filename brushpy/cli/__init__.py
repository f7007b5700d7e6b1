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
    "convert": "brushpy.cli.convert",
    "sfm": "brushpy.cli.sfm",
    "batch": "brushpy.cli.batch",
    "feedforward": "brushpy.cli.feedforward",
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


#: pixels with a final alpha below this have no depth (0 in the .npy, black in the PNG)
DEPTH_MIN_ALPHA = 1.0 / 255.0
#: polynomial fit of Google's Turbo colormap (Ruofei Du's, Apache-2.0): x, x², ..., x⁵ per channel
_TURBO = np.array([
    [0.13572138, 4.61539260, -42.66032258, 132.13108234, -152.94239396, 59.28637943],
    [0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604],
    [0.10667330, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973],
])


def depth_range(depth: np.ndarray, valid: np.ndarray, near: float | None = None, far: float | None = None):
    """(near, far) for colouring ``depth``: the 2nd and 98th percentiles of the valid depths,
    each replaced by ``near``/``far`` when given; far > near always (1 apart when nothing is valid)."""
    vals = depth[valid]
    lo, hi = np.percentile(vals, [2.0, 98.0]) if vals.size else (0.0, 1.0)
    lo = float(lo if near is None else near)
    hi = float(hi if far is None else far)
    if not hi > lo:
        hi = lo + max(abs(lo) * 1e-6, 1e-6)
    return lo, hi


def depth_to_png_array(depth: np.ndarray, valid: np.ndarray, near: float, far: float, colormap: str = "turbo") -> np.ndarray:
    """Depth [H,W] -> uint8 [H,W,3]: ``t = (depth - near) / (far - near)`` clipped to [0, 1], through
    Turbo (near blue, far red) or grey (near black, far white); invalid pixels black."""
    t = np.clip((np.nan_to_num(np.asarray(depth, np.float64)) - near) / (far - near), 0.0, 1.0)
    if colormap == "grey":
        rgb = np.repeat(t[..., None], 3, -1)
    else:
        powers = np.stack([t ** i for i in range(6)], -1)
        rgb = np.clip(powers @ _TURBO.T, 0.0, 1.0)
    rgb[~valid] = 0.0
    return np.round(rgb * 255.0).astype(np.uint8)


def write_depth(path: Path, depth: np.ndarray, alpha: np.ndarray, near=None, far=None, colormap: str = "turbo") -> tuple:
    """Write the expected depth to ``path`` atomically: ``.npy`` float32 [H,W] (scene units,
    0 where alpha < 1/255) or a colormapped ``.png``. Returns the (near, far) used (PNG) or None."""
    from PIL import Image

    from ..io.atomic import atomic_write

    valid = (np.asarray(alpha) >= DEPTH_MIN_ALPHA) & np.isfinite(depth)
    clean = np.where(valid, depth, 0.0).astype(np.float32)
    if path.suffix.lower() == ".npy":
        with atomic_write(path, option="--depth") as f:
            np.save(f, clean)
        return None
    lo, hi = depth_range(clean, valid, near, far)
    with atomic_write(path, option="--depth") as f:
        Image.fromarray(depth_to_png_array(clean, valid, lo, hi, colormap), "RGB").save(f, format="PNG")
    return lo, hi


@main.command()
@click.argument("scene", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="PNG file to write, or an .mp4 video with --path.")
@click.option("--width", type=click.IntRange(1, 16384), default=800, show_default=True, help="Image width in pixels.")
@click.option("--height", type=click.IntRange(1, 16384), default=600, show_default=True, help="Image height in pixels.")
@click.option("--fov", type=click.FloatRange(0.0, 180.0, min_open=True, max_open=True), default=50.0,
              show_default=True, help="Vertical field of view in degrees.")
@click.option("--position", type=(float, float, float), default=None, metavar="X Y Z",
              help="Camera centre (world). Default: level with the target, facing the scene's broadest side, far enough to frame it.")
@click.option("--look-at", type=(float, float, float), default=None, metavar="X Y Z",
              help="Point the camera looks at. Default: centre of the scene's 2-98 percentile box.")
@click.option("--up", type=(float, float, float), default=None, metavar="X Y Z",
              help="World direction shown upwards. Default: the file's vertical axis when it names one (e.g. a PLY "
                   "'Vertical axis' comment, as Brush and brushpy's trainer write), else -y (COLMAP/INRIA scenes are "
                   "y-down); use 0 0 1 for z-up, 0 1 0 for y-up scenes.")
@click.option("--background", type=_Background(), default="0,0,0", show_default=True,
              help="Background colour R,G,B in [0,1] (or black/white).")
@click.option("--sh-degree", type=click.IntRange(0, 4), default=None,
              help="SH degree to render (<= the file's). Default: all bands in the file.")
@click.option("--alpha", is_flag=True, help="Write RGBA with straight alpha (the background is then ignored).")
@click.option("--depth", "depth_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the expected depth (camera z, scene units): .npy float32 [H,W] with 0 where "
                   "nothing was rendered, or a colormapped .png.")
@click.option("--depth-near", type=float, default=None,
              help="Depth shown as the colormap's near end (PNG). Default: 2nd percentile of the rendered depth.")
@click.option("--depth-far", type=float, default=None,
              help="Depth shown as the colormap's far end (PNG). Default: 98th percentile of the rendered depth.")
@click.option("--depth-colormap", type=click.Choice(["turbo", "grey"]), default="turbo", show_default=True,
              help="Colormap of a --depth PNG: turbo (near blue, far red) or grey (near black, far white).")
@click.option("--path", "camera_path", default=None, metavar="orbit|dataset|FILE.json",
              help="Render a video (-o OUT.mp4) along a camera path: 'orbit' circles the scene's vertical axis "
                   "through the look-at point, starting at the PNG's camera; 'dataset' flies smoothly through the "
                   "cameras of --dataset (in image-name order); FILE.json plays a nerfstudio camera path "
                   "(as the desktop viewer records). Needs pip install 'brushpy[video]'.")
@click.option("--dataset", "dataset_path", type=click.Path(exists=True, path_type=Path), default=None,
              help="Dataset folder or .zip whose cameras --path dataset follows (COLMAP, nerfstudio, NeRF-synthetic, "
                   "7-Scenes; the world the splats were trained in).")
@click.option("--frames", type=click.IntRange(1, 100000), default=None,
              help="Video frames of --path orbit/dataset. Default: 4 s at --fps (orbit), 5 frames per dataset camera.")
@click.option("--seconds", type=click.FloatRange(0.0, 3600.0, min_open=True), default=None,
              help="Video length of --path orbit/dataset (instead of --frames: seconds x fps frames).")
@click.option("--fps", type=click.FloatRange(0.0, 240.0, min_open=True), default=None,
              help="Video frame rate. Default: 30, or a camera-path file's own fps.")
@click.option("--turns", type=float, default=1.0, show_default=True,
              help="Turns of --path orbit (negative: the other way round).")
@click.option("--crf", type=click.IntRange(0, 51), default=18, show_default=True,
              help="H.264 quality of a video: x264's constant rate factor (0 best, 51 worst; 18 looks lossless).")
@click.pass_context
def render(ctx, scene, output, width, height, fov, position, look_at, up, background, sh_degree, alpha, depth_out,
           depth_near, depth_far, depth_colormap, camera_path, dataset_path, frames, seconds, fps, turns, crf):
    """Render the splat file SCENE (INRIA or compressed PLY, SPZ, SOG, .splat) to a PNG,
    or with --path to an MP4 video along a camera path.

    The default camera frames the middle 96% of the splat centres (2-98 percentiles
    per axis) with the file's vertical axis up (else -y), looking horizontally at the
    scene's broadest side (see brushpy.io.framing).
    """
    from . import video

    if camera_path is not None or output.suffix.lower() == ".mp4":
        if alpha or depth_out is not None:
            raise click.BadParameter("videos have no alpha or depth; leave out --alpha/--depth with --path",
                                     param_hint="'--path'")
        given = [flag for flag, value in (("--position", position), ("--look-at", look_at)) if value is not None]
        if ctx.get_parameter_source("turns") != click.core.ParameterSource.DEFAULT:
            given.append("--turns")
        video.check_video_options(output, camera_path, dataset_path, frames, seconds, tuple(given))
    elif dataset_path is not None or any(v is not None for v in (frames, seconds, fps)) or \
            ctx.get_parameter_source("crf") != click.core.ParameterSource.DEFAULT:
        raise click.BadParameter("--dataset/--frames/--seconds/--fps/--crf describe a video; add --path "
                                 "orbit|dataset|FILE.json and -o OUT.mp4", param_hint="'--path'")
    from PIL import Image

    from ..gpu import BufferTooLargeError, NoAdapterError
    from ..io.atomic import atomic_write
    from ..io.formats import read_splats
    from ..io.framing import framing_camera, scene_up

    if camera_path is None and output.suffix.lower() != ".png":
        raise click.BadParameter(f"{output} must end in .png (or .mp4 with --path)", param_hint="'-o' / '--output'")
    if depth_out is not None and depth_out.suffix.lower() not in (".png", ".npy"):
        raise click.BadParameter(f"{depth_out} must end in .png or .npy", param_hint="'--depth'")
    if depth_out is None and (depth_near is not None or depth_far is not None):
        raise click.BadParameter("--depth-near/--depth-far colour a --depth PNG; pass --depth OUT.png", param_hint="'--depth-near'")
    if depth_near is not None and depth_far is not None and not depth_far > depth_near:
        raise click.BadParameter(f"--depth-far {depth_far} must exceed --depth-near {depth_near}", param_hint="'--depth-far'")
    try:
        data = read_splats(scene)  # a PlyFormatError (an InputError) reaches the group: `Error: …`, exit 2
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from exc
    if sh_degree is not None and sh_degree > data.sh_degree:
        raise click.BadParameter(
            f"{sh_degree} exceeds the SH degree of {scene} ({data.sh_degree}); use at most {data.sh_degree}",
            param_hint="'--sh-degree'",
        )
    if up is None:
        up = scene_up(data.vertical_axis)
    if camera_path is not None:
        explicit = {name for name in ("width", "height", "fov")
                    if ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT}
        video.render_video(
            data, scene, output, camera_path, width=width, height=height, fov=fov, position=position, look_at=look_at,
            up=up, background=background, sh_degree=sh_degree, dataset_path=dataset_path, frames=frames,
            seconds=seconds, fps=fps, turns=turns, crf=crf, explicit=explicit)
        return
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
            **({"outputs": "RGB+ED"} if depth_out is not None else {}),
        )
    except NoAdapterError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    except BufferTooLargeError as exc:
        raise click.ClickException(f"{exc} (options --width/--height)") from exc
    depth_msg = ""
    if depth_out is not None:  # [H,W,5] = R, G, B, expected depth, alpha
        depth, image = image[..., 3], image[..., [0, 1, 2, 4]]
        span = write_depth(depth_out, depth, image[..., 3], depth_near, depth_far, depth_colormap)
        depth_msg = f"; depth {depth_out}" + (f" (near {span[0]:.4g}, far {span[1]:.4g})" if span else "")
    pixels = to_png_array(image, alpha)
    with atomic_write(output, option="-o/--output") as f:
        Image.fromarray(pixels, "RGBA" if alpha else "RGB").save(f, format="PNG")
    pos = ", ".join(f"{v:.3g}" for v in camera.position)
    click.echo(f"wrote {output} ({width}x{height}, {data.num_splats} splats, SH degree "
               f"{data.sh_degree if sh_degree is None else sh_degree}, camera at ({pos})){depth_msg}")


if __name__ == "__main__":  # pragma: no cover
    main()
