"""Runs an action (a generator that yields Jobs) against a Client, one poll at a time.

An action such as "project from three cameras" is a sequence of generations with host
work in between. Written as a generator it reads top to bottom:

    result = yield job          # the driver submits it and resumes us with the JobResult

while the driver, called from a timer (or a loop when Blender runs in the background),
never blocks: each `tick()` polls the client once and moves the action on when its job
is done. Errors reach the action as exceptions at its `yield`, so its `try/finally`
blocks undo half-made work; cancelling closes the generator the same way.

Independent pieces (an animation's frames) are yielded together as a shared FanOut:

    yield FanOut(frames, make_job, worker_limit(welcome), on_result=save)

the driver keeps as many of its jobs in flight as the backend has workers, hands each
result to `on_result` in order, and resumes the action with the FanOut when all are back.
A failed piece cancels the others and reaches the action at its `yield`, as above.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from dreamwire.shared import events as ev
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.fanout import FanOut
from dreamwire.shared.job import Job
from dreamwire.shared.result import JobResult

RUNNING = "running"
FINISHED = "finished"
FAILED = "failed"
CANCELLED = "cancelled"

# `yield job` resumes with its JobResult, `yield fan_out` with the FanOut once it is done.
Action = Generator[Job | FanOut[Any], JobResult | FanOut[Any], Any]


class ActionError(Exception):
    """A problem with the artist's input, said plainly (no traceback is shown)."""


@dataclass
class Status:
    state: str = RUNNING
    text: str = "Starting"
    fraction: float = 0.0  # 0..1 over the whole action
    message: str = ""  # final message (error or summary)


class Driver:
    def __init__(
        self,
        client: Any,
        action: Action,
        jobs_expected: int = 1,
        connect_timeout: float = 10.0,
        lost_timeout: float = 15.0,
        on_preview: Callable[[np.ndarray], None] | None = None,
        precheck: Callable[[Any], list[str]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.client = client
        self.action = action
        self.jobs_expected = max(1, jobs_expected)
        self.connect_timeout = connect_timeout
        self.lost_timeout = lost_timeout
        self.on_preview = on_preview
        # Given the backend's Welcome, sentences about what it lacks for this action
        # (a model, a ControlNet type); any sentence stops the action before it starts.
        self.precheck = precheck
        self.clock = clock
        self.status = Status()
        self.job: Job | None = None
        self.job_id: str | None = None
        self.fan: FanOut[Any] | None = None  # the pieces the action waits on, if it yielded some
        self.jobs_done = 0
        self.result_value: Any = None
        self._waiting_since = clock()
        self._lost_since: float | None = None
        self._started = False
        self._cancel_requested = False

    @property
    def done(self) -> bool:
        return self.status.state != RUNNING

    # -- control ---------------------------------------------------------------------
    def cancel(self) -> None:
        """Stop the action: cancel its job on the backend and undo its half-made work."""
        if self.done:
            return
        self._cancel_requested = True
        if self.job_id is not None:
            with contextlib.suppress(DreamwireError):
                self.client.cancel(self.job_id)
        if self.fan is not None:
            # Pieces already back are handed over (saved) before the action closes.
            self.fan.cancel(self.client)
        self._close(CANCELLED, "Cancelled")

    def tick(self) -> str:
        if self.done:
            return self.status.state
        try:
            self._tick()
        except Exception as exc:  # noqa: BLE001 - anything else is shown, not raised
            self._fail_unexpected(exc)
        return self.status.state

    # -- internals ---------------------------------------------------------------------
    def _tick(self) -> None:
        if not self._started:
            # The action starts only once the backend has welcomed us, so nothing is
            # captured or changed in the scene for a backend that is not there.
            for e in self.client.poll():
                self._on_event(e)
            if self.done:
                return
            state = getattr(self.client, "state", ev.CONNECTED)
            if state == ev.CONNECTED:
                problems = (
                    self.precheck(getattr(self.client, "welcome", None)) if self.precheck else []
                )
                if problems:
                    self._abort(" ".join(problems))
                    return
                self._started = True
                self._advance(None)
            elif state in (ev.INCOMPATIBLE, ev.UNAUTHORIZED):
                self._abort(_state_text(self.client))
            elif self.clock() - self._waiting_since > self.connect_timeout:
                self._abort(self._unreachable())
            else:
                self.status.text = "Connecting to the backend"
            return
        events = self.client.poll()
        for e in events:
            if self.done:
                return
            self._on_event(e)
        if self.done:
            return
        now = self.clock()
        state = getattr(self.client, "state", ev.CONNECTED)
        if self.fan is not None:
            self._tick_fan(state, now)
            return
        if self.job is not None and self.job_id is None:
            # Waiting to submit: the backend must have welcomed us first.
            if state == ev.CONNECTED:
                self._submit()
            elif state in (ev.INCOMPATIBLE, ev.UNAUTHORIZED):
                self._throw(DreamwireError(ErrorCode.BACKEND_UNAVAILABLE, _state_text(self.client)))
            elif now - self._waiting_since > self.connect_timeout:
                self._throw(DreamwireError(ErrorCode.BACKEND_UNAVAILABLE, self._unreachable()))
            return
        if self.job_id is not None:
            if state == ev.LOST:
                self._lost_since = self._lost_since or now
                self.status.text = "Backend not answering, waiting for it"
                if now - self._lost_since > self.lost_timeout:
                    # Given up on: a restarted backend that took the job back from its queue
                    # folder must not run it for nobody (the client resends this cancel).
                    with contextlib.suppress(DreamwireError):
                        self.client.cancel(self.job_id)
                    self._throw(
                        DreamwireError(
                            ErrorCode.BACKEND_LOST,
                            f"The backend at {self.client.address} stopped answering before the "
                            "job finished. Restart it and run the action again.",
                            self.job_id,
                        )
                    )
            else:
                self._lost_since = None

    def _tick_fan(self, state: str, now: float) -> None:
        """The yielded pieces: top up while connected; give up as on a single job when the
        backend stays away."""
        fan = self.fan
        assert fan is not None
        if state == ev.CONNECTED:
            # Pieces left to send wait for the backend from here, not from the yield.
            self._lost_since, self._waiting_since = None, now
            try:
                fan.pump(self.client)
            except Exception as exc:  # noqa: BLE001 - the action's make(): to its yield
                self._stop_fan(exc)
                return
            if fan.done:
                self._fan_done()
            return
        if state in (ev.INCOMPATIBLE, ev.UNAUTHORIZED):
            self._stop_fan(DreamwireError(ErrorCode.BACKEND_UNAVAILABLE, _state_text(self.client)))
        elif not fan.in_flight:
            if now - self._waiting_since > self.connect_timeout:
                self._stop_fan(DreamwireError(ErrorCode.BACKEND_UNAVAILABLE, self._unreachable()))
        elif state == ev.LOST:
            self._lost_since = self._lost_since or now
            self.status.text = "Backend not answering, waiting for it"
            if now - self._lost_since > self.lost_timeout:
                self._stop_fan(
                    DreamwireError(
                        ErrorCode.BACKEND_LOST,
                        f"The backend at {self.client.address} stopped answering before the "
                        "jobs finished. Restart it and run the action again.",
                    )
                )

    def _on_fan_event(self, e: Any) -> None:
        fan = self.fan
        assert fan is not None
        before = len(fan.delivered)
        try:
            if not fan.on_event(e, self.client):
                return
        except Exception as exc:  # noqa: BLE001 - the action's on_result: to its yield
            self._stop_fan(exc)
            return
        self.jobs_done += len(fan.delivered) - before
        p = fan.progress()
        # Back but waiting for an earlier piece, and the running share of those in flight.
        ahead = p.finished - len(fan.skipped) - len(fan.delivered) + p.running
        self.status.fraction = min(1.0, (self.jobs_done + ahead) / self.jobs_expected)
        if isinstance(e, ev.Accepted):
            self.status.text = "Queued" if e.position > 0 else "Starting"
        elif isinstance(e, ev.ProgressEvent):
            label = e.progress.message or e.progress.state.replace("_", " ")
            self.status.text = f"{label}, {p.finished} of {p.total} done"
            if e.progress.preview is not None and self.on_preview is not None:
                self.on_preview(e.progress.preview)
        if fan.done:
            self._fan_done()

    def _fan_done(self) -> None:
        fan, self.fan = self.fan, None
        assert fan is not None
        if fan.error is not None:
            self._throw(fan.error)
        else:
            self._advance(fan)

    def _stop_fan(self, exc: BaseException) -> None:
        """Cancel the pieces in flight, then raise `exc` at the action's yield."""
        fan, self.fan = self.fan, None
        if fan is not None:
            with contextlib.suppress(Exception):  # a failing on_result while handing over
                fan.cancel(self.client)
        self._throw(exc)

    def _unreachable(self) -> str:
        return (
            f"No Dreamwire backend answers at {self.client.address}. Start it (Preferences > "
            "Add-ons > Dreamwire > Start local backend) or check the address."
        )

    def _abort(self, message: str) -> None:
        """Fail before the action ran: close it unstarted (its finally blocks never ran)."""
        self._close(FAILED, message)

    def _on_event(self, e: Any) -> None:
        jid = getattr(e, "job_id", None)
        if (
            isinstance(e, ev.ErrorEvent)
            and (jid is None or jid == "")
            and self.client.state
            in (
                ev.INCOMPATIBLE,
                ev.UNAUTHORIZED,
            )
        ):
            self._throw(DreamwireError(ErrorCode.BACKEND_UNAVAILABLE, e.error.message))
            return
        if self.fan is not None:
            self._on_fan_event(e)
            return
        if self.job_id is None or jid != self.job_id:
            return
        if isinstance(e, ev.Accepted):
            self.status.text = "Queued" if e.position > 0 else "Starting"
        elif isinstance(e, ev.ProgressEvent):
            p = e.progress
            frac = (p.step / p.total) if p.total else 0.0
            self.status.fraction = (self.jobs_done + frac) / self.jobs_expected
            label = p.message or p.state.replace("_", " ")
            self.status.text = f"{label} {p.step}/{p.total}" if p.total else label
            if p.preview is not None and self.on_preview is not None:
                self.on_preview(p.preview)
        elif isinstance(e, ev.ResultEvent):
            self.jobs_done += 1
            self.status.fraction = self.jobs_done / self.jobs_expected
            self.job = self.job_id = None
            self._advance(e.result)
        elif isinstance(e, ev.ErrorEvent):
            self._throw(e.error)
        elif isinstance(e, ev.Cancelled):
            self._close(CANCELLED, "Cancelled on the backend")

    def _submit(self) -> None:
        assert self.job is not None
        self.job_id = self.client.submit(self.job)
        self.status.text = "Submitted"
        self._lost_since = None

    def _advance(self, value: Any) -> None:
        # send(None) also starts a fresh generator.
        self._step(lambda: self.action.send(value))

    def _throw(self, err: BaseException) -> None:
        self.job = self.job_id = None
        if self.fan is not None:
            self._stop_fan(err)
            return
        self._step(lambda: self.action.throw(err))

    def _step(self, fn: Callable[[], Any]) -> None:
        try:
            job = fn()
        except StopIteration as stop:
            self.result_value = stop.value
            msg = stop.value if isinstance(stop.value, str) else "Done"
            self._set(FINISHED, msg)
            return
        except ActionError as exc:
            self._set(FAILED, str(exc))
            return
        except DreamwireError as exc:
            self._set(FAILED, _error_text(exc))
            return
        if isinstance(job, FanOut):
            self.fan = job
            self._waiting_since = self.clock()
            self.status.text = "Submitted"
            if getattr(self.client, "state", ev.CONNECTED) == ev.CONNECTED:
                self._tick_fan(ev.CONNECTED, self._waiting_since)
            else:
                self.status.text = "Connecting to the backend"
            return
        if not isinstance(job, Job):
            self._throw(TypeError(f"an action yielded {type(job).__name__}, not a Job"))
            return
        self.job = job
        self.job_id = None
        self._waiting_since = self.clock()
        if getattr(self.client, "state", ev.CONNECTED) == ev.CONNECTED:
            self._submit()
        else:
            self.status.text = "Connecting to the backend"

    def _close(self, state: str, text: str) -> None:
        try:
            self.action.close()
        except Exception as exc:  # noqa: BLE001
            traceback.print_exception(exc)
        self._set(state, text)

    def _set(self, state: str, message: str) -> None:
        self.status.state = state
        self.status.message = message
        self.status.text = message
        if state == FINISHED:
            self.status.fraction = 1.0

    def _fail_unexpected(self, exc: BaseException) -> None:
        # The console keeps the traceback for bug reports; the artist gets one sentence.
        traceback.print_exception(exc)
        with contextlib.suppress(Exception):
            self.action.close()
        self._set(FAILED, f"Internal error: {type(exc).__name__}: {exc}")


def _error_text(err: DreamwireError) -> str:
    if err.code == ErrorCode.CANCELLED:
        return "Cancelled"
    return err.message or err.code.value


def _state_text(client: Any) -> str:
    state = getattr(client, "state", "")
    if state == ev.INCOMPATIBLE:
        return "The backend speaks another protocol version; update the add-on or the backend."
    if state == ev.UNAUTHORIZED:
        return "The backend refused this client's key; check the CurveZMQ keys in the preferences."
    return f"Backend state: {state}"
