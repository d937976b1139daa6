"""A batch split across workers as the docker follows it (logic/batch_split.py): the parts
land together once all are back; a failed part cancels the others and keeps what came.
The parts through a real backend: tests/wire/test_wire_fanout.py."""

from __future__ import annotations

import numpy as np
from dreamwire_krita.logic.batch_split import SessionSender, SplitBatch
from dreamwire_krita.logic.geometry import Rect
from dreamwire_krita.logic.params import Params
from dreamwire_krita.logic.regions import plan_generate
from dreamwire_krita.logic.session import Pending

from dreamwire.shared.batch_split import split_batch
from dreamwire.shared.job import Job
from dreamwire.shared.result import GeneratedImage, JobResult


class FakeSession:
    """Session.submit/cancel as the sender sees them (the real one needs a backend)."""

    def __init__(self):
        self.pending: dict = {}
        self.cancelled: list[str] = []

    def submit(self, job, pending):
        pending.job_id = job.job_id
        self.pending[job.job_id] = (job, pending)
        return job.job_id

    def cancel(self, job_id):
        self.cancelled.append(job_id)


def _back(job: Job) -> JobResult:
    seeds = range(job.seed, job.seed + job.batch)
    return JobResult(
        job.job_id, [GeneratedImage(np.zeros((1, 1, 3), np.uint8), s, "") for s in seeds]
    )


def _split(batch: int, parts: int):
    session = FakeSession()
    job = Job(prompt="a fox", width=64, height=64, steps=2, seed=10, batch=batch)
    pending = Pending("generate", plan_generate(Rect(0, 0, 64, 64), None), Params(), "doc")
    split = SplitBatch(split_batch(job, parts), SessionSender(session, pending))
    first = split.start()
    parts = [job for job, _ in session.pending.values()]  # in the order they were sent
    assert parts[0].job_id == first
    return session, split, parts


def test_the_parts_land_together_in_seed_order_whichever_ends_first():
    session, split, parts = _split(3, 2)
    assert len(parts) == 2  # every part at once: no more parts than workers
    assert len({id(p) for _, p in session.pending.values()}) == 2  # a Pending of its own each
    assert split.result(_back(parts[1])) is None
    merged = split.result(_back(parts[0]))
    assert [g.seed for g in merged.images] == [10, 11, 12] and merged.job_id == parts[0].job_id


def test_a_failed_part_cancels_the_others_and_keeps_what_came():
    session, split, parts = _split(4, 3)
    assert split.result(_back(parts[0])) is None
    kept = split.stop(parts[1].job_id)
    assert session.cancelled == [parts[2].job_id]  # not the part the backend ended itself
    assert [g.seed for g in kept.images] == [10, 11]
    session, split, parts = _split(2, 2)
    assert split.stop(parts[0].job_id) is None and session.cancelled == [parts[1].job_id]
