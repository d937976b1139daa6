"""The actor pool's policy (backend/server/pool_policy.py) played through without Ray: real
JobQueue, real DurableQueue folder, real run_entry, and each actor's engine a stand-in that
steps until it is released, asked to stop, or made to die (the one fault Ray alone causes;
a real actor killed by PID is tests/wire/test_wire_ray.py). Covers a batch job making room
for an interactive one and running again from the start, a job that ended anyway while
making room, and a job re-run once after its actor died, then ended as a poison job."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
import zmq

from dreamwire.backend.engine.admission import Device, GiB, Workplace
from dreamwire.backend.server.durable import DurableQueue
from dreamwire.backend.server.executor import Feed, Poster, WorkerLost
from dreamwire.backend.server.jobqueue import Entry, JobQueue
from dreamwire.backend.server.pool_policy import Ending, Outcome, PoolPolicy, Slot, Start
from dreamwire.backend.server.ray_actor import ActorInfo
from dreamwire.shared import protocol as P
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job
from dreamwire.shared.result import JobResult
from tests.support.wire import small_job

WAIT_S = 10.0  # generous: a loaded 2-core box; every wait ends at once when all is well


class Engine:
    """One actor's engine.run: steps until released (a result), asked to stop (cancelled, as
    the real engine raises at its next step) or killed (WorkerLost, as ray_pool reports a
    dead actor)."""

    def __init__(self, sees_stops: bool = True) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.killed = threading.Event()
        # Clear: between two steps, it has not looked at the stop flags yet.
        self.sees_stops = threading.Event()
        if sees_stops:
            self.sees_stops.set()

    def run(self, job: Job, *, on_progress, should_cancel) -> JobResult:
        self.started.set()
        while not self.release.wait(0.005):
            if self.killed.is_set():
                raise WorkerLost("killed")
            if self.sees_stops.is_set() and should_cancel():
                raise DreamwireError(ErrorCode.CANCELLED, "cancelled", job.job_id)
        return JobResult(job.job_id, [])


class Pool:
    """The policy with one engine per actor, each run on a thread as ray_pool's are."""

    def __init__(self, feed: Feed, names: tuple[str, ...] = ("a", "b")):
        self.feed = feed
        self.stopping = threading.Event()
        self.slots = {n: Slot(n, ActorInfo(i + 1, "cpu", _place())) for i, n in enumerate(names)}
        self.policy = PoolPolicy(feed.jobs, list(self.slots.values()), feed.durable)
        self.engines: dict[str, Engine] = {}
        self.engines_see_stops = True
        self.endings: dict[str, Ending] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._poster = Poster(feed)

    def submit(self, job_id: str, priority: str = "normal") -> Entry:
        job = small_job(job_id=job_id, priority=priority)
        if priority != "live":  # as the server stores a job before it queues it
            self.feed.durable.save(job)
        return self.feed.jobs.put(job)

    def dispatch(self) -> dict[str, str]:
        """Start what the policy starts, each on its actor's thread: {job_id: actor}."""
        starts = self.policy.dispatch()
        for s in starts:
            self._start(s)
        return {s.entry.job_id: s.slot.name for s in starts}

    def _start(self, start: Start) -> None:
        engine = self.engines[start.slot.name] = Engine(self.engines_see_stops)
        job_id = start.entry.job_id

        def run() -> None:
            self.endings[job_id] = self.policy.run(
                start.slot, start.entry, engine.run, self.feed, self._poster, self.stopping
            )

        self._threads[job_id] = t = threading.Thread(target=run, daemon=True)
        t.start()
        assert engine.started.wait(WAIT_S)

    def end(self, job_id: str) -> Ending:
        """Wait for the job's run to end; its ending."""
        self._threads.pop(job_id).join(WAIT_S)
        return self.endings.pop(job_id)

    def running(self) -> dict[str, str]:
        return {s.entry.job_id: s.name for s in self.slots.values() if s.entry is not None}

    def close(self) -> None:
        for e in self.engines.values():
            e.release.set()
        for t in self._threads.values():
            t.join(WAIT_S)
        self._poster.close()


def _place() -> Workplace:
    return Workplace(Device("cpu", 4, ram_free=4 * GiB))


def _starts(feed: Feed, job_id: str) -> int:
    stored = {s.job.job_id: s for s in feed.durable.load_entries()}
    return stored[job_id].starts


def _waiting(feed: Feed) -> list[str]:
    return [e.job_id for e in feed.jobs.head(100)]


@pytest.fixture
def feed(tmp_path) -> Iterator[Feed]:
    ctx = zmq.Context()
    wake = ctx.socket(zmq.PULL)  # the server thread's wake-up socket; nobody reads it here
    address = f"inproc://pool-policy-{uuid.uuid4().hex}"
    wake.bind(address)
    durable = DurableQueue(tmp_path / "queue", tmp_path / "rejected")
    yield Feed(JobQueue(), lambda _job, result: result, ctx, address, durable)
    wake.close(0)
    ctx.term()


@pytest.fixture
def pool(feed) -> Iterator[Pool]:
    p = Pool(feed)
    yield p
    p.close()


def test_a_batch_job_makes_room_for_an_interactive_one_and_runs_again_from_the_start(pool, feed):
    # The frames look at their stop flags only when told: the steps below are then in order.
    pool.engines_see_stops = False
    frames = [pool.submit(f"f{i}", "batch") for i in range(3)]
    assert pool.dispatch() == {"f0": "a", "f1": "b"}
    pool.submit("u", "interactive")
    # No idle actor: the latest-queued running frame is asked to stop, nothing starts yet.
    assert pool.dispatch() == {}
    assert frames[1].preempt.is_set() and not frames[0].preempt.is_set()
    # While it stops, its actor counts as on its way: nothing more is stopped.
    assert pool.dispatch() == {} and not frames[0].preempt.is_set()

    pool.engines["b"].sees_stops.set()  # its next step
    ending = pool.end("f1")
    # Back in the queue at its place, not ended: no message for the client, its flag down,
    # its start uncounted (in memory and in the queue folder), its actor free.
    assert ending == Ending(Outcome.MADE_ROOM)
    assert not frames[1].preempt.is_set() and frames[1].attempts == 0
    assert _starts(feed, "f1") == 0
    assert _waiting(feed) == ["u", "f1", "f2"]
    assert pool.running() == {"f0": "a"}

    # The urgent job takes the freed actor; the stopped frame waits, ahead of the later one.
    assert pool.dispatch() == {"u": "b"}
    pool.engines["b"].release.set()
    assert pool.end("u").message.type == P.RESULT
    assert pool.dispatch() == {"f1": "b"}
    assert _starts(feed, "f1") == 1  # this start counts
    for actor, job_id in (("a", "f0"), ("b", "f1")):
        pool.engines[actor].release.set()
        ended = pool.end(job_id)
        assert ended.outcome is Outcome.ENDED and ended.message.type == P.RESULT
    assert pool.dispatch() == {"f2": "a"}
    assert {s.job.job_id for s in feed.durable.load_entries()} == {"f2"}  # the rest are done


def test_an_interactive_job_never_stops_a_normal_one(pool):
    pool.submit("n0")
    pool.submit("n1")
    assert pool.dispatch() == {"n0": "a", "n1": "b"}
    pool.submit("u", "interactive")
    assert pool.dispatch() == {}
    assert not any(e.preempt.is_set() for e in pool.policy.jobs.running_entries())


@pytest.mark.parametrize("how", ["result", "client cancel", "server stopping"])
def test_a_job_asked_to_make_room_that_ended_otherwise_ends_as_it_ended(feed, how):
    pool = Pool(feed, ("a",))
    pool.engines_see_stops = False  # the frame is between two steps when the flag goes up
    try:
        frame = pool.submit("f", "batch")
        assert pool.dispatch() == {"f": "a"}
        pool.submit("u", "live")
        assert pool.dispatch() == {} and frame.preempt.is_set()
        engine = pool.engines["a"]
        if how == "result":
            engine.release.set()  # its last step done before it looked at the flag
        elif how == "client cancel":  # as the server does: off the disk, then the flag
            feed.durable.remove("f")
            frame.cancel.set()
        else:
            pool.stopping.set()
        engine.sees_stops.set()
        ending = pool.end("f")
        expected = P.RESULT if how == "result" else P.CANCELLED
        assert ending.outcome is Outcome.ENDED and ending.message.type == expected
        assert feed.jobs.find("f") is None and pool.running() == {}
        stored = {s.job.job_id: s.starts for s in feed.durable.load_entries()}
        if how == "server stopping":
            # On disk for the next start, this start uncounted (run_entry's clean stop).
            assert stored == {"f": 0}
        else:
            assert stored == {}
    finally:
        pool.close()


def test_a_job_whose_actor_died_runs_once_more_elsewhere_then_is_a_poison_job(pool, feed):
    entry = pool.submit("j")
    assert pool.dispatch() == {"j": "a"}
    pool.engines["a"].killed.set()
    ending = pool.end("j")
    assert ending == Ending(Outcome.RERUN, actor_died=True)
    # Queued again, ahead of its class, avoiding the dead actor, whose slot stays busy
    # until Ray has it back.
    assert entry.avoid == "a" and _waiting(feed) == ["j"]
    assert pool.running() == {"j": "a"}
    pool.policy.actor_back(pool.slots["a"], ActorInfo(11, "cpu", _place()))
    assert pool.running() == {}
    pool.submit("later")
    # Both actors idle: the re-run goes to the other one, the next job to the restarted one.
    assert pool.dispatch() == {"j": "b", "later": "a"}
    assert _starts(feed, "j") == 1  # a re-run after a death is the same start

    pool.engines["b"].killed.set()
    ending = pool.end("j")
    assert ending.outcome is Outcome.ENDED and ending.actor_died
    assert ending.message.type == P.ERROR
    assert ending.message.body["code"] == ErrorCode.POISON_JOB.value
    assert feed.jobs.find("j") is None
    assert "j" not in {s.job.job_id for s in feed.durable.load_entries()}

    # The actor never came back: listed as lost, never given work again.
    pool.policy.actor_lost(pool.slots["b"], "gone")
    assert {w.name: w.device for w in pool.policy.workers()} == {"a": "cpu", "b": "lost"}
    pool.engines["a"].release.set()
    pool.end("later")
    pool.submit("next")
    assert pool.dispatch() == {"next": "a"}


def test_an_actor_dying_as_the_server_stops_leaves_its_job_on_disk(pool, feed):
    pool.submit("j")
    assert pool.dispatch() == {"j": "a"}
    pool.stopping.set()
    pool.engines["a"].killed.set()
    assert pool.end("j") == Ending(Outcome.KEPT, actor_died=True)
    # Not queued again in memory (the server is going), still in the folder for the next
    # start, with its start counted as a crash would have it.
    assert feed.jobs.find("j") is None
    assert _starts(feed, "j") == 1
