"""Starting a backend process on this machine from the add-on's preferences.

The backend lives in its own Python environment (with torch); the add-on only knows the
path of its `dreamwire` command. Its console output goes to a log file the UI can show,
and the address it prints on start-up tells the add-on where to connect.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

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
    cmd = shlex.split(cfg.command)
    out = cfg.out_dir or os.path.join(tempfile.gettempdir(), "dreamwire-backend-out")
    cmd += ["serve", "--bind", cfg.bind, "--models", *models, "--out", out]
    if cfg.extra_args.strip():
        cmd += shlex.split(cfg.extra_args)
    return cmd


class LocalBackend:
    """One backend child process and its log file."""

    def __init__(self, log_path: str | os.PathLike):
        self.log_path = Path(log_path)
        self.proc: subprocess.Popen | None = None
        self.command: list[str] = []

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, cfg: LocalBackendConfig) -> None:
        if self.alive:
            return
        self.command = build_command(cfg)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        # Blender's own Python settings must not leak into the backend's interpreter.
        for key in ("PYTHONHOME", "PYTHONPATH"):
            env.pop(key, None)
        try:
            self.proc = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        except OSError as exc:
            log.close()
            raise ValueError(
                f"Cannot start the backend ({self.command[0]}): {exc.strerror}"
            ) from None
        log.close()

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

    def stop(self, timeout: float = 10.0) -> None:
        if not self.alive:
            return
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
