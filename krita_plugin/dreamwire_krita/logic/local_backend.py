"""The backend the plugin starts itself (Settings > "Start local backend"), without Qt.

Its output goes to a log file, so when it fails the docker can say why: the command was
not found, or it exited with a code and these last lines. Every backend started here is
stopped when Krita quits (the plugin calls `stop_all` on Krita's applicationClosing, and
`atexit` does as a fallback), so no backend is left holding the port and the memory.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shlex
import subprocess
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path

TAIL_LINES = 8
TAIL_CHARS = 1200
STOP_WAIT_S = 5.0

_running: weakref.WeakSet[LocalBackend] = weakref.WeakSet()


@dataclass(frozen=True)
class StartFailure:
    """Why the local backend is not running, in the artist's words."""

    message: str


def log_tail(text: str, lines: int = TAIL_LINES, chars: int = TAIL_CHARS) -> str:
    """The last non-empty lines of a log (a traceback's end says the most)."""
    kept = [ln.rstrip() for ln in text.splitlines() if ln.strip()][-lines:]
    out = "\n".join(kept)
    return out if len(out) <= chars else "…" + out[-chars:]


def start_error_text(command: str, exc: Exception) -> str:
    program = (shlex.split(command) or [command])[0] if not isinstance(exc, ValueError) else ""
    if isinstance(exc, FileNotFoundError):
        return f"Could not start the local backend: command not found: {program}"
    if isinstance(exc, PermissionError):
        return f"Could not start the local backend: not allowed to run {program}"
    if isinstance(exc, ValueError):  # shlex: an unmatched quote
        return f"Could not start the local backend: the command cannot be read ({exc})"
    return f"Could not start the local backend: {exc}"


def exit_text(code: int, tail: str) -> str:
    head = f"The local backend exited with code {code}"
    return f"{head}:\n{tail}" if tail else f"{head} (it wrote nothing)."


class LocalBackend:
    """One started backend process, its log, and how it ended."""

    def __init__(self, command: str, log_dir: Path | None = None):
        self.command = command
        folder = Path(log_dir or tempfile.gettempdir())
        self.log_path = folder / f"dreamwire-backend-{os.getpid()}.log"
        self.process: subprocess.Popen | None = None
        self.failure: StartFailure | None = None
        self.stopped = False  # stopped by the plugin: its exit is no failure

    def start(self) -> StartFailure | None:
        """Start it; a command that cannot start is a failure at once, not an exception."""
        try:
            argv = shlex.split(self.command)
            if not argv:
                raise ValueError("it is empty")
            with open(self.log_path, "wb") as log:
                self.process = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
                )
        except (OSError, ValueError) as exc:
            self.failure = StartFailure(start_error_text(self.command, exc))
            return self.failure
        _running.add(self)
        return None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check(self) -> StartFailure | None:
        """The failure, once the process has exited on its own (read once it has)."""
        if self.failure is not None or self.process is None or self.stopped:
            return self.failure
        code = self.process.poll()
        if code is None:
            return None
        self.failure = StartFailure(exit_text(code, log_tail(self._log())))
        _running.discard(self)
        return self.failure

    def stop(self, wait_s: float = STOP_WAIT_S) -> int | None:
        """Terminate it (it finishes its current write and exits), kill it if it will not;
        returns its exit code."""
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

    def _log(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")
        return ""


def stop_all() -> None:
    """Stop every backend this plugin started (Krita is quitting)."""
    for backend in list(_running):
        with contextlib.suppress(Exception):
            backend.stop()


atexit.register(stop_all)
