"""Crashes and freezes: a backend SIGKILLed or SIGSTOPped mid-job, with a client watching."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from dreamwire.shared import events as ev
from dreamwire.shared.client import Client
from dreamwire.shared.errors import ErrorCode
from tests.support.backend import BackendProcess
from tests.support.wire import LONG_STEPS, collect, ended, first_step, small_job


def _state(state: str):
    return lambda es: any(isinstance(e, ev.ConnectionChanged) and e.state == state for e in es)


@pytest.fixture(scope="module")
def backend(tiny_models, tmp_path_factory):
    """One backend for this module; the tests freeze it, kill it and restart it."""
    with BackendProcess([tiny_models], tmp_path_factory.mktemp("recovery-out")) as proc:
        yield proc


def test_frozen_backend_is_reported_lost_and_the_result_arrives_after_it_thaws(backend):
    c = Client(backend.address, heartbeat_timeout=2.0)
    try:
        c.connect_wait(60)
        job_id = c.submit(small_job(steps=60, seed=21))
        collect(c, first_step(job_id))
        backend.pause()
        try:
            collect(c, _state(ev.LOST), timeout=30)
        finally:
            backend.resume()
        events = collect(c, ended(job_id), timeout=120)
        assert _state(ev.CONNECTED)(events)
        results = [e for e in events if isinstance(e, ev.ResultEvent)]
        assert len(results) == 1 and results[0].result.images[0].seed == 21
        assert (backend.out_dir / "jobs" / job_id / "result.json").is_file()
    finally:
        c.close()


def test_backend_killed_mid_job_restarted_client_reconnects_and_fetches(backend):
    c = Client(backend.address, heartbeat_timeout=3.0)
    try:
        c.connect_wait(60)
        first_server = c.welcome.server_id
        finished = c.run(small_job(seed=11), timeout=120)
        running = c.submit(small_job(steps=LONG_STEPS))
        collect(c, first_step(running))

        backend.kill()
        collect(c, _state(ev.LOST), timeout=30)
        assert c.state == ev.LOST
        # A restarted backend runs the jobs its queue folder holds (test_wire_durable.py);
        # one whose entry is gone is unknown to it, and the client says so.
        shutil.rmtree(backend.out_dir / "queue" / running)

        backend.start()  # same port, same output folder
        events = collect(c, ended(running), timeout=120)
        assert c.state == ev.CONNECTED
        welcome = next(e for e in events if isinstance(e, ev.Welcome))
        assert welcome.server_id != first_server
        (lost,) = [e for e in events if isinstance(e, ev.ErrorEvent) and e.job_id == running]
        assert lost.error.code == ErrorCode.BACKEND_LOST

        # What finished before the crash is still there, by id, from the output folder.
        c.fetch_result(finished.job_id)
        got = [e for e in collect(c, ended(finished.job_id)) if isinstance(e, ev.ResultEvent)]
        np.testing.assert_array_equal(got[0].result.images[0].image, finished.images[0].image)
        # And the restarted backend works.
        assert c.run(small_job(), timeout=120).images
    finally:
        c.close()
