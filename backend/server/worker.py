"""The in-process GPU worker: one thread, one job at a time, taken from the priority queue;
and `run_entry`, the life of one job on any engine, which the Ray pool (ray_pool.py) shares.

It never touches the ROUTER socket (ZeroMQ sockets belong to one thread); everything it has
to say goes into the outbox as (job_id, Message) and a wake-up frame tells the server thread
(executor.Poster).

With a queue folder (durable.py), the worker counts each start of a job there before the
engine sees it (so a job that kills the backend is not restarted forever), and removes the
entry when the job's end is final (result saved, or an error), before that end is posted. A
cancel is not forgotten here: the server forgets a job when a client asks to cancel it, and
a job stopped because the server is shutting down stays queued on disk for the next start,
its start not counted.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from dreamwire.shared import protocol as P
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job
from dreamwire.shared.result import Progress

from .executor import Feed, Poster, RunFn, WorkerInfo, WorkerLost, stop_running
from .jobqueue import Entry

log = logging.getLogger("dreamwire.server")


class Worker(threading.Thread):
    """The Executor of a single-process backend: the engine in this process."""

    def __init__(self, engine: Any, feed: Feed):
        super().__init__(name="dreamwire-gpu", daemon=True)
        self.engine = engine
        self.feed = feed
        self.jobs = feed.jobs
        self.outbox = feed.outbox
        self.stopping = threading.Event()

    def run(self) -> None:
        poster = Poster(self.feed)
        try:
            while not self.stopping.is_set():
                entry = self.jobs.take(timeout=0.2)
                if entry is None:
                    continue
                end: P.Message | None = None
                try:
                    end = run_entry(entry, self.engine.run, self.feed, poster, self.stopping)
                finally:
                    # Out of the queue before its end is posted: a cancel that follows the
                    # end finds no job (job_not_found), never a job that will not answer.
                    self.jobs.done(entry)
                    if end is not None:
                        poster.post(entry.job_id, end)
        finally:
            poster.close()

    def stop(self, timeout: float) -> None:
        self.stopping.set()
        stop_running(self.jobs)  # stop at the next step instead of finishing the job
        self.join(timeout)

    def workers(self) -> list[WorkerInfo]:
        running = self.jobs.running
        place = self.engine.workplace()
        return [
            WorkerInfo(
                name="local",
                device=self.engine.info.describe(),
                models=list(place.models),
                job=running.job_id if running is not None else "",
                ram_free=place.device.ram_free,
                vram_free=place.device.vram_free,
            )
        ]

    def check_memory(self, job: Job) -> None:
        self.engine.check_memory(job)


def run_entry(
    entry: Entry, run: RunFn, feed: Feed, poster: Poster, stopping: threading.Event
) -> P.Message:
    """Run the job on `run` (an engine's run); its final message (result, error or
    cancelled), for the caller to post once the job is out of the queue. WorkerLost (the
    engine's process died) is raised for the caller to decide on a re-run."""
    job = entry.job
    job_id = job.job_id
    if entry.stop_asked():
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
    entry.attempts += 1
    if entry.attempts == 1:  # a re-run after a worker died is the same start
        _record_start(feed, job_id)

    def on_progress(p: Progress) -> None:
        poster.post(job_id, P.progress_message(p))

    try:
        result = run(job, on_progress=on_progress, should_cancel=entry.stop_asked)
        result.tag = result.tag or job.tag
        poster.post(job_id, P.progress_message(Progress(job_id, "saving", job.steps, job.steps)))
        # Saved before it is sent: a client that vanishes now loses nothing.
        result = feed.save(job, result)
    except WorkerLost:
        raise
    except DreamwireError as exc:
        exc.job_id = exc.job_id or job_id
        if exc.code == ErrorCode.CANCELLED:
            log.info("job %s: cancelled%s", job_id, f" ({entry.reason})" if entry.reason else "")
            if stopping.is_set() and feed.durable is not None:
                # Stopped by our own shutdown, not by a crash (nor by a client: then
                # the entry is gone already and this does nothing).
                feed.durable.undo_start(job_id)
            return _cancelled(entry)
        log.warning("job %s: %s", job_id, exc)
        forget(feed, job_id)
        return P.Message(P.ERROR, exc.to_dict(), job_id=job_id)
    except MemoryError:
        forget(feed, job_id)
        return P.error_message(ErrorCode.OUT_OF_MEMORY, "out of memory", job_id)
    except Exception as exc:  # the engine must not take the server down with it
        code = (
            ErrorCode.OUT_OF_MEMORY if "out of memory" in str(exc).lower() else ErrorCode.INTERNAL
        )
        log.exception("job %s failed", job_id)
        forget(feed, job_id)
        return P.error_message(code, f"{type(exc).__name__}: {exc}", job_id)
    forget(feed, job_id)
    log.info(
        "job %s: done in %.2f s, %d image(s) saved",
        job_id,
        time.monotonic() - started,
        len(result.images),
    )
    return P.result_message(result)


def _record_start(feed: Feed, job_id: str) -> None:
    if feed.durable is None:
        return
    try:
        starts = feed.durable.record_start(job_id)
    except (OSError, ValueError) as exc:  # run it anyway; only the crash count is lost
        log.warning("job %s: could not count its start in the queue folder: %s", job_id, exc)
        return
    if starts > 1:
        log.warning(
            "job %s: this is attempt %d (the backend stopped while running it)", job_id, starts
        )


def forget(feed: Feed, job_id: str) -> None:
    """The job's end is final: off the queue folder."""
    if feed.durable is not None:
        feed.durable.remove(job_id)


def _cancelled(entry: Entry) -> P.Message:
    return cancelled_message(entry.job_id, entry.reason)


def cancelled_message(job_id: str, reason: str = "", reply_to: str = "") -> P.Message:
    """`cancelled`; a cancel the backend made itself (a superseded live job) also carries
    `code` "cancelled" and a `message` saying why."""
    body: dict[str, str] = {"job_id": job_id}
    if reason:
        body |= {"code": ErrorCode.CANCELLED.value, "message": reason}
    return P.Message(P.CANCELLED, body, job_id=job_id, reply_to=reply_to)
