"""Starting a backend process on this machine from the add-on's preferences.

The backend lives in its own Python environment (with torch); the add-on only knows the
path of its `dreamwire` command. The process, its log file and how it ended are
`dreamwire.shared.local_process`'s; here are the command line built from the preferences,
the address the backend prints once it listens, and what the panels say when it fails.
A failure stays on screen until the next start or until a backend answers: the client's
"connecting"/"lost" would otherwise hide the one thing the user needs to read.
"""

from __future__ import annotations

import os
import shlex
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from dreamwire.shared.local_process import FailureKind, LocalProcess, ProcessFailure

READY_PREFIX = "dreamwire: listening on "


@dataclass
class LocalBackendConfig:
    command: str  # path of `dreamwire` (or "python -m dreamwire.backend")
    models: list[str]
    bind: str = "tcp://127.0.0.1:5790"
    out_dir: str = ""
    extra_args: str = ""


def build_command(cfg: LocalBackendConfig) -> list[str]:
    if not cfg.command.strip():
        raise ValueError("Set the path of the backend's 'dreamwire' command in the preferences")
    models = [m for m in cfg.models if m.strip()]
    if not models:
        raise ValueError("Set the model folders for the local backend in the preferences")
    try:
        cmd = shlex.split(cfg.command)
    except ValueError as exc:  # an unmatched quote
        raise ValueError(f"The backend command cannot be read ({exc})") from None
    out = cfg.out_dir or os.path.join(tempfile.gettempdir(), "dreamwire-backend-out")
    cmd += ["serve", "--bind", cfg.bind, "--models", *models, "--out", out]
    if cfg.extra_args.strip():
        try:
            cmd += shlex.split(cfg.extra_args)
        except ValueError as exc:
            raise ValueError(f"The backend's extra arguments cannot be read ({exc})") from None
    return cmd


def failure_message(f: ProcessFailure) -> str:
    """What the add-on says about a failed local backend (several lines for an exit: the
    panels draw one label per line)."""
    if f.kind is FailureKind.EXITED:
        head = f"The local backend exited with code {f.exit_code}"
        return f"{head}:\n{f.log_tail}" if f.log_tail else f"{head} (it wrote nothing)."
    start = "Cannot start the local backend"
    if f.kind is FailureKind.NOT_FOUND:
        return (
            f"{start}: command not found: {f.program} (set the path of the backend's "
            "'dreamwire' command in the preferences)"
        )
    if f.kind is FailureKind.NOT_ALLOWED:
        return f"{start}: not allowed to run {f.program}"
    if f.kind is FailureKind.UNREADABLE:
        return f"{start}: the command cannot be read ({f.detail})"
    return f"{start} ({f.program}): {f.detail}"


def connection_error(state: str, client_error: str, local_failure: str) -> str:
    """The connection box's error text: while no backend answers, why the local backend
    failed outranks the client's detail, which each poll rewrites."""
    if local_failure and state != "connected":
        return local_failure
    return client_error


class LocalBackend:
    """The backend the add-on started (one at a time), its log and its failure."""

    def __init__(self, log_path: str | os.PathLike):
        self.proc = LocalProcess(log_path)

    @property
    def log_path(self) -> Path:
        return self.proc.log_path

    @property
    def command(self) -> list[str]:
        return self.proc.argv

    @property
    def alive(self) -> bool:
        return self.proc.running

    @property
    def failure_text(self) -> str:
        """Why the last start failed ("" while none did): kept until the next start."""
        return failure_message(self.proc.failure) if self.proc.failure else ""

    def start(self, cfg: LocalBackendConfig) -> str | None:
        """Start the backend; None, or why it cannot start. Settings that do not make a
        command (no command, no model folders) raise ValueError and start nothing."""
        if self.alive:
            return None
        failure = self.proc.start(build_command(cfg))
        return failure_message(failure) if failure is not None else None

    def check(self) -> bool:
        """Whether it has just now exited on its own (a timer polls this; True once)."""
        before = self.proc.failure
        return before is None and self.proc.check() is not None

    def address(self) -> str | None:
        """The address the backend printed once it listens, or None (not yet / failed)."""
        for line in self.log_tail(200).splitlines():
            if line.startswith(READY_PREFIX):
                return line[len(READY_PREFIX) :].strip()
        return None

    def wait_ready(self, timeout: float = 60.0) -> str | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            addr = self.address()
            if addr or not self.alive:
                return addr
            time.sleep(0.1)
        return None

    def stop(self) -> None:
        self.proc.stop()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.proc.log().splitlines()[-lines:])
