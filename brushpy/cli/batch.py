"""``brushpy batch``: train many scenes on a Ray cluster, one ordinary ``brushpy train`` run each.

    brushpy batch SCENE... -o OUT [--address HOST:6379] [--gpus-per-scene G] [--cpus-per-scene C]
                  [--retries N] [--scenes-file F] -- TRAIN FLAGS...

Everything after ``--`` is passed to ``brushpy train`` for every scene (a scenes file adds each
scene's own flags after them). The work is :func:`brushpy.distributed.batch.run_batch`; this module
parses the options and checks the train flags with ``brushpy train``'s own parser before any
cluster starts.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import OptionError, RunError


class _BatchCommand(click.Command):
    """Splits the arguments at the first ``--``: what follows are ``brushpy train`` flags, kept
    verbatim in ``ctx.meta["train_args"]`` (click would otherwise read them as SCENES)."""

    def parse_args(self, ctx, args):
        args = list(args)
        if "--" in args:
            i = args.index("--")
            args, ctx.meta["train_args"] = args[:i], args[i + 1:]
        else:
            ctx.meta["train_args"] = []
        return super().parse_args(ctx, args)

    def format_usage(self, ctx, formatter):
        formatter.write_usage(ctx.command_path, "[OPTIONS] [SCENES]... -o OUT [-- TRAIN FLAGS...]")


def check_train_flags(args, where: str) -> None:
    """Parse ``args`` with ``brushpy train``'s own options (values converted, nothing run).

    Raises:
        OptionError: an unknown flag or a bad value; names ``where`` the flags came from.
    """
    from .train import train

    try:
        train.make_context("train", ["DATASET", *args], resilient_parsing=False)
    except click.exceptions.Exit:  # --help among them
        raise OptionError(f"{where}: --help is not a train flag here; see brushpy train --help") from None
    except click.ClickException as exc:
        raise OptionError(f"{where}: {exc.format_message()} (flags of brushpy train)") from exc


@click.command("batch", cls=_BatchCommand, context_settings={"max_content_width": 110})
@click.argument("scenes", nargs=-1, type=click.Path(path_type=Path))
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the results: OUT/<scene>/ per scene (exports, checkpoint.npz, metrics.jsonl, "
                   "train.log) and OUT/summary.csv. On a multi-machine cluster, a folder every node sees at this path.")
@click.option("--scenes-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="More scenes: a text file with one 'PATH [TRAIN FLAGS...]' per line, or a CSV with columns "
                   "scene, name (its OUT folder), args (its train flags). Relative paths are from the file's folder.")
@click.option("--address", default=None, metavar="HOST:PORT",
              help="Join the Ray cluster there (the address `ray start --head` prints, e.g. 10.0.0.5:6379; "
                   "ray://HOST:10001 for Ray Client; auto). Default: start a local cluster on this machine.")
@click.option("--gpus-per-scene", type=click.FloatRange(0.0), default=0.0, show_default=True,
              help="GPUs each scene asks for (0.5: two scenes share a GPU; 0: train on CPUs, e.g. lavapipe).")
@click.option("--cpus-per-scene", type=click.FloatRange(0.0), default=1.0, show_default=True,
              help="CPUs each scene asks for.")
@click.option("--retries", type=click.IntRange(0), default=2, show_default=True,
              help="Retries of a scene whose run failed or whose worker died (each resumes from its last checkpoint).")
@click.option("--num-cpus", type=click.IntRange(1), default=None,
              help="CPUs of the local cluster (without --address). Default: all of this machine's.")
@click.option("--dashboard", is_flag=True, help="Start Ray's dashboard with the local cluster (http://127.0.0.1:8265).")
@click.pass_context
def batch(ctx, scenes, out_dir, scenes_file, address, gpus_per_scene, cpus_per_scene, retries, num_cpus, dashboard):
    """Train many SCENES (dataset folders or .zip files, as brushpy train takes) on a Ray cluster:
    one Ray task per scene, each an ordinary brushpy train run with the flags after `--`, writing
    OUT/<scene>/. Needs pip install 'brushpy[distributed]'.

    Example: brushpy batch lego beer -o runs -- --total-steps 7000 --max-resolution 800

    Prints a line per scene as it changes (state, step, PSNR), then a table, also written to
    OUT/summary.csv. A rerun skips finished scenes and resumes interrupted ones from their
    checkpoint; a failed scene is retried (--retries) and then reported with its error.
    Exits 1 when a scene failed.
    """
    from ..distributed.batch import check_train_args, run_batch, scene_specs
    from ..distributed.cluster import require_ray

    require_ray()  # before anything else: say how to install it
    if address is not None and num_cpus is not None:
        raise OptionError("--num-cpus sizes a local cluster; a cluster at --address has the CPUs its nodes declared")
    train_args = ctx.meta.get("train_args", [])
    specs = scene_specs([str(s) for s in scenes], scenes_file)
    check_train_args(train_args, "the train flags after --")
    check_train_flags(train_args, "the train flags after --")
    for spec in specs:
        if spec.args:
            check_train_args(spec.args, f"--scenes-file, scene {spec.name}")
            check_train_flags([*train_args, *spec.args], f"--scenes-file, scene {spec.name}")
    results = run_batch(specs, out_dir, train_args, address=address, gpus_per_scene=gpus_per_scene,
                        cpus_per_scene=cpus_per_scene, retries=retries, num_cpus=num_cpus, dashboard=dashboard,
                        log=click.echo)
    failed = [r.scene for r in results if r.state == "failed"]
    if failed:
        raise RunError(f"{len(failed)} of {len(results)} scenes failed ({', '.join(failed)}); their errors are in "
                       f"{Path(out_dir) / 'summary.csv'} and OUT/<scene>/train.log. Rerun the same command to retry "
                       "them (finished scenes are skipped)")
