"""Starting a local backend from the add-on's preferences (core.local_backend), for real:
a command that is not there, one that exits with output, a real backend. How the process
is run, stopped and read is tests/shared/test_local_process.py's."""

from __future__ import annotations

import sys
import time

import pytest

from blender_addon.core.local_backend import (
    LocalBackend,
    LocalBackendConfig,
    build_command,
    connection_error,
)
from dreamwire.shared.client import Client


def test_command_line_and_missing_settings():
    cfg = LocalBackendConfig(
        command="/opt/dw/bin/dreamwire --verbose",
        models=["/m1", " "],
        bind="tcp://127.0.0.1:7000",
        out_dir="/o",
        extra_args="--low-vram",
    )
    assert build_command(cfg) == [
        "/opt/dw/bin/dreamwire",
        "--verbose",
        "serve",
        "--bind",
        "tcp://127.0.0.1:7000",
        "--models",
        "/m1",
        "--out",
        "/o",
        "--low-vram",
    ]
    with pytest.raises(ValueError, match="command"):
        build_command(LocalBackendConfig(command=" ", models=["/m"]))
    with pytest.raises(ValueError, match="model folders"):
        build_command(LocalBackendConfig(command="dreamwire", models=[]))
    with pytest.raises(ValueError, match="command cannot be read"):
        build_command(LocalBackendConfig(command='"/opt/dw', models=["/m"]))


def test_a_command_that_is_not_there_says_so_and_keeps_saying_it(tmp_path):
    lb = LocalBackend(tmp_path / "log.txt")
    missing = str(tmp_path / "nope")
    said = lb.start(LocalBackendConfig(command=missing, models=[str(tmp_path)]))
    assert said.startswith(f"Cannot start the local backend: command not found: {missing}")
    assert not lb.alive and not lb.check()  # nothing more to notice
    assert lb.failure_text == said
    # The client rewrites its error each poll; the connection box keeps the reason.
    for state in ("connecting", "lost", "disconnected"):
        assert connection_error(state, f"{state} detail", lb.failure_text) == said
    assert connection_error("connected", "", lb.failure_text) == ""  # a backend answers
    assert connection_error("lost", "gone", "") == "gone"


def test_a_backend_that_exits_shows_its_code_and_log_tail_until_the_next_start(tmp_path):
    lb = LocalBackend(tmp_path / "log.txt")
    # The `serve --bind ...` that follows is arguments the script ignores.
    script = "import sys; print('loading'); print('error: no models', file=sys.stderr); exit(3)"
    cfg = LocalBackendConfig(command=f'{sys.executable} -c "{script}"', models=[str(tmp_path)])
    assert lb.start(cfg) is None and lb.failure_text == ""
    end = time.monotonic() + 20
    while not lb.check() and time.monotonic() < end:
        time.sleep(0.02)
    assert lb.failure_text == "The local backend exited with code 3:\nloading\nerror: no models"
    assert not lb.check()  # noticed once: the timer redraws once
    assert connection_error("lost", "The backend stopped answering", lb.failure_text) == (
        lb.failure_text
    )
    sleeper = LocalBackendConfig(
        command=f'{sys.executable} -c "import time; time.sleep(60)"', models=[str(tmp_path)]
    )
    assert lb.start(sleeper) is None
    assert lb.alive and lb.failure_text == ""  # a new start, a clean slate
    lb.stop()
    assert not lb.alive and not lb.check() and lb.failure_text == ""  # stopped: no failure


def test_starts_a_real_backend_logs_and_stops(tiny_models, tmp_path):
    lb = LocalBackend(tmp_path / "backend.log")
    cfg = LocalBackendConfig(
        command=f"{sys.executable} -m dreamwire.backend",
        models=[str(tiny_models)],
        bind="tcp://127.0.0.1:0",
        out_dir=str(tmp_path / "out"),
    )
    lb.start(cfg)
    try:
        address = lb.wait_ready(timeout=180)
        assert address and address.startswith("tcp://127.0.0.1:"), lb.log_tail()
        with Client(address) as c:
            welcome = c.connect_wait(60)
        assert any("tiny-sd1" in str(m) for m in welcome.models)
    finally:
        lb.stop()
    assert not lb.alive
    assert "listening on" in lb.log_tail(500)
