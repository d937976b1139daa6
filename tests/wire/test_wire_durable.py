"""Nothing lost: accepted jobs survive a SIGKILLed backend (PROTOCOL.md, "Durability")."""

from __future__ import annotations

import io
import json
import re

import numpy as np

from dreamwire.backend.server.durable import DurableQueue
from dreamwire.shared import events as ev
from dreamwire.shared.client import Client
from tests.support.wire import LONG_STEPS, collect, first_step, small_job

# The first job is still running when the backend is killed, and again (restarted from the
# beginning) when the client has reconnected: ~11 ms a step on 2 CPU cores.
RUNNING_STEPS = LONG_STEPS


def _ended_all(job_ids):
    def until(es):
        done = {
            e.job_id for e in es if isinstance(e, ev.ResultEvent | ev.ErrorEvent | ev.Cancelled)
        }
        return set(job_ids) <= done

    return until


def _accepted(job_id):
    return lambda es: any(isinstance(e, ev.Accepted) and e.job_id == job_id for e in es)


def _started(log: str) -> list[str]:
    return re.findall(r"job (\S+): start ", log)


def test_queue_folder_round_trip_order_and_corrupt_entries(tmp_path):
    q = DurableQueue(tmp_path / "queue", tmp_path / "queue-rejected")
    init = np.arange(64 * 64 * 3, dtype=np.uint8).reshape(64, 64, 3)
    batch = small_job(priority="batch", seed=1)
    normal = small_job(seed=2, init_image=init, mask=(init[..., 0] > 99).astype(np.uint8) * 255)
    urgent = small_job(priority="interactive", seed=3)
    later = small_job(seed=4)
    for job in (batch, normal, urgent, later):
        q.save(job)
    q.remove(later.job_id)
    # A write cut short by a crash, and three kinds of damage.
    (q.root / f".tmp-{later.job_id}-0000").mkdir()
    (q.root / "garbage").mkdir()
    (q.root / "garbage" / "job.json").write_text("{not json")
    pickled = q.root / "pickled"
    (pickled).mkdir()
    meta = json.loads((q.root / batch.job_id / "job.json").read_text())
    meta["job"]["job_id"] = "pickled"
    (pickled / "job.json").write_text(json.dumps(meta))
    buf = io.BytesIO()
    np.savez(buf, np.array([{"evil": 1}], dtype=object))  # would need allow_pickle
    (pickled / "arrays.npz").write_bytes(buf.getvalue())
    (q.root / "renamed").mkdir()
    for name in ("job.json", "arrays.npz"):
        (q.root / "renamed" / name).write_bytes((q.root / urgent.job_id / name).read_bytes())

    again = DurableQueue(q.root, q.rejected)
    jobs = again.load_all()

    assert [j.job_id for j in jobs] == [urgent.job_id, normal.job_id, batch.job_id]
    np.testing.assert_array_equal(jobs[1].init_image, init)
    np.testing.assert_array_equal(jobs[1].mask, normal.mask)
    assert jobs[1].seed == 2 and jobs[1].prompt == normal.prompt
    rejected = sorted(p.name.split("-")[0] for p in q.rejected.iterdir())
    assert rejected == ["garbage", "pickled", "renamed"]
    assert sorted(p.name for p in q.root.iterdir()) == sorted(j.job_id for j in jobs)
    # Submission order continues after a restart: a new normal job goes after the old one.
    fresh = small_job(seed=5)
    again.save(fresh)
    order = [j.job_id for j in DurableQueue(q.root, q.rejected).load_all()]
    assert order == [urgent.job_id, normal.job_id, fresh.job_id, batch.job_id]


def test_jobs_queued_and_running_survive_sigkill(backend_factory):
    backend = backend_factory()
    queue_dir = backend.out_dir / "queue"
    # A short timeout: the client says hello again every second until the backend is back.
    c = Client(backend.address, heartbeat_timeout=1.0)
    try:
        c.connect_wait(60)
        running = c.submit(small_job(steps=RUNNING_STEPS, seed=11))
        collect(c, first_step(running))
        later = c.submit(small_job(seed=12))
        urgent = c.submit(small_job(seed=13, priority="interactive"))
        dropped = c.submit(small_job(seed=14))
        collect(c, _accepted(dropped))
        c.cancel(dropped)
        events = collect(c, _ended_all([dropped]))
        assert any(isinstance(e, ev.Cancelled) and e.job_id == dropped for e in events)
        kept = {running, later, urgent}
        assert {p.name for p in queue_dir.iterdir()} == kept

        backend.kill()
        assert {p.name for p in queue_dir.iterdir()} == kept
        # A damaged entry (a disk error, a hand edit) must not stop the others.
        (queue_dir / "damaged").mkdir()
        (queue_dir / "damaged" / "job.json").write_text('{"format": 1, "seq": 0, "job": 5}')
        before = len(backend.log_text())
        backend.start()  # same port, same output folder

        events = collect(c, _ended_all(kept), timeout=240)
        results = {e.job_id: e.result for e in events if isinstance(e, ev.ResultEvent)}
        assert set(results) == kept, [e for e in events if isinstance(e, ev.ErrorEvent)]
        assert results[running].images[0].seed == 11
        assert results[later].images[0].seed == 12
        assert results[urgent].images[0].seed == 13
        # The client's fetch after the reconnect found the restored job and reattached: its
        # progress (from step 1 again) and result came to this client.
        after = events[events.index(next(e for e in events if isinstance(e, ev.Welcome))) :]
        reattached = [e for e in after if isinstance(e, ev.Accepted) and e.job_id == running]
        assert reattached and reattached[0].reattached
        steps = [
            e.progress.step
            for e in after[after.index(reattached[0]) :]
            if isinstance(e, ev.ProgressEvent) and e.job_id == running
        ]
        assert steps and steps[-1] >= RUNNING_STEPS - 1
        for job_id in kept:
            assert (backend.out_dir / "jobs" / job_id / "result.json").is_file()
        assert not (backend.out_dir / "jobs" / dropped).exists()
        assert list(queue_dir.iterdir()) == []
        (rejected,) = (backend.out_dir / "queue-rejected").iterdir()
        assert rejected.name.startswith("damaged-")

        # Restored in priority, then submission order; the killed job ran again from the
        # start; the cancelled one never came back.
        log = backend.log_text()[before:]
        assert _started(log) == [urgent, running, later]
        assert "queue entry damaged is unreadable" in log
        # The restarted backend still works, and its results can be fetched again by id.
        c.fetch_result(running)
        got = collect(c, lambda es: any(isinstance(e, ev.ResultEvent) for e in es))
        again = next(e for e in got if isinstance(e, ev.ResultEvent)).result
        np.testing.assert_array_equal(again.images[0].image, results[running].images[0].image)
        assert c.run(small_job(seed=15), timeout=120).images[0].seed == 15
        assert list(queue_dir.iterdir()) == []
    finally:
        c.close()


def test_a_running_job_leaves_the_queue_folder_when_cancelled(backend):
    """Forgotten as soon as the cancel arrives, so a crash before the engine's next step
    cannot bring it back; a job that ends with a result leaves it too."""
    queue_dir = backend.out_dir / "queue"
    c = Client(backend.address)
    try:
        c.connect_wait(60)
        job_id = c.submit(small_job(steps=LONG_STEPS, seed=21))
        collect(c, first_step(job_id))
        assert job_id in {p.name for p in queue_dir.iterdir()}
        c.cancel(job_id)
        events = collect(c, _ended_all([job_id]))
        assert any(isinstance(e, ev.Cancelled) for e in events)
        assert job_id not in {p.name for p in queue_dir.iterdir()}
        done = c.run(small_job(seed=22), timeout=120)
        assert done.job_id not in {p.name for p in queue_dir.iterdir()}
    finally:
        c.close()


def test_a_job_interrupted_by_a_clean_stop_runs_after_the_restart(backend_factory):
    """SIGTERM stops the running job at its next step, but that is no cancel: it stays."""
    backend = backend_factory()
    queue_dir = backend.out_dir / "queue"
    c = Client(backend.address, heartbeat_timeout=1.0)
    try:
        c.connect_wait(60)
        job_id = c.submit(small_job(steps=LONG_STEPS, seed=31))
        collect(c, first_step(job_id))
        backend.stop()
        assert [p.name for p in queue_dir.iterdir()] == [job_id]
        # A clean stop is no crash: that start does not count towards a poison job.
        assert json.loads((queue_dir / job_id / "started.json").read_text()) == {"starts": 0}
        assert not (backend.out_dir / "jobs" / job_id).exists()
        backend.start()
        events = collect(c, _ended_all([job_id]), timeout=240)
        (result,) = [e.result for e in events if isinstance(e, ev.ResultEvent)]
        assert result.images[0].seed == 31
        assert (backend.out_dir / "jobs" / job_id / "result.json").is_file()
        assert list(queue_dir.iterdir()) == []
    finally:
        c.close()


def test_queue_entry_counts_starts_keeps_its_owner_and_goes_as_a_whole(tmp_path):
    q = DurableQueue(tmp_path / "queue", tmp_path / "queue-rejected")
    job, other = small_job(seed=41), small_job(seed=42)
    q.save(job, "id:63616263")
    q.save(other)
    assert q.record_start(job.job_id) == 1
    assert q.record_start(job.job_id) == 2
    q.undo_start(job.job_id)  # a clean shutdown stopped it: that start does not count
    assert q.record_start("no-such-job") == 0 and not (q.root / "no-such-job").exists()

    entries = {s.job.job_id: s for s in DurableQueue(q.root, q.rejected).load_entries()}
    assert (entries[job.job_id].starts, entries[job.job_id].owner) == (1, "id:63616263")
    assert (entries[other.job_id].starts, entries[other.job_id].owner) == (0, "")

    q.remove(job.job_id)
    # Counting a start of a job removed meanwhile (a cancel racing the worker) recreates
    # nothing, and nothing half-deleted is left that could load as a job.
    assert q.record_start(job.job_id) == 0
    q.undo_start(job.job_id)
    assert sorted(p.name for p in q.root.iterdir()) == [other.job_id]
    (q.root / other.job_id / "started.json").write_text('{"starts": -1}')
    assert DurableQueue(q.root, q.rejected).load_entries() == []
    assert [p.name.split("-")[0] for p in q.rejected.iterdir()] == [other.job_id]
