"""``brushpy render SCENE --path orbit|dataset|FILE.json -o OUT.mp4``: a video along a camera path.

The option checks (:func:`check_video_options`) and the render loop (:func:`render_video`) of
``brushpy render``'s video mode; the paths come from :mod:`brushpy.io.camera_path`, the
encoder from :mod:`brushpy.io.video`. The splats are uploaded once and each frame is rendered
by :func:`brushpy.render.forward.render_forward`, the rasterizer ``brushpy render`` uses for a
PNG, so a video frame and the PNG of the same camera agree up to the H.264 loss.
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from ..errors import OptionError

#: Named paths of ``--path`` (anything else must be a ``.json`` camera-path file).
PATH_KINDS = ("orbit", "dataset")
#: Default video frame rate.
DEFAULT_FPS = 30.0
#: Default length of an orbit in seconds.
ORBIT_SECONDS = 4.0
#: Default frames per dataset camera of ``--path dataset``.
FRAMES_PER_VIEW = 5


def check_video_options(output: Path, camera_path, dataset_path, frames, seconds, orbit_only=()) -> None:
    """Check the video options of ``brushpy render`` before anything is loaded.

    Raises:
        click.BadParameter: an ``.mp4`` without ``--path``, ``--path`` with another output, an
            unknown ``--path``, ``--dataset`` without ``--path dataset`` (or the other way round),
            ``--frames`` with ``--seconds``, either with a camera-path file, or an option of
            ``orbit_only`` (the names of the orbit's camera options given) with another path.
    """
    if camera_path is None:
        raise click.BadParameter(f"{output} is a video; choose its camera path with --path orbit|dataset|FILE.json",
                                 param_hint="'--path'")
    if output.suffix.lower() != ".mp4":
        raise click.BadParameter(f"{output}: --path renders a video; name the output OUT.mp4",
                                 param_hint="'-o' / '--output'")
    is_file = camera_path not in PATH_KINDS
    if is_file and not camera_path.lower().endswith(".json"):
        raise click.BadParameter(f"{camera_path!r} is not a camera path; use orbit, dataset, or a nerfstudio "
                                 "camera-path FILE.json", param_hint="'--path'")
    if camera_path == "dataset" and dataset_path is None:
        raise click.BadParameter("--path dataset follows a dataset's cameras; name it with --dataset FOLDER",
                                 param_hint="'--dataset'")
    if dataset_path is not None and camera_path != "dataset":
        raise click.BadParameter(f"--dataset is only used by --path dataset (not --path {camera_path})",
                                 param_hint="'--dataset'")
    if frames is not None and seconds is not None:
        raise click.BadParameter("give the video length as --frames or as --seconds, not both", param_hint="'--frames'")
    if orbit_only and camera_path != "orbit":
        raise click.BadParameter(f"{'/'.join(orbit_only)} place the orbit's camera; --path {camera_path} brings its "
                                 "own cameras", param_hint=f"'{orbit_only[0]}'")
    if is_file and (frames is not None or seconds is not None):
        raise click.BadParameter(f"{camera_path} sets its own frames (one per camera_path entry); leave out "
                                 "--frames/--seconds", param_hint="'--frames'")


def _frame_count(frames, seconds, fps: float, default: int) -> int:
    if frames is not None:
        return int(frames)
    if seconds is not None:
        return max(1, int(round(seconds * fps)))
    return default


def _even(v: float) -> int:
    return max(2, 2 * int(round(v / 2.0)))


def dataset_cameras(dataset_path: Path) -> list:
    """The cameras of every view (train and eval) of a dataset, in image-name order.

    Raises:
        DatasetError (and the loaders' format errors): the folder holds no usable dataset.
    """
    from ..data import load_dataset
    from ..data.scene import natural_key

    ds = load_dataset(dataset_path, decode=False)
    views = sorted(ds.views, key=lambda v: natural_key(v.name))
    return [v.camera for v in views]


def build_path(data, camera_path: str, *, width, height, fov, position, look_at, up, dataset_path, frames, seconds,
               fps, turns, explicit: set):
    """The :class:`~brushpy.io.camera_path.CameraPath` ``--path`` asks for.

    ``explicit`` names the options among ``width``, ``height``, ``fov`` that the user gave: a
    camera-path file keeps its own size unless they are given; a dataset path keeps each
    view's field of view unless ``--fov`` is given and is ``--height`` pixels high at the
    first view's aspect unless ``--width`` is given too.
    """
    from ..io.camera_path import CameraPath, orbit_cameras, read_camera_path, smooth_path
    from ..io.framing import framing_camera, robust_bounds

    if camera_path == "orbit":
        rate = fps or DEFAULT_FPS
        n = _frame_count(frames, seconds, rate, int(round(ORBIT_SECONDS * rate)))
        try:
            start = framing_camera(data.means, width, height, fov, position=position, look_at=look_at, up=up)
            if look_at is None:  # framing_camera's target: the centre of the scene's bounds
                lo, hi = robust_bounds(data.means)
                look_at = 0.5 * (lo + hi)
            cams = orbit_cameras(start.position, look_at, up, n, fov, width, height, turns=turns)
        except ValueError as exc:
            raise OptionError(f"camera: {exc} (options --position/--look-at/--up)") from exc
        return CameraPath(cams, rate)
    if camera_path == "dataset":
        rate = fps or DEFAULT_FPS
        keys = dataset_cameras(dataset_path)
        n = _frame_count(frames, seconds, rate, FRAMES_PER_VIEW * (len(keys) - 1) + 1)
        if "height" in explicit or "width" not in explicit:
            w = width if "width" in explicit else _even(height * keys[0].width / keys[0].height)
            h = height
        else:
            w, h = width, _even(width * keys[0].height / keys[0].width)
        cams = smooth_path(keys, n, w, h)
        if "fov" in explicit:
            from ..render.camera import Camera

            f = 0.5 * h / np.tan(0.5 * np.deg2rad(fov))
            cams = [Camera(c.world_to_camera, f, f, c.cx, c.cy, w, h) for c in cams]
        return CameraPath(cams, rate)
    result = read_camera_path(camera_path, width if "width" in explicit else None,
                              height if "height" in explicit else None)
    if fps:
        result.fps = float(fps)
    return result


def render_video(data, scene: Path, output: Path, camera_path: str, *, width, height, fov, position, look_at, up,
                 background, sh_degree, dataset_path, frames, seconds, fps, turns, explicit: set, crf: int = 18) -> None:
    """Render ``data`` (a :class:`~brushpy.io.ply.SplatData` read from ``scene``) along ``camera_path``
    into the MP4 ``output`` with a progress bar, and print one summary line.

    Raises:
        VideoUnavailableError: PyAV is missing (says ``pip install 'brushpy[video]'``).
        CameraPathError, DatasetError, OptionError, InputError: bad path file, dataset or options.
        WriteError: ``output`` cannot be written.
    """
    from tqdm import tqdm

    from ..gpu import BufferTooLargeError, NoAdapterError
    from ..io.video import Mp4Writer, check_even_size, require_av
    from ..render.forward import render_forward
    from ..render.pool import release_forward_state
    from ..render.splats import Splats
    from . import to_png_array

    require_av()  # before any dataset or GPU work
    path = build_path(data, camera_path, width=width, height=height, fov=fov, position=position, look_at=look_at,
                      up=up, dataset_path=dataset_path, frames=frames, seconds=seconds, fps=fps, turns=turns,
                      explicit=explicit)
    w, h = path.cameras[0].width, path.cameras[0].height
    where = "--width/--height" if {"width", "height"} & explicit or camera_path in PATH_KINDS else \
        f"{camera_path} (render_width/render_height; or pass --width/--height)"
    check_even_size(w, h, where)
    sh = data.sh_coeffs if sh_degree is None else data.sh_coeffs[:, : (sh_degree + 1) ** 2]
    try:
        splats = Splats.from_numpy(data.means, data.rotations, data.log_scales, sh, data.raw_opacities)
        with Mp4Writer(output, w, h, path.fps, crf=crf) as writer:
            for cam in tqdm(path.cameras, desc=f"rendering {output.name}", unit="frame", dynamic_ncols=True):
                state = render_forward(splats, cam, background, render_mode=data.render_mode)
                image = state.image.numpy()
                release_forward_state(state)
                writer.write(to_png_array(image, alpha=False))
    except NoAdapterError as exc:
        raise click.ClickException(str(exc)) from exc
    except BufferTooLargeError as exc:
        raise click.ClickException(f"{exc} (options --width/--height)") from exc
    click.echo(f"wrote {output} ({writer.frames} frames, {w}x{h}, {path.fps:g} fps, {path.seconds:.2f} s, "
               f"{data.num_splats} splats, path {camera_path})")
