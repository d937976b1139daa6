"""The Ray pool's pure parts, without Ray: the dispatch decision (priority, the reserve for
urgent work by preemption, memory, model affinity), admission across workers, the queue with
several jobs running and a re-queued one, and `--ray` without the extra."""

from __future__ import annotations

import sys

from dreamwire.backend.cli import main
from dreamwire.backend.engine.admission import Device, GiB, Need, Workplace
from dreamwire.backend.server.dispatch import (
    ActorState,
    Assignment,
    Decision,
    Waiting,
    decide,
)
from dreamwire.backend.server.jobqueue import JobQueue
from dreamwire.backend.server.worker_memory import Placed, refusal_everywhere
from dreamwire.shared.errors import ErrorCode
from dreamwire.shared.job import PRIORITIES
from tests.support.wire import small_job

seqs = iter(range(10**6))


def job(job_id: str, priority: str = "normal", model: str = "", avoid: str = "") -> Waiting:
    return Waiting(job_id, PRIORITIES[priority], next(seqs), model, avoid)


def actor(name: str, *models: str, running: Waiting | None = None, **kw) -> ActorState:
    return ActorState(name, models, running=running, **kw)


def started(d: Decision) -> dict[str, str]:
    return {a.job_id: a.actor for a in d.start}


def test_the_best_class_starts_first_then_the_earliest():
    batch, normal, urgent, late = job("b", "batch"), job("n"), job("i", "interactive"), job("n2")
    assert decide([batch, late, normal, urgent], [actor("a")]).start == (Assignment("i", "a"),)
    assert started(decide([batch, late, normal], [actor("a"), actor("b")])) == {
        "n": "a",
        "n2": "b",
    }
    live = job("l", "live")
    assert started(decide([urgent, live], [actor("a")])) == {"l": "a"}
    # Nothing idle, nothing urgent: nothing happens.
    busy = actor("a", running=job("x", "batch"))
    assert decide([normal, batch], [busy]) == Decision()


def test_affinity_breaks_the_tie_between_idle_actors():
    a = actor("a", "tiny-sd1", "tiny-sdxl", jobs_run=5)
    b = actor("b", jobs_run=0)
    c = actor("c", "tiny-sd1-diffusers", jobs_run=1)
    assert started(decide([job("j", model="tiny-sdxl.safetensors")], [b, c, a])) == {"j": "a"}
    assert started(decide([job("j", model="tiny-sd1-diffusers")], [a, b, c])) == {"j": "c"}
    # Nobody holds it: the emptiest cache loads it (it evicts nothing), then the least used.
    assert started(decide([job("j", model="other")], [a, c, b])) == {"j": "b"}
    assert started(decide([job("j")], [a, c])) == {"j": "c"}
    # Each of several waiting jobs goes to the actor holding its model, whatever the order.
    xl, sd = job("xl", model="tiny-sdxl"), job("sd", model="tiny-sd1-diffusers")
    assert started(decide([xl, sd], [c, a])) == {"xl": "a", "sd": "c"}
    # A job needing a load spares the cache a later job wants: `c` holds the next one's model.
    d = actor("d", "tiny-sd2", jobs_run=3)
    first, second = job("f", model="new"), job("s", model="tiny-sd1-diffusers")
    assert started(decide([first], [c, d])) == {"f": "c"}  # fewer jobs run
    assert started(decide([first, second], [c, d])) == {"f": "d", "s": "c"}


def test_a_rerun_avoids_the_actor_that_died_under_it_while_another_lives():
    a, b = actor("a", "tiny-sd1"), actor("b", running=job("x"))
    rerun, later = job("r", model="tiny-sd1", avoid="a"), job("l")
    # The re-run waits for `b`; the idle `a` takes the next job meanwhile.
    assert started(decide([rerun, later], [a, b])) == {"l": "a"}
    assert started(decide([rerun], [a, actor("b", alive=False)])) == {"r": "a"}  # the only one
    assert decide([job("j")], [actor("a", alive=False)]) == Decision()


def test_a_job_goes_only_to_an_actor_it_fits_and_others_do_not_wait_for_it():
    big, small = job("big", model="m"), job("small")
    a, b = actor("a", "m"), actor("b")
    room = {"a": 1, "b": 4}
    need = {"big": 3, "small": 1}

    def fits(w: Waiting, x: ActorState) -> bool:
        return need[w.job_id] <= room[x.name]

    # It fits only `b`, although `a` holds its model.
    assert started(decide([big], [a, b], fits)) == {"big": "b"}
    # Only `a` is idle: the big job waits and the small one behind it starts.
    busy_b = actor("b", running=job("x"))
    assert started(decide([big, small], [a, busy_b], fits)) == {"small": "a"}
    # Every actor idle and it fits none: no memory will come free, so it goes to one, whose
    # own check refuses it (limit_exceeded) rather than it waiting for ever.
    assert started(decide([big], [a], fits)) == {"big": "a"}


def test_an_urgent_job_makes_room_by_stopping_the_latest_batch_job():
    first, last = job("f1", "batch"), job("f2", "batch")
    a, b = actor("a", running=first), actor("b", running=last)
    urgent = job("u", "interactive")
    assert decide([urgent], [a, b]) == Decision(preempt=("f2",))
    # Batch work uses every actor while nothing urgent waits.
    assert started(decide([job("f3", "batch"), job("f4", "batch")], [actor("a"), actor("b")]))
    # One holding the urgent job's model is stopped first.
    a_sd = actor("a", "tiny-sd1", running=first)
    assert decide([job("u2", "live", model="tiny-sd1")], [a_sd, b]).preempt == ("f1",)
    # Two urgent jobs stuck: two batch jobs stopped; but one urgent job never stops two.
    two = decide([urgent, job("l", "live")], [a, b])
    assert sorted(two.preempt) == ["f1", "f2"]
    # An actor already making room counts as on its way: nothing more is stopped for it.
    assert decide([urgent], [actor("a", running=first, preempting=True), b]) == Decision()


def test_only_batch_jobs_are_stopped_and_only_where_the_urgent_job_may_run():
    urgent = job("u", "interactive")
    normal = actor("a", running=job("n"))
    interactive = actor("b", running=job("i", "interactive"))
    assert decide([urgent], [normal, interactive]) == Decision()
    # A normal job waiting never stops batch work.
    assert decide([job("n2")], [actor("a", running=job("f", "batch"))]) == Decision()
    # An idle actor takes it: nothing is stopped.
    d = decide([urgent], [actor("a", running=job("f", "batch")), actor("b")])
    assert d == Decision(start=(Assignment("u", "b"),))
    # Not the actor the urgent job may not fit, nor the one that died under it.
    batch_a, batch_b = (
        actor("a", running=job("fa", "batch")),
        actor("b", running=job("fb", "batch")),
    )
    assert decide([urgent], [batch_a, batch_b], lambda w, x: x.name == "a").preempt == ("fa",)
    rerun = job("r", "interactive", avoid="b")
    assert decide([rerun], [batch_a, batch_b]).preempt == ("fa",)


def _need(gib: float) -> list[Need]:
    return [Need("RAM", int(gib * GiB), 0, 0, 0)]


def test_a_job_is_admitted_when_it_fits_some_worker_and_refused_naming_the_roomiest():
    one, three = (
        Placed(name, Workplace(Device("cpu", 4, ram_free=int(gib * GiB))))
        for name, gib in (("actor-0", 1), ("actor-1", 3))
    )
    task = small_job(job_id="j")
    assert refusal_everywhere(task, [one, three], lambda _j, _p: _need(2)) is None
    refused = refusal_everywhere(task, [three, one], lambda _j, _p: _need(5))
    assert refused is not None and refused.code == ErrorCode.LIMIT_EXCEEDED
    assert refused.job_id == "j"
    assert "about 5.0 GiB of RAM" in refused.message and "3.0 GiB free" in refused.message
    assert "actor-1, the roomiest of 2 workers" in refused.message
    # One worker: the single backend's message as it is. None known yet: the actor decides.
    alone = refusal_everywhere(task, [one], lambda _j, _p: _need(5))
    assert alone is not None and "1.0 GiB free" in alone.message and "roomiest" not in alone.message
    assert refusal_everywhere(task, [], lambda _j, _p: _need(5)) is None
    # What a worker holds is part of its estimate: the same job fits where its model is.
    warm = Placed("actor-2", Workplace(Device("cpu", 4, ram_free=GiB), models=("m",)))

    def estimate(_job, place: Workplace):
        return _need(0.5 if "m" in place.models else 5)

    assert refusal_everywhere(task, [one, warm], estimate) is None


def test_several_jobs_run_at_once_and_a_requeued_one_goes_first_in_its_class():
    q = JobQueue()
    first, second, third = (q.put(small_job(job_id=f"j{i}")) for i in range(3))
    assert q.take(0) is first and q.take(0) is second
    assert {e.job_id for e in q.running_entries()} == {"j0", "j1"}
    assert q.running is first  # the earliest queued, for the heartbeat
    assert q.position("j2") == 2  # both running jobs are ahead of it
    q.requeue(first)  # its worker died
    assert q.find("j0") is first and q.position("j0") == 1
    assert q.take(0) is first  # ahead of j2, which came later
    q.done(second)
    assert q.running_entries() == [first]


def test_ray_without_the_extra_is_a_clear_error(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    rc = main(["serve", "--models", str(tmp_path), "--out", str(tmp_path / "out"), "--ray"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "[backend_unavailable]" in err and "dreamwire[cluster]" in err, err
    assert not (tmp_path / "out").exists()  # refused before anything was set up
