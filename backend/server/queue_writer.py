"""Large accepted jobs written to the queue folder off the server thread.

An accepted job is on disk before `accepted` goes out (durable.py), but writing one with an
8192² picture and its mask takes about a second with fsync; on the server thread that is a
second in which nobody's heartbeat is answered. Jobs whose arrays are large are therefore
handed to this writer: the server keeps them as `PendingSubmit` (counted against the queue,
answerable to a resend, a fetch or a cancel) and queues them, or answers their cancels, when
the write comes back through the same wake socket the worker and the decode pool use.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import zmq

from dreamwire.shared import protocol as P
from dreamwire.shared.job import Job

from .durable import DurableQueue
from .task_threads import TaskThreads

log = logging.getLogger("dreamwire.server")

# Arrays over this many bytes are written off the server thread (about 60 ms of writing
# and fsync here); smaller jobs are written at once, as before.
ASYNC_WRITE_BYTES = 16 * 2**20


@dataclass
class PendingSubmit:
    identity: bytes  # the submitter
    msg: P.Message  # its submit (the reply answers it)
    job: Job
    principal: str  # the owner the entry is written with
    # Resends and fetches while writing: told `accepted` with the submitter.
    also_tell: list[tuple[bytes, P.Message]] = field(default_factory=list)
    # Cancels while writing (the owner's): answered `cancelled` once the entry is gone.
    cancels: list[tuple[bytes, P.Message]] = field(default_factory=list)
    error: OSError | None = None  # the write failed: the job is refused, not accepted


class QueueWriter:
    def __init__(self, durable: DurableQueue, ctx: zmq.Context, wake_address: str):
        self.durable = durable
        self._thread = TaskThreads(ctx, wake_address, self._write, "dreamwire-queue-writer")

    def start(self) -> None:
        self._thread.start()

    def submit(self, pending: PendingSubmit) -> None:
        self._thread.put(pending)

    def take_finished(self) -> list[PendingSubmit]:
        return self._thread.take_finished()

    def close(self, timeout: float = 10.0) -> None:
        self._thread.close(timeout)

    def _write(self, pending: PendingSubmit) -> None:
        try:
            self.durable.save(pending.job, pending.principal)
        except OSError as exc:
            log.error("job %s: could not write it to the queue folder: %s", pending.job.job_id, exc)
            pending.error = exc
