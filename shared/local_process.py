"""A backend process a host (Blender, Krita) starts on this machine, without any UI.

Its stdout and stderr go to a log file, so when it fails the host can say why: the command
was not found (or may not run, or cannot be read), or it exited with a code and these last
lines. The hosts only word a `ProcessFailure` in their own terms. Every process started
here is stopped when the host quits: the host calls `stop_all` from its quit hook, and
`atexit` does as a fallback (neither Blender nor Krita always finalises Python on the way
out, and a backend left running holds the port and the model memory).
"""

from __future__ import annotations

import atexit
import contextlib
import enum
import os
import shlex
import subprocess
import tempfile
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

TAIL_LINES = 8
TAIL_CHARS = 1200
STOP_WAIT_S = 5.0
# The host's own Python settings (Blender's bundled Python, Krita's) would make the
# backend's interpreter, from another environment, load the wrong standard library.
HOST_PYTHON_VARS = ("PYTHONHOME", "PYTHONPATH")

_running: weakref.WeakSet[LocalProcess] = weakref.WeakSet()


class FailureKind(enum.Enum):
    NOT_FOUND = "not_found"  # no such program
    NOT_ALLOWED = "not_allowed"  # the program may not be run
    UNREADABLE = "unreadable"  # the command line cannot be split (an unmatched quote)
    OS_ERROR = "os_error"  # another reason the OS refused to start it
    EXITED = "exited"  # it started, then exited on its own


@dataclass(frozen=True)
class ProcessFailure:
    """Why the process is not running. `program`: the program that could not start;
    `detail`: the OS's or the parser's words; `exit_code` and `log_tail` for EXITED."""

    kind: FailureKind
    program: str = ""
    detail: str = ""
    exit_code: int | None = None
    log_tail: str = ""


def log_tail(text: str, lines: int = TAIL_LINES, chars: int = TAIL_CHARS) -> str:
    """The last non-empty lines of a log (a traceback's end says the most)."""
    kept = [ln.rstrip() for ln in text.splitlines() if ln.strip()][-lines:]
    out = "\n".join(kept)
    return out if len(out) <= chars else "…" + out[-chars:]


def default_log_path(folder: str | os.PathLike | None = None) -> Path:
    """One log per host process, in `folder` (the temp folder by default)."""
    return Path(folder or tempfile.gettempdir()) / f"dreamwire-backend-{os.getpid()}.log"


def child_env() -> dict[str, str]:
    """This process's environment for the backend: unbuffered, so the log is current when
    it fails, and without the host's Python settings."""
    env = {k: v for k, v in os.environ.items() if k not in HOST_PYTHON_VARS}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _start_failure(argv: Sequence[str], exc: OSError) -> ProcessFailure:
    program = argv[0]
    if isinstance(exc, FileNotFoundError):
        return ProcessFailure(FailureKind.NOT_FOUND, program, exc.strerror or str(exc))
    if isinstance(exc, PermissionError):
        return ProcessFailure(FailureKind.NOT_ALLOWED, program, exc.strerror or str(exc))
    return ProcessFailure(FailureKind.OS_ERROR, program, exc.strerror or str(exc))


class LocalProcess:
    """One started process, its log, and how it ended."""

    def __init__(self, log_path: str | os.PathLike | None = None):
        self.log_path = Path(log_path) if log_path is not None else default_log_path()
        self.process: subprocess.Popen | None = None
        self.argv: list[str] = []
        self.failure: ProcessFailure | None = None
        self.stopped = False  # stopped by the host: its exit is no failure

    def start(self, command: str | Sequence[str]) -> ProcessFailure | None:
        """Start `command` (a command line, split as a POSIX shell would, or an argv).
        A command that cannot start is a failure at once, not an exception. A new start
        forgets the last one's failure; a running process is stopped first."""
        self.stop()
        self.failure, self.stopped, self.process = None, False, None
        if isinstance(command, str):
            try:
                argv = shlex.split(command)
            except ValueError as exc:
                self.failure = ProcessFailure(FailureKind.UNREADABLE, detail=str(exc))
                return self.failure
        else:
            argv = list(command)
        if not argv:
            self.failure = ProcessFailure(FailureKind.UNREADABLE, detail="it is empty")
            return self.failure
        self.argv = argv
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(self.log_path, "wb") as log:
                self.process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=child_env(),
                )
        except OSError as exc:
            self.failure = _start_failure(argv, exc)
            return self.failure
        _running.add(self)
        return None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check(self) -> ProcessFailure | None:
        """The failure, once the process has exited on its own; it stays until the next
        start (a host polls this from its timer)."""
        if self.failure is not None or self.process is None or self.stopped:
            return self.failure
        code = self.process.poll()
        if code is None:
            return None
        self.failure = ProcessFailure(
            FailureKind.EXITED, self.argv[0], exit_code=code, log_tail=log_tail(self.log())
        )
        _running.discard(self)
        return self.failure

    def stop(self, wait_s: float = STOP_WAIT_S) -> int | None:
        """Terminate it (it finishes its current write and exits), kill it if it will not
        within `wait_s`; returns its exit code (None when nothing was started)."""
        proc = self.process
        self.stopped = True
        _running.discard(self)
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(wait_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def log(self) -> str:
        """Everything it wrote so far ("" before it wrote anything)."""
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")
        return ""


def stop_all() -> None:
    """Stop every process started here (the host is quitting)."""
    for proc in list(_running):
        with contextlib.suppress(Exception):
            proc.stop()


atexit.register(stop_all)
