"""Independent pieces of one action (an animation's frames, a texture's fills, a batch's
images) sent as separate jobs, at most `limit` in flight, so a backend with several workers
(Ray actors, `dreamwire serve --ray`) runs them side by side while a single-process backend
sees one job at a time, as before.

    fan = FanOut(frames, make_job, worker_limit(client.welcome), on_result=save, skip=on_disk)
    fan.pump(client)                             # from the host's timer, with its events:
    for e in client.poll():
        fan.on_event(e, client)
    fan.pump(client)                             # ... until fan.done

It never blocks and never starts a thread (the hosts drive it from their UI timers, as they
drive the client); `run_blocking` is the same for the CLI and the tests. Jobs are made only
when a slot frees (`make`), so a host captures a frame's controls when it is sent, not all
of them up front. Results reach `on_result` in the pieces' order (a later piece that ends
first waits for the ones before it); pieces `skip` says are done (a resumed render's frames
on disk) are never sent. A piece that fails or is cancelled on the backend stops the rest:
the jobs in flight are cancelled, and what already finished is still handed over, in order,
so nothing made is lost.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from . import events as ev
from .errors import DreamwireError, ErrorCode
from .job import Job
from .result import JobResult, Progress

K = TypeVar("K", bound=Hashable)


class Sender(Protocol):
    """What a fan-out sends through: shared.client.Client."""

    def submit(self, job: Job) -> str: ...

    def cancel(self, job_id: str) -> None: ...


class WaitingSender(Sender, Protocol):
    """What `run_blocking` drives a fan-out through: a sender that can also wait for its
    events (shared.client.Client)."""

    def wait(self, timeout: float) -> list[object]: ...


def worker_limit(welcome: ev.Welcome | None) -> int:
    """Jobs to keep in flight: one per worker the backend's welcome lists, 1 when it lists
    none (an older backend) or has not welcomed us yet: that backend runs one job at a time,
    and more in flight would only wait in its queue, ahead of other clients' jobs."""
    if welcome is None:
        return 1
    return max(1, len(welcome.workers))


@dataclass(frozen=True)
class PieceProgress:
    """Where a fan-out stands: pieces finished (skipped ones included), of how many, and
    the running share (0..1) of the ones in flight, for a host's progress bar."""

    finished: int
    total: int
    running: float

    @property
    def fraction(self) -> float:
        return (self.finished + self.running) / self.total if self.total else 1.0


class FanOut(Generic[K]):
    def __init__(
        self,
        keys: Sequence[K],
        make: Callable[[K], Job],
        limit: int,
        on_result: Callable[[K, JobResult], None] | None = None,
        skip: Callable[[K], bool] | None = None,
    ) -> None:
        if limit < 1:
            raise ValueError(f"a fan-out needs at least one job in flight, got {limit}")
        if len(set(keys)) != len(keys):
            raise ValueError("a fan-out's pieces need distinct keys")
        self.keys = list(keys)
        self.limit = limit
        self._make = make
        self._on_result = on_result
        self.skipped: list[K] = [k for k in self.keys if skip is not None and skip(k)]
        skipped = set(self.skipped)
        self._todo = [k for k in self.keys if k not in skipped]  # not sent yet, in order
        self._in_flight: dict[str, K] = {}  # job id -> piece
        self._steps: dict[str, float] = {}  # job id -> share of its steps done
        self._finished: dict[K, JobResult] = {}  # back, not yet handed over (order)
        self._handed = 0  # pieces of `_order` handed over (or skipped)
        self._order = [k for k in self.keys if k not in skipped]
        self.delivered: list[K] = []  # pieces whose result went to on_result, in order
        self.error: DreamwireError | None = None
        self.sent: list[str] = []  # job ids, in the order they were submitted

    # -- state ---------------------------------------------------------------------
    @property
    def done(self) -> bool:
        """Nothing left to send or to wait for (every piece back, or stopped)."""
        return not self._in_flight and (not self._todo or self.error is not None)

    @property
    def in_flight(self) -> list[str]:
        return list(self._in_flight)

    def owns(self, job_id: str) -> bool:
        return job_id in self._in_flight

    def progress(self) -> PieceProgress:
        return PieceProgress(
            len(self.skipped) + len(self.delivered) + len(self._finished),
            len(self.keys),
            sum(self._steps.values()),
        )

    # -- driving -------------------------------------------------------------------
    def pump(self, client: Sender) -> list[str]:
        """Send pieces until `limit` are in flight; the new job ids. A piece whose job
        cannot be made or sent (an invalid job) stops the fan-out as a failed piece would."""
        new = []
        while self._todo and self.error is None and len(self._in_flight) < self.limit:
            key = self._todo[0]
            try:
                job_id = client.submit(self._make(key))
            except DreamwireError as err:
                self._todo.pop(0)
                self._stop(err, client)
                break
            self._todo.pop(0)
            self._in_flight[job_id] = key
            self._steps[job_id] = 0.0
            self.sent.append(job_id)
            new.append(job_id)
        return new

    def on_event(self, e: object, client: Sender) -> bool:
        """Take one of the client's events; True when it was about a job of this fan-out
        (Accepted and progress are only counted; the caller shows them as it likes). A
        failed or cancelled piece cancels the others in flight through `client`."""
        if not isinstance(e, ev.JOB_EVENTS) or e.job_id not in self._in_flight:
            return False
        job_id = e.job_id
        if isinstance(e, ev.ProgressEvent):
            self._steps[job_id] = _share(e.progress)
        elif isinstance(e, ev.ResultEvent):
            self._finished[self._land(job_id)] = e.result
            self._hand_over()
        elif isinstance(e, ev.ErrorEvent):
            self._land(job_id)
            self._stop(e.error, client)
        elif isinstance(e, ev.Cancelled):
            self._land(job_id)
            detail = e.message or "a piece was cancelled on the backend"
            self._stop(DreamwireError(ErrorCode.CANCELLED, detail, job_id), client)
        return True

    def cancel(self, client: Sender) -> None:
        """Stop: nothing more is sent, every job in flight is cancelled through `client`,
        and results already back are handed over in order."""
        self._stop(DreamwireError(ErrorCode.CANCELLED, "the fan-out was cancelled"), client)

    # -- internals -----------------------------------------------------------------
    def _land(self, job_id: str) -> K:
        self._steps.pop(job_id, None)
        return self._in_flight.pop(job_id)

    def _hand_over(self) -> None:
        """Results to on_result while the next piece in order is back."""
        while self._handed < len(self._order) and self._order[self._handed] in self._finished:
            key = self._order[self._handed]
            self._handed += 1
            self._give(key, self._finished.pop(key))

    def _give(self, key: K, result: JobResult) -> None:
        self.delivered.append(key)
        if self._on_result is not None:
            self._on_result(key, result)

    def _stop(self, err: DreamwireError, client: Sender) -> None:
        if self.error is None:
            self.error = err
        for job_id in list(self._in_flight):
            # Asked only: a result that still comes is no longer ours and is ignored.
            with contextlib.suppress(DreamwireError):
                client.cancel(job_id)
        self._in_flight.clear()
        self._steps.clear()
        # The rest will not come: what is back is handed over now, gaps left out.
        for key in [k for k in self._order if k in self._finished]:
            self._give(key, self._finished.pop(key))


def _share(p: Progress) -> float:
    return min(1.0, p.step / p.total) if p.total else 0.0


def run_blocking(
    client: WaitingSender,
    fan: FanOut[Any],
    timeout: float = 600.0,
    watch: Callable[[object], None] | None = None,
) -> FanOut[Any]:
    """Drive `fan` through `client` (shared.client.Client) until it is done; raises the
    piece's DreamwireError when one failed, after cancelling the others (CLI, tests).
    `watch` sees every event the client returned (Accepted, progress), in order."""
    deadline = time.monotonic() + timeout
    fan.pump(client)
    while not fan.done:
        left = deadline - time.monotonic()
        if left <= 0:
            fan.cancel(client)
            raise DreamwireError(
                ErrorCode.BACKEND_UNAVAILABLE, f"the pieces were not back within {timeout:g} s"
            )
        for e in client.wait(min(left, 1.0)):
            if watch is not None:
                watch(e)
            fan.on_event(e, client)
        fan.pump(client)
    if fan.error is not None:
        raise fan.error
    return fan
