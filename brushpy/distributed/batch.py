"""``brushpy batch``: many scenes trained as Ray tasks, one ordinary ``brushpy train`` run each.

Each scene is one Ray task (:func:`train_scene`) asking for ``--gpus-per-scene`` GPUs (fractions
share a GPU) and ``--cpus-per-scene`` CPUs. The task runs the command line's own training path in
a child process, ``python -m brushpy train SCENE FLAGS --export-path OUT/<scene>``, so a batch
trains exactly as ``brushpy train`` does (one owner of the training path, args.txt included), each
run has its own GPU context and memory, and a run that dies takes nothing else with it. Its output
goes to ``OUT/<scene>/train.log``; the task returns the final line of the scene's
``metrics.jsonl`` (:func:`brushpy.train.stream.read_metrics`).

Files under ``OUT`` (a folder every node sees at the same path: a shared file system on a
multi-machine cluster):

* ``OUT/<scene>/``: the run's own files (exports, ``checkpoint.npz``, ``metrics.jsonl``, ``logs/``),
  ``train.log`` (the run's output, appended by every attempt) and ``batch.json``, written when the
  run finished: the scene, its flags, its final export and metrics.
* ``OUT/summary.csv``: one row per scene (:data:`SUMMARY_COLUMNS`), rewritten atomically at the end.

Reruns and failures:

* a scene whose ``batch.json`` matches its path and flags, and whose final export and
  ``metrics.jsonl`` exist, is *skipped* (no training);
* a scene with a ``checkpoint.npz`` (an interrupted run, or one trained with other flags) resumes
  from it (``--resume``); otherwise the run starts afresh there (``--overwrite``);
* a run that fails (exit code 1, killed, out of memory) or whose worker dies is retried up to
  ``--retries`` times (Ray's ``max_retries`` with ``retry_exceptions=[SceneRunFailed]``: one budget
  for both), resuming from its last checkpoint; bad input (a scene path that does not exist, exit
  code 2) is not retried. Every failure is reported in the summary with its error; nothing is dropped.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ..errors import EXIT_INPUT, InputError, OptionError
from ..io.atomic import append_line, atomic_write, ensure_writable_dir
from ..train.stream import CHECKPOINT_NAME, METRICS_NAME, checkpoint_step, read_metrics
from .cluster import check_resources, connect, require_ray, shutdown

__all__ = ["SceneSpec", "SceneStatus", "SceneResult", "SceneRunFailed", "SUMMARY_COLUMNS", "MARKER_NAME",
           "LOG_NAME", "SUMMARY_NAME", "read_scenes_file", "scene_specs", "check_train_args", "finished_run",
           "train_scene", "run_batch", "write_summary", "summary_markdown"]

#: Written into ``OUT/<scene>/`` when a scene's run finished (what a rerun checks).
MARKER_NAME = "batch.json"
#: The run's output (stdout and stderr of ``brushpy train``), appended by every attempt.
LOG_NAME = "train.log"
#: The batch's table, one row per scene.
SUMMARY_NAME = "summary.csv"
#: Columns of ``summary.csv``: ``state`` is done / skipped (finished by an earlier batch) / failed;
#: ``step``, ``psnr`` (dB), ``ssim``, ``num_splats`` are the final line of the scene's
#: ``metrics.jsonl``; ``train_s`` its ``elapsed_s`` (training seconds of the last attempt);
#: ``wall_s`` seconds from the scene's first start to its end in this batch; ``attempts`` runs started.
SUMMARY_COLUMNS = ("scene", "state", "step", "psnr", "ssim", "num_splats", "train_s", "wall_s", "attempts",
                   "node", "export", "path", "error")
#: Flags the batch sets itself for each scene (or that need a person at the screen).
RESERVED_TRAIN_FLAGS = ("--export-path", "--resume", "--overwrite", "--viewer", "--web")


class SceneRunFailed(RuntimeError):
    """A scene's ``brushpy train`` run failed in a way worth retrying (the message says how, and
    where its log is); Ray retries the task on it (``retry_exceptions``)."""


# --------------------------------------------------------------------------- scenes


@dataclass(frozen=True)
class SceneSpec:
    """One scene of a batch.

    Attributes:
        path: the dataset (folder or .zip) as ``brushpy train`` takes it; absolute once
            :func:`scene_specs` made it.
        name: the scene's folder under ``OUT`` (default: the dataset's name, ``.zip`` removed).
        args: this scene's own ``brushpy train`` flags, after the batch's (so they win).
    """

    path: str
    name: str
    args: tuple = ()


def _default_name(path: str) -> str:
    p = Path(path.rstrip("/\\"))
    return p.stem if p.suffix.lower() == ".zip" else p.name


def read_scenes_file(path) -> list[SceneSpec]:
    """Read a scene list (``--scenes-file``).

    * ``.csv``: a header row with a ``scene`` column (the dataset), optionally ``name`` (its folder
      under ``OUT``) and ``args`` (its own train flags, one string, shell-quoted as on a command line).
    * anything else: one scene per line, ``PATH [FLAGS...]`` (shell-quoted); blank lines and lines
      starting with ``#`` are skipped.

    Relative dataset paths are taken relative to the file's folder.

    Raises:
        InputError: the file is missing or unreadable, a CSV without a ``scene`` column, a line
            that cannot be split (names the file, the line and ``--scenes-file``).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"--scenes-file {path}: cannot read it ({exc.strerror or exc})") from exc
    base = path.resolve().parent
    specs = []

    def spec(line_no: int, scene: str, name: str, args: str) -> SceneSpec:
        try:
            flags = tuple(shlex.split(args or ""))
        except ValueError as exc:
            raise InputError(f"--scenes-file {path}, line {line_no}: cannot split the flags {args!r} ({exc})") from exc
        full = str((base / Path(scene).expanduser()).resolve()) if not Path(scene).expanduser().is_absolute() \
            else str(Path(scene).expanduser())
        return SceneSpec(path=full, name=name or _default_name(scene), args=flags)

    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        fields = [f.strip() for f in (reader.fieldnames or [])]
        if "scene" not in fields:
            raise InputError(f"--scenes-file {path}: a CSV scene list needs a header row with a 'scene' column "
                             f"(and optionally 'name' and 'args'); found {', '.join(fields) or 'no header'}")
        for i, row in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None}
            if not row.get("scene"):
                continue
            specs.append(spec(i, row["scene"], row.get("name", ""), row.get("args", "")))
        return specs
    for i, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            parts = shlex.split(line)
        except ValueError as exc:
            raise InputError(f"--scenes-file {path}, line {i}: cannot split {line!r} ({exc})") from exc
        specs.append(spec(i, parts[0], "", shlex.join(parts[1:])))
    return specs


def scene_specs(scenes: Iterable[str] = (), scenes_file=None) -> list[SceneSpec]:
    """The batch's scenes: the ``SCENES`` arguments (relative to the current folder), then those of
    ``scenes_file`` (:func:`read_scenes_file`). Paths are made absolute (Ray workers run elsewhere);
    they are *not* checked here: a missing one is reported for its scene while the others run.

    Raises:
        InputError: no scenes, or two scenes with one folder name (rename one with the scenes
            file's ``name`` column), or a name that is not a plain folder name.
    """
    specs = [SceneSpec(path=str(Path(s).expanduser().resolve()), name=_default_name(s)) for s in scenes]
    if scenes_file is not None:
        specs += read_scenes_file(scenes_file)
    if not specs:
        raise InputError("no scenes: give dataset folders as arguments or a --scenes-file")
    seen: dict[str, str] = {}
    for s in specs:
        if not s.name or s.name in (".", "..") or "/" in s.name or "\\" in s.name:
            raise InputError(f"scene {s.path}: {s.name!r} is not a folder name for OUT/<scene>; "
                             "give it a name in a CSV --scenes-file (column 'name')")
        if s.name in seen:
            raise InputError(f"scenes {seen[s.name]} and {s.path} would both write OUT/{s.name}; give them "
                             "different names in a CSV --scenes-file (column 'name')")
        seen[s.name] = s.path
    return specs


def check_train_args(args: Sequence[str], where: str = "the train flags") -> None:
    """Refuse flags the batch sets for each scene itself (:data:`RESERVED_TRAIN_FLAGS`).

    Raises:
        OptionError: names the flag and ``where`` it came from.
    """
    for a in args:
        flag = a.split("=", 1)[0]
        if flag in RESERVED_TRAIN_FLAGS:
            raise OptionError(f"{where}: {flag} is set by brushpy batch for each scene (OUT/<scene>, resumed from "
                              "its checkpoint when one is there); leave it out")


# --------------------------------------------------------------------------- one scene (the Ray task)


@dataclass
class SceneStatus:
    """What a scene is doing, as the batch's progress board last heard.

    Attributes:
        scene: its name. state: ``queued``, ``running``, ``resuming``, ``done``, ``skipped``, ``failed``.
        attempt: runs started so far (a retry adds one). step, total: the training bar's position.
        psnr: the last evaluation's PSNR (dB). worker_pid: the Ray worker running it. child_pid: its
        ``brushpy train`` process. node: the worker's host name. error: why it failed.
    """

    scene: str
    state: str = "queued"
    attempt: int = 0
    step: int | None = None
    total: int | None = None
    psnr: float | None = None
    worker_pid: int | None = None
    child_pid: int | None = None
    node: str | None = None
    error: str = ""
    first_start: float | None = None
    end: float | None = None


class ProgressBoard:
    """The batch's progress, kept by one Ray actor (no CPU): tasks report, the driver polls."""

    def __init__(self, names):
        self.status = {n: SceneStatus(n) for n in names}

    def start(self, scene: str, worker_pid: int, node: str) -> int:
        """An attempt began; returns its number (1 for the first)."""
        s = self.status[scene]
        s.attempt += 1
        s.state, s.worker_pid, s.child_pid, s.node = "running", worker_pid, None, node
        s.first_start = s.first_start or time.time()
        return s.attempt

    def update(self, scene: str, **fields) -> None:
        s = self.status[scene]
        for k, v in fields.items():
            setattr(s, k, v)
        if fields.get("state") in ("done", "skipped", "failed"):
            s.end = time.time()

    def snapshot(self) -> dict:
        return {n: replace(s) for n, s in self.status.items()}


def _run_key(spec: SceneSpec, train_args: Sequence[str]) -> dict:
    """What makes two runs of a scene the same run (compared by a rerun)."""
    return {"path": spec.path, "args": list(train_args) + list(spec.args)}


def finished_run(folder: Path, spec: SceneSpec, train_args: Sequence[str]) -> dict | None:
    """The ``batch.json`` of a finished run of ``spec`` with these flags in ``folder``, or None.

    Finished means: ``batch.json`` names the same dataset and flags, its final export still exists,
    and so does ``metrics.jsonl`` when the run had eval views.
    """
    try:
        marker = json.loads((Path(folder) / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("key") != _run_key(spec, train_args):
        return None
    if not marker.get("export") or not Path(marker["export"]).is_file():
        return None
    if marker.get("metrics") and not (Path(folder) / METRICS_NAME).is_file():
        return None
    return marker


_BAR = re.compile(r"\|\s*(\d+)/(\d+) \[[^\]]*step")  # the training bar (unit "step"), not the decoding one
_EVAL = re.compile(r"^step (\d+): PSNR ([0-9.]+|nan|inf) dB")
_DONE = re.compile(r"^trained \d+ steps in .*; wrote (.+)$")


def _die_with_parent():
    """Linux: a ``preexec_fn`` that has the child killed when the Ray worker that started it dies (so a
    killed worker leaves no orphan training into the folder its retry resumes); None elsewhere.
    libc is loaded here, in the parent: the child only calls ``prctl(PR_SET_PDEATHSIG, SIGKILL)``."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, int(signal.SIGKILL))  # 1 = PR_SET_PDEATHSIG


def _result(spec: SceneSpec, state: str, folder: Path, attempt: int, node: str, export: str = "",
            error: str = "") -> dict:
    """The task's answer: the scene's final metrics line (from its ``metrics.jsonl``) and where things are."""
    lines = read_metrics(folder / METRICS_NAME) if (folder / METRICS_NAME).is_file() else []
    last = lines[-1] if lines else {}
    step = last.get("step")
    if step is None and (folder / CHECKPOINT_NAME).is_file():
        step = checkpoint_step(folder / CHECKPOINT_NAME)
    return {"scene": spec.name, "path": spec.path, "state": state, "attempts": attempt, "node": node,
            "step": step, "psnr": last.get("psnr"), "ssim": last.get("ssim"), "num_splats": last.get("num_splats"),
            "train_s": last.get("elapsed_s"), "export": export, "error": error, "metrics": last}


def train_scene(spec: SceneSpec, out_dir: str, train_args: Sequence[str], board=None) -> dict:
    """Train one scene (the body of the batch's Ray task; callable directly without Ray and a board).

    Runs ``python -m brushpy train`` (the ``brushpy`` this worker imports) on ``spec.path`` with
    ``train_args`` then ``spec.args``, into ``out_dir/spec.name``: skipped when a finished run is
    there (:func:`finished_run`), resumed from its ``checkpoint.npz`` when one is there, else
    started afresh (``--overwrite``). The run's output is appended to ``train.log``; the training
    bar and evaluation lines are reported to ``board`` (a :class:`ProgressBoard` actor) as they come.

    Returns:
        dict with the summary's columns (:data:`SUMMARY_COLUMNS`) and ``metrics`` (the final line of
        ``metrics.jsonl``); ``state`` done, skipped, or failed for bad input (a scene path that does
        not exist on this node, a run that exited with code 2), with ``error``.

    Raises:
        SceneRunFailed: the run failed otherwise (exit code 1, killed by a signal); Ray retries it.
    """
    node = socket.gethostname()
    folder = Path(out_dir) / spec.name
    attempt = 1
    if board is not None:
        attempt = require_ray().get(board.start.remote(spec.name, os.getpid(), node))

    def report(**fields):
        if board is not None:
            board.update.remote(spec.name, **fields)

    def failed(error: str) -> dict:
        report(state="failed")
        return _result(spec, "failed", folder, attempt, node, error=error)

    args = list(train_args) + list(spec.args)
    done = finished_run(folder, spec, train_args)
    if done is not None:
        result = _result(spec, "skipped", folder, attempt, node, export=done["export"])
        report(state="skipped", step=result["step"], total=result["step"], psnr=result["psnr"])
        return result
    if not Path(spec.path).exists():
        return failed(f"scene path {spec.path} does not exist (on node {node}); fix the path or leave it out")
    try:
        ensure_writable_dir(folder, "-o/--output")
    except InputError as exc:
        return failed(str(exc))
    ckpt = folder / CHECKPOINT_NAME
    resume = ckpt.is_file()
    cmd = [sys.executable, "-m", "brushpy", "train", spec.path, *args, "--export-path", str(folder)]
    cmd += ["--resume", str(ckpt)] if resume else ["--overwrite"]
    log_path = folder / LOG_NAME
    append_line(log_path, f"--- attempt {attempt} on {node}: {shlex.join(cmd)}", option="-o/--output")
    env = dict(os.environ, PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(p for p in (str(Path(__file__).resolve().parents[2]),
                                                      os.environ.get("PYTHONPATH", "")) if p))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            preexec_fn=_die_with_parent())
    report(state="resuming" if resume else "running", child_pid=proc.pid)
    watch = _OutputWatch(log_path, report)
    try:
        while True:
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            watch.feed(chunk.decode("utf-8", errors="replace"))
        watch.feed("\n")
        code = proc.wait()
    except BaseException:  # a cancelled task (KeyboardInterrupt): the run saves a checkpoint and stops
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
    finally:
        proc.stdout.close()
    if code == 0:
        export = watch.export or ""
        result = _result(spec, "done", folder, attempt, node, export=export)
        marker = {"key": _run_key(spec, train_args), "scene": spec.name, "export": export,
                  "metrics": result["metrics"], "step": result["step"], "node": node}
        with atomic_write(folder / MARKER_NAME, "w", encoding="utf-8", option="-o/--output") as f:
            json.dump(marker, f, indent=1)
        report(state="done", step=result["step"], psnr=result["psnr"])
        return result
    why = watch.error or (f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}")
    if code == EXIT_INPUT:
        return failed(f"{why} (see {log_path})")
    report(state="failed")
    raise SceneRunFailed(f"{spec.name}: brushpy train failed on {node}: {why} (see {log_path})")


class _OutputWatch:
    """Reads a ``brushpy train`` child's output: whole lines go to ``train.log`` (the bar's redraws,
    ended by ``\\r``, only to the board), the training bar's step and evaluation PSNRs to ``report``."""

    def __init__(self, log_path: Path, report: Callable, every_s: float = 1.0):
        self.log_path, self.report, self.every_s = log_path, report, every_s
        self.pending = ""
        self.bar_text = ""
        self.step = self.total = None
        self.sent_step = None
        self.sent_at = 0.0
        self.export = self.error = None

    def feed(self, text: str) -> None:
        self.pending += text
        *pieces, self.pending = re.split(r"(\r|\n)", self.pending)  # text, separator, ..., the unfinished rest
        for i in range(0, len(pieces) - 1, 2):
            self._piece(pieces[i], pieces[i + 1])

    def _piece(self, text: str, sep: str) -> None:
        bar = _BAR.search(text)
        if bar:
            self.step, self.total = int(bar.group(1)), int(bar.group(2))
            now = time.monotonic()
            if self.step != self.sent_step and (now - self.sent_at >= self.every_s or self.step == self.total):
                self.report(step=self.step, total=self.total)
                self.sent_step, self.sent_at = self.step, now
        if sep == "\r":
            if text.strip():
                self.bar_text = text
            return
        line = text.strip()
        if not line:
            if self.bar_text:  # a bar that ended with its own newline-less redraws
                append_line(self.log_path, self.bar_text.strip(), option="-o/--output")
                self.bar_text = ""
            return
        self.bar_text = ""
        append_line(self.log_path, line, option="-o/--output")
        m = _EVAL.match(line)
        if m:
            self.report(step=int(m.group(1)), psnr=float(m.group(2)))
        m = _DONE.match(line)
        if m:
            self.export = m.group(1).strip()
        if line.startswith("Error:"):
            self.error = line[len("Error:"):].strip()


# --------------------------------------------------------------------------- the batch


@dataclass
class SceneResult:
    """One row of the batch's summary (:data:`SUMMARY_COLUMNS`); ``metrics`` is the scene's final
    ``metrics.jsonl`` line (empty when it has none)."""

    scene: str
    state: str
    path: str = ""
    step: int | None = None
    psnr: float | None = None
    ssim: float | None = None
    num_splats: int | None = None
    train_s: float | None = None
    wall_s: float | None = None
    attempts: int = 0
    node: str = ""
    export: str = ""
    error: str = ""
    metrics: dict = field(default_factory=dict)

    def row(self) -> dict:
        d = asdict(self)
        return {c: "" if d[c] is None else d[c] for c in SUMMARY_COLUMNS}


def _fmt(value, digits: int = 2) -> str:
    if value is None or value == "":
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _status_line(s: SceneStatus, n: int, count: int) -> str:
    parts = [f"[{n}/{count}] {s.scene}: {s.state}"]
    if s.step is not None:
        parts.append(f"step {s.step}" + (f"/{s.total}" if s.total else ""))
    if s.psnr is not None:
        parts.append(f"PSNR {s.psnr:.2f} dB")
    if s.attempt > 1:
        parts.append(f"attempt {s.attempt}")
    if s.node and s.state in ("running", "resuming"):
        parts.append(f"on {s.node}")
    if s.error:
        parts.append(s.error)
    return ", ".join(parts)


def run_batch(scenes: Sequence[SceneSpec], out_dir, train_args: Sequence[str] = (), address: str | None = None,
              gpus_per_scene: float = 0.0, cpus_per_scene: float = 1.0, retries: int = 2,
              num_cpus: int | None = None, dashboard: bool = False, log: Callable[[str], None] = print,
              on_progress: Callable[[dict], None] | None = None, poll_s: float = 1.0,
              progress_every_s: float = 10.0) -> list[SceneResult]:
    """Train every scene as a Ray task and write ``OUT/summary.csv``.

    Args:
        scenes: the :class:`SceneSpec` list (:func:`scene_specs`).
        out_dir: ``OUT``; each scene writes ``OUT/<name>/`` (a folder every node sees).
        train_args: ``brushpy train`` flags for every scene (a scene's own ``args`` come after).
        address: a cluster to join (:func:`~brushpy.distributed.cluster.connect`); None starts a
            local one (or reuses Ray already initialised in this process).
        gpus_per_scene: GPUs per task (fractions share a GPU; 0 trains on CPUs, e.g. lavapipe).
        cpus_per_scene: CPUs per task.
        retries: retries of a failed scene or a dead worker (Ray's ``max_retries``).
        num_cpus: CPUs of a local cluster (default: all).
        dashboard: start Ray's dashboard with a local cluster.
        log: where progress lines go: one per scene whenever its state, attempt or PSNR changes,
            and its step at most every ``progress_every_s`` seconds.
        on_progress: called with ``{name: SceneStatus}`` every ``poll_s`` seconds (tests watch with it).

    Returns:
        one :class:`SceneResult` per scene, in the order given (done, skipped or failed, with the error).

    Raises:
        RayMissingError, ClusterError: no Ray; an unusable ``address``; no node with the GPUs or CPUs asked.
        OptionError: ``train_args`` (or a scene's) set a flag the batch sets itself.
        brushpy.io.atomic.WriteError, InputError: ``out_dir`` cannot be written.
    """
    check_train_args(train_args)
    for s in scenes:
        check_train_args(s.args, f"the flags of scene {s.name}")
    if retries < 0 or gpus_per_scene < 0 or cpus_per_scene < 0:
        raise OptionError("--retries, --gpus-per-scene and --cpus-per-scene must be >= 0")
    if gpus_per_scene == 0 and cpus_per_scene == 0:
        raise OptionError("--cpus-per-scene 0 with --gpus-per-scene 0 would start every scene at once; "
                          "ask for at least some CPU or GPU per scene")
    out_dir = ensure_writable_dir(Path(out_dir).expanduser().resolve(), "-o/--output")
    ray = require_ray()
    cluster = connect(address, num_cpus, dashboard=dashboard)
    try:
        check_resources(gpus_per_scene, cpus_per_scene, address)
        log(f"batch of {len(scenes)} scenes on the {cluster.describe()}, {gpus_per_scene:g} GPU and "
            f"{cpus_per_scene:g} CPU per scene, into {out_dir}")
        return _run(ray, scenes, out_dir, list(train_args), gpus_per_scene, cpus_per_scene, retries, log,
                    on_progress, poll_s, progress_every_s)
    finally:
        if cluster.started_here:
            shutdown()


def _run(ray, scenes, out_dir, train_args, gpus, cpus, retries, log, on_progress, poll_s, every_s):
    board = ray.remote(num_cpus=0)(ProgressBoard).remote([s.name for s in scenes])
    task = ray.remote(train_scene).options(
        num_cpus=cpus, num_gpus=gpus, max_retries=retries, retry_exceptions=[SceneRunFailed])
    refs = {task.remote(spec, str(out_dir), train_args, board): spec for spec in scenes}
    answers: dict[str, dict] = {}
    printed: dict[str, tuple] = {}
    order = {s.name: i + 1 for i, s in enumerate(scenes)}
    pending = list(refs)
    try:
        while True:
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=poll_s) if pending else ([], [])
            for ref in ready:
                spec = refs[ref]
                try:
                    answers[spec.name] = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    answers[spec.name] = {"state": "failed", "error": _task_error(exc, retries)}
            statuses = ray.get(board.snapshot.remote())
            for name, answer in answers.items():  # a task that failed for good never told the board
                if statuses[name].state not in ("done", "skipped", "failed") or answer["state"] == "failed":
                    statuses[name].state = answer["state"]
                statuses[name].error = answer.get("error") or ""
            _print_changes(statuses, printed, order, log, every_s)
            if on_progress is not None:
                on_progress(statuses)
            if not pending:
                break
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref)  # the task stops its run with SIGTERM: it saves a checkpoint
        log("interrupted: the running scenes save a checkpoint; rerun the same command to resume them")
        raise
    statuses = ray.get(board.snapshot.remote())
    ray.kill(board)
    results = [_scene_result(spec, answers[spec.name], statuses[spec.name], out_dir) for spec in scenes]
    path = write_summary(out_dir, results)
    log(summary_markdown(results))
    log(f"wrote {path}")
    return results


def _task_error(exc, retries: int) -> str:
    """A failed task's error in one line: the run's own message, or how its worker died."""
    cause = getattr(exc, "cause", None)
    if cause is not None and not isinstance(cause, type(exc)):
        return str(cause).strip().splitlines()[-1] if str(cause).strip() else type(cause).__name__
    text = str(exc).strip().splitlines()
    name = type(exc).__name__
    return f"{name} after {retries + 1} attempts: {text[0] if text else ''}".strip()


def _print_changes(statuses, printed, order, log, every_s) -> None:
    now = time.monotonic()
    for name, s in statuses.items():
        key = (s.state, s.attempt, s.psnr)
        last = printed.get(name)
        if last is None or last[0] != key or (s.step != last[1] and now - last[2] >= every_s):
            if last is None and s.state == "queued":
                printed[name] = (key, s.step, now)
                continue
            log(_status_line(s, order[name], len(order)))
            printed[name] = (key, s.step, now)


def _scene_result(spec: SceneSpec, answer: dict, status: SceneStatus, out_dir: Path) -> SceneResult:
    if answer.get("state") == "failed" and "scene" not in answer:  # the task raised for good
        answer = _result(spec, "failed", out_dir / spec.name, status.attempt, status.node or "", error=answer["error"])
    wall = None
    if status.first_start is not None:
        wall = round((status.end or time.time()) - status.first_start, 1)
    keep = {k: answer.get(k) for k in ("step", "psnr", "ssim", "num_splats", "train_s")}
    return SceneResult(scene=spec.name, state=answer["state"], path=spec.path, wall_s=wall,
                       attempts=max(int(answer.get("attempts") or 0), status.attempt), node=answer.get("node") or "",
                       export=answer.get("export") or "", error=answer.get("error") or "",
                       metrics=answer.get("metrics") or {}, **keep)


def write_summary(out_dir, results: Sequence[SceneResult]) -> Path:
    """Write ``OUT/summary.csv`` atomically (:data:`SUMMARY_COLUMNS`, one row per scene); returns its path."""
    path = Path(out_dir) / SUMMARY_NAME
    with atomic_write(path, "w", encoding="utf-8", option="-o/--output") as f:
        writer = csv.DictWriter(f, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for r in results:
            writer.writerow(r.row())
    return path


def summary_markdown(results: Sequence[SceneResult]) -> str:
    """The summary as a markdown table (scene, state, step, PSNR, SSIM, splats, times, attempts, error)."""
    head = "| scene | state | step | PSNR (dB) | SSIM | splats | train s | wall s | attempts | error |"
    rows = [head, "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        error = r.error.replace("|", "\\|")
        rows.append(f"| {r.scene} | {r.state} | {_fmt(r.step)} | {_fmt(r.psnr)} | {_fmt(r.ssim, 4)} | "
                    f"{_fmt(r.num_splats)} | {_fmt(r.train_s, 1)} | {_fmt(r.wall_s, 1)} | {r.attempts} | {error} |")
    return "\n".join(rows)
