"""``brushpy train``: the click command (flags generated from the config dataclasses).

Every field of :class:`~brushpy.train.config.TrainConfig`,
:class:`~brushpy.data.LoadConfig` (those marked for the CLI) and
:class:`~brushpy.train.config.ProcessConfig` becomes a kebab-case flag with
Brush's name and default. Precedence (defaults < the dataset's ``args.txt`` <
flags given on the command line) is :func:`brushpy.train.config.resolve_configs`'s; flag
values are read by the same conversion as ``args.txt`` values
(:func:`brushpy.data.config.convert_option`).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import click
from click.core import ParameterSource

from ..data import DatasetError, LoadConfig
from ..errors import BrushpyError
from ..data.config import convert_option
from ..train.config import ProcessConfig, RunConfigs, TrainConfig, option_fields, resolve_configs
from ..distributed.partition import DEFAULT_MARGIN, DEFAULT_VISIBILITY

GROUPS = (
    ("Training options", TrainConfig),
    ("Dataset options", LoadConfig),
    ("Process options", ProcessConfig),
)


def default_dataset() -> Path:
    """The embedded default scene (a 100x100 lego subset, CC BY 3.0; see its LICENSE.md)."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "assets" / "lego_small", here.parent / "assets" / "lego_small"):
        if (candidate / "transforms_train.json").is_file():
            return candidate
    raise click.ClickException("the embedded default scene (assets/lego_small) is missing; reinstall brushpy "
                               "or pass a dataset folder")


class _FieldType(click.ParamType):
    """A flag's value read as its config field's type (:func:`~brushpy.data.config.convert_option`,
    the conversion ``args.txt`` values get); ``name`` is what ``--help`` shows."""

    def __init__(self, cls, field_name: str, name: str):
        self.cls, self.field_name, self.name = cls, field_name, name

    def convert(self, value, param, ctx):
        try:
            return convert_option(self.cls, self.field_name, value)
        except ValueError as exc:
            self.fail(str(exc).split(": ", 1)[-1], param, ctx)


def _param_for(cls, f, group: str) -> click.Option:
    name = f.name
    flag = "--" + name.replace("_", "-")
    help_text = f.metadata.get("help", "")
    default = f.default
    kw = dict(help=help_text, show_default=default is not None)
    type_str = str(f.type)
    if isinstance(default, bool):
        opt = click.Option([flag + "/--no-" + name.replace("_", "-")], default=default, **kw)
    elif isinstance(default, tuple):
        opt = click.Option([flag], type=_FieldType(cls, name, "R,G,B"), default=",".join(f"{v:g}" for v in default), **kw)
    elif "choices" in f.metadata:
        opt = click.Option([flag], type=click.Choice(f.metadata["choices"]), default=default, **kw)
    else:
        if isinstance(default, int) or type_str.startswith("int"):
            shown = "integer"
        elif isinstance(default, float) or type_str.startswith("float"):
            shown = "float"
        else:
            shown = "text"
        opt = click.Option([flag], type=_FieldType(cls, name, shown), default=default, **kw)
    opt.brushpy_group = group
    return opt


class _GroupedCommand(click.Command):
    """A command whose ``--help`` lists options under their config group."""

    def format_options(self, ctx, formatter):
        sections: dict[str, list] = {}
        for p in self.get_params(ctx):
            rec = p.get_help_record(ctx)
            if rec is not None:
                sections.setdefault(getattr(p, "brushpy_group", "Other options"), []).append(rec)
        for title in [g for g, _ in GROUPS] + ["Other options"]:
            if title in sections:
                with formatter.section(title):
                    formatter.write_dl(sections[title])


def _given_values(ctx: click.Context, opts: dict) -> dict:
    """The config options set on the command line (or by environment / prompt): ``{name: value}``."""
    given = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT, ParameterSource.PROMPT)
    # ``none``/``auto`` clear an optional option (click has converted them to None already); pass
    # them on as text, because resolve_configs reads a None value as "not given" (the default).
    return {f.name: "none" if opts[f.name] is None else opts[f.name] for _, cls in GROUPS
            for f in option_fields(cls) if ctx.get_parameter_source(f.name) in given}


def _resolve(dataset, given: dict, note_unknown: bool = True) -> RunConfigs:
    """:func:`resolve_configs` with unknown args.txt options reported.

    Raises:
        OptionError: a bad option value (names the flag, and args.txt when set there); the
            ``brushpy`` group prints it as ``Error: …`` with exit code 2.
    """
    try:
        configs = resolve_configs(dataset, given)
    except OSError as exc:
        raise DatasetError(f"{dataset}: cannot read the dataset ({exc})") from exc
    if note_unknown and configs.unknown:
        click.echo(f"note: {dataset}/args.txt sets options brushpy does not know: "
                   + ", ".join("--" + u.replace("_", "-") for u in configs.unknown), err=True)
    return configs


def _build_configs(ctx: click.Context, dataset: Path, opts: dict):
    """Defaults < args.txt < command line, before the dataset is loaded.

    Returns ``(TrainConfig, LoadConfig, ProcessConfig, user_set)`` where ``user_set`` holds
    the option names set on the command line or in args.txt.
    """
    c = _resolve(dataset, _given_values(ctx, opts))
    return c.train, c.load, c.process, set(c.user_set)


def _train_params():
    ps = [click.Argument(["dataset"], required=False, type=click.Path(path_type=Path))]
    for group, cls in GROUPS:
        ps += [_param_for(cls, f, group) for f in option_fields(cls)]
    extra = [
        click.Option(["--resume"], type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="Continue from a checkpoint.npz written by an earlier run."),
        click.Option(["--overwrite"], is_flag=True,
                     help="Train into an --export-path that holds another run's checkpoint (its metrics start afresh)."),
        click.Option(["--sfm-dir"], type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Photos or a video without poses: the folder structure from motion writes to and reuses "
                          "(default: DATASET_sfm beside DATASET). Needs pip install 'brushpy[sfm]'."),
        click.Option(["--viewer"], is_flag=True, help="Show training live in the desktop window."),
        click.Option(["--web"], is_flag=True,
                     help="Show training live in a browser (viser web viewer at http://localhost:PORT). "
                          "Needs pip install 'brushpy[web]'."),
        click.Option(["--port"], type=click.IntRange(1, 65535), default=8080, show_default=True,
                     help="The web viewer's port (with --web)."),
        click.Option(["--web-host"], default="0.0.0.0", show_default=True,
                     help="The address the web viewer listens on (127.0.0.1: this machine only)."),
        click.Option(["--quiet", "-q"], is_flag=True, help="No progress bar."),
        click.Option(["--partition"], default=None, metavar="RxC",
                     help="Train the scene split into R×C ground-plane blocks (VastGaussian / CityGaussian), each "
                          "block a Ray task with the other options, then merge them into one splat file; "
                          "--total-steps is the budget of all blocks and the fine-tune together. "
                          "Needs pip install 'brushpy[distributed]'."),
        click.Option(["--partition-margin"], type=click.FloatRange(0.0), default=DEFAULT_MARGIN, show_default=True,
                     help="With --partition: overlap of the blocks, a fraction of a block's size on each inner side."),
        click.Option(["--partition-visibility"], type=click.FloatRange(0.0, 1.0, min_open=True),
                     default=DEFAULT_VISIBILITY, show_default=True,
                     help="With --partition: a view trains a block when it sees at least this fraction of the "
                          "block's points (or its camera is over the block)."),
        click.Option(["--partition-finetune-steps"], type=click.IntRange(0), default=0, show_default=True,
                     help="With --partition: fine-tune the merged splats on all views for this many steps "
                          "(taken from --total-steps)."),
        click.Option(["--address"], default=None,
                     help="With --partition: the Ray cluster to run on (ray://HOST:10001, HOST:6379 or auto; "
                          "default: a local cluster on this machine)."),
    ]
    for p in extra:
        p.brushpy_group = "Other options"
    return ps + extra


#: The embedded scene's schedule, sized for "a recognisable lego in under 5 minutes on a
#: 2-core CPU without a GPU" (lavapipe runs ~3 steps/s at 100x100 with ~10k splats).
#: Measured (lavapipe, 2 shared cores, seed 42): refine every 100 steps reaches 21.9 /
#: 26.2 / 28.7 dB eval PSNR at steps 200 / 400 / 600 (refine every 200: 21.0 dB at 200).
EMBEDDED_DEFAULTS = {"total_steps": 800, "refine_every": 100, "growth_stop_iter": 600}
EMBEDDED_PROCESS_DEFAULTS = {"eval_every": 200, "export_every": 800}


def _embedded_defaults(user_set: set, train_cfg: TrainConfig, process_cfg: ProcessConfig):
    """Apply :data:`EMBEDDED_DEFAULTS` to every option the user did not set (``user_set``,
    :attr:`RunConfigs.user_set <brushpy.train.config.RunConfigs>`); the growth stop and export period only when
    ``--total-steps`` is not set either."""
    t = {k: v for k, v in EMBEDDED_DEFAULTS.items() if k not in user_set}
    p = {k: v for k, v in EMBEDDED_PROCESS_DEFAULTS.items() if k not in user_set}
    if "total_steps" in user_set:  # a user-chosen length keeps the usual growth and export schedule
        t.pop("growth_stop_iter", None)
        p.pop("export_every", None)
    else:
        click.echo(f"embedded scene: {t['total_steps']} steps (pass --total-steps to change)")
    return replace(train_cfg, **t), replace(process_cfg, **p)


def _train(dataset: Path | None, resume: Path | None, overwrite: bool, sfm_dir: Path | None, viewer: bool,
           quiet: bool, web: bool = False, port: int = 8080, web_host: str = "0.0.0.0", partition: str | None = None,
           partition_margin: float = DEFAULT_MARGIN, partition_visibility: float = DEFAULT_VISIBILITY,
           partition_finetune_steps: int = 0, address: str | None = None, **opts):
    """Train Gaussian splats on DATASET (a COLMAP project, a nerfstudio transforms.json
    folder, a NeRF-synthetic scene, a 7-Scenes RGB-D frame folder, or a .zip of one) and
    export the splats (a PLY, or the --export-format).

    A folder of photos without poses, or a video, is first reconstructed with structure
    from motion (as `brushpy sfm`; pycolmap) into DATASET_sfm beside it (or --sfm-dir),
    which the next run reuses.

    Without DATASET, trains on the embedded 100x100 lego scene (NeRF-synthetic,
    CC BY 3.0) in a few minutes, even on a CPU-only machine.

    Ctrl-C (SIGINT) or SIGTERM stop after the current step, save an export and a
    checkpoint, and exit with 130 or 143; a second signal exits at once.

    With --partition RxC the scene is split into ground-plane blocks trained as Ray tasks
    (docs/DEVELOPING.md, "Partitioned training"); the merged splats are written to
    EXPORT_PATH/merged.ply, the blocks' runs under EXPORT_PATH/blocks/.
    """
    from ..train.run import StopRequested, StopSignals

    ctx = click.get_current_context()
    if partition is not None:
        _train_partitioned(ctx, dataset, overwrite, quiet, opts, partition, partition_margin, partition_visibility,
                           partition_finetune_steps, address, resume=resume, viewer=viewer or web, sfm_dir=sfm_dir)
        return
    if address is not None or partition_finetune_steps:
        raise click.UsageError("--address and --partition-finetune-steps apply to --partition runs only")
    web_at = None
    if web:
        from ..viewer.web import check_web

        if viewer:
            raise click.UsageError("choose one of --viewer (desktop window) and --web (browser)")
        check_web(web_host, port)  # before any work: viser installed, the port free
        web_at = (web_host, port)
    try:
        with StopSignals() as stops:
            summary = _train_run(ctx, dataset, resume, overwrite, viewer, quiet, stops, opts, sfm_dir, web_at)
    except StopRequested as stop:  # while loading (training stops between steps and returns)
        click.echo(str(stop), err=True)
        ctx.exit(stop.exit_code)
    if summary is not None and summary.stop_signal is not None:
        ctx.exit(128 + summary.stop_signal)


def _train_partitioned(ctx, dataset, overwrite, quiet, opts, grid_text, margin, visibility, finetune_steps, address,
                       resume=None, viewer=False, sfm_dir=None):
    """``--partition RxC``: resolve the options as for one run, then
    :func:`brushpy.distributed.partitioned.train_partitioned`."""
    from ..data import load_dataset
    from ..distributed.cluster import require_ray
    from ..distributed.partition import parse_grid
    from ..distributed.partitioned import train_partitioned

    if resume is not None or viewer:
        raise click.UsageError("--partition trains blocks as Ray tasks: --resume, --viewer and --web do not apply "
                               "(a rerun reuses the blocks that finished)")
    grid = parse_grid(grid_text)
    require_ray()  # before any work: the error says how to install it
    embedded = dataset is None
    if embedded:
        dataset = default_dataset()
    if not Path(dataset).exists():
        raise click.ClickException(f"dataset {dataset} does not exist")
    dataset = _poses_for(Path(dataset), sfm_dir, quiet)
    given = _given_values(ctx, opts)
    load_cfg = _resolve(Path(dataset), given).load
    scene = load_dataset(dataset, replace(load_cfg, progress=False), decode=False)
    configs = _resolve(scene, given, note_unknown=False)
    train_cfg, process_cfg = configs.train, configs.process
    if embedded:
        train_cfg, process_cfg = _embedded_defaults(configs.user_set, train_cfg, process_cfg)
    summary = train_partitioned(dataset, configs.load, train_cfg, process_cfg, grid, margin, finetune_steps,
                                address, visibility, overwrite=overwrite, progress=not quiet, log=click.echo,
                                scene=scene)
    merged = summary["merged"]
    line = f"merged {merged['num_splats']:,} splats from {len(summary['blocks'])} blocks"
    final = summary.get("finetune", merged)
    if final.get("psnr") is not None:
        line += f"; eval PSNR {final['psnr']:.2f} dB, SSIM {final['ssim']:.4f}"
    click.echo(f"{line}; wrote {summary['export']} (figures in {Path(summary['export']).parent / 'partition.json'})")


def _poses_for(dataset: Path, sfm_dir: Path | None, quiet: bool) -> Path:
    """``dataset`` itself when it has camera poses; for photos without poses or a video, the COLMAP
    project structure from motion makes (or made on an earlier run) in ``sfm_dir`` / beside it."""
    from ..data.sfm_cache import ensure_sfm, needs_sfm

    if not needs_sfm(dataset):
        if sfm_dir is not None:
            click.echo(f"note: {dataset} has camera poses; --sfm-dir is not used", err=True)
        return dataset
    folder, _ = ensure_sfm(dataset, sfm_dir, progress=not quiet, log_fn=click.echo)
    return folder


def _train_run(ctx, dataset, resume, overwrite, viewer, quiet, stops, opts, sfm_dir=None, web_at=None):
    """Load, resolve the options and train; returns the run's summary (None with the viewer)."""
    from ..data import load_dataset
    from ..train.run import run_training

    embedded = dataset is None
    if embedded:
        dataset = default_dataset()
        click.echo(f"no dataset given: training on the embedded scene {dataset} "
                   "(NeRF-synthetic lego by Mildenhall et al., CC BY 3.0)")
    if not Path(dataset).exists():
        raise click.ClickException(f"dataset {dataset} does not exist")
    dataset = _poses_for(Path(dataset), sfm_dir, quiet)
    given = _given_values(ctx, opts)
    load_cfg = _resolve(Path(dataset), given).load
    try:
        scene = load_dataset(dataset, replace(load_cfg, progress=not quiet))  # logs its warnings (shown once)
        configs = _resolve(scene, given, note_unknown=False)  # + the options the dataset's format implies
        train_cfg, process_cfg = configs.train, configs.process
        if embedded:
            train_cfg, process_cfg = _embedded_defaults(configs.user_set, train_cfg, process_cfg)
        if "background_color" in configs.implied:
            click.echo("NeRF-synthetic scene: white background (as usual for these scenes; --background-color changes it)")
        click.echo(f"{scene.name}: {len(scene.train_views)} training views, {len(scene.eval_views)} eval views")
        if viewer:
            from .view import import_viewer

            _, run_training_viewer, NoDisplayError = import_viewer()

            try:
                run_training_viewer(scene, train_cfg, process_cfg, resume=resume)
            except NoDisplayError as exc:
                raise click.ClickException(f"{exc} (or train without --viewer)") from exc
            return None
        if web_at is not None:
            from ..viewer.web import train_with_web

            return train_with_web(web_at, scene, train_cfg, process_cfg, resume=resume, progress=not quiet,
                                  overwrite=overwrite, stops=stops)
        return run_training(scene, train_cfg, process_cfg, resume=resume, progress=not quiet, log=click.echo,
                            overwrite=overwrite, stop_signals=stops)
    except BrushpyError:
        raise  # the brushpy group prints it as "Error: …" (exit 2 bad input, 1 a failed run)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc


train = _GroupedCommand("train", params=_train_params(), callback=_train, help=_train.__doc__,
                        context_settings={"max_content_width": 110})


if __name__ == "__main__":  # pragma: no cover
    sys.exit(train())
