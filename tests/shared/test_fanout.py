"""The fan-out's bookkeeping (shared/fanout.py) on its own: order, limit, stop, skip.

A one-worker backend ends jobs in the order it got them, so results arriving out of order
(two Ray actors) are fed in here as events; the same pieces against a real backend are in
tests/wire/test_wire_fanout.py."""

from __future__ import annotations

import pytest

from dreamwire.shared import events as ev
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.fanout import FanOut, worker_limit
from dreamwire.shared.job import Job
from dreamwire.shared.result import JobResult, Progress


class Recorder:
    """Takes what a client would send; holds the ids it was given."""

    def __init__(self) -> None:
        self.submitted: list[Job] = []
        self.cancelled: list[str] = []

    def submit(self, job: Job) -> str:
        job.validate()
        self.submitted.append(job)
        return job.job_id

    def cancel(self, job_id: str) -> None:
        self.cancelled.append(job_id)


def job_for(key: int) -> Job:
    return Job(prompt=f"frame {key}", width=64, height=64, steps=2, seed=key, tag=str(key))


def result(job_id: str) -> ev.ResultEvent:
    return ev.ResultEvent(JobResult(job_id, []))


def test_the_limit_follows_the_welcomes_workers():
    assert worker_limit(None) == 1
    assert worker_limit(ev.Welcome.from_body({"protocol": 1})) == 1  # an older backend
    two = {"protocol": 1, "workers": [{"name": "a"}, {"name": "b"}]}
    assert worker_limit(ev.Welcome.from_body(two)) == 2


def test_results_are_handed_over_in_order_whatever_order_they_end_in():
    sender, got = Recorder(), []
    fan = FanOut([1, 2, 3, 4, 5], job_for, 2, on_result=lambda k, r: got.append((k, r.job_id)))
    fan.pump(sender)
    assert [j.tag for j in sender.submitted] == ["1", "2"]  # two in flight, no more
    ids = {int(j.tag): j.job_id for j in sender.submitted}
    fan.on_event(result(ids[2]), sender)  # the second ends first: it waits for the first
    assert got == [] and fan.progress().finished == 1
    fan.pump(sender)
    ids.update({int(j.tag): j.job_id for j in sender.submitted})
    assert sorted(ids) == [1, 2, 3]
    fan.on_event(ev.ProgressEvent(Progress(ids[1], "generating", 1, 4)), sender)
    assert fan.progress().running == pytest.approx(0.25)
    fan.on_event(result(ids[1]), sender)
    assert got == [(1, ids[1]), (2, ids[2])]
    while not fan.done:
        fan.pump(sender)
        for job_id in fan.in_flight:
            fan.on_event(result(job_id), sender)
    assert [k for k, _ in got] == [1, 2, 3, 4, 5] and fan.error is None
    assert fan.progress().fraction == 1.0
    # Never more than two in flight: each submission after the second followed a result.
    assert len(sender.submitted) == 5 and not sender.cancelled


def test_a_failed_piece_cancels_the_others_and_keeps_what_finished():
    sender, got = Recorder(), []
    fan = FanOut([1, 2, 3, 4], job_for, 3, on_result=lambda k, r: got.append(k))
    fan.pump(sender)
    one, two, three = (j.job_id for j in sender.submitted)
    fan.on_event(result(three), sender)  # back, but 1 and 2 are not yet
    err = DreamwireError(ErrorCode.OUT_OF_MEMORY, "too big", one)
    assert fan.on_event(ev.ErrorEvent(err), sender)
    assert fan.done and fan.error is err
    assert sender.cancelled == [two]  # the one still running; piece 4 was never sent
    assert got == [3]  # finished before the stop: handed over, not lost
    assert fan.pump(sender) == [] and len(sender.submitted) == 3
    # A late answer about the cancelled job is no longer this fan-out's.
    assert not fan.on_event(ev.Cancelled(two), sender)


def test_cancel_stops_sending_and_a_backend_cancel_stops_the_rest():
    sender = Recorder()
    fan = FanOut(["a", "b", "c"], lambda k: job_for(ord(k)), 2)
    fan.pump(sender)
    fan.cancel(sender)
    assert fan.done and fan.error.code == ErrorCode.CANCELLED
    assert sender.cancelled == [j.job_id for j in sender.submitted]
    assert fan.pump(sender) == []

    sender = Recorder()
    fan = FanOut(["a", "b", "c"], lambda k: job_for(ord(k)), 2)
    fan.pump(sender)
    first, second = (j.job_id for j in sender.submitted)
    fan.on_event(ev.Cancelled(first, "superseded"), sender)
    assert fan.error.code == ErrorCode.CANCELLED and sender.cancelled == [second]


def test_skipped_pieces_are_never_sent_and_do_not_hold_the_order():
    sender, got = Recorder(), []
    fan = FanOut([1, 2, 3], job_for, 1, on_result=lambda k, r: got.append(k), skip={2}.__contains__)
    assert fan.skipped == [2]
    while not fan.done:
        fan.pump(sender)
        for job_id in fan.in_flight:
            fan.on_event(result(job_id), sender)
    assert [j.tag for j in sender.submitted] == ["1", "3"] and got == [1, 3]
    done = FanOut([1], job_for, 1, skip=lambda k: True)
    assert done.done and done.pump(sender) == [] and done.progress().fraction == 1.0


def test_a_job_that_cannot_be_sent_stops_the_fan_out_as_a_failed_piece():
    sender = Recorder()
    fan = FanOut([1, 2], lambda k: Job(prompt="x", steps=-k), 1)
    assert fan.pump(sender) == []
    assert fan.done and fan.error.code == ErrorCode.INVALID_JOB
    with pytest.raises(ValueError, match="at least one"):
        FanOut([1], job_for, 0)
    with pytest.raises(ValueError, match="distinct"):
        FanOut([1, 1], job_for, 1)
