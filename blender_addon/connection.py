"""The add-on's one connection to the backend, polled from a timer.

A single object owns the Client so its events are read in one place: while an action
runs, the action's Driver polls through `Connection.poll()`; otherwise a slow timer keeps
the connection state and the backend's Welcome (model lists) fresh for the panel.
"""

from __future__ import annotations

from typing import Any

import bpy

from dreamwire.shared import events as ev
from dreamwire.shared.local_process import default_log_path

from . import prefs
from .core.local_backend import LocalBackend, LocalBackendConfig, connection_error

IDLE_POLL_S = 0.5


class Connection:
    def __init__(self) -> None:
        self.client: Any = None
        self.key: tuple = ()
        self.error = ""

    @property
    def address(self) -> str:
        return self.client.address if self.client is not None else ""

    @property
    def state(self) -> str:
        return self.client.state if self.client is not None else "disconnected"

    @property
    def welcome(self):
        return self.client.welcome if self.client is not None else None

    def ensure(self, context=None) -> Any:
        """The client for the address in the preferences (re-created when it changes)."""
        from dreamwire.shared.client import Client
        from dreamwire.shared.errors import DreamwireError

        p = prefs.get(context)
        address = p.address.strip() if p else "tcp://127.0.0.1:5790"
        server_key = (p.server_public_key.strip() or None) if p else None
        client_key = (
            (bpy.path.abspath(p.client_key_file).strip() or None)
            if p and p.client_key_file
            else None
        )
        key = (address, server_key, client_key)
        if self.client is not None and key == self.key and self.client.state != ev.CLOSED:
            return self.client
        self.close()
        try:
            self.client = Client(
                address,
                server_public_key=server_key,
                client_secret_key=client_key,
                name="dreamwire-blender",
            )
        except DreamwireError as exc:
            self.error = exc.message
            raise
        except (OSError, ValueError) as exc:
            self.error = f"Bad backend address or key: {exc}"
            from dreamwire.shared.errors import ErrorCode

            raise DreamwireError(ErrorCode.BACKEND_UNAVAILABLE, self.error) from None
        self.key = key
        self.error = ""
        return self.client

    # Driver-facing interface (duck-typed like Client).
    def poll(self) -> list[Any]:
        if self.client is None:
            return []
        events = self.client.poll()
        for e in events:
            if isinstance(e, ev.ConnectionChanged):
                self.error = e.detail if e.state != ev.CONNECTED else ""
        return events

    def submit(self, job) -> str:
        return self.client.submit(job)

    def cancel(self, job_id: str) -> None:
        self.client.cancel(job_id)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        self.client = None
        self.key = ()


CONN = Connection()
LOCAL = LocalBackend(default_log_path())
ACTIVE: dict[str, Any] = {"driver": None}


def welcome():
    return CONN.welcome


def local_backend_alive() -> bool:
    return LOCAL.alive


def local_backend_error() -> str:
    """The connection box's error: why the local backend failed, while no backend answers."""
    return connection_error(CONN.state, CONN.error, LOCAL.failure_text)


def start_local_backend(context=None) -> str | None:
    """Start the backend from the preferences; None, or why it cannot start (that reason
    stays in the panels). Settings that make no command raise ValueError."""
    p = prefs.get(context)
    if p is None:
        raise ValueError("The add-on preferences are not available")
    address = p.address.strip() or "tcp://127.0.0.1:5790"
    cfg = LocalBackendConfig(
        command=bpy.path.abspath(p.backend_command) if p.backend_command else "",
        models=[bpy.path.abspath(m.strip()) for m in p.backend_models.split(";") if m.strip()],
        bind=address,
        out_dir=bpy.path.abspath(p.backend_out) if p.backend_out else "",
        extra_args=p.backend_args,
    )
    return LOCAL.start(cfg)


def _idle_poll() -> float | None:
    changed = LOCAL.check()  # the local backend exited: say why at once
    # An action's driver polls the client itself; reading events here would steal them.
    if ACTIVE["driver"] is None and CONN.client is not None:
        before = CONN.state
        try:
            CONN.poll()
        except Exception as exc:  # noqa: BLE001 - never let a timer die
            CONN.error = str(exc)
        changed = changed or CONN.state != before
    if changed:
        _redraw()
    return IDLE_POLL_S


def _redraw() -> None:
    wm = bpy.context.window_manager
    for win in getattr(wm, "windows", []):
        for area in win.screen.areas:
            if area.type in ("VIEW_3D", "IMAGE_EDITOR", "PREFERENCES"):
                area.tag_redraw()


def register() -> None:
    if not bpy.app.timers.is_registered(_idle_poll):
        bpy.app.timers.register(_idle_poll, first_interval=IDLE_POLL_S, persistent=True)


def unregister() -> None:
    if bpy.app.timers.is_registered(_idle_poll):
        bpy.app.timers.unregister(_idle_poll)
    driver = ACTIVE["driver"]
    if driver is not None:
        driver.cancel()
        ACTIVE["driver"] = None
    CONN.close()
    # Blender disables every add-on when it quits (bpy.utils._on_exit), so this is also
    # where the backend it started goes; the bpy module, which does not, has the shared
    # module's atexit.
    LOCAL.stop()
