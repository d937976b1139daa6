"""Connection settings without Krita: the address checked before the dialog closes, Test
connection against an address nobody listens on, and the local backend the plugin starts
(a command that is not there; the process itself is tests/shared/test_local_process.py's)."""

from __future__ import annotations

import socket
import time

import pytest
from dreamwire_krita.logic import connection, local_backend
from dreamwire_krita.logic.local_backend import LocalBackend
from dreamwire_krita.logic.probe import ConnectionProbe
from dreamwire_krita.logic.settings import DEFAULT_ADDRESS, Settings, address_problem

from dreamwire.shared.client import Client
from dreamwire.shared.local_process import FailureKind, ProcessFailure


@pytest.mark.parametrize(
    "address", [DEFAULT_ADDRESS, "tcp://localhost:1", "tcp://[::1]:65535", "ipc:///tmp/dw.sock"]
)
def test_usable_addresses_pass(address):
    assert address_problem(address) is None
    assert Settings(address=address).problems() == []


@pytest.mark.parametrize(
    ("address", "says"),
    [
        ("", "empty"),
        (" tcp://127.0.0.1:5790", "spaces"),
        ("127.0.0.1:5790", "must start with tcp://"),
        ("http://127.0.0.1:5790", "must start with tcp://"),
        ("tcp://127.0.0.1", "host and a port"),
        ("tcp://:5790", "host and a port"),
        ("tcp://127.0.0.1:57a0", "1 to 65535"),
        ("tcp://127.0.0.1:0", "1 to 65535"),
        ("tcp://127.0.0.1:70000", "1 to 65535"),
        ("tcp://*:5790", "listens"),
        ("tcp://my host:5790", "not a host"),
        ("ipc://", "path"),
    ],
)
def test_bad_addresses_say_why(address, says):
    why = address_problem(address)
    assert why is not None and says in why, why
    assert Settings(address=address).problems()[0] == why


def test_a_local_start_failure_stays_on_screen_until_a_backend_answers():
    addr = DEFAULT_ADDRESS
    failure = "The local backend exited with code 2:\nerror: unrecognized arguments: --oops"
    for state in ("connecting", "lost", "disconnected"):
        view = connection.connection_view(state, False, addr, failure)
        assert view.message == failure and view.level == "error", state
    # Later status (the client giving up) does not replace it...
    assert connection.connection_view("lost", True, addr, failure).message == failure
    # ... a backend answering does.
    assert connection.connection_view("connected", True, addr, failure).message == "Connected."
    assert "No backend answers" in connection.connection_view("lost", False, addr).message


def _dead_address() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"tcp://127.0.0.1:{port}"


def _client(address, server_key, client_key):
    return Client(address, server_public_key=server_key, client_secret_key=client_key)


def _run(probe, limit=10.0):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        result = probe.tick()
        if result is not None:
            return result
        time.sleep(0.02)
    raise AssertionError("the probe never answered")


def test_test_connection_to_nobody_times_out_with_a_hint():
    address = _dead_address()
    start = time.monotonic()
    probe = ConnectionProbe(address, "", "", _client, timeout_s=0.4)
    result = _run(probe)
    assert not result.ok and address in result.message and "dreamwire serve" in result.message
    assert 0.35 <= time.monotonic() - start < 5
    assert probe.client is None  # its socket is closed


def test_test_connection_refuses_a_bad_address_without_connecting():
    made = []
    probe = ConnectionProbe("localhost:5790", "", "", lambda *a: made.append(a))
    assert not probe.tick().ok and "tcp://" in probe.tick().message and made == []
    # A key file that is not there: an answer, not an exception in the dialog.
    probe = ConnectionProbe(DEFAULT_ADDRESS, "/nonexistent/server.key", "x" * 40, _client)
    assert not probe.tick().ok and "Cannot connect" in probe.tick().message


def test_a_command_that_is_not_there_is_said_at_once(tmp_path):
    lb = LocalBackend("dreamwire-no-such-command serve --bind tcp://127.0.0.1:5790", tmp_path)
    failure = lb.start()
    assert failure.message.endswith("command not found: dreamwire-no-such-command")
    assert lb.check() is failure and not lb.running
    assert "cannot be read" in LocalBackend('dreamwire serve "unclosed', tmp_path).start().message


def test_an_exit_is_worded_with_its_code_and_log_tail():
    """The process side (a real exit, its log) is tests/shared/test_local_process.py's."""
    exited = ProcessFailure(FailureKind.EXITED, "dreamwire", exit_code=1, log_tail="a\nb")
    assert local_backend.failure_text(exited) == "The local backend exited with code 1:\na\nb"
    silent = ProcessFailure(FailureKind.EXITED, "dreamwire", exit_code=2)
    assert local_backend.failure_text(silent).endswith("code 2 (it wrote nothing).")
    denied = ProcessFailure(FailureKind.NOT_ALLOWED, "/opt/dw")
    assert local_backend.failure_text(denied).endswith("not allowed to run /opt/dw")
