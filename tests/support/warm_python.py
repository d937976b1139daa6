"""Run `python ARGS...` in a process forked from an interpreter that has already imported
the backend, instead of a fresh interpreter.

Why: a fresh backend or CLI process spends ~14 s of CPU importing torch, diffusers,
transformers and peft before it reads its arguments (measured on the 2-core CI box: torch
3.5 s, diffusers with torch._dynamo 3 s, the ControlNet/peft/transformers chain 6 s), and
the suite starts some 30 of them (every backend start and restart, every CLI run). A fork
server (multiprocessing's "forkserver") pays those imports once; each command then runs in a
fresh fork of it: a real, separate process with its own pid, sockets, signals (SIGKILL,
SIGTERM, SIGSTOP reach it by pid, as they would a child) and exit status, running the same
`__main__` through runpy as `python -m MODULE` or `python SCRIPT` does. Only the imports are
shared, so tests still exercise the real server and CLI code end to end.

Not warm (a fresh interpreter, as before):
- when the caller's environment differs from the fork server's in a variable read while
  importing (thread counts, PYTHON*, HF_*, TORCH*, ...): those cannot be changed after import;
- everywhere with DW_TEST_COLD_PYTHON=1 (to check the suite against cold starts);
- the tests about starting the backend the artist's way (the command in the Blender or Krita
  settings), which run their command themselves.

API:
  WarmPopen(args, env=..., cwd=..., stdout=PIPE | path, stderr=PIPE | path)
      a subprocess.Popen lookalike for [sys.executable, *args]: pid, stdout/stderr (text
      pipes), poll(), wait(timeout), send_signal(), terminate(), kill(), returncode
  popen(args, **kw)   WarmPopen, or subprocess.Popen where the command must run cold
  run(args, env=..., cwd=..., timeout=...)  -> subprocess.CompletedProcess (text, captured)
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import runpy
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path

PIPE = subprocess.PIPE
COLD_ENV = "DW_TEST_COLD_PYTHON"

# What a backend or CLI process imports before it does anything; each name is imported once,
# in the fork server.
PRELOAD = [
    "dreamwire.backend.cli",
    "dreamwire.backend.cli.serve",
    "dreamwire.backend.cli.generate",
    "dreamwire.backend.server",
    "dreamwire.backend.engine",
    "dreamwire.backend.library",
    "dreamwire.backend.store",
    "dreamwire.backend.conditioning",
    "dreamwire.backend.conditioning.controlnet_conditioner",
]

# Read while importing (by the interpreter, OpenMP/MKL, torch, huggingface_hub, ...): a
# command whose environment differs here from the fork server's must start cold. Not
# TORCHINDUCTOR_* / TRITON_*: the backend's fast path sets those itself when it compiles
# (engine/fastpath.py), in this process too, so they differ once a test compiled in-process.
_IMPORT_TIME_PREFIXES = (
    "PYTHON",
    "OMP_",
    "MKL_",
    "LD_",
    "TORCH_",
    "CUDA",
    "HF_",
    "TRANSFORMERS",
    "DIFFUSERS",
    COLD_ENV,
)

_lock = threading.Lock()
_server_env: dict[str, str] | None = None


# The forked process line-buffers its streams itself.
_HONOURED = frozenset({"PYTHONUNBUFFERED"})


def _import_time(env: dict[str, str]) -> dict[str, str]:
    return {
        k: v for k, v in env.items() if k.startswith(_IMPORT_TIME_PREFIXES) and k not in _HONOURED
    }


# Imported by the backend (PRELOAD), and they amend os.environ when first imported: opencv
# prepends its library folder to LD_LIBRARY_PATH. Were one first imported in this process
# after the fork server took its snapshot of the environment (a test that imports the
# backend's ControlNet code in-process), every later backend start and CLI run would differ
# from the snapshot and start cold (~14 s of imports each, measured: every private backend
# of a `pytest tests/wire` run after the first in-process ControlNet test). Imported before
# the snapshot, the environment this process hands its children stays the server's.
_ENV_AMENDING = ("cv2",)


def _settle_environment() -> None:
    for name in _ENV_AMENDING:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def _context():
    """The forkserver context; the server starts (and imports PRELOAD) on first use."""
    global _server_env
    ctx = multiprocessing.get_context("forkserver")
    with _lock:
        if _server_env is None:
            _settle_environment()
            ctx.set_forkserver_preload(PRELOAD)
            # The server is spawned with this process's environment (and sys.path).
            _server_env = dict(os.environ)
    return ctx


def warm_allowed(env: dict[str, str] | None) -> bool:
    if os.environ.get(COLD_ENV) == "1":
        return False
    if env is None:
        return True
    base = _server_env if _server_env is not None else dict(os.environ)
    return _import_time(env) == _import_time(base)


def _main(
    args: list[str],
    env: dict[str, str],
    cwd: str | None,
    stdout: Connection | str,
    stderr: Connection | str,
) -> None:
    """In the forked process: the standard streams, environment, directory and argv a fresh
    `python ARGS...` would have, then its __main__."""
    for fd, target in ((1, stdout), (2, stderr)):
        if isinstance(target, Connection):
            os.dup2(target.fileno(), fd)
            target.close()
        else:
            f = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(f, fd)
            os.close(f)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - lives as long as we do
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    os.environ.clear()
    os.environ.update(env)
    if cwd is not None:
        os.chdir(cwd)
    # multiprocessing leaves SIGINT ignored in its children; `python` does not.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if args[0] == "-m":
        sys.argv = [args[1], *args[2:]]
        runpy.run_module(args[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = list(args)
        sys.path.insert(0, os.path.dirname(os.path.abspath(args[0])))  # as `python SCRIPT` does
        runpy.run_path(args[0], run_name="__main__")


class WarmPopen:
    """[sys.executable, *args] run in a fork of the warm interpreter (see the module doc)."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
        stdout: int | str | Path = PIPE,
        stderr: int | str | Path = PIPE,
    ):
        ctx = _context()
        env = dict(os.environ if env is None else env)
        self.stdout = self.stderr = None
        targets, ours = [], []
        for which, target in (("stdout", stdout), ("stderr", stderr)):
            if target == PIPE:
                r, w = ctx.Pipe(duplex=False)
                targets.append(w)
                ours.append(w)
                setattr(self, which, open(os.dup(r.fileno()), errors="replace"))  # noqa: SIM115
                r.close()
            else:
                targets.append(os.fspath(target))
        self._proc = ctx.Process(
            target=_main,
            args=(list(args), env, None if cwd is None else os.fspath(cwd), *targets),
            daemon=True,  # ended when the test session ends, whatever a test left running
        )
        self._proc.start()
        for w in ours:  # the child holds its own copies: EOF comes when it exits
            w.close()
        self.pid = self._proc.pid
        self.args = list(args)

    @property
    def returncode(self) -> int | None:
        return self._proc.exitcode

    def poll(self) -> int | None:
        return self._proc.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._proc.join(timeout)
        if self._proc.exitcode is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self._proc.exitcode

    def send_signal(self, sig: int) -> None:
        if self._proc.exitcode is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def popen(args: Sequence[str], *, env: dict[str, str] | None = None, **kw):
    """WarmPopen where allowed, else subprocess.Popen of the same command (text pipes)."""
    if warm_allowed(env):
        return WarmPopen(args, env=env, **kw)
    files = {k: open(v, "ab") for k, v in kw.items() if k in ("stdout", "stderr") and v != PIPE}  # noqa: SIM115
    try:
        return subprocess.Popen(
            [sys.executable, *args], env=env, text=True, errors="replace", **(kw | files)
        )
    finally:
        for f in files.values():
            f.close()


def run(
    args: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess:
    """Like subprocess.run([sys.executable, *args], capture_output=True, text=True)."""
    proc = popen(args, env=env, cwd=cwd, stdout=PIPE, stderr=PIPE)
    streams = {"stdout": proc.stdout, "stderr": proc.stderr}
    got: dict[str, str] = {}
    readers = [
        threading.Thread(target=lambda k=k, s=s: got.__setitem__(k, s.read()), daemon=True)
        for k, s in streams.items()
    ]
    for t in readers:
        t.start()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    for t in readers:
        t.join()
    for s in streams.values():
        s.close()
    return subprocess.CompletedProcess(
        [sys.executable, *args], proc.returncode, got["stdout"], got["stderr"]
    )
