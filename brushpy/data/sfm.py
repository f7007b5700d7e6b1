"""Structure from motion with pycolmap: photos (or a video) in, a COLMAP project out.

:func:`run_sfm` drives COLMAP's own pipeline through its Python bindings (pycolmap, an
optional dependency: ``pip install 'brushpy[sfm]'``); nothing of the reconstruction itself is
brushpy's. The stages, each with a tqdm bar and its wall time in :attr:`SfmResult.stage_seconds`:

1. ``frames`` (a video only, :mod:`brushpy.data.video_frames`): the sharpest frame of each window.
2. ``features``: the images are imported (one camera per folder, or per image; the camera model
   of :attr:`SfmOptions.camera_model`, focal length from EXIF or 1.2 x the long side) and SIFT
   features extracted on the CPU (or CUDA where pycolmap has it) at most
   :attr:`SfmOptions.max_image_size` pixels on the long side, a few images per call so the
   bar moves.
3. ``matching``: the image pairs of COLMAP's exhaustive or sequential pair generator
   (``auto``: sequential for video frames, exhaustive up to :data:`EXHAUSTIVE_MAX_IMAGES`
   images, sequential above; sequential = the next :data:`SEQUENTIAL_OVERLAP` images by name),
   matched and geometrically verified in blocks. When ``auto``'s exhaustive model looks like
   ordered photos with a folded segment (the camera path in name order is smooth but for a
   few jumps), matching and mapping are run again with sequential pairs on the same features
   and the model with fewer jumps is kept (``sfm.json``: ``auto_retry``).
4. ``mapping``: incremental mapping (COLMAP's ``mapper``) or, where the installed pycolmap has
   it, global mapping (GLOMAP); the model with the most registered images is kept. Fewer
   registered than :attr:`SfmOptions.min_registered` of the images (or fewer than 2) is an
   :class:`SfmError` that says what to try.
5. ``undistortion``: images and cameras undistorted to PINHOLE (COLMAP's image undistorter).

The output folder is a COLMAP project every splatting trainer reads (brushpy, Brush, gsplat,
nerfstudio): ``images/`` (undistorted), ``sparse/0/`` (``cameras.bin``, ``images.bin``,
``points3D.bin``, and pycolmap's ``rigs.bin`` / ``frames.bin``), ``database.db`` (features and
matches), ``frames/`` (a video's extracted frames) and ``sfm.json`` (options, input
fingerprint, counts, stage times; ``"complete": true`` once every stage has finished).
COLMAP's own log is silenced unless :attr:`SfmOptions.colmap_log`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BrushpyError, InputError, RunError

__all__ = [
    "CAMERA_MODELS", "EXHAUSTIVE_MAX_IMAGES", "IMAGE_EXTENSIONS", "MATCHERS", "MAPPERS", "SEQUENTIAL_OVERLAP",
    "SfmError", "SfmOptions",
    "SfmResult", "SfmUnavailableError", "find_images", "input_fingerprint", "mappers_available", "read_sfm_json",
    "require_pycolmap", "run_sfm",
]

log = logging.getLogger("brushpy.data")

#: Image file endings the SfM reads (lower case): what COLMAP's image reader decodes.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
#: Camera models offered (COLMAP's names); all are undistorted to PINHOLE at the end.
CAMERA_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV", "OPENCV_FISHEYE")
MATCHERS = ("auto", "exhaustive", "sequential")
MAPPERS = ("incremental", "global")
#: ``auto`` matches every pair up to this many images (video frames: always sequential).
EXHAUSTIVE_MAX_IMAGES = 100
#: Sequential matching pairs each image with the next this many (by name). COLMAP's quadratic
#: overlap (also i+2^k) is off: on the beer orbit (a can printed alike on opposite sides) those
#: long-range pairs matched opposite sides and folded a segment of the orbit (1 jump in the
#: camera path at 1024 px), while neighbours alone gave an unbroken path (docs/DEVELOPING.md,
#: "Structure from motion").
SEQUENTIAL_OVERLAP = 10
#: The pycolmap release this module is written for (its 4.x API; tested with 4.2.1).
MIN_PYCOLMAP = (4, 2)
#: Folders of a photo folder that never hold photos to reconstruct (as the COLMAP loader skips them).
SKIPPED_FOLDERS = ("masks", "depth", "depths", "sparse", "distorted", "stereo")
#: Name of the summary file in the output folder.
SFM_JSON = "sfm.json"
_WORK = ".sfm-work"  # scratch folder inside the output (removed at the end)
_OWNED = ("images", "sparse", "frames", "database.db", "database.db-wal", "database.db-shm", _WORK, SFM_JSON)


class SfmError(RunError):
    """Structure from motion ran but did not give a usable model (the message says what to try)."""


class SfmUnavailableError(RunError):
    """pycolmap is missing or too old (the message says how to install it)."""


@dataclass
class SfmOptions:
    """Options of :func:`run_sfm` (``brushpy sfm``'s flags).

    Attributes:
        camera_model: COLMAP camera model fitted to the photos (:data:`CAMERA_MODELS`).
        camera_per: ``"folder"``: one camera shared by the photos of each folder (one phone,
            one zoom); ``"image"``: one camera per photo (mixed cameras or zoom).
        max_image_size: long side, in pixels, the images are scaled to for SIFT (smaller is
            faster and finds fewer features; the output images keep their full size).
        matcher: ``"auto"``, ``"exhaustive"`` or ``"sequential"`` (:data:`MATCHERS`).
        mapper: ``"incremental"`` or ``"global"`` (where pycolmap has ``global_mapping``).
        fps: frames kept per second of a video; None: about ``TARGET_FRAMES`` frames.
        min_registered: fraction of the images that must register (below: :class:`SfmError`).
        seed: random seed of COLMAP's RANSAC and mapper.
        num_threads: CPU threads for COLMAP (-1: all).
        colmap_log: show COLMAP's own log (else nothing of it: its failures become brushpy's errors).
        progress: tqdm bars.
        on_progress: called as ``on_progress(stage, done, total)`` as each stage advances
            (``stage`` as in :attr:`SfmResult.stage_seconds`, plus ``"checking"``; from COLMAP's
            threads during mapping); e.g. the viewer's status line.
    """

    camera_model: str = "SIMPLE_RADIAL"
    camera_per: str = "folder"
    max_image_size: int = 1600
    matcher: str = "auto"
    mapper: str = "incremental"
    fps: float | None = None
    min_registered: float = 0.5
    seed: int = 0
    num_threads: int = -1
    colmap_log: bool = False
    progress: bool = True
    on_progress: Callable[[str, int, int], None] | None = None

    def fingerprint(self) -> dict:
        """The options that change the result (for deciding whether a cached model is still valid)."""
        return {k: getattr(self, k) for k in ("camera_model", "camera_per", "max_image_size", "matcher", "mapper",
                                              "fps", "seed")}

    def check(self) -> None:
        """Raise :class:`~brushpy.errors.OptionError` naming the flag of an option out of range."""
        from ..errors import OptionError

        if self.camera_model not in CAMERA_MODELS:
            raise OptionError(f"--camera-model {self.camera_model}: use one of {', '.join(CAMERA_MODELS)}")
        if self.camera_per not in ("folder", "image"):
            raise OptionError(f"--camera-per {self.camera_per}: use folder or image")
        if self.matcher not in MATCHERS:
            raise OptionError(f"--matcher {self.matcher}: use one of {', '.join(MATCHERS)}")
        if self.mapper not in MAPPERS:
            raise OptionError(f"--mapper {self.mapper}: use one of {', '.join(MAPPERS)}")
        if self.max_image_size < 64:
            raise OptionError(f"--max-image-size {self.max_image_size}: use at least 64 pixels (1600 is the default)")
        if not 0.0 <= self.min_registered <= 1.0:
            raise OptionError(f"--min-registered {self.min_registered}: use a fraction in [0, 1]")
        if self.fps is not None and not self.fps > 0:
            raise OptionError(f"--fps {self.fps}: give a positive number of frames per second")


@dataclass
class SfmResult:
    """What :func:`run_sfm` made.

    Attributes:
        output: the COLMAP project folder.
        images: images COLMAP worked with (readable, with features; the others are in ``skipped``).
        registered: images with a pose in ``sparse/0``.
        points: 3D points in ``sparse/0``.
        mean_reprojection_error: pixels, over all observations of the mapped model.
        matcher, mapper: what ran (``auto`` resolved).
        stage_seconds: wall time of each stage that ran (``frames``, ``features``,
            ``matching``, ``mapping``, ``undistortion``; ``matching (sequential retry)`` and
            ``mapping (sequential retry)`` where ``auto`` retried).
        skipped: images left out, with why (unreadable, or no features).
        unregistered: images COLMAP could not place.
        frames: video frames extracted (0 for a photo folder).
        models: separate models COLMAP made (only the largest is kept).
    """

    output: Path
    images: int
    registered: int
    points: int
    mean_reprojection_error: float
    matcher: str
    mapper: str
    stage_seconds: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    unregistered: list[str] = field(default_factory=list)
    frames: int = 0
    models: int = 1

    def summary(self) -> str:
        """One line: registered / total (and the images skipped), points, mean reprojection error, stage times."""
        times = ", ".join(f"{k} {v:.1f} s" for k, v in self.stage_seconds.items())
        skipped = f" ({len(self.skipped)} more skipped)" if self.skipped else ""
        return (f"registered {self.registered}/{self.images} images{skipped}, {self.points:,} points, "
                f"mean reprojection error {self.mean_reprojection_error:.2f} px ({self.matcher} matching, "
                f"{self.mapper} mapping; {times})")


# ------------------------------------------------------------------ pycolmap


def require_pycolmap():
    """The ``pycolmap`` module.

    Raises:
        SfmUnavailableError: it is not installed, or older than :data:`MIN_PYCOLMAP` (the message
            says ``pip install 'brushpy[sfm]'``).
    """
    try:
        import pycolmap
    except ImportError as exc:
        raise SfmUnavailableError(
            f"structure from motion needs pycolmap, which is not installed ({exc}): pip install 'brushpy[sfm]'"
        ) from None
    version = getattr(pycolmap, "__version__", "0")
    parts = []
    for p in version.split(".")[:2]:
        digits = "".join(ch for ch in p if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    if tuple(parts) < MIN_PYCOLMAP:
        raise SfmUnavailableError(
            f"structure from motion needs pycolmap >= {'.'.join(map(str, MIN_PYCOLMAP))}, found {version}: "
            "pip install -U 'brushpy[sfm]'")
    return pycolmap


def mappers_available(pycolmap=None) -> tuple[str, ...]:
    """The :data:`MAPPERS` the installed pycolmap offers (``global`` needs ``pycolmap.global_mapping``)."""
    if pycolmap is None:
        try:
            pycolmap = require_pycolmap()
        except SfmUnavailableError:
            return ()
    return tuple(m for m in MAPPERS if m != "global" or hasattr(pycolmap, "global_mapping"))


@contextlib.contextmanager
def _colmap_log(pycolmap, show: bool):
    """COLMAP's (glog) log: silenced unless ``show`` (its failures reach the user as brushpy's own
    errors: exceptions, or too few registered images); the previous level is put back when the
    block ends normally."""
    previous = pycolmap.logging.minloglevel
    pycolmap.logging.minloglevel = previous if show else max(previous, 3)  # 3: FATAL only
    yield
    # not on an exception: after Ctrl-C a COLMAP thread may still be finishing and logging
    pycolmap.logging.minloglevel = previous


def _call(pycolmap, stage: str, fn, *args, cancellable: bool = True, **kwargs):
    """``fn(*args, **kwargs)`` in a worker thread (pycolmap releases the GIL), so that Ctrl-C or a
    stop signal in the main thread cancels it through a ``CancellationToken`` and is raised here.

    Raises:
        SfmError: COLMAP stopped with an error (names the stage).
    """
    token = pycolmap.CancellationToken() if cancellable and hasattr(pycolmap, "CancellationToken") else None
    if token is not None:
        kwargs["cancellation_token"] = token
    box: dict = {}

    def work():
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=work, name=f"brushpy-sfm-{stage}", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.1)
    except BaseException:  # Ctrl-C / a stop signal: cancel COLMAP, then let it propagate
        if token is not None:
            token.cancel()
        worker.join(None if token is not None else 5.0)  # an uncancellable call: wait a little
        raise
    exc = box.get("error")
    if exc is not None:
        if isinstance(exc, BrushpyError):
            raise exc
        if isinstance(exc, InterruptedError):
            raise KeyboardInterrupt from exc
        raise SfmError(f"{stage}: COLMAP stopped with an error: {exc}") from exc
    return box.get("value")


# ------------------------------------------------------------------ inputs


def find_images(folder: str | Path) -> list[str]:
    """Image files below ``folder`` (:data:`IMAGE_EXTENSIONS`, any case), as ``/``-separated
    paths relative to it, sorted with digit runs compared as numbers; hidden files and folders
    and :data:`SKIPPED_FOLDERS` are left out."""
    from .scene import natural_key

    folder = Path(folder)
    out = []
    for root, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d.lower() not in SKIPPED_FOLDERS]
        rel_root = os.path.relpath(root, folder)
        for name in names:
            if name.startswith(".") or not name.lower().endswith(IMAGE_EXTENSIONS):
                continue
            rel = name if rel_root == "." else f"{rel_root}/{name}"
            out.append(rel.replace(os.sep, "/"))
    return sorted(out, key=natural_key)


def _unreadable(folder: Path, names: list[str], progress: bool = False, callback=None) -> dict[str, str]:
    """``{name: reason}`` for files Pillow cannot decode: not an image, no pixels, or damaged
    (truncated) data. JPEGs are decoded at 1/8 scale (the whole stream is still read, which is
    what finds a truncated file; about 6 ms for a 720x1280 photo)."""
    from PIL import Image, UnidentifiedImageError

    bad = {}
    with _Stage(len(names), "checking", "image", progress, callback) as bar:
        for name in names:
            try:
                with Image.open(folder / name) as im:
                    if im.width < 1 or im.height < 1:
                        bad[name] = "it has no pixels"
                    else:
                        im.draft("RGB", (max(1, im.width // 8), max(1, im.height // 8)))
                        im.load()
            except UnidentifiedImageError:
                bad[name] = "not an image Pillow can identify (a corrupt file, or another format named like an image)"
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
                bad[name] = f"damaged image data ({exc})"
            bar.update(1)
    return bad


def input_fingerprint(source: str | Path) -> str:
    """A digest of the input: each image's (relative name, size, mtime) for a folder, the file's for
    a video; it changes when a photo is added, removed or rewritten."""
    from .video_frames import is_video

    source = Path(source)
    if is_video(source):
        entries = [(source.name, *_stat(source))]
    else:
        entries = [(n, *_stat(source / n)) for n in find_images(source)]
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()


def _stat(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def read_sfm_json(folder: str | Path) -> dict | None:
    """The ``sfm.json`` of an output folder, or None when absent or unreadable."""
    path = Path(folder) / SFM_JSON
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _inside(child: Path, parent: Path) -> bool:
    try:
        child.relative_to(parent)
        return True
    except ValueError:
        return False


def _prepare_output(source: Path, output: Path, overwrite: bool, option: str) -> None:
    """Check ``output`` is usable and clear what an earlier run left there.

    Raises:
        InputError: ``output`` is a file, is or lies inside the photo folder, holds files of
            something else, or holds an earlier finished run without ``overwrite``.
    """
    from ..io.atomic import ensure_writable_dir

    src, out = source.resolve(), output.resolve()
    if source.is_dir() and (out == src or _inside(out, src)):
        raise InputError(f"{option} {output}: the output must not be the photo folder {source} or inside it "
                         "(its images would be read as photos next time); choose a folder beside it")
    if _inside(src, out) and any(_inside(src, out / name) for name in ("images", "frames", _WORK)):
        raise InputError(f"{option} {output}: the input {source} lies in a folder the SfM writes; "
                         "choose another folder")
    if out.exists() and not out.is_dir():
        raise InputError(f"{option} {output}: it is a file; give a folder")
    if out.is_dir():
        present = {p.name for p in out.iterdir()}
        previous = read_sfm_json(out)
        if previous is None and present - {_WORK}:
            listed = ", ".join(sorted(present)[:3]) + (", ..." if len(present) > 3 else "")
            raise InputError(f"{option} {output}: the folder exists and holds other files ({listed}); "
                             "give a new or empty folder")
        if previous is not None and previous.get("complete") and not overwrite:
            raise InputError(f"{option} {output}: it holds an earlier SfM run; pass --overwrite to replace it, "
                             "or choose another folder")  # an unfinished one is simply redone
        for name in _OWNED:
            p = out / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()
    ensure_writable_dir(out, option)


def _write_json(output: Path, data: dict, option: str) -> None:
    from ..io.atomic import atomic_write

    with atomic_write(output / SFM_JSON, "w", encoding="utf-8", option=option) as f:
        json.dump(data, f, indent=2)
        f.write("\n")


# ------------------------------------------------------------------ stages


class _Stage:
    """One stage's progress: a tqdm bar (unless ``progress`` is off) and ``callback(stage, done, total)``."""

    def __init__(self, total: int, desc: str, unit: str, progress: bool, callback=None):
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=desc, unit=unit, disable=not progress, dynamic_ncols=True)
        self.desc, self.total, self.done, self.callback = desc, int(total), 0, callback
        self._lock = threading.Lock()
        self._report()

    def _report(self) -> None:
        if self.callback is not None:
            self.callback(self.desc, self.done, self.total)

    def update(self, k: int) -> None:
        """Advance by ``k`` (at most to the total); safe from COLMAP's threads."""
        with self._lock:
            k = max(0, min(int(k), self.total - self.done))
            self.done += k
            self.bar.update(k)
            self._report()

    def set_postfix(self, **kw) -> None:
        self.bar.set_postfix(**kw)

    def __enter__(self) -> "_Stage":
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()


def _extract(pycolmap, db_path: Path, image_root: Path, names: list[str], opts: SfmOptions) -> dict[str, str]:
    """Import the images (cameras per folder or per image) and extract SIFT features in chunks.

    Returns:
        ``{name: reason}`` of the images that ended without features (COLMAP could not decode
        them, or found nothing to match).
    """
    mode = pycolmap.CameraMode.PER_IMAGE if opts.camera_per == "image" else pycolmap.CameraMode.PER_FOLDER
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = opts.camera_model
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.max_image_size = int(opts.max_image_size)
    extraction.num_threads = int(opts.num_threads)
    _call(pycolmap, "features", pycolmap.import_images, db_path, image_root, camera_mode=mode, image_names=names,
          options=reader, cancellable=False)
    chunk = max(4, 2 * (os.cpu_count() or 1))
    with _Stage(len(names), "features", "image", opts.progress, opts.on_progress) as bar:
        for i in range(0, len(names), chunk):
            part = names[i:i + chunk]
            _call(pycolmap, "features", pycolmap.extract_features, db_path, image_root, image_names=part,
                  camera_mode=mode, reader_options=reader, extraction_options=extraction,
                  device=pycolmap.Device.auto)
            bar.update(len(part))
        with pycolmap.Database.open(db_path) as db:
            ids = {im.name: im.image_id for im in db.read_all_images()}
            missing = {}
            total = 0
            for name in names:
                if name not in ids:
                    missing[name] = "COLMAP could not read it"
                    continue
                n = db.num_keypoints_for_image(ids[name]) if db.exists_keypoints(ids[name]) else 0
                total += n
                if n == 0:
                    missing[name] = "COLMAP found no features in it (unreadable pixels, or a blank image)"
        bar.set_postfix(keypoints=f"{total:,}")
    return missing


def _pairs(pycolmap, db_path: Path, matcher: str) -> list[tuple[str, str]]:
    """The image pairs (names) COLMAP's exhaustive or sequential pair generator proposes."""
    with pycolmap.Database.open(db_path) as db:
        names = {im.image_id: im.name for im in db.read_all_images()}
        if matcher == "sequential":
            pairing = pycolmap.SequentialPairingOptions()
            pairing.overlap = SEQUENTIAL_OVERLAP
            pairing.quadratic_overlap = False  # see SEQUENTIAL_OVERLAP
            gen = pycolmap.SequentialPairGenerator(pairing, db)
        else:
            gen = pycolmap.ExhaustivePairGenerator(pycolmap.ExhaustivePairingOptions(), db)
        pairs = gen.all_pairs()
    return [(names[a], names[b]) for a, b in pairs]


def _match(pycolmap, db_path: Path, work: Path, matcher: str, opts: SfmOptions) -> tuple[int, int]:
    """Match and verify the pairs in blocks. Returns (pairs tried, pairs verified)."""
    pairs = _pairs(pycolmap, db_path, matcher)
    for a, b in pairs:
        if any(ch.isspace() for ch in a + b):
            raise InputError(f"{a if any(ch.isspace() for ch in a) else b}: COLMAP's pair lists cannot hold image "
                             "names with spaces; rename the photos")
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads = int(opts.num_threads)
    verification = pycolmap.TwoViewGeometryOptions()
    verification.ransac.random_seed = int(opts.seed)
    block = max(50, len(pairs) // 40)
    pair_file = work / "pairs.txt"
    verified = 0
    with _Stage(len(pairs), "matching", "pair", opts.progress, opts.on_progress) as bar:
        for i in range(0, len(pairs), block):
            part = pairs[i:i + block]
            pair_file.write_text("".join(f"{a} {b}\n" for a, b in part), encoding="utf-8")
            pairing = pycolmap.ImportedPairingOptions()
            pairing.match_list_path = str(pair_file)
            _call(pycolmap, "matching", pycolmap.match_image_pairs, db_path, matching_options=matching,
                  pairing_options=pairing, verification_options=verification, device=pycolmap.Device.auto)
            with pycolmap.Database.open(db_path) as db:
                verified = db.num_verified_image_pairs()
            bar.update(len(part))
            bar.set_postfix(verified=verified)
    return len(pairs), verified


def _map(pycolmap, db_path: Path, image_root: Path, out: Path, n_images: int, mapper: str, opts: SfmOptions):
    """Run the mapper into ``out`` (``out/0``, ``out/1``... one per model). Returns the models (a dict)."""
    out.mkdir(parents=True, exist_ok=True)
    pycolmap.set_random_seed(int(opts.seed))
    with _Stage(n_images, "mapping", "image", opts.progress, opts.on_progress) as bar:
        if mapper == "global":
            options = pycolmap.GlobalPipelineOptions()
            options.num_threads = int(opts.num_threads)
            options.random_seed = int(opts.seed)
            models = _call(pycolmap, "mapping", pycolmap.global_mapping, db_path, image_root, out, options=options,
                           cancellable=False)
            best = max((m.num_reg_images() for m in models.values()), default=0)
            bar.update(best)
        else:
            options = pycolmap.IncrementalPipelineOptions()
            options.num_threads = int(opts.num_threads)
            options.random_seed = int(opts.seed)
            def registered(k):  # called from COLMAP's thread
                return lambda: bar.update(k)

            models = _call(pycolmap, "mapping", pycolmap.incremental_mapping, db_path, image_root, out,
                           options=options, initial_image_pair_callback=registered(2),
                           next_image_callback=registered(1))
    return models or {}


def _path_jumps(model) -> list[str]:
    """The jumps of the registered cameras' path in name order
    (:func:`brushpy.data.pose_compare.path_jumps`), as ``"a.jpg -> b.jpg"``."""
    import numpy as np

    from .pose_compare import path_jumps
    from .scene import natural_key

    images = sorted((model.images[i] for i in model.reg_image_ids()), key=lambda im: natural_key(im.name))
    if len(images) < 3:
        return []
    jumps = path_jumps(np.stack([np.asarray(im.projection_center(), np.float64) for im in images]))
    return [f"{images[i].name} -> {images[i + 1].name}" for i in jumps]


def _looks_folded(jumps: list[str], registered: int) -> bool:
    """A smooth path in name order with a few jumps: photos taken in order (a video, a walk
    around the scene) of which a segment was matched across a symmetric or repeated pattern
    by exhaustive matching and folded onto the wrong side (the beer orbit: 3 jumps, 24.6 dB
    after training; sequential matching: none, 30.5 dB). Unordered photos jump often or never
    by that much (the beer cameras in a random order never step more than 3 median steps)."""
    return registered >= 10 and 1 <= len(jumps) <= max(3, registered // 10)


def _prefer_sequential(registered: int, jumps: int, seq_registered: int, seq_jumps: int, needed: int) -> bool:
    """Whether ``auto`` keeps the sequential retry over a folded exhaustive model: it must
    register enough images (``needed``, and at least 95% of the exhaustive model's) and its
    camera path must jump fewer times."""
    return seq_registered >= max(needed, math.ceil(0.95 * registered)) and seq_jumps < jumps


def _reconstruct(pycolmap, db_path: Path, image_root: Path, sparse: Path, work: Path, usable: int, matcher: str,
                 opts: SfmOptions, times: dict, say, suffix: str = ""):
    """Match (``matcher``) and map into ``sparse``. Returns (models, key of the largest or None,
    that model or None, its registered image count or 0); the stage times go into ``times``
    (keys with ``suffix``)."""
    t0 = time.perf_counter()
    n_pairs, n_verified = _match(pycolmap, db_path, work, matcher, opts)
    times["matching" + suffix] = time.perf_counter() - t0
    say(f"matching: {n_verified} of {n_pairs} image pairs verified ({matcher})")
    t0 = time.perf_counter()
    models = _map(pycolmap, db_path, image_root, sparse, usable, opts.mapper, opts)
    times["mapping" + suffix] = time.perf_counter() - t0
    best_key = max(models, key=lambda k: models[k].num_reg_images(), default=None)
    best = models[best_key] if best_key is not None else None
    return models, best_key, best, best.num_reg_images() if best is not None else 0


def _needed(total: int, opts: SfmOptions) -> int:
    """Images that must register: ``min_registered`` of ``total`` (rounded up), and at least 2."""
    return max(2, math.ceil(opts.min_registered * total - 1e-9))


def _too_few(registered: int, total: int, models: int, matcher: str, opts: SfmOptions) -> SfmError:
    tries = ["more photos with more overlap (every part of the scene in 3 or more photos, about 10-20 degrees "
             "apart; avoid blur, plain walls and moving things)"]
    if matcher != "exhaustive":
        tries.append("--matcher exhaustive")
    other = "OPENCV" if opts.camera_model != "OPENCV" else "SIMPLE_RADIAL"
    tries.append(f"--camera-model {other} (OPENCV_FISHEYE for a fisheye or action camera)")
    if opts.max_image_size < 3200:
        tries.append(f"a larger --max-image-size (now {opts.max_image_size})")
    if opts.camera_per == "folder":
        tries.append("--camera-per image if the photos come from several cameras or zoom levels")
    split = f" (COLMAP made {models} separate models; the largest is counted)" if models > 1 else ""
    return SfmError(f"only {registered} of {total} images could be placed{split}; "
                    f"need at least {_needed(total, opts)}. Try: " + "; ".join(tries))


def _undistort(pycolmap, model_dir: Path, image_root: Path, out: Path, names: list[str], opts: SfmOptions) -> None:
    """Undistort the registered images and the model to PINHOLE into ``out`` (``images/``, ``sparse/``)."""
    chunk = max(4, 2 * (os.cpu_count() or 1))
    with _Stage(len(names), "undistortion", "image", opts.progress, opts.on_progress) as bar:
        for i in range(0, len(names), chunk):
            part = names[i:i + chunk]
            _call(pycolmap, "undistortion", pycolmap.undistort_images, out, model_dir, image_root, image_names=part,
                  num_threads=int(opts.num_threads))
            bar.update(len(part))


# ------------------------------------------------------------------ driver


def run_sfm(source: str | Path, output: str | Path, options: SfmOptions | None = None, overwrite: bool = False,
            log_fn=None, option: str = "-o") -> SfmResult:
    """Reconstruct camera poses and sparse points of a photo folder or a video into a COLMAP project.

    Args:
        source: a folder of photos (searched recursively, see :func:`find_images`) or a video
            file (:data:`brushpy.data.video_frames.VIDEO_EXTENSIONS`).
        output: the project folder to write (new, empty, an unfinished earlier run's, or a
            finished earlier run's with ``overwrite``).
        options: :class:`SfmOptions` (defaults: SIMPLE_RADIAL, one camera per folder, 1600 px,
            auto matcher, incremental mapper).
        overwrite: replace an earlier run's output in ``output``.
        log_fn: called with each progress line (the stage summaries); None: the ``brushpy.data``
            logger at INFO.
        option: how messages name the output folder's option (``-o``, ``--sfm-dir``).

    Returns:
        :class:`SfmResult`; ``output/sfm.json`` holds the same figures.

    Raises:
        SfmUnavailableError: pycolmap is missing or too old.
        InputError: ``source`` does not exist, holds fewer than 2 readable images, or ``output``
            cannot be used (see :func:`_prepare_output`); an option out of range.
        video_frames.VideoError: an unreadable video.
        SfmError: too few images registered (says what to try), or COLMAP stopped with an error.
        KeyboardInterrupt: Ctrl-C (COLMAP is cancelled first); the output stays marked incomplete.
    """
    from .video_frames import VIDEO_EXTENSIONS, extract_frames, is_video

    opts = options or SfmOptions()
    opts.check()
    say = log_fn or (lambda msg: log.info("%s", msg))
    pycolmap = require_pycolmap()
    if opts.mapper not in mappers_available(pycolmap):
        raise InputError(f"--mapper {opts.mapper}: this pycolmap ({pycolmap.__version__}) has no global mapper; "
                         "use --mapper incremental or upgrade pycolmap")
    source, output = Path(source), Path(output)
    if not source.exists():
        raise InputError(f"{source} does not exist: give a folder of photos or a video file")
    video = is_video(source)
    if not video and not source.is_dir():
        raise InputError(f"{source}: not a folder of photos nor a video this reader knows (a file ending in "
                         f"{', '.join(VIDEO_EXTENSIONS)})")
    _prepare_output(source, output, overwrite, option)
    fingerprint = input_fingerprint(source)
    record = {"complete": False, "input": str(source.resolve()), "input_fingerprint": fingerprint,
              "options": opts.fingerprint(), "pycolmap": pycolmap.__version__}
    _write_json(output, record, option)
    times: dict[str, float] = {}
    work = output / _WORK
    work.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    n_frames = 0
    if video:
        frames = extract_frames(source, output / "frames", fps=opts.fps, progress=opts.progress,
                                on_progress=opts.on_progress)
        times["frames"] = time.perf_counter() - t0
        n_frames = len(frames.frames)
        image_root = output / "frames"
        names = [p.name for p in frames.frames]
        fps_txt = f"{frames.fps_used:.2f} frames/s" if frames.fps_used else f"1 frame in {frames.window:.1f}"
        say(f"{source}: kept {n_frames} of {frames.frames_read} frames ({fps_txt}, the sharpest of each window)")
    else:
        image_root = source
        names = find_images(source)
        if not names:
            raise InputError(f"{source}: no images found (looked for {', '.join(IMAGE_EXTENSIONS)} files, also in "
                             "subfolders); give a folder of photos or a video file")
    skipped = {} if video else _unreadable(image_root, names, opts.progress, opts.on_progress)
    for name, why in skipped.items():
        log.warning("%s: skipped: %s", image_root / name, why)
    names = [n for n in names if n not in skipped]
    if len(names) < 2:
        raise InputError(f"{source}: {len(names)} readable image(s); structure from motion needs at least 2 "
                         "overlapping photos (10 or more is better)")
    matcher = opts.matcher
    if matcher == "auto":
        matcher = "sequential" if video or len(names) > EXHAUSTIVE_MAX_IMAGES else "exhaustive"

    db_path = output / "database.db"
    with _colmap_log(pycolmap, opts.colmap_log):
        t0 = time.perf_counter()
        pycolmap.Database.open(db_path).close()
        featureless = _extract(pycolmap, db_path, image_root, names, opts)
        times["features"] = time.perf_counter() - t0
        for name, why in featureless.items():
            log.warning("%s: skipped: %s", image_root / name, why)
        skipped.update(featureless)
        usable = len(names) - len(featureless)
        if usable < 2:
            raise InputError(f"{source}: {usable} image(s) with features; structure from motion needs at least 2 "
                             "overlapping photos")

        features_db = None
        if opts.matcher == "auto" and matcher == "exhaustive":  # kept for a sequential retry
            features_db = work / "features.db"
            shutil.copyfile(db_path, features_db)
        models, best_key, best, registered = _reconstruct(pycolmap, db_path, image_root, work / "sparse", work,
                                                          usable, matcher, opts, times, say)
        if registered < _needed(usable, opts):
            raise _too_few(registered, usable, len(models), matcher, opts)
        jumps = _path_jumps(best) if matcher == "exhaustive" else []
        if _looks_folded(jumps, registered) and features_db is not None:
            say(f"the camera path jumps {len(jumps)} time(s) between photos next to each other by name "
                f"({', '.join(jumps[:4])}): the photos look taken in order, trying sequential matching")
            seq_db = features_db  # the features as they were before exhaustive matching
            seq_models, seq_key, seq, seq_registered = _reconstruct(
                pycolmap, seq_db, image_root, work / "sparse_sequential", work, usable, "sequential", opts, times, say,
                suffix=" (sequential retry)")
            seq_jumps = _path_jumps(seq) if seq is not None else []
            keep = _prefer_sequential(registered, len(jumps), seq_registered, len(seq_jumps), _needed(usable, opts))
            record["auto_retry"] = {"exhaustive": {"registered": registered, "path_jumps": jumps},
                                    "sequential": {"registered": seq_registered, "path_jumps": seq_jumps},
                                    "kept": "sequential" if keep else "exhaustive"}
            say(f"sequential matching: {seq_registered} registered, {len(seq_jumps)} path jump(s) "
                f"(exhaustive: {registered}, {len(jumps)}): keeping the {'sequential' if keep else 'exhaustive'} model")
            if keep:
                matcher, models, best_key, best, registered, jumps = \
                    "sequential", seq_models, seq_key, seq, seq_registered, seq_jumps
                os.replace(seq_db, db_path)
                shutil.rmtree(work / "sparse", ignore_errors=True)
                os.replace(work / "sparse_sequential", work / "sparse")
        if _looks_folded(jumps, registered):
            log.warning("%s: the camera path jumps %d time(s) between photos next to each other by name (%s); if "
                        "the photos were taken in this order (video frames, a walk around the scene), a symmetric "
                        "or repeated pattern was probably matched across the scene%s", source, len(jumps),
                        ", ".join(jumps[:4]),
                        "" if matcher == "sequential" or "auto_retry" in record else ": try --matcher sequential")
        reg_names = sorted(best.images[i].name for i in best.reg_image_ids())
        unregistered = sorted(set(names) - set(reg_names) - set(featureless))
        if unregistered:
            more = len(unregistered) - 5
            shown = ", ".join(unregistered[:5]) + (f" and {more} more" if more > 0 else "")
            log.warning("%s: %d of %d images could not be placed and are left out: %s", source, len(unregistered),
                        usable, shown)
        mean_err = float(best.compute_mean_reprojection_error())
        n_points = int(best.num_points3D())
        model_dir = work / "sparse" / str(best_key)
        best.write(model_dir)  # the kept model as returned (the folder may hold an older snapshot)

        t0 = time.perf_counter()
        undistorted = work / "undistorted"
        _undistort(pycolmap, model_dir, image_root, undistorted, reg_names, opts)
        times["undistortion"] = time.perf_counter() - t0

    os.replace(undistorted / "images", output / "images")
    (output / "sparse").mkdir(exist_ok=True)
    os.replace(undistorted / "sparse", output / "sparse" / "0")
    shutil.rmtree(work, ignore_errors=True)
    result = SfmResult(output, usable, registered, n_points, mean_err, matcher, opts.mapper, times,
                       skipped, unregistered, n_frames, len(models))
    record.update(complete=True, images=result.images, registered=registered, points=n_points,
                  mean_reprojection_error=mean_err, matcher=matcher, mapper=opts.mapper, stage_seconds=times,
                  skipped=skipped, unregistered=unregistered, frames=n_frames, models=len(models))
    _write_json(output, record, option)
    return result
