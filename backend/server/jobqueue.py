"""The job queue: priority first (live, interactive, normal, batch), then arrival order.

Several jobs may be running at once (a Ray actor pool runs one per actor); the in-process
worker runs one."""

from __future__ import annotations

import heapq
import itertools
import threading
from dataclasses import dataclass, field

from dreamwire.shared.job import PRIORITIES, Job


@dataclass
class Entry:
    job: Job
    rank: int
    seq: int
    cancel: threading.Event = field(default_factory=threading.Event)
    # Why it was cancelled, when the backend did it (a superseded live job); sent along.
    reason: str = ""
    # Runs begun: a job whose worker died is re-run once (ray_pool.py), then it fails.
    attempts: int = 0
    # The worker that died running it: its re-run goes elsewhere.
    avoid: str = ""
    # Set by the Ray pool to make room for an urgent job (dispatch.py): the job stops at its
    # next step like a cancel, then goes back to the queue instead of ending.
    preempt: threading.Event = field(default_factory=threading.Event)

    def stop_asked(self) -> bool:
        return self.cancel.is_set() or self.preempt.is_set()

    @property
    def job_id(self) -> str:
        return self.job.job_id


class JobQueue:
    """Thread-safe: the server thread puts and cancels, the worker thread(s) take."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Entry]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._running: dict[str, Entry] = {}

    @property
    def running(self) -> Entry | None:
        """The earliest-queued running job (the only one with a single worker)."""
        with self._cond:
            return min(self._running.values(), key=lambda e: (e.rank, e.seq), default=None)

    def running_entries(self) -> list[Entry]:
        with self._cond:
            return list(self._running.values())

    def __len__(self) -> int:
        with self._cond:
            return len(self._heap)

    def put(self, job: Job) -> Entry:
        entry = Entry(job, PRIORITIES[job.priority], next(self._seq))
        with self._cond:
            heapq.heappush(self._heap, (entry.rank, entry.seq, entry))
            self._cond.notify_all()  # a worker's take and a dispatcher's wait_for_jobs
        return entry

    def take(self, timeout: float) -> Entry | None:
        """The next job, now marked running; None if none came within `timeout`."""
        with self._cond:
            if not self._heap:
                self._cond.wait(timeout)
            if not self._heap:
                return None
            entry = heapq.heappop(self._heap)[2]
            self._running[entry.job_id] = entry
            return entry

    def head(self, limit: int) -> list[Entry]:
        """The first `limit` waiting jobs, in the order `take` would give them."""
        with self._cond:
            return [e for _, _, e in heapq.nsmallest(limit, self._heap)]

    def claim(self, entry: Entry) -> bool:
        """Take this waiting job, now marked running; False when it is no longer waiting
        (cancelled, or taken meanwhile)."""
        with self._cond:
            for i, (_, _, e) in enumerate(self._heap):
                if e is entry:
                    self._heap.pop(i)
                    heapq.heapify(self._heap)
                    self._running[entry.job_id] = entry
                    return True
        return False

    def wait_for_jobs(self, timeout: float) -> None:
        """Return when a job is put or re-queued, on a nudge, or after `timeout`."""
        with self._cond:
            self._cond.wait(timeout)

    def nudge(self) -> None:
        """Wake whoever waits in wait_for_jobs (a worker came free)."""
        with self._cond:
            self._cond.notify_all()

    def done(self, entry: Entry) -> None:
        with self._cond:
            if self._running.get(entry.job_id) is entry:
                del self._running[entry.job_id]

    def requeue(self, entry: Entry) -> None:
        """A running job back in the queue, ahead of its class (its worker died, or it made
        room for an urgent job)."""
        with self._cond:
            self._running.pop(entry.job_id, None)
            heapq.heappush(self._heap, (entry.rank, entry.seq, entry))
            self._cond.notify_all()

    def remove(self, job_id: str) -> Entry | None:
        """Take a queued (not running) job out; None if it is not waiting."""
        with self._cond:
            for i, (_, _, e) in enumerate(self._heap):
                if e.job_id == job_id:
                    self._heap.pop(i)
                    heapq.heapify(self._heap)
                    return e
        return None

    def find(self, job_id: str) -> Entry | None:
        with self._cond:
            if job_id in self._running:
                return self._running[job_id]
            return next((e for _, _, e in self._heap if e.job_id == job_id), None)

    def position(self, job_id: str) -> int:
        """Jobs ahead of `job_id`, the running one included (0: it is running)."""
        with self._cond:
            if job_id in self._running:
                return 0
            mine = next(((r, s) for r, s, e in self._heap if e.job_id == job_id), None)
            if mine is None:
                return -1
            ahead = sum(1 for r, s, _ in self._heap if (r, s) < mine)
            return ahead + len(self._running)
