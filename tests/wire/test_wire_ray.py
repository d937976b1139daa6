"""`dreamwire serve --ray`: the ZeroMQ front with jobs on a local Ray cluster of two CPU
actors (PROTOCOL.md, "Workers"). One backend for the module: Ray and the actors' imports
take a while to start. Skipped where Ray (the `cluster` extra) is not installed."""

from __future__ import annotations

import os
import signal

import pytest

pytest.importorskip("ray")

from dreamwire.shared import events as ev  # noqa: E402
from dreamwire.shared.client import Client  # noqa: E402
from tests.support.backend import BackendProcess  # noqa: E402
from tests.support.wire import collect, ended, first_step, small_job  # noqa: E402

# Long enough to still be running when a test acts on it (~20 ms a step at 32 px here).
RUNNING_STEPS = 150


@pytest.fixture(scope="module")
def ray_backend(tiny_models, tmp_path_factory):
    out = tmp_path_factory.mktemp("ray-backend-out")
    # A private Ray session for this backend (no other cluster on the machine is joined).
    env = {"RAY_ADDRESS": "", "RAY_USAGE_STATS_ENABLED": "0"}
    with BackendProcess(
        [tiny_models], out, extra_args=["--ray", "--ray-actors", "2"], env=env, ready_timeout=400
    ) as proc:
        yield proc


@pytest.fixture
def client(ray_backend):
    c = Client(ray_backend.address)
    c.connect_wait(60)
    yield c
    c.close()


def _workers(backend) -> list[ev.WorkerStatus]:
    """The welcome's workers now (a fresh hello)."""
    c = Client(backend.address)
    try:
        return c.connect_wait(60).workers
    finally:
        c.close()


def _job(**kw):
    return small_job(width=32, height=32, **kw)


def _results(events, job_id):
    return [e for e in events if isinstance(e, ev.ResultEvent) and e.job_id == job_id]


def test_two_jobs_run_at_once_on_the_two_actors(ray_backend, client):
    workers = _workers(ray_backend)
    assert len(workers) == 2 and len({w.pid for w in workers}) == 2
    assert all(w.device == "cpu" for w in workers)
    a = client.submit(_job(steps=RUNNING_STEPS, seed=1, model="tiny-sd1"))
    b = client.submit(_job(steps=RUNNING_STEPS, seed=2, model="tiny-sd1"))
    collect(client, lambda es: first_step(a)(es) and first_step(b)(es))
    running = {w.job: w.name for w in _workers(ray_backend)}
    assert {a, b} <= running.keys() and running[a] != running[b], running
    events = collect(client, lambda es: ended(a)(es) and ended(b)(es))
    assert len(_results(events, a)) == 1 and len(_results(events, b)) == 1, events


def test_a_job_goes_to_the_actor_that_holds_its_model(ray_backend, client):
    for model in ("tiny-sd1-diffusers", "tiny-sdxl", "tiny-sd1-diffusers"):
        job_id = client.submit(_job(model=model))
        events = collect(client, ended(job_id))
        assert _results(events, job_id), events
    holders = {
        m: [w.name for w in _workers(ray_backend) if m in w.models]
        for m in ("tiny-sd1-diffusers", "tiny-sdxl")
    }
    # The second model went to the other (less loaded) actor, and the first model's second
    # job back to the actor holding it: neither was loaded twice.
    assert len(holders["tiny-sd1-diffusers"]) == 1 and len(holders["tiny-sdxl"]) == 1, holders
    assert holders["tiny-sd1-diffusers"] != holders["tiny-sdxl"]


def test_a_cancel_reaches_the_actor_running_the_job(ray_backend, client):
    job_id = client.submit(_job(steps=500, seed=3))  # the most a job may ask
    collect(client, first_step(job_id))
    client.cancel(job_id)
    events = collect(client, ended(job_id), timeout=30)
    assert any(isinstance(e, ev.Cancelled) and e.job_id == job_id for e in events), events
    # Stopped on the actor, not only forgotten here: it is idle again well before 500 steps.
    assert all(w.job == "" for w in _workers(ray_backend))


def test_an_actor_killed_mid_job_has_it_run_once_more_on_the_other(ray_backend, client):
    job_id = client.submit(_job(steps=RUNNING_STEPS, seed=4))
    collect(client, first_step(job_id))
    victim = next(w for w in _workers(ray_backend) if w.job == job_id)
    os.kill(victim.pid, signal.SIGKILL)  # a real death: the process is gone
    events = collect(client, ended(job_id), timeout=120)
    assert len(_results(events, job_id)) == 1, events
    assert not any(isinstance(e, ev.ErrorEvent) for e in events), events
    log = ray_backend.log_text()
    assert f"job {job_id}: {victim.name} died running it" in log
    # Stored once, and off the durable queue.
    assert (ray_backend.out_dir / "jobs" / job_id).is_dir()
    assert not (ray_backend.out_dir / "queue" / job_id).exists()
