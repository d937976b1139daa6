"""The seam between the server thread and whatever runs the jobs.

The server thread puts accepted jobs in the JobQueue and sets an entry's `cancel` flag; an
Executor takes them from that queue (priority first), runs them and streams every message
for a client (progress, previews, the final result, error or cancelled) into `outbox`,
waking the server thread. Two implementations: worker.Worker, one thread driving the
in-process engine, and ray_pool.RayPool, a pool of Ray actors each holding its own engine.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import zmq

from dreamwire.shared import protocol as P
from dreamwire.shared.job import Job
from dreamwire.shared.result import JobResult, Progress

from .durable import DurableQueue
from .jobqueue import JobQueue

ProgressFn = Callable[[Progress], None]
# One job on one engine, wherever it lives: engine.run's signature.
RunFn = Callable[..., JobResult]


class WorkerLost(Exception):
    """The process running a job died under it (killed, out of memory, node lost)."""


@dataclass(frozen=True)
class WorkerInfo:
    """One worker as the welcome lists it."""

    name: str
    device: str
    models: list[str] = field(default_factory=list)  # checkpoints loaded now
    pid: int = 0
    job: str = ""  # the job it is running, "" when idle
    # Bytes free for its next job (None: unknown, as VRAM on a CPU worker).
    ram_free: int | None = None
    vram_free: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Feed:
    """What the server hands an executor."""

    jobs: JobQueue
    save: Callable[[Job, JobResult], JobResult]
    ctx: zmq.Context
    wake_address: str
    durable: DurableQueue | None = None
    outbox: queue.Queue[tuple[str, P.Message]] = field(default_factory=queue.Queue)


class Executor(Protocol):
    outbox: queue.Queue[tuple[str, P.Message]]

    def start(self) -> None: ...

    def stop(self, timeout: float) -> None:
        """Stop taking jobs; running ones stop at their next step and stay queued on disk."""

    def workers(self) -> list[WorkerInfo]: ...

    def check_memory(self, job: Job) -> None:
        """Raise DreamwireError(limit_exceeded) when the job fits no worker's memory free
        now (engine/admission.py)."""


class Poster:
    """One thread's way to the server thread: a message into the outbox, then a wake-up
    frame on this thread's own PUSH socket (ZeroMQ sockets belong to one thread)."""

    def __init__(self, feed: Feed):
        self.outbox = feed.outbox
        self._wake = feed.ctx.socket(zmq.PUSH)
        self._wake.linger = 0
        self._wake.connect(feed.wake_address)

    def post(self, job_id: str, msg: P.Message) -> None:
        self.outbox.put((job_id, msg))
        # If the wake frame is dropped, the server finds the outbox at its next poll.
        with contextlib.suppress(zmq.ZMQError):
            self._wake.send(b"", zmq.NOBLOCK)

    def close(self) -> None:
        self._wake.close(0)


def stop_running(jobs: JobQueue) -> None:
    """Ask every running job to stop at its next step (the server is shutting down)."""
    for entry in jobs.running_entries():
        entry.cancel.set()


def when_set(flag: Callable[[], bool], done: threading.Event, then: Callable[[], None]) -> None:
    """Call `then` once `flag()` is true, unless `done` is set first (polled: a job's cancel
    flag and its end cannot be waited on together)."""
    while not done.wait(0.05):
        if flag():
            then()
            return
