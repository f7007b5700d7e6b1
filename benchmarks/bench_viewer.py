"""Viewer frame rate: splat render + blit (+ panels) at 1280x720, offscreen.

Scenes: the guitar (90,854 splats, ``../shared/splats/guitar_inria_sh0.ply``)
and a 1M-splat scene made of jittered copies of it (or random splats when the
guitar is not there). For each scene the camera orbits the scene and, per
frame, the benchmark reports:

* ``render``: :func:`brushpy.render.forward.render_forward` alone, waited for
  (GPU timestamps per stage when the device has them);
* ``viewer_frame``: a whole offscreen viewer frame while the camera moves
  (render + blit + imgui panels + reading the frame back, which a window
  would present instead);
* ``idle_frame``: a viewer frame when nothing changed (the cached splat image
  is only blitted: what redrawing panels costs);
* ``viewer_frame_half_res``: a moving frame with the splats rendered at half
  the window's resolution (the "Res. moving" setting, default on CPU adapters).

``--training`` adds the live-training comparison: training steps per second
on the embedded lego scene (``assets/lego_small``) without a window (plain
``Trainer.step`` loop) and inside a real viewer window (glfw; under a
private Xvfb when ``DISPLAY`` is unset) with the default time-budget policy
(:mod:`brushpy.viewer.training`), the window's frame rate meanwhile, and the
ratio. Both runs start from the same seed and skip the same warm-up steps.

Prints one JSON object. Usage::

    python benchmarks/bench_viewer.py [--frames 5] [--big-frames 2] [--width 1280 --height 720] [--out result.json]
    python benchmarks/bench_viewer.py --training-only [--train-steps 60] [--width 1280 --height 720]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from _report import emit, machine  # noqa: E402

GUITAR = REPO.parent / "shared" / "splats" / "guitar_inria_sh0.ply"


def guitar_arrays():
    from brushpy.io.ply import read_ply
    from brushpy.render.splats import Splats

    d = read_ply(GUITAR)
    return {k: np.asarray(getattr(d, k)) for k in Splats.PARAM_NAMES}


def random_arrays(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return dict(
        means=rng.normal(size=(n, 3)) * [0.4, 1.2, 0.4],
        rotations=rng.normal(size=(n, 4)),
        log_scales=np.log(rng.uniform(0.002, 0.02, size=(n, 3))),
        sh_coeffs=rng.normal(size=(n, 1, 3)) * 0.5,
        raw_opacities=rng.uniform(-1.0, 3.0, size=n),
    )


def million_arrays(base: dict | None, n: int = 1_000_000, seed: int = 1) -> dict:
    """``n`` splats: copies of ``base`` jittered by ~1% of its size (SH degree 0), or random splats."""
    if base is None:
        return random_arrays(n, seed)
    rng = np.random.default_rng(seed)
    m = base["means"].shape[0]
    idx = np.arange(n) % m
    size = np.percentile(base["means"], 99, axis=0) - np.percentile(base["means"], 1, axis=0)
    out = {k: v[idx].copy() for k, v in base.items()}
    out["sh_coeffs"] = out["sh_coeffs"][:, :1, :]
    out["means"] = out["means"] + rng.normal(size=(n, 3)) * 0.01 * size
    return out


def bench_scene(name: str, arrays: dict, frames: int, width: int, height: int) -> dict:
    from brushpy.gpu import Profiler, Recorder, get_context
    from brushpy.render.forward import render_forward
    from brushpy.render.splats import Splats
    from brushpy.viewer.camera import framing_bounds
    from brushpy.viewer.offscreen import OffscreenViewer, orbit_path
    from brushpy.viewer.view import RenderSettings

    ctx = get_context()
    splats = Splats.from_numpy(**arrays)
    lo, hi = framing_bounds(arrays["means"])
    center = 0.5 * (lo + hi)
    radius = 1.2 * np.linalg.norm(hi - lo) / 2 / np.sin(np.deg2rad(25.0))
    cams = orbit_path(center, radius, frames + 1, width, height, fov_y_deg=50.0)

    # render alone (first camera is a warm-up: pipelines, buffers)
    render_ms, stages = [], {}
    for i, cam in enumerate(cams):
        prof = Profiler() if ctx.has_timestamps else None
        rec = Recorder(profiler=prof)
        t0 = time.perf_counter()
        state = render_forward(splats, cam, rec=rec)
        rec.submit()
        ctx.device.queue.read_buffer(state.image.buffer, 0, 16)  # wait for the GPU
        dt = 1000 * (time.perf_counter() - t0)
        if i == 0:
            continue
        render_ms.append(dt)
        if prof is not None:
            for k, v in prof.read().items():
                stages.setdefault(k, []).append(v)
    visible, isects = state.num_visible, state.num_intersections

    # the whole viewer frame, moving and idle
    viewer = OffscreenViewer(splats, size=(width, height), show_panels=True)
    try:
        viewer.render(cams[0])
        frame_ms = []
        for cam in cams[1:]:
            t0 = time.perf_counter()
            viewer.render(cam)
            frame_ms.append(1000 * (time.perf_counter() - t0))
        idle_ms = []
        for _ in range(max(3, frames)):
            t0 = time.perf_counter()
            viewer.render()
            idle_ms.append(1000 * (time.perf_counter() - t0))
        renders = viewer.app.view.renders
    finally:
        viewer.close()

    # a frame at half resolution (what "Res. moving" = 0.5 costs while the camera moves)
    viewer = OffscreenViewer(splats, size=(width, height), show_panels=True, settings=RenderSettings(render_scale=0.5))
    try:
        viewer.render(cams[0])
        half_ms = []
        for cam in cams[1:]:
            viewer.app.view_camera(cam, exact=False)
            t0 = time.perf_counter()
            viewer.render()
            half_ms.append(1000 * (time.perf_counter() - t0))
    finally:
        viewer.close()

    def summary(v):
        v = np.asarray(v)
        return {"mean_ms": float(v.mean()), "min_ms": float(v.min()), "fps": float(1000.0 / v.mean())}

    return {
        "scene": name,
        "splats": int(splats.num_splats),
        "sh_degree": int(splats.sh_degree),
        "width": width,
        "height": height,
        "frames": frames,
        "visible_splats": int(visible),
        "intersections": int(isects),
        "render": summary(render_ms),
        "render_stages_ms": {k: float(np.mean(v)) for k, v in stages.items()},
        "viewer_frame": summary(frame_ms),
        "idle_frame": summary(idle_ms),
        "viewer_frame_half_res": summary(half_ms),
        "viewer_splat_renders": int(renders),
    }


LEGO = REPO / "assets" / "lego_small"


def _start_xvfb():
    """Start a private Xvfb when there is no display; returns the process (or None)."""
    import os
    import shutil
    import subprocess

    if os.environ.get("DISPLAY"):
        return None
    exe = shutil.which("Xvfb")
    if exe is None:
        raise SystemExit("no DISPLAY and no Xvfb: cannot open the window for the training benchmark")
    for n in range(90, 400):
        if not Path(f"/tmp/.X{n}-lock").exists() and not Path(f"/tmp/.X11-unix/X{n}").exists():
            break
    proc = subprocess.Popen([exe, f":{n}", "-screen", "0", "1920x1080x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 15
    while time.time() < deadline and not Path(f"/tmp/.X11-unix/X{n}").exists():
        time.sleep(0.05)
    os.environ["DISPLAY"] = f":{n}"
    return proc


def bench_training(steps: int, warmup: int, width: int, height: int, resolution: int | None) -> dict:
    """Training it/s without and with the viewer window (see the module docstring)."""
    from brushpy.data import LoadConfig, load_dataset
    from brushpy.train.config import ProcessConfig, TrainConfig
    from brushpy.train.trainer import Trainer

    import tempfile

    load = LoadConfig(progress=False) if resolution is None else LoadConfig(max_resolution=resolution, progress=False)
    scene = load_dataset(LEGO, load)
    tmp = tempfile.mkdtemp(prefix="bench_viewer_train_")
    config = TrainConfig(total_steps=100_000, background_color=(1.0, 1.0, 1.0))
    process = ProcessConfig(export_path=tmp, eval_every=0, export_every=0)

    # without a window
    trainer = Trainer(scene, config, process)
    for _ in range(warmup):
        trainer.step()
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.step()
    headless_s = time.perf_counter() - t0
    headless = steps / headless_s

    # in the window
    xvfb = _start_xvfb()
    try:
        from rendercanvas.glfw import loop

        from brushpy.viewer.app import ViewerApp

        app = ViewerApp(size=(width, height))
        tr = app.start_training(scene, config, process)
        marks = {}

        async def watch():
            import asyncio

            while tr.step < warmup:
                await asyncio.sleep(0.005)
            marks["t0"], marks["s0"], marks["f0"] = time.perf_counter(), tr.step, app.frame_count
            marks["r0"] = app.view.renders
            while tr.step < warmup + steps:
                await asyncio.sleep(0.005)
            marks["t1"], marks["s1"], marks["f1"] = time.perf_counter(), tr.step, app.frame_count
            marks["r1"] = app.view.renders
            marks["overhead_ms"] = 1000.0 * app._overhead_s
            marks["render_ms"] = app.render_ms
            app.pause_training(True)
            app.close()

        loop.add_task(watch)
        app.run()
    finally:
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait(10)
    window_s = marks["t1"] - marks["t0"]
    window = (marks["s1"] - marks["s0"]) / window_s
    return {
        "dataset": f"lego_small ({len(scene.train_views)} views, {scene.train_views[0].camera.width}x"
                   f"{scene.train_views[0].camera.height})",
        "initial_splats": int(trainer.splats.num_splats),
        "steps": steps,
        "warmup_steps": warmup,
        "window_size": [width, height],
        "headless_it_s": headless,
        "window_it_s": window,
        "window_over_headless": window / headless,
        "window_fps_while_training": (marks["f1"] - marks["f0"]) / window_s,
        "window_splat_renders": marks["r1"] - marks["r0"],
        "window_splat_render_ms": marks["render_ms"],
        "frame_overhead_ms": marks["overhead_ms"],
        "budget_policy": {k: getattr(app.budget, k) for k in ("interactive_fps", "train_share", "max_budget_s", "refresh_hz")},
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=5, help="timed frames for the 90k scene")
    ap.add_argument("--big-frames", type=int, default=2, help="timed frames for the 1M scene (0 skips it)")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--out", type=str, default=None, help="also write the JSON here")
    ap.add_argument("--training", action="store_true", help="add the live-training it/s comparison")
    ap.add_argument("--training-only", action="store_true", help="only the live-training comparison")
    ap.add_argument("--train-steps", type=int, default=60, help="timed training steps per run")
    ap.add_argument("--train-warmup", type=int, default=10, help="untimed training steps first")
    ap.add_argument("--train-resolution", type=int, default=None, help="--max-resolution of the training images")
    args = ap.parse_args(argv)

    from brushpy.gpu import get_context

    ctx = get_context()
    base = guitar_arrays() if GUITAR.exists() else None
    results = {
        "benchmark": "viewer",
        **machine(ctx),
        "cases": [],
    }
    if args.training or args.training_only:
        results["training"] = bench_training(args.train_steps, args.train_warmup, args.width, args.height, args.train_resolution)
    if args.training_only:
        args.frames = args.big_frames = 0
    small = base if base is not None else random_arrays(90_854)
    if args.frames > 0:
        results["cases"].append(bench_scene("guitar" if base is not None else "random_90k", small, args.frames, args.width, args.height))
    if args.big_frames > 0:
        big = million_arrays(base)
        results["cases"].append(bench_scene("guitar_x11_1M" if base is not None else "random_1M", big, args.big_frames, args.width, args.height))
    emit(results, args.out)


if __name__ == "__main__":
    main()
