"""The one training loop (brushpy.train.stream.TrainStream): its events, in order, and its two consumers
(run_training's progress and Ctrl-C, the viewer's LiveTraining)."""

from __future__ import annotations

import json

import pytest

from brushpy.train.config import ProcessConfig
from tests.test_train import tiny_config, tiny_scene


def _kinds(events):
    """(kind, step[, 'final']) of each event, e.g. ('Export', 20, 'final')."""
    out = []
    for e in events:
        kind = type(e).__name__.removesuffix("Event")
        out.append((kind, e.step, "final") if getattr(e, "final", False) else (kind, e.step))
    return out


def _stream(tmp_path, total, eval_every, export_every, **train):
    from brushpy.train.stream import RunOutputs, TrainStream
    from brushpy.train.trainer import Trainer

    scene = tiny_scene(max_frames=4, resolution=16)
    process = ProcessConfig(eval_every=eval_every, export_every=export_every, export_path=str(tmp_path / "out"))
    trainer = Trainer(scene, tiny_config(total_steps=total, **train), process)
    outputs = RunOutputs(trainer, process, scene.name)
    return TrainStream(trainer, outputs), outputs


def test_event_sequence_20_steps(gpu, tmp_path):
    from brushpy.train.stream import CheckpointEvent, DoneEvent, EvalEvent, ExportEvent, StepEvent

    stream, outputs = _stream(tmp_path, total=20, eval_every=10, export_every=10, refine_every=5)
    events = list(stream)
    expected = []
    for s in range(1, 21):
        expected.append(("Step", s))
        if s in (5, 10, 15):  # refine every 5 steps, not after 95% of the run (step 19)
            expected.append(("Refine", s))
        if s == 10:  # scheduled: eval, then export and its checkpoint
            expected += [("Eval", 10), ("Export", 10), ("Checkpoint", 10)]
    expected += [("Export", 20, "final"), ("Checkpoint", 20, "final"), ("Eval", 20, "final"), ("Done", 20)]
    assert _kinds(events) == expected
    assert stream.done and list(stream) == [] and list(stream.step_events()) == []

    out = tmp_path / "out"
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [e for e in events if isinstance(e, EvalEvent)]
    assert [e.metrics for e in evals] == lines and [x["step"] for x in lines] == [10, 20]
    exports = [e for e in events if isinstance(e, ExportEvent)]
    assert [e.path for e in exports] == [out / "export_10.ply", out / "export_20.ply"]
    assert all(e.path.is_file() for e in exports)
    assert {e.path for e in events if isinstance(e, CheckpointEvent)} == {out / "checkpoint.npz"}
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert all(e.num_splats > 0 and e.num_visible >= 0 for e in steps)
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.summary is outputs.summary
    assert done.summary.steps == 20 and done.summary.psnr == lines[-1]["psnr"]
    assert done.summary.export == str(out / "export_20.ply")


def test_intervals_are_read_every_step_and_work_is_lazy(gpu, tmp_path):
    stream, outputs = _stream(tmp_path, total=9, eval_every=0, export_every=0)
    it = iter(stream)
    first = [next(it) for _ in range(3)]
    assert _kinds(first) == [("Step", 1), ("Step", 2), ("Step", 3)]
    assert stream.trainer.step_count == 3  # nothing ran ahead of the events asked for
    outputs.process.export_every = 4  # a front end changes the interval mid-run
    outputs.process.eval_every = 3
    rest = _kinds(it)
    # step 3's scheduled work runs when the event after its StepEvent is asked for: it sees the new intervals
    assert rest == [("Eval", 3), ("Step", 4), ("Export", 4), ("Checkpoint", 4), ("Step", 5), ("Step", 6), ("Eval", 6),
                    ("Step", 7), ("Step", 8), ("Export", 8), ("Checkpoint", 8), ("Step", 9),
                    ("Export", 9, "final"), ("Checkpoint", 9, "final"), ("Eval", 9, "final"), ("Done", 9)]


def test_finish_now_and_already_at_the_end(gpu, tmp_path):
    stream, _ = _stream(tmp_path, total=50, eval_every=0, export_every=0)
    assert _kinds(stream.step_events()) == [("Step", 1)]
    assert _kinds(stream.step_events()) == [("Step", 2)]
    # "finish now": the final work at the current step, then nothing more runs
    assert _kinds(stream.finish_events()) == [("Export", 2, "final"), ("Checkpoint", 2, "final"),
                                              ("Eval", 2, "final"), ("Done", 2)]
    assert list(stream) == [] and stream.trainer.step_count == 2

    # a trainer already at the last step (a resumed, finished run): only the final work
    from brushpy.train.stream import TrainStream

    again = TrainStream(stream.trainer, stream.outputs, total=2)
    assert _kinds(again) == [("Export", 2, "final"), ("Checkpoint", 2, "final"), ("Eval", 2, "final"), ("Done", 2)]
    assert stream.trainer.step_count == 2


def test_run_training_prints_scheduled_evals_only(gpu, tmp_path, capsys):
    from brushpy.train.run import run_training

    scene = tiny_scene(max_frames=4, resolution=16)
    process = ProcessConfig(eval_every=5, export_every=0, export_path=str(tmp_path / "out"))
    logged = []
    summary = run_training(scene, tiny_config(total_steps=10), process, progress=False, log=logged.append)
    logged = [x for x in logged if not x.startswith("note: ")]  # the device's capacity note
    printed = capsys.readouterr().out.splitlines()
    assert [p.split(":")[0] for p in printed if p.startswith("step ")] == ["step 5"]
    assert "PSNR" in printed[0] and "splats" in printed[0]
    assert summary.steps == 10 and not summary.interrupted
    assert len(logged) == 1 and logged[0].startswith("trained 10 steps") and "export_10.ply" in logged[0]


def test_run_training_ctrl_c_saves_and_returns(gpu, tmp_path):
    from brushpy.train.run import run_training
    from brushpy.train.trainer import Trainer

    scene = tiny_scene(max_frames=4, resolution=16)
    config = tiny_config(total_steps=30)
    process = ProcessConfig(eval_every=0, export_every=0, export_path=str(tmp_path / "out"))
    trainer = Trainer(scene, config, process)
    real_step = trainer.step

    def step():
        if trainer.step_count == 3:
            raise KeyboardInterrupt
        return real_step()

    trainer.step = step
    logged = []
    summary = run_training(scene, config, process, progress=False, log=logged.append, trainer=trainer)
    logged = [x for x in logged if not x.startswith("note: ")]  # the device's capacity note
    out = tmp_path / "out"
    assert summary.interrupted and summary.steps == 3
    assert (out / "export_3.ply").is_file() and (out / "checkpoint.npz").is_file()
    assert not (out / "metrics.jsonl").exists()  # Ctrl-C exports; it does not evaluate
    assert logged[0] == (f"interrupted at step 3: saved {out / 'export_3.ply'} and {out / 'checkpoint.npz'} "
                         f"(continue with --resume {out / 'checkpoint.npz'})")
    assert logged[1].startswith("trained 3 steps")


def test_live_training_pulls_one_step_at_a_time_and_finish_now(gpu, tmp_path):
    pytest.importorskip("brushpy.viewer.training")
    from brushpy.viewer.training import LiveTraining

    scene = tiny_scene(max_frames=4, resolution=16)
    process = ProcessConfig(eval_every=2, export_every=3, export_path=str(tmp_path / "out"))
    tr = LiveTraining(scene, tiny_config(total_steps=100), process)
    for _ in range(4):
        assert tr.run_for(1e-6) == 1
    assert tr.step == 4 and tr.psnr_steps == [2, 4]
    assert tr.last_export == tmp_path / "out" / "export_3.ply"
    assert tr.message.startswith("step 4: PSNR")  # a scheduled export does not replace the message
    tr.finish()
    assert tr.finished and tr.stream.done and not tr.active
    assert tr.last_export == tmp_path / "out" / "export_4.ply" and tr.psnr_steps == [2, 4, 4]
    assert tr.message == tr.outputs.summary_text() and "trained 4 steps" in tr.message
    tr.set_paused(False)
    assert tr.run_for(10.0) == 0 and tr.step == 4


class _Recorder:
    def __init__(self):
        self.kinds = []

    def on_event(self, event):
        self.kinds.append(type(event).__name__)


class _Broken:
    closed = False

    def on_event(self, event):
        raise RuntimeError("viewer went away")

    def close(self):
        _Broken.closed = True


def test_watchers_one_mechanism_for_both_front_ends(gpu, tmp_path):
    """Watchers are the stream's: the experiment logs first, then the given ones; each sees every
    event before the consumer; one that raises is warned about, closed and dropped, training goes on;
    the viewer's LiveTraining takes the same watchers."""
    from brushpy.train.stream import RunOutputs, TrainStream, Watchers
    from brushpy.train.trainer import Trainer
    from brushpy.viewer.training import LiveTraining

    scene = tiny_scene(max_frames=4, resolution=16)
    process = ProcessConfig(eval_every=0, export_every=0, export_path=str(tmp_path / "out"))
    trainer = Trainer(scene, tiny_config(total_steps=3), process)
    outputs = RunOutputs(trainer, process, scene.name)
    seen, warnings = _Recorder(), []
    stream = TrainStream(trainer, outputs, watchers=[_Broken(), seen], log=warnings.append)
    assert isinstance(stream.watchers, Watchers) and stream.watchers.items[0] is outputs.logs
    consumed = [type(e).__name__ for e in stream]
    assert seen.kinds == consumed and consumed[-1] == "DoneEvent"
    assert len(warnings) == 1 and "_Broken failed" in warnings[0] and _Broken.closed
    assert [type(w).__name__ for w in stream.watchers.items] == ["ExperimentLogs", "_Recorder"]

    live_seen = _Recorder()
    process2 = ProcessConfig(eval_every=0, export_every=0, export_path=str(tmp_path / "out2"))
    live = LiveTraining(scene, tiny_config(total_steps=2), process2, watchers=[live_seen])
    while live.active:
        live.run_for(1.0)
    assert live_seen.kinds.count("StepEvent") == 2 and live_seen.kinds[-1] == "DoneEvent"
