"""Large accepted jobs written to the queue folder off the server thread.

An accepted job is on disk before `accepted` goes out (durable.py), but writing one with an
8192² picture and its mask takes about a second with fsync; on the server thread that is a
second in which nobody's heartbeat is answered. Jobs whose arrays are large are therefore
handed to this writer: the server keeps them as `PendingSubmit` (counted against the queue,
answerable to a resend, a fetch or a cancel) and queues them, or answers their cancels, when
the write comes back through the same wake socket the worker and the decode pool use.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from dataclasses import dataclass, field

import zmq

from dreamwire.shared import protocol as P
from dreamwire.shared.job import Job

from .decoding import drain
from .durable import DurableQueue

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
        self.ctx = ctx
        self.wake_address = wake_address
        self._tasks: queue.Queue[PendingSubmit | None] = queue.Queue()
        self._finished: queue.Queue[PendingSubmit] = queue.Queue()
        self._thread = threading.Thread(
            target=self._run, name="dreamwire-queue-writer", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def submit(self, pending: PendingSubmit) -> None:
        self._tasks.put(pending)

    def take_finished(self) -> list[PendingSubmit]:
        return drain(self._finished)

    def close(self, timeout: float = 10.0) -> None:
        self._tasks.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        wake = self.ctx.socket(zmq.PUSH)
        wake.linger = 0
        wake.connect(self.wake_address)
        try:
            while (pending := self._tasks.get()) is not None:
                try:
                    self.durable.save(pending.job, pending.principal)
                except OSError as exc:
                    log.error(
                        "job %s: could not write it to the queue folder: %s",
                        pending.job.job_id,
                        exc,
                    )
                    pending.error = exc
                self._finished.put(pending)
                # If the wake frame is dropped, the server finds it at its next poll turn.
                with contextlib.suppress(zmq.ZMQError):
                    wake.send(b"", zmq.NOBLOCK)
        finally:
            wake.close(0)
