"""Cancel stays cancelled, only the owner cancels, a job that kills the backend is not rerun,
and a cancel stops a large job within a tile (PROTOCOL.md, "Cancel" and "Durability")."""

from __future__ import annotations

import json
import re
import time

import pytest

from dreamwire.backend.server.owners import Owners
from dreamwire.shared import events as ev
from dreamwire.shared.client import Client
from dreamwire.shared.errors import DreamwireError, ErrorCode
from tests.support.wire import LONG_STEPS, collect, ended, first_step, small_job


def _end(events, job_id):
    return next(
        e
        for e in events
        if isinstance(e, ev.ResultEvent | ev.ErrorEvent | ev.Cancelled) and e.job_id == job_id
    )


def _accepted(job_id):
    return lambda es: any(isinstance(e, ev.Accepted) and e.job_id == job_id for e in es)


def _errors(n):
    return lambda es: sum(isinstance(e, ev.ErrorEvent) for e in es) >= n


def _started(log: str) -> list[str]:
    return re.findall(r"job (\S+): start ", log)


def test_a_cancel_sent_while_the_backend_was_down_holds_and_a_job_that_kills_it_twice_fails(
    backend_factory,
):
    backend = backend_factory()
    queue_dir = backend.out_dir / "queue"
    c = Client(backend.address, heartbeat_timeout=1.0)
    try:
        c.connect_wait(60)
        # Long enough to be killed mid-run twice, with a reconnect in between.
        poison_job = small_job(width=128, height=128, steps=500, seed=51)
        poison = c.submit(poison_job)
        collect(c, first_step(poison))
        dropped = c.submit(small_job(steps=LONG_STEPS, seed=52))
        collect(c, _accepted(dropped))

        backend.kill()
        # Cancel pressed while the backend is down (Krita: "Cancelled; the document was not
        # changed"): the client remembers it.
        collect(c, lambda es: c.state == ev.LOST, timeout=30)
        c.cancel(dropped)
        before = len(backend.log_text())
        backend.start()  # restores both jobs from the queue folder
        # The cancel goes out again on reconnect and the restarted backend honours it; the
        # killed job runs again (its second start) and this client is reattached to it.
        events = collect(c, lambda es: ended(dropped)(es) and first_step(poison)(es))
        assert isinstance(_end(events, dropped), ev.Cancelled)
        assert not any(isinstance(e, ev.ProgressEvent) and e.job_id == dropped for e in events)
        assert sorted(p.name for p in queue_dir.iterdir()) == [poison]
        assert json.loads((queue_dir / poison / "started.json").read_text()) == {"starts": 2}

        backend.kill()  # the same job kills the backend again
        middle = len(backend.log_text())
        backend.start()
        events = collect(c, ended(poison))
        err = _end(events, poison)
        assert isinstance(err, ev.ErrorEvent), events
        assert err.error.code == ErrorCode.POISON_JOB
        assert "stopped twice while running this job" in err.error.message
        log = backend.log_text()
        assert _started(log[before:middle]) == [poison]  # the cancelled one never started
        assert _started(log[middle:]) == []  # and the poison job not a third time
        assert list(queue_dir.iterdir()) == []
        failed = json.loads((backend.out_dir / "jobs" / poison / "failed.json").read_text())
        assert failed["code"] == "poison_job" and failed["job"]["seed"] == 51

        # Stored as failed: a fetch and a resubmit of the same job both get that error.
        c.fetch_result(poison)
        c.submit(poison_job)
        again = collect(c, _errors(2))
        assert [e.error.code for e in again if isinstance(e, ev.ErrorEvent)] == [
            ErrorCode.POISON_JOB
        ] * 2
        # The backend lives on, and neither job came back.
        assert c.run(small_job(seed=53), timeout=120).images[0].seed == 53
        assert poison not in _started(backend.log_text()[middle:])
        assert dropped not in _started(backend.log_text())
    finally:
        c.close()


def test_only_the_owner_cancels_and_every_cancel_is_answered(backend):
    owner, other = Client(backend.address), Client(backend.address)
    try:
        owner.connect_wait(60)
        other.connect_wait(60)
        running = owner.submit(small_job(steps=LONG_STEPS, seed=61))
        collect(owner, first_step(running))
        waiting = owner.submit(small_job(seed=62))
        collect(owner, _accepted(waiting))

        # Another client's cancel, of the running and of the waiting job: a clear refusal
        # each (a cancel of a running job used to get no answer at all).
        other.cancel(running)
        other.cancel(waiting)
        refused = [e for e in collect(other, _errors(2)) if isinstance(e, ev.ErrorEvent)]
        assert {(e.error.code, e.error.job_id) for e in refused} == {
            (ErrorCode.NOT_OWNER, running),
            (ErrorCode.NOT_OWNER, waiting),
        }
        assert {running, waiting} <= {p.name for p in (backend.out_dir / "queue").iterdir()}

        # The other client takes over the running job's progress (a fetch by id), yet the
        # owner's cancel still works and the owner hears the end too.
        other.fetch_result(running)
        collect(other, _accepted(running))
        owner.cancel(running)
        owner.cancel(waiting)
        mine = collect(owner, lambda es: ended(running)(es) and ended(waiting)(es))
        assert isinstance(_end(mine, running), ev.Cancelled)
        assert isinstance(_end(mine, waiting), ev.Cancelled)
        assert isinstance(_end(collect(other, ended(running)), running), ev.Cancelled)
        # A cancel of a job that is no longer there is answered too.
        other.cancel(running)
        (gone,) = [e for e in collect(other, _errors(1)) if isinstance(e, ev.ErrorEvent)]
        assert gone.error.code == ErrorCode.JOB_NOT_FOUND
    finally:
        owner.close()
        other.close()


def test_cancel_during_a_tiled_decode_of_a_large_image_stops_at_the_next_tile(backend):
    """1024x1024 on the tiny SDXL: one cheap UNet step, then ~480 VAE tiles (~14 s on two
    loaded CPU cores). The cancel used to wait for the whole decode and then lose to the
    result; now the next tile stops the job."""
    c = Client(backend.address)
    try:
        c.connect_wait(60)
        job = small_job(
            model="tiny-sdxl", width=1024, height=1024, steps=1, seed=71, tiled_vae=True
        )
        job_id = c.submit(job)
        collect(
            c,
            lambda es: any(
                isinstance(e, ev.ProgressEvent) and e.progress.state == "decoding" for e in es
            ),
        )
        asked = time.monotonic()
        c.cancel(job_id)
        events = collect(c, ended(job_id))
        waited = time.monotonic() - asked
        assert isinstance(_end(events, job_id), ev.Cancelled), events
        assert waited < 3.0, f"cancelled {waited:.2f} s after the cancel"
        assert not (backend.out_dir / "jobs" / job_id).exists()
    finally:
        c.close()


def test_owners_key_beats_socket_and_restored_jobs_keep_their_owner():
    owners = Owners()
    owners.note_key(b"c1", "K" * 40)
    owners.note_key(b"c2", "K" * 40)  # the same key from another client id (host restarted)
    owners.submitted("j1", b"c1")
    owners.check_cancel("j1", b"c2")
    with pytest.raises(DreamwireError) as refused:
        owners.check_cancel("j1", b"c3")  # no key: owned by its routing id, not the same
    assert refused.value.code == ErrorCode.NOT_OWNER and refused.value.job_id == "j1"

    owners.restored("j2", owners.principal(b"c3"))
    owners.restored("j3", "")  # an entry from before owners were kept: anyone may cancel
    owners.check_cancel("j2", b"c3")
    owners.check_cancel("j3", b"c1")
    with pytest.raises(DreamwireError):
        owners.check_cancel("j2", b"c1")
    # Restored, nobody told until a fetch; cancellers hear the end, once each.
    assert owners.told("j2") is None
    owners.wait_for_end("j2", b"c3")
    owners.reattach("j2", b"c4")
    owners.wait_for_end("j2", b"c4")
    assert owners.end("j2") == [b"c4", b"c3"] and owners.end("j2") == []
