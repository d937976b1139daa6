"""The backend process a host starts (shared.local_process), with real processes: one that
is not there, one that exits with output, one that will not stop, one left running when its
host exits."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from dreamwire.shared import local_process
from dreamwire.shared.local_process import FailureKind, LocalProcess


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def _wait_exit(proc: LocalProcess, timeout: float = 20.0):
    end = time.monotonic() + timeout
    while proc.check() is None and time.monotonic() < end:
        time.sleep(0.02)
    return proc.check()


def _wait_log(proc: LocalProcess, text: str, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while text not in proc.log() and time.monotonic() < end:
        time.sleep(0.02)
    assert text in proc.log(), proc.log()


def test_a_command_that_cannot_start_is_a_failure_at_once(tmp_path):
    proc = LocalProcess(tmp_path / "a.log")
    failure = proc.start("dreamwire-no-such-command serve --bind tcp://127.0.0.1:5790")
    assert failure.kind is FailureKind.NOT_FOUND
    assert failure.program == "dreamwire-no-such-command"
    assert proc.check() is failure and not proc.running  # it stays
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\n")
    failure = proc.start([str(script)])
    assert (failure.kind, failure.program) == (FailureKind.NOT_ALLOWED, str(script))
    failure = proc.start('dreamwire serve "unclosed')
    assert failure.kind is FailureKind.UNREADABLE and "quotation" in failure.detail
    assert proc.start("  ").kind is FailureKind.UNREADABLE


def test_an_exit_says_its_code_and_log_tail_without_the_hosts_python_settings(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "host-site"))
    proc = LocalProcess(tmp_path / "logs" / "b.log")  # its folder is made
    code = """
        import os, sys
        print("loading", os.environ.get("PYTHONPATH"), os.environ.get("PYTHONUNBUFFERED"))
        print("error: no models under /nowhere", file=sys.stderr)
        sys.exit(3)
    """
    assert proc.start(_python(code)) is None
    failure = _wait_exit(proc)
    assert failure.kind is FailureKind.EXITED and failure.exit_code == 3
    assert failure.log_tail == "loading None 1\nerror: no models under /nowhere"
    assert proc.check() is failure and not proc.running
    # A new start forgets the old failure.
    assert proc.start(_python("import time; time.sleep(30)")) is None
    assert proc.failure is None and proc.running
    proc.stop()
    assert local_process.log_tail("\n".join(map(str, range(20))) + "\n\n", 3) == "17\n18\n19"
    assert local_process.log_tail("x" * 50, chars=10) == "…" + "x" * 10


def test_one_that_ignores_terminate_is_killed_after_the_wait(tmp_path):
    proc = LocalProcess(tmp_path / "c.log")
    code = """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ignoring", flush=True)
        time.sleep(60)
    """
    assert proc.start(_python(code)) is None
    _wait_log(proc, "ignoring")
    t0 = time.monotonic()
    assert proc.stop(wait_s=0.5) == -9  # killed
    assert time.monotonic() - t0 < 10
    assert proc.check() is None  # stopped by its host: no failure


def test_stop_all_stops_what_was_started_and_again_is_harmless(tmp_path):
    proc = LocalProcess(tmp_path / "d.log")
    assert proc.start(_python("import time; time.sleep(60)")) is None and proc.running
    local_process.stop_all()  # what a host's quit hook calls
    assert proc.process.poll() is not None and not proc.running
    assert proc.check() is None
    local_process.stop_all()


@pytest.mark.skipif(sys.platform == "win32", reason="checks a pid with signal 0")
def test_a_host_that_exits_without_stopping_it_takes_it_along(tmp_path):
    """atexit, the fallback for a host that quits without its hook (the bpy module)."""
    host = f"""
        from dreamwire.shared.local_process import LocalProcess
        proc = LocalProcess({str(tmp_path / "e.log")!r})
        assert proc.start([{sys.executable!r}, "-c", "import time; time.sleep(60)"]) is None
        print(proc.process.pid)
    """
    out = subprocess.run(_python(host), capture_output=True, text=True, timeout=60, check=True)
    pid = int(out.stdout.split()[-1])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the host waited for it: gone, not a zombie of ours
