"""Photos without poses as a dataset: when to run structure from motion, and its cached result.

``brushpy train PHOTOS_OR_VIDEO`` calls :func:`ensure_sfm`: a folder of photos with no camera
poses (no COLMAP model, no ``transforms.json`` / ``transforms_train.json``, no 7-Scenes
``.pose.txt`` frames), or a video file, is reconstructed by :func:`brushpy.data.sfm.run_sfm` into
a folder beside it (``<name>_sfm``, see :func:`default_sfm_dir`) or a folder of the caller's
choosing, and that COLMAP project is what gets trained. The next run reuses it while its
``sfm.json`` says it is complete and the input's fingerprint (every image's name, size and
modification time) is unchanged (and the SfM options, when the caller gives some); otherwise it
is redone in place.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from .sfm import SfmOptions, SfmResult, find_images, input_fingerprint, read_sfm_json, run_sfm
from .video_frames import is_video

__all__ = ["cached_sfm", "default_sfm_dir", "ensure_sfm", "needs_sfm"]

log = logging.getLogger("brushpy.data")


def needs_sfm(path: str | Path) -> bool:
    """Whether ``path`` is a video file, or a folder of images without camera poses.

    A folder has poses when it holds a COLMAP model (``cameras`` + ``images`` files), a
    ``transforms.json`` / ``transforms_train.json``, or ``*.pose.txt`` files; those (and zips,
    and folders without images) are left to :func:`brushpy.data.load_dataset`.
    """
    path = Path(path)
    if is_video(path):
        return True
    if not path.is_dir():
        return False
    from .colmap import find_models
    from .source import DatasetSource

    source = DatasetSource(path)
    if find_models(source):
        return False
    for f in source.files:
        base = f.rsplit("/", 1)[-1].lower()
        if base in ("transforms.json", "transforms_train.json") or base.endswith(".pose.txt"):
            return False
    return bool(find_images(path))


def default_sfm_dir(path: str | Path) -> Path:
    """``<parent>/<name>_sfm`` beside a photo folder, ``<parent>/<stem>_sfm`` beside a video."""
    path = Path(path)
    name = path.stem if path.is_file() else path.resolve().name
    return path.resolve().parent / f"{name}_sfm"


def cached_sfm(source: str | Path, sfm_dir: str | Path, options: SfmOptions | None = None) -> dict | None:
    """The ``sfm.json`` of a complete earlier run in ``sfm_dir`` made from the same input (and,
    when ``options`` is given, with the same options), or None (absent, incomplete, or stale)."""
    record = read_sfm_json(sfm_dir)
    if not record or not record.get("complete"):
        return None
    if record.get("input_fingerprint") != input_fingerprint(source):
        return None
    if options is not None and record.get("options") != options.fingerprint():
        return None
    if not (Path(sfm_dir) / "sparse" / "0").is_dir():
        return None
    return record


def ensure_sfm(source: str | Path, sfm_dir: str | Path | None = None, options: SfmOptions | None = None,
               log_fn=None, progress: bool = True, on_progress=None) -> tuple[Path, SfmResult | None]:
    """The COLMAP project of the photos or video ``source``: reused from ``sfm_dir`` when valid
    (:func:`cached_sfm`), else made there by :func:`~brushpy.data.sfm.run_sfm`.

    Args:
        source: a photo folder or video (see :func:`needs_sfm`).
        sfm_dir: where the project lives; None: :func:`default_sfm_dir`.
        options: SfM options; None: :class:`SfmOptions` defaults for a new run, and any complete
            earlier run of the same input is reused (e.g. one ``brushpy sfm`` made with other options).
        log_fn: called with progress lines; None: the ``brushpy.data`` logger.
        progress: tqdm bars for each stage (replaces ``options.progress``).
        on_progress: ``on_progress(stage, done, total)`` as each stage advances (replaces
            ``options.on_progress``; see :class:`~brushpy.data.sfm.SfmOptions`).

    Returns:
        ``(project folder, SfmResult or None when reused)``.

    Raises:
        everything :func:`~brushpy.data.sfm.run_sfm` raises; an :class:`~brushpy.errors.InputError`
        naming ``--sfm-dir`` when the folder exists and holds files of something other than an SfM run.
    """
    say = log_fn or (lambda msg: log.info("%s", msg))
    opts = replace(options or SfmOptions(), progress=progress, on_progress=on_progress)
    folder = Path(sfm_dir) if sfm_dir is not None else default_sfm_dir(source)
    record = cached_sfm(source, folder, options)
    if record is not None:
        say(f"{source}: reusing the structure from motion in {folder} ({record.get('registered')}/"
            f"{record.get('images')} images registered; delete that folder to redo it)")
        return folder, None
    previous = read_sfm_json(folder)
    if previous is not None:
        why = "was interrupted" if not previous.get("complete") else "is out of date (the photos or options changed)"
        say(f"{source}: the structure from motion in {folder} {why}; running it again")
    else:
        say(f"{source}: no camera poses; running structure from motion into {folder}")
    result = run_sfm(source, folder, opts, overwrite=previous is not None, log_fn=say, option="--sfm-dir")
    say(result.summary())
    return folder, result
