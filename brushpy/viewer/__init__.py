"""The desktop viewer: an imgui window (wgpu + rendercanvas/glfw) that shows splats.

``run_viewer(path)`` opens a window; :mod:`brushpy.viewer.offscreen` renders
the same frames without one. The window needs the viewer extras
(``imgui-bundle``, ``rendercanvas``, ``glfw``); importing this package does not.
"""

from __future__ import annotations


def run_viewer(path=None, *, size: tuple[int, int] = (1280, 720)) -> None:
    """Open the viewer window on ``path`` (a splat ``.ply``, a folder or ``.zip`` of them, a
    dataset to train on live, or None) and run it until the window is closed.

    A path that fails to load shows its error in the window.

    Raises:
        NoDisplayError: when no window can be opened (no display server).
    """
    from .app import ViewerApp

    app = ViewerApp(size=size)
    if path is not None:
        app.open(path)
    app.run()


def run_training_viewer(scene, config=None, process=None, *, resume=None, size: tuple[int, int] = (1280, 720)):
    """Train on ``scene`` (a :class:`brushpy.data.Scene`) while a window shows it live
    (``brushpy train DATA --viewer``).

    Training runs in this process between frames (policy:
    :mod:`brushpy.viewer.training`); at the last step the final export and
    evaluation run as in :func:`brushpy.train.run.run_training`. Closing the
    window before that asks whether to export first. Returns when the window
    is closed.

    Args:
        scene: the dataset.
        config, process: :class:`~brushpy.train.config.TrainConfig`, :class:`~brushpy.train.config.ProcessConfig`.
        resume: a checkpoint to continue from.
        size: window size (width, height).

    Returns:
        The run's :class:`~brushpy.train.trainer.RunSummary` (``interrupted`` is True when
        the window was closed before the last step).

    Raises:
        NoDisplayError: when no window can be opened.
        TrainingError: the scene does not fit the device.
    """
    from .app import ViewerApp

    app = ViewerApp(size=size, title=f"brushpy: training {scene.name}")
    training = app.start_training(scene, config, process, resume=resume)
    app.run()
    summary = training.outputs.finish()
    summary.interrupted = not training.finished
    if training.error:
        print(f"training stopped: {training.error}")
    print(training.outputs.summary_text() if summary.export else f"closed at step {training.step} without exporting")
    return summary


__all__ = ["run_training_viewer", "run_viewer"]
