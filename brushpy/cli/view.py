"""``brushpy view [PATH]``: the click command (attached to the CLI group by brushpy.cli)."""

from __future__ import annotations

import click

from ..errors import InputError

#: The modules of the ``viewer`` extra (``pip install 'brushpy[viewer]'``).
VIEWER_MODULES = ("imgui_bundle", "rendercanvas", "glfw")


class ViewerNotInstalled(InputError):
    """The desktop viewer was asked for but the ``viewer`` extra is not installed."""


def import_viewer():
    """``(run_viewer, run_training_viewer, NoDisplayError)`` from :mod:`brushpy.viewer`.

    Raises:
        ViewerNotInstalled: a module of the viewer extra is missing (the message says how to
            install it).
    """
    import importlib

    try:
        for name in VIEWER_MODULES:  # the window imports them lazily: check up front, before any work
            importlib.import_module(name)
        from ..viewer import run_training_viewer, run_viewer
        from ..viewer.app import NoDisplayError
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] in VIEWER_MODULES:
            raise ViewerNotInstalled(f"the viewer needs the viewer extra: pip install 'brushpy[viewer]' "
                                     f"(module {exc.name} is missing)") from None
        raise
    return run_viewer, run_training_viewer, NoDisplayError


@click.command("view")
@click.argument("path", required=False, type=click.Path(path_type=str))
@click.option("--width", default=1280, show_default=True, help="Window width in pixels.")
@click.option("--height", default=720, show_default=True, help="Window height in pixels.")
@click.option("--web", is_flag=True, help="Serve PATH (a splat file) to a browser instead of opening a window "
              "(viser web viewer at http://localhost:PORT; needs pip install 'brushpy[web]').")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True,
              help="The web viewer's port (with --web).")
@click.option("--web-host", default="0.0.0.0", show_default=True,
              help="The address the web viewer listens on (127.0.0.1: this machine only).")
def view_command(path, width, height, web, port, web_host):
    """Open a window showing splats: a splat file (.ply, .compressed.ply, .spz, .sog,
    meta.json, .splat), a folder or a .zip of them; a MIP model .npz from `brushpy mip
    train` (drawn with the MIP blend); or a dataset (COLMAP, transforms.json,
    NeRF-synthetic), which trains live in the window. A file that names its vertical
    axis opens with that axis up.

    \b
    Left drag orbit, right drag look around, middle drag (Ctrl+left) pan,
    wheel zoom, W/A/S/D/Q/E fly (Shift faster), Home frames the scene,
    F toggles fullscreen, H hides the panels. Drop a file on the window to open it.

    With --web, PATH (a splat file) is served to a browser until Ctrl-C; its panel's
    "brushpy render" shows brushpy's own rasterizer output for the browser's camera.
    """
    if web:
        from ..viewer.web import check_web, view_web

        if path is None:
            raise click.UsageError("--web needs a splat file to show: brushpy view --web FILE")
        check_web(web_host, port)
        view_web(path, port=port, host=web_host)
        return
    run_viewer, _, NoDisplayError = import_viewer()
    if width < 1 or height < 1:
        raise click.BadParameter("the window must be at least 1x1 pixels", param_hint="--width/--height")
    try:
        run_viewer(path, size=(width, height))
    except NoDisplayError as exc:
        raise click.ClickException(str(exc)) from exc


#: The name brushpy.cli's lazy group looks up for ``brushpy view``.
view = view_command
