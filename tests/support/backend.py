"""Start a real dreamwire backend process for a test, and stop it afterwards.

The backend runs as an artist would run it, `python -m dreamwire.backend serve`, in its own
process, on a free port (port 0), so tests talk to it over real ZeroMQ sockets. The process is
forked from an interpreter that has already imported the backend (tests/support/warm_python.py:
the same `serve`, without ~14 s of imports per start); DW_TEST_COLD_PYTHON=1 starts fresh
interpreters instead::

    from tests.support.backend import BackendProcess

    with BackendProcess(models=[tiny_models], out_dir=tmp_path / "out") as backend:
        client = Client(backend.address)          # "tcp://127.0.0.1:PORT"
        result = client.run(Job(prompt="x", width=64, height=64, steps=2))
        backend.kill()                            # SIGKILL, as a crash would
        backend.start()                           # same port, same output folder

Or use the pytest fixtures in tests/wire/conftest.py: `backend` (one server shared by a test
module) and `backend_factory` (call it for a private server, e.g. to kill it).

API:
  BackendProcess(models, out_dir, *, bind="tcp://127.0.0.1:0", keys_dir=None,
                 client_keys=(), extra_args=(), env=None, ready_timeout=180)
  .start()        launch (or relaunch after kill/stop, reusing the same port); returns self
                  once the process printed its address; raises RuntimeError with the tail of
                  the log if it exits or stays silent for `ready_timeout` seconds
  .address        the bound address, e.g. "tcp://127.0.0.1:40123"
  .pid, .alive    process id, whether it is running
  .kill()         SIGKILL and wait (a crash); .stop() SIGTERM, then SIGKILL after 10 s
  .pause()/.resume()  SIGSTOP/SIGCONT (a frozen backend)
  .log_text()     everything the process wrote to stderr (its console log)
  .out_dir        the output folder results are saved to (out_dir/jobs/<job_id>/...)
  context manager: start on enter, stop on exit
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from tests.support import warm_python
from tests.support.threads import thread_env

READY_PREFIX = "dreamwire: listening on "


class BackendProcess:
    def __init__(
        self,
        models: Sequence[Path | str],
        out_dir: Path | str,
        *,
        bind: str = "tcp://127.0.0.1:0",
        keys_dir: Path | str | None = None,
        client_keys: Sequence[Path | str] = (),
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        ready_timeout: float = 180.0,
    ):
        self.models = [Path(m) for m in models]
        self.out_dir = Path(out_dir)
        self.bind = bind
        self.keys_dir = Path(keys_dir) if keys_dir is not None else None
        self.client_keys = [Path(k) for k in client_keys]
        self.extra_args = list(extra_args)
        self.env = env
        self.ready_timeout = ready_timeout
        self.address = ""
        self.proc: warm_python.WarmPopen | subprocess.Popen | None = None
        self._stderr_path = self.out_dir / "backend-console.log"
        self._lines: list[str] = []

    # -- lifecycle -----------------------------------------------------------------------
    def command(self) -> list[str]:
        # After the first start, restart on the port we got so clients can reconnect.
        bind = self.address or self.bind
        cmd = [
            sys.executable,
            "-m",
            "dreamwire.backend",
            "serve",
            "--models",
            *map(str, self.models),
            "--bind",
            bind,
            "--out",
            str(self.out_dir),
        ]
        if self.keys_dir is not None:
            cmd += ["--keys", str(self.keys_dir)]
        for key in self.client_keys:
            cmd += ["--allow-client-key", str(key)]
        return cmd + self.extra_args

    def start(self) -> BackendProcess:
        if self.alive:
            return self
        self.out_dir.mkdir(parents=True, exist_ok=True)
        env = thread_env()  # the suite's thread count, whatever the caller's environment
        env.setdefault("HF_HUB_OFFLINE", "1")
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.env or {})
        python, *args = self.command()
        assert python == sys.executable, python
        # Forked from the warm interpreter where allowed: the same `serve` without paying
        # ~14 s of CPU for its imports on every start and restart (tests/support/warm_python.py).
        self.proc = warm_python.popen(
            args, env=env, stdout=warm_python.PIPE, stderr=self._stderr_path
        )
        ready = threading.Event()
        threading.Thread(target=self._read_stdout, args=(self.proc, ready), daemon=True).start()
        deadline = time.monotonic() + self.ready_timeout
        while not ready.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"backend did not start (exit {self.proc.returncode}):\n{self.log_text()[-4000:]}"
                )
        return self

    def _read_stdout(
        self, proc: warm_python.WarmPopen | subprocess.Popen, ready: threading.Event
    ) -> None:
        # Drained to the end so the child never blocks on a full pipe.
        assert proc.stdout is not None
        for line in proc.stdout:
            self._lines.append(line)
            if line.startswith(READY_PREFIX) and not ready.is_set():
                self.address = line[len(READY_PREFIX) :].strip()
                ready.set()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        if self.alive:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(30)

    def stop(self) -> None:
        if not self.alive:
            return
        self.proc.send_signal(signal.SIGCONT)  # a paused process cannot handle SIGTERM
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def log_text(self) -> str:
        try:
            return self._stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> BackendProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
