"""Starting a local backend from the add-on's preferences (core.local_backend), for real."""

from __future__ import annotations

import sys

import pytest

from blender_addon.core.local_backend import LocalBackend, LocalBackendConfig, build_command
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


def test_a_bad_command_is_a_clear_error(tmp_path):
    lb = LocalBackend(tmp_path / "log.txt")
    with pytest.raises(ValueError, match="Cannot start the backend"):
        lb.start(LocalBackendConfig(command=str(tmp_path / "nope"), models=[str(tmp_path)]))
    assert not lb.alive


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
