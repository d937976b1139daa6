"""The GPU worker: one thread, one job at a time, taken from the priority queue.

It never touches the ROUTER socket (ZeroMQ sockets belong to one thread); everything it has
to say goes into `outbox` as (job_id, Message) and a wake-up frame tells the server thread.

With a queue folder (durable.py), the worker counts each start of a job there before the
engine sees it (so a job that kills the backend is not restarted forever), and removes the
entry when the job's end is final (result saved, or an error), before that end is posted. A
cancel is not forgotten here: the server forgets a job when a client asks to cancel it, and
a job stopped because the server is shutting down stays queued on disk for the next start,
its start not counted.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import zmq

from dreamwire.shared import protocol as P
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.result import JobResult, Progress

from .durable import DurableQueue
from .jobqueue import Entry, JobQueue

log = logging.getLogger("dreamwire.server")


class Worker(threading.Thread):
    def __init__(
        self,
        engine: Any,
        save: Callable[[Any, JobResult], JobResult],
        jobs: JobQueue,
        ctx: zmq.Context,
        wake_address: str,
        durable: DurableQueue | None = None,
    ):
        super().__init__(name="dreamwire-gpu", daemon=True)
        self.engine = engine
        self.save = save
        self.jobs = jobs
        self.ctx = ctx
        self.wake_address = wake_address
        self.durable = durable
        self.outbox: queue.Queue[tuple[str, P.Message]] = queue.Queue()
        self.stopping = threading.Event()
        self._wake: zmq.Socket | None = None

    def post(self, job_id: str, msg: P.Message) -> None:
        self.outbox.put((job_id, msg))
        assert self._wake is not None
        self._wake.send(b"", zmq.NOBLOCK)

    def run(self) -> None:
        self._wake = self.ctx.socket(zmq.PUSH)
        self._wake.linger = 0
        self._wake.connect(self.wake_address)
        try:
            while not self.stopping.is_set():
                entry = self.jobs.take(timeout=0.2)
                if entry is None:
                    continue
                end: P.Message | None = None
                try:
                    end = self._run_one(entry)
                finally:
                    # Out of the queue before its end is posted: a cancel that follows the
                    # end finds no job (job_not_found), never a job that will not answer.
                    self.jobs.done(entry)
                    if end is not None:
                        self.post(entry.job_id, end)
        finally:
            self._wake.close(0)

    def _run_one(self, entry: Entry) -> P.Message:
        """Run the job; its final message (result, error or cancelled), for run() to post."""
        job = entry.job
        job_id = job.job_id
        if entry.cancel.is_set():
            return _cancelled(entry)
        log.info(
            "job %s: start (%s, %dx%d, %d steps, %s)",
            job_id,
            job.mode,
            job.width,
            job.height,
            job.steps,
            job.priority,
        )
        started = time.monotonic()
        self._record_start(job_id)

        def on_progress(p: Progress) -> None:
            self.post(job_id, P.progress_message(p))

        try:
            result = self.engine.run(
                job, on_progress=on_progress, should_cancel=entry.cancel.is_set
            )
            result.tag = result.tag or job.tag
            self.post(job_id, P.progress_message(Progress(job_id, "saving", job.steps, job.steps)))
            # Saved before it is sent: a client that vanishes now loses nothing.
            result = self.save(job, result)
        except DreamwireError as exc:
            exc.job_id = exc.job_id or job_id
            if exc.code == ErrorCode.CANCELLED:
                log.info(
                    "job %s: cancelled%s", job_id, f" ({entry.reason})" if entry.reason else ""
                )
                if self.stopping.is_set() and self.durable is not None:
                    # Stopped by our own shutdown, not by a crash (nor by a client: then
                    # the entry is gone already and this does nothing).
                    self.durable.undo_start(job_id)
                return _cancelled(entry)
            log.warning("job %s: %s", job_id, exc)
            self._forget(job_id)
            return P.Message(P.ERROR, exc.to_dict(), job_id=job_id)
        except MemoryError:
            self._forget(job_id)
            return P.error_message(ErrorCode.OUT_OF_MEMORY, "out of memory", job_id)
        except Exception as exc:  # the engine must not take the server down with it
            code = (
                ErrorCode.OUT_OF_MEMORY
                if "out of memory" in str(exc).lower()
                else ErrorCode.INTERNAL
            )
            log.exception("job %s failed", job_id)
            self._forget(job_id)
            return P.error_message(code, f"{type(exc).__name__}: {exc}", job_id)
        self._forget(job_id)
        log.info(
            "job %s: done in %.2f s, %d image(s) saved",
            job_id,
            time.monotonic() - started,
            len(result.images),
        )
        return P.result_message(result)

    def _record_start(self, job_id: str) -> None:
        if self.durable is None:
            return
        try:
            starts = self.durable.record_start(job_id)
        except (OSError, ValueError) as exc:  # run it anyway; only the crash count is lost
            log.warning("job %s: could not count its start in the queue folder: %s", job_id, exc)
            return
        if starts > 1:
            log.warning(
                "job %s: this is attempt %d (the backend stopped while running it)", job_id, starts
            )

    def _forget(self, job_id: str) -> None:
        if self.durable is not None:
            self.durable.remove(job_id)


def _cancelled(entry: Entry) -> P.Message:
    return cancelled_message(entry.job_id, entry.reason)


def cancelled_message(job_id: str, reason: str = "", reply_to: str = "") -> P.Message:
    """`cancelled`; a cancel the backend made itself (a superseded live job) also carries
    `code` "cancelled" and a `message` saying why."""
    body: dict[str, str] = {"job_id": job_id}
    if reason:
        body |= {"code": ErrorCode.CANCELLED.value, "message": reason}
    return P.Message(P.CANCELLED, body, job_id=job_id, reply_to=reply_to)
