"""The plugin's conversation with the backend, driven by a timer, with no Qt or Krita in it.

The docker calls `tick()` from a QTimer; `tick` drains `client.poll()` (which never
blocks) and turns the wire's events into calls on a listener (the docker and the Krita
adapter). Each submitted job keeps what it needs to land on the canvas later (`Pending`),
captured at submit time: the artist may change the selection or the active document
while the backend works.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job
from dreamwire.shared.result import JobResult, Progress

from .control_from_layer import MadeControl
from .params import Params
from .regions import Plan

LOST_MESSAGE = (
    "The backend stopped answering during the job; the document was not changed. "
    "Waiting for it to come back (Cancel gives up)."
)
REFUSED_MESSAGE = "The backend connection failed; the document was not changed."


class SessionError(Exception):
    """The request cannot be sent; the message is for the artist."""


@dataclass
class Pending:
    action: str
    plan: Plan
    params: Params
    doc_key: Any  # the host's handle on the document the job belongs to
    mask: np.ndarray | None = None  # selection over plan.target, as it was at submit
    # A preprocess job's source layer and the control type its map becomes.
    control: MadeControl | None = None
    job_id: str = ""
    submitted: float = field(default_factory=time.monotonic)
    # Where the job stands, for the queue menu: "sent", "queued" (with `ahead` jobs before
    # it in the backend's queue), then the states its Progress events name.
    stage: str = "sent"
    ahead: int | None = None


class Listener(Protocol):
    def on_state(self, state: str) -> None: ...
    def on_welcome(self, welcome: Any) -> None: ...
    def on_progress(self, pending: Pending | None, progress: Progress) -> None: ...
    def on_result(self, pending: Pending, result: JobResult) -> None: ...
    def on_error(self, pending: Pending | None, message: str) -> None: ...
    def on_cancelled(self, pending: Pending) -> None: ...


def error_text(err: DreamwireError) -> str:
    hints = {
        ErrorCode.MODEL_NOT_FOUND: "Pick a model the backend lists.",
        ErrorCode.CONTROLNET_NOT_FOUND: "The backend has no ControlNet for that control type.",
        ErrorCode.OUT_OF_MEMORY: "Try a smaller size or batch.",
        ErrorCode.POISON_JOB: "It is not run again; check the backend's log.",
        ErrorCode.UNAUTHORIZED: "Check the keys in the Dreamwire settings.",
        ErrorCode.PROTOCOL_VERSION: "Update the plugin or the backend so they match.",
    }
    hint = hints.get(err.code, "")
    return f"{err.message} {hint}".strip()


class Session:
    def __init__(self, client: Any, listener: Listener):
        self.client = client
        self.listener = listener
        self.pending: dict[str, Pending] = {}
        self.state = getattr(client, "state", "connecting")
        self.listener_errors: list[str] = []

    @property
    def busy(self) -> bool:
        return bool(self.pending)

    def submit(self, job: Job, pending: Pending) -> str:
        state = getattr(self.client, "state", "connected")
        if state != "connected":
            raise SessionError(
                {
                    "connecting": "The backend is not answering yet; check that it is running.",
                    "lost": "The backend stopped answering; check that it is running.",
                    "incompatible": "The backend speaks another protocol version; update one side.",
                    "unauthorized": "The backend refused this client; check the keys in the settings.",
                    "closed": "Not connected to the backend.",
                }.get(state, f"Not connected to the backend ({state}).")
            )
        try:
            job_id = self.client.submit(job)
        except DreamwireError as err:
            raise SessionError(error_text(err)) from None
        pending.job_id = job_id
        self.pending[job_id] = pending
        return job_id

    def cancel(self, job_id: str | None = None) -> None:
        for jid in [job_id] if job_id else list(self.pending):
            if jid not in self.pending:
                continue
            if self.state == "connected":
                self.client.cancel(jid)  # the backend confirms with Cancelled
            else:
                # Nobody to confirm it: give up locally, and ignore a late result.
                self.listener.on_cancelled(self.pending.pop(jid))
                with contextlib.suppress(DreamwireError):
                    self.client.cancel(jid)

    def tick(self) -> int:
        """Handle whatever arrived; never raises, so the timer keeps running."""
        try:
            events = self.client.poll()
        except Exception as exc:  # a broken socket must not kill the docker's timer
            events = []
            self._fail_all(f"Connection error: {exc}")
        for ev in events:
            try:
                self._dispatch(ev)
            except Exception as exc:  # noqa: BLE001 - reported, then the next event
                self.listener_errors.append(f"{type(ev).__name__}: {exc!r}")
                self.listener.on_error(None, f"Could not apply {type(ev).__name__}: {exc}")
        return len(events)

    def refresh_models(self) -> None:
        """Ask the backend for its model lists again (it rescans its folders: a checkpoint
        merged or copied in since the welcome is listed); the answer refreshes the docker."""
        if self.state == "connected":
            self.client.list_models()

    def close(self) -> None:
        self.pending.clear()
        self.client.close()

    # -- events -------------------------------------------------------------------
    def _dispatch(self, ev: Any) -> None:
        kind = type(ev).__name__
        if kind == "ConnectionChanged":
            self.state = ev.state
            self.listener.on_state(ev.state)
            if ev.state == "lost" and self.pending:
                # Jobs stay open: the client looks them up when the backend answers again,
                # and a result it finished meanwhile still lands.
                self.listener.on_error(None, LOST_MESSAGE)
            elif ev.state in ("incompatible", "unauthorized", "closed"):
                self._fail_all(
                    REFUSED_MESSAGE + (f" ({ev.detail})" if getattr(ev, "detail", "") else "")
                )
        elif kind == "Welcome":
            self.listener.on_welcome(ev)
        elif kind in ("ModelsEvent", "ModelsChanged"):
            # The client has updated its welcome's lists from the answer (or from the
            # backend's own news of a changed library): show them.
            if getattr(self.client, "welcome", None) is not None:
                self.listener.on_welcome(self.client.welcome)
        elif kind == "Accepted":
            pending = self.pending.get(ev.job_id)
            if pending is not None:
                pending.stage, pending.ahead = "queued", ev.position
            self.listener.on_progress(
                self.pending.get(ev.job_id),
                Progress(ev.job_id, "queued", message=f"queued ({ev.position} ahead)"),
            )
        elif kind == "ProgressEvent":
            p = ev.progress
            pending = self.pending.get(p.job_id)
            if pending is not None:
                pending.stage = p.state
            self.listener.on_progress(self.pending.get(p.job_id), p)
        elif kind == "ResultEvent":
            pending = self.pending.pop(ev.result.job_id, None)
            if pending is not None:
                self.listener.on_result(pending, ev.result)
        elif kind == "ErrorEvent":
            err = ev.error
            pending = self.pending.pop(err.job_id, None) if err.job_id else None
            if err.code == ErrorCode.CANCELLED and pending is not None:
                self.listener.on_cancelled(pending)
            else:
                self.listener.on_error(pending, error_text(err))
        elif kind == "Cancelled":
            pending = self.pending.pop(getattr(ev, "job_id", ""), None)
            if pending is not None:
                self.listener.on_cancelled(pending)

    def _fail_all(self, message: str) -> None:
        lost, self.pending = list(self.pending.values()), {}
        for pending in lost:
            self.listener.on_error(pending, message)
