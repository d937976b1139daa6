"""The `live` queue class (PROTOCOL.md, "Live jobs"): first in the queue, and a client's new
live job replaces its previous one, queued or running; never stored in the queue folder."""

from __future__ import annotations

import re

from dreamwire.backend.server.durable import DurableQueue
from dreamwire.shared import events as ev
from dreamwire.shared.client import Client
from dreamwire.shared.errors import ErrorCode
from dreamwire.shared.job import PRIORITIES
from tests.support.wire import LONG_STEPS, collect, ended, first_step, small_job


def _all_ended(*job_ids):
    checks = [ended(j) for j in job_ids]
    return lambda es: all(c(es) for c in checks)


def _end(events, job_id):
    return next(
        e
        for e in events
        if isinstance(e, ev.ResultEvent | ev.ErrorEvent | ev.Cancelled) and e.job_id == job_id
    )


def _started(log: str) -> list[str]:
    return re.findall(r"job (\S+): start ", log)


def test_live_is_the_first_class_and_listed_in_the_welcome(backend):
    assert PRIORITIES["live"] < min(v for k, v in PRIORITIES.items() if k != "live")
    c = Client(backend.address)
    try:
        welcome = c.connect_wait(60)
        assert welcome.priorities == ["live", "interactive", "normal", "batch"]
    finally:
        c.close()


def test_queued_live_job_is_replaced_and_live_jumps_queued_work(backend):
    """Behind a running job of another client: this client's normal job, then two live jobs
    back to back (the first is cancelled at once, with a message), then another client's live
    job (which must not cancel this client's). Both surviving live jobs run before the normal
    job."""
    me, other = Client(backend.address), Client(backend.address)
    try:
        me.connect_wait(60)
        other.connect_wait(60)
        before = len(backend.log_text())
        blocker = other.submit(small_job(steps=LONG_STEPS, seed=30))
        collect(other, first_step(blocker))
        normal = me.submit(small_job(seed=31))
        stale = me.submit(small_job(priority="live", seed=32))
        fresh = me.submit(small_job(priority="live", seed=33))
        theirs = other.submit(small_job(priority="live", seed=34))

        mine = collect(me, ended(stale))
        gone = _end(mine, stale)
        assert isinstance(gone, ev.Cancelled)
        assert "superseded" in gone.message and fresh in gone.message
        queue = {p.name for p in (backend.out_dir / "queue").iterdir()}
        assert normal in queue and fresh not in queue and stale not in queue

        other.cancel(blocker)
        mine += collect(me, _all_ended(fresh, normal))
        done = collect(other, _all_ended(blocker, theirs))
        assert isinstance(_end(mine, fresh), ev.ResultEvent)
        assert _end(mine, fresh).result.images[0].seed == 33
        assert isinstance(_end(mine, normal), ev.ResultEvent)
        assert isinstance(_end(done, theirs), ev.ResultEvent)
        started = _started(backend.log_text()[before:])
        # The two clients' live jobs reach the backend over two sockets, in either order.
        assert started[0] == blocker and started[3:] == [normal], started
        assert sorted(started[1:3]) == sorted([fresh, theirs])  # the stale one never ran
    finally:
        me.close()
        other.close()


def test_a_live_job_replacing_a_waiting_one_fits_a_full_queue(backend):
    """The shared backend queues 8 jobs: a new live frame still replaces the waiting one."""
    me, other = Client(backend.address), Client(backend.address)
    try:
        me.connect_wait(60)
        other.connect_wait(60)
        blocker = other.submit(small_job(steps=LONG_STEPS, seed=60))
        collect(other, first_step(blocker))
        stale = me.submit(small_job(priority="live", seed=61))
        fillers = [me.submit(small_job(seed=62 + i)) for i in range(7)]
        collect(
            me, lambda es: {e.job_id for e in es if isinstance(e, ev.Accepted)} >= {stale, *fillers}
        )
        fresh = me.submit(small_job(priority="live", seed=70))
        refused = me.submit(small_job(seed=71))
        events = collect(me, _all_ended(stale, refused))
        assert isinstance(_end(events, stale), ev.Cancelled)
        assert _end(events, refused).error.code == ErrorCode.QUEUE_FULL
        for job_id in fillers:
            me.cancel(job_id)
        other.cancel(blocker)
        events += collect(me, _all_ended(fresh, *fillers))
        assert isinstance(_end(events, fresh), ev.ResultEvent)
        collect(other, ended(blocker))
    finally:
        me.close()
        other.close()


def test_running_live_job_is_stopped_by_the_next_one_and_never_stored(backend):
    c = Client(backend.address)
    try:
        c.connect_wait(60)
        running = c.submit(small_job(priority="live", steps=LONG_STEPS, seed=40))
        collect(c, first_step(running))
        assert running not in {p.name for p in (backend.out_dir / "queue").iterdir()}
        fresh = c.submit(small_job(priority="live", seed=41))
        events = collect(c, _all_ended(running, fresh))
        stopped = _end(events, running)
        assert isinstance(stopped, ev.Cancelled) and fresh in stopped.message
        steps = [
            e.progress.step
            for e in events
            if isinstance(e, ev.ProgressEvent) and e.job_id == running
        ]
        assert max(steps, default=0) < LONG_STEPS - 1  # stopped early, not run to the end
        assert isinstance(_end(events, fresh), ev.ResultEvent)
        # An explicit cancel of another live job still answers as before (no message).
        third = c.submit(small_job(priority="live", steps=LONG_STEPS, seed=42))
        collect(c, first_step(third))
        c.cancel(third)
        assert _end(collect(c, ended(third)), third).message == ""
    finally:
        c.close()


def test_queue_folder_drops_a_live_entry_on_load(tmp_path):
    q = DurableQueue(tmp_path / "queue", tmp_path / "queue-rejected")
    kept, live = small_job(seed=50), small_job(priority="live", seed=51)
    q.save(kept)
    q.save(live)  # the server never does this; a hand copy or an older backend might
    assert [j.job_id for j in DurableQueue(q.root, q.rejected).load_all()] == [kept.job_id]
    assert [p.name for p in q.root.iterdir()] == [kept.job_id]
    assert not q.rejected.exists()
