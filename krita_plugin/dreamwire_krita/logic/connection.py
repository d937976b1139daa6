"""What the docker says about its connection to the backend.

The client reports "lost" whenever the backend stops answering, including when it never
answered at all. To an artist who has just started Krita those are different things: a
backend not started yet (or a wrong address) is "Not connected", with a hint; "Lost" is
only for a backend that was connected and went away.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConnectionView:
    label: str  # the docker's state label
    message: str
    level: str  # "info" | "warning" | "error"


def connection_view(
    state: str, ever_connected: bool, address: str, local_failure: str = ""
) -> ConnectionView:
    """The label, message and level for the client's `state`; `ever_connected`: whether
    this connection has reached the backend at least once; `local_failure`: why the local
    backend the plugin started is not running. That reason stays on screen until a backend
    answers: "Not connected" would hide the one thing the artist needs to read."""
    if local_failure and state != "connected":
        return ConnectionView("Backend failed", local_failure, "error")
    if state == "lost" and not ever_connected:
        return ConnectionView(
            "Not connected",
            f"No backend answers at {address} yet: start `dreamwire serve`, or set its "
            "address (or a command that starts it) in Settings.",
            "warning",
        )
    known = {
        "connected": ("Connected", "Connected.", "info"),
        "connecting": ("Connecting", f"Connecting to {address}…", "info"),
        "lost": ("Lost", "The backend stopped answering.", "error"),
        "incompatible": ("Incompatible", "The backend speaks another protocol version.", "error"),
        "unauthorized": ("Unauthorized", "The backend refused this client's keys.", "error"),
        "disconnected": ("Disconnected", "", "info"),
    }
    label, message, level = known.get(state, (state.capitalize(), state, "info"))
    return ConnectionView(label, message, level)
