"""The backend the plugin starts itself (Settings > "Start local backend"), without Qt.

The process, its log and its end are `dreamwire.shared.local_process`'s; here is what the
docker says about a failure, in the artist's words. Every backend started here is stopped
when Krita quits (the plugin calls `stop_all` on Krita's applicationClosing, and `atexit`
does as a fallback).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dreamwire.shared.local_process import (
    FailureKind,
    LocalProcess,
    ProcessFailure,
    default_log_path,
    stop_all,
)

__all__ = ["LocalBackend", "StartFailure", "failure_text", "stop_all"]


@dataclass(frozen=True)
class StartFailure:
    """Why the local backend is not running, in the artist's words."""

    message: str


def failure_text(f: ProcessFailure) -> str:
    if f.kind is FailureKind.EXITED:
        head = f"The local backend exited with code {f.exit_code}"
        return f"{head}:\n{f.log_tail}" if f.log_tail else f"{head} (it wrote nothing)."
    start = "Could not start the local backend"
    if f.kind is FailureKind.NOT_FOUND:
        return f"{start}: command not found: {f.program}"
    if f.kind is FailureKind.NOT_ALLOWED:
        return f"{start}: not allowed to run {f.program}"
    if f.kind is FailureKind.UNREADABLE:
        return f"{start}: the command cannot be read ({f.detail})"
    return f"{start}: {f.detail}"


class LocalBackend:
    """One started backend (the settings' command line), and how it ended."""

    def __init__(self, command: str, log_dir: Path | None = None):
        self.command = command
        self.proc = LocalProcess(default_log_path(log_dir))
        self.failure: StartFailure | None = None

    @property
    def process(self):
        return self.proc.process

    @property
    def running(self) -> bool:
        return self.proc.running

    def start(self) -> StartFailure | None:
        """Start it; a command that cannot start is a failure at once, not an exception."""
        return self._word(self.proc.start(self.command))

    def check(self) -> StartFailure | None:
        """The failure, once the process has exited on its own (read once it has)."""
        return self._word(self.proc.check())

    def stop(self) -> int | None:
        return self.proc.stop()

    def _word(self, failure: ProcessFailure | None) -> StartFailure | None:
        if failure is not None and self.failure is None:
            self.failure = StartFailure(failure_text(failure))
        return self.failure
