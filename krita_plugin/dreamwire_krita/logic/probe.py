"""The settings dialog's "Test connection": one short-lived client that waits for the
backend's welcome, polled from a timer so Krita's window never stalls while it waits."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from dreamwire.shared.client import Client
from dreamwire.shared.events import ConnectionChanged, Welcome

from .settings import address_problem

PROBE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    message: str


def welcome_text(welcome: Welcome) -> str:
    models = len(welcome.models)
    workers = welcome.workers
    devices = ", ".join(dict.fromkeys(str(w.device) for w in workers if w.device))
    where = f" on {devices}" if devices else ""
    return f"Connected: the backend answers, with {models} model(s){where}."


class ConnectionProbe:
    """Call `tick()` until it returns a result; `close()` when the dialog goes away.

    `make_client(address, server_key, client_key)` returns a dreamwire Client (a parameter
    so the dialog and the tests build it the same way and the tests can pick timeouts)."""

    def __init__(
        self,
        address: str,
        server_key: str,
        client_key: str,
        make_client: Callable[[str, str | None, str | None], Client],
        timeout_s: float = PROBE_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.address = address
        self.clock = clock
        self.deadline = clock() + timeout_s
        self.timeout_s = timeout_s
        self.client: Client | None = None
        self.result: ProbeResult | None = None
        bad = address_problem(address)
        if bad:
            self.result = ProbeResult(False, bad)
            return
        try:
            self.client = make_client(address, server_key or None, client_key or None)
        except Exception as exc:  # a bad key file, an address ZeroMQ refuses
            self.result = ProbeResult(False, f"Cannot connect to {address}: {exc}")

    def tick(self) -> ProbeResult | None:
        if self.result is not None:
            return self.result
        for event in self.client.poll():
            if isinstance(event, Welcome):
                return self._finish(ProbeResult(True, welcome_text(event)))
            if isinstance(event, ConnectionChanged) and event.state in (
                "incompatible",
                "unauthorized",
            ):
                detail = event.detail or event.state
                return self._finish(ProbeResult(False, f"The backend refused: {detail}"))
        if self.clock() >= self.deadline:
            return self._finish(
                ProbeResult(
                    False,
                    f"No backend answered at {self.address} within {self.timeout_s:g} s: is "
                    "`dreamwire serve` running there, and the port the one it listens on?",
                )
            )
        return None

    def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close()
            self.client = None

    def _finish(self, result: ProbeResult) -> ProbeResult:
        self.result = result
        self.close()
        return result
