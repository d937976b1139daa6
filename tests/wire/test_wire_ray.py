"""`dreamwire serve --ray ADDRESS`: the ZeroMQ front attached to a Ray cluster of two CPU
actors on this machine (PROTOCOL.md, "Workers"). One cluster (`ray start --head`) and one
front for the module: Ray and the actors' imports take minutes to start here. Skipped where
Ray (the `cluster` extra) is not installed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")

from dreamwire.shared import events as ev  # noqa: E402
from dreamwire.shared.client import Client  # noqa: E402
from tests.support.backend import BackendProcess  # noqa: E402
from tests.support.wire import collect, ended, first_step, small_job  # noqa: E402

# Long enough to still be running when a test acts on it (~20 ms a step at 32 px here).
RUNNING_STEPS = 150
RAY_START_TIMEOUT_S = 400
# A private loopback cluster: Ray's token auth (on once ~/.ray/auth_token exists) is off for
# both the head and the front, whatever an earlier local cluster left in the home folder.
# No drain on SIGTERM: the head's default waits up to 30 s for a node that nothing uses,
# and the teardown's SIGTERM to the group has already taken its GCS (measured: 34 s -> 4 s).
RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
    "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A Ray head of 2 CPUs, in a process group of its own: the teardown ends exactly the
    processes it started."""
    address = f"127.0.0.1:{_free_port()}"
    ray = Path(sys.executable).with_name("ray")
    log = tmp_path_factory.mktemp("ray-head") / "head.log"
    env = {**os.environ, **RAY_ENV}
    env.pop("RAY_ADDRESS", None)
    args = [str(ray), "start", "--head", "--block", "--num-cpus", "2", "--num-gpus", "0"]
    args += ["--port", address.split(":")[1], "--include-dashboard", "false"]
    with log.open("w") as out:
        head = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        deadline = time.monotonic() + RAY_START_TIMEOUT_S
        while "Ray runtime started" not in log.read_text(errors="replace"):
            assert head.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(1)
        yield address
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(head.pid, sig)
            except ProcessLookupError:
                break
            try:
                head.wait(30)
            except subprocess.TimeoutExpired:
                continue
        # What `ray stop` would remove: a later plain ray.init() must not look for this head.
        current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
        if current.is_file() and current.read_text().strip().endswith(address.split(":")[1]):
            current.unlink()


@pytest.fixture(scope="module")
def ray_backend(tiny_models, tmp_path_factory, cluster):
    out = tmp_path_factory.mktemp("ray-backend-out")
    with BackendProcess(
        [tiny_models],
        out,
        extra_args=["--ray", cluster, "--ray-actors", "2"],
        env=RAY_ENV,
        ready_timeout=RAY_START_TIMEOUT_S,
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
    # Ray restarts the actor; the front takes it back (a new process, no model loaded).
    back = _wait_for(lambda: _back(ray_backend, victim), 300)
    assert back.pid != victim.pid and back.device == "cpu", back


def _back(backend, victim: ev.WorkerStatus) -> ev.WorkerStatus | None:
    w = next(w for w in _workers(backend) if w.name == victim.name)
    return w if w.device != "lost" and w.pid != victim.pid else None


def _wait_for(probe, timeout: float):
    deadline = time.monotonic() + timeout
    while (got := probe()) is None:
        assert time.monotonic() < deadline, "timed out"
        time.sleep(1)
    return got


def _all_ended(job_ids):
    return lambda es: all(ended(j)(es) for j in job_ids)


def test_an_interactive_job_stops_a_batch_job_instead_of_waiting_behind_it(ray_backend, client):
    frames = [
        client.submit(_job(steps=500, seed=30 + i, priority="batch", model="tiny-sd1"))
        for i in range(2)
    ]
    events = collect(client, lambda es: all(first_step(f)(es) for f in frames))
    # Both actors busy with batch frames when the interactive job comes.
    assert set(frames) <= {w.job for w in _workers(ray_backend)}
    urgent = client.submit(_job(seed=40, priority="interactive", model="tiny-sd1"))
    events += collect(client, ended(urgent), timeout=60)
    # It ran at once on a stopped frame's actor: neither 500-step frame had ended by then.
    assert _results(events, urgent), events
    assert not any(_results(events, f) for f in frames), events
    events += collect(client, _all_ended(frames), timeout=300)
    # The stopped frame went back to the queue and ran again from the start: one result
    # each, no cancel, nothing lost.
    assert all(len(_results(events, f)) == 1 for f in frames), events
    assert not any(isinstance(e, (ev.Cancelled, ev.ErrorEvent)) for e in events), events
    log = ray_backend.log_text()
    stopped = [f for f in frames if f"job {f}: stopped to make room" in log]
    assert len(stopped) == 1, log[-3000:]
    assert f"job {stopped[0]}: queued again after making room" in log


def test_the_front_killed_and_restarted_reattaches_and_runs_what_it_accepted(ray_backend, cluster):
    # Last in the module: it replaces the module's front process.
    c = Client(ray_backend.address, heartbeat_timeout=1.0)
    try:
        c.connect_wait(60)
        running = c.submit(_job(steps=RUNNING_STEPS, seed=50))
        queued = [c.submit(_job(seed=51 + i, priority="batch")) for i in range(3)]
        events = collect(c, first_step(running))
        old = {w.pid for w in _workers(ray_backend)}
        ray_backend.kill()  # SIGKILL: no clean stop, the queue folder is all that is left
        accepted = {running, *queued}
        stored = {p.name for p in (ray_backend.out_dir / "jobs").iterdir()}
        assert accepted - stored <= {p.name for p in (ray_backend.out_dir / "queue").iterdir()}
        before = len(ray_backend.log_text())
        ray_backend.start()  # same output folder, same cluster address
        left = {j for j in accepted if not ended(j)(events)}
        events += collect(c, _all_ended(left), timeout=RAY_START_TIMEOUT_S)
        for job_id in accepted:
            assert len(_results(events, job_id)) <= 1, events
            assert (ray_backend.out_dir / "jobs" / job_id / "result.json").is_file()
        assert not any(isinstance(e, ev.ErrorEvent) for e in events), events
        assert list((ray_backend.out_dir / "queue").iterdir()) == []
        log = ray_backend.log_text()[before:]
        assert f"ray: attached to the cluster at {cluster}" in log, log[-3000:]
        # New actors on the same cluster; the dead front's died with it.
        new = {w.pid for w in _workers(ray_backend)}
        assert len(new) == 2 and not new & old
        for pid in old:
            assert _gone(pid), pid
    finally:
        c.close()


def _gone(pid: int, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.5)
    return False
