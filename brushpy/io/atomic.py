"""Atomic, durable file writes: a file brushpy writes is either the old one or the whole new one.

:func:`atomic_write` writes into a temp file in the target's folder, flushes and
``fsync``s it, then ``os.replace``s it onto the final name (and ``fsync``s the
folder where the OS allows), so a crash, a SIGKILL or a full disk never leaves
a truncated export, checkpoint or image under the final name, and a failed
write keeps the previous file. Any ``OSError`` on the way removes the temp file
and becomes a :class:`WriteError` naming the final path and the cause.

Temp files are named ``.<name>.tmp-<pid>-<random>`` (hidden, and not ending in
the final suffix, so the viewer's folder listing never takes one for a
``.ply``). Only a process killed between creating and replacing one can leave it
behind; the next write of the same name removes those of processes no longer
alive.

:func:`append_line` appends one line to an append-only log (``metrics.jsonl``)
durably; a crash can at worst tear the last line, which :func:`read_jsonl` skips.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path

from ..errors import InputError, RunError

__all__ = ["WriteError", "append_line", "atomic_write", "ensure_writable_dir", "read_jsonl", "write_error"]

_REASONS = {
    errno.ENOSPC: "no space left on device: free space or {elsewhere}",
    errno.EDQUOT: "disk quota exceeded: free space or {elsewhere}",
    errno.EACCES: "permission denied: {elsewhere}",
    errno.EPERM: "operation not permitted: {elsewhere}",
    errno.EROFS: "read-only file system: {elsewhere}",
    errno.ENOTDIR: "a folder on its path is a file: {elsewhere}",
    errno.EISDIR: "it is a folder: {elsewhere}",
    errno.EEXIST: "a folder on its path is a file: {elsewhere}",
}

_UMASK = os.umask(0o022)
os.umask(_UMASK)


class WriteError(RunError):
    """A file could not be written (full disk, no permission...); the message names the file and the cause."""


def _reason(exc: OSError, option: str | None) -> str:
    elsewhere = f"choose another {option}" if option else "write elsewhere"
    return _REASONS.get(exc.errno, "{strerror}").format(elsewhere=elsewhere, strerror=exc.strerror or exc)


def write_error(path, exc: OSError, option: str | None = None) -> WriteError:
    """The :class:`WriteError` for ``exc`` while writing ``path``; ``option`` names the option that chose the path."""
    return WriteError(f"cannot write {path}: {_reason(exc, option)}")


def ensure_writable_dir(folder, option: str) -> Path:
    """Create ``folder`` if missing and check that a file can be made in it (before a long run writes there).

    Raises:
        InputError: ``"<option> <folder>: <reason>"`` (it cannot be created or written to).
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".brushpy-write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"{option} {folder}: {_reason(exc, option)}") from exc
    return folder


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: it exists
        return True
    return True


def _remove_stale_temps(path: Path) -> None:
    """Remove temp files of ``path`` left by writers that were killed (their process is gone)."""
    if os.name != "posix":
        return
    prefix = f".{path.name}.tmp-"
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent):
            if not entry.name.startswith(prefix):
                continue
            pid = entry.name[len(prefix):].split("-", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb", *, encoding: str | None = None, option: str | None = None):
    """Open a temp file for writing that becomes ``path`` when the ``with`` block ends without error.

    The folder is created if missing. ``mode`` is ``"wb"`` or ``"w"`` (text, with
    ``encoding``). The new file gets the old file's permissions, or the umask's.
    Writers that need a file name for the format (PIL) must pass the format
    explicitly: the temp name does not end in the final suffix.

    Raises:
        WriteError: any ``OSError`` (full disk, no permission, a file where a
            folder should be); the previous file at ``path``, if any, is intact
            and the temp file removed. Other exceptions from the block propagate
            unchanged, also after removing the temp file.
    """
    path = Path(path)
    folder = path.parent
    tmp = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(path)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.tmp-{os.getpid()}-")
        try:
            perm = os.stat(path).st_mode & 0o7777
        except OSError:
            perm = 0o666 & ~_UMASK
        with contextlib.suppress(OSError):
            os.chmod(tmp, perm)
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(folder)
    except OSError as exc:
        raise write_error(path, exc, option) from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def append_line(path, line: str, *, option: str | None = None) -> None:
    """Append ``line`` (a newline is added) to ``path`` and ``fsync`` it.

    If the file ends in a torn line (a crash mid-append), the new line starts on a
    line of its own, so only the torn one is lost.

    Raises:
        WriteError: the line could not be written.
    """
    path = Path(path)
    try:
        with open(path, "ab+") as f:
            torn = False
            if f.seek(0, os.SEEK_END) > 0:
                f.seek(-1, os.SEEK_END)
                torn = f.read(1) != b"\n"
            f.write((("\n" if torn else "") + line.rstrip("\n") + "\n").encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise write_error(path, exc, option) from exc


def read_jsonl(path) -> list:
    """The JSON values of the lines of ``path``, skipping a torn (unparseable) line from a crash mid-append."""
    out = []
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
