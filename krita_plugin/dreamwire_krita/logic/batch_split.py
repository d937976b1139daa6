"""A batch of several images split into jobs of their own when the backend has several
workers (shared/batch_split.py, shared/fanout.py), so the images are made side by side;
they land together, as one batch's would, once all are back. A backend with one worker
(or none listed) gets the one batch job, as before.
"""

from __future__ import annotations

import dataclasses

from dreamwire.shared import events as ev
from dreamwire.shared.batch_split import merge
from dreamwire.shared.fanout import FanOut, Sender
from dreamwire.shared.job import Job
from dreamwire.shared.result import JobResult

from .session import Pending, Session


class SplitBatch:
    """The parts of one split batch in flight: a FanOut over them, sent through `sender`
    (the session with the batch's Pending), their results kept until all are back."""

    def __init__(self, parts: list[Job], sender: Sender) -> None:
        self.sender = sender
        self.results: list[JobResult] = []
        # Every part at once: there are no more parts than workers.
        self.fan: FanOut[int] = FanOut(
            list(range(len(parts))),
            parts.__getitem__,
            len(parts),
            on_result=lambda _, r: self.results.append(r),
        )

    def start(self) -> str:
        """Send every part; the first one's job id (the docker's handle on the batch)."""
        sent = self.fan.pump(self.sender)
        if self.fan.error is not None:  # a part the client refused (validate)
            raise self.fan.error
        return sent[0]

    def owns(self, job_id: str) -> bool:
        return self.fan.owns(job_id)

    def result(self, result: JobResult) -> JobResult | None:
        """One part back; the merged batch when it was the last."""
        self.fan.on_event(ev.ResultEvent(result), self.sender)
        done = self.fan.done and self.fan.error is None
        return merge(self.results) if done else None

    def stop(self, ended: str) -> JobResult | None:
        """Part `ended` failed or was cancelled: the others are cancelled (not that one: the
        backend is done with it); the parts already back as one result (to land: nothing
        made is lost), or None."""
        self.fan.on_event(ev.Cancelled(ended), self.sender)
        self.fan.cancel(self.sender)  # a no-op unless `ended` was not a part in flight
        return merge(self.results) if self.results else None


class SessionSender:
    """A FanOut's sender over the docker's Session: each part submitted with its own copy
    of the batch's Pending (the queue menu lists each part)."""

    def __init__(self, session: Session, pending: Pending) -> None:
        self.session = session
        self.pending = pending

    def submit(self, job: Job) -> str:
        return self.session.submit(job, dataclasses.replace(self.pending))

    def cancel(self, job_id: str) -> None:
        self.session.cancel(job_id)
