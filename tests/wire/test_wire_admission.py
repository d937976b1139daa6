"""Admission by memory through a real backend process on the CPU: a job inside the size
limits that cannot fit the machine's RAM (8192 x 8192, batch 16: the issue's 19.9 GB and
rising) is refused at once with `limit_exceeded` naming the estimate and what is free, is
never queued or stored, and a normal job still runs."""

from __future__ import annotations

import re
import time

from dreamwire.shared import events as ev
from dreamwire.shared.client import Client
from dreamwire.shared.errors import ErrorCode
from tests.support.wire import collect, ended, small_job


def test_a_job_too_large_for_memory_is_refused_and_a_normal_one_runs(backend):
    with Client(backend.address) as client:
        client.connect_wait(30)
        huge = small_job(width=8192, height=8192, batch=16)
        started = time.monotonic()
        job_id = client.submit(huge)
        events = collect(client, ended(job_id), timeout=60)
        refused = [e for e in events if isinstance(e, ev.ErrorEvent) and e.job_id == job_id]
        assert refused, events
        err = refused[0].error
        assert err.code == ErrorCode.LIMIT_EXCEEDED, err
        # The estimate and what is free, both in GiB, the estimate the larger.
        sizes = [float(x) for x in re.findall(r"([\d.]+) GiB", err.message)]
        assert "RAM" in err.message and "free" in err.message, err.message
        assert sizes[0] > sizes[-1] > 0, err.message
        # Refused on arrival, not after the worker began it.
        assert time.monotonic() - started < 10
        assert not any(isinstance(e, ev.Accepted) and e.job_id == job_id for e in events)
        assert not (backend.out_dir / "queue" / job_id).exists()
        result = client.run(small_job(), timeout=120)
        assert result.images and result.images[0].image.shape == (64, 64, 3)
    assert backend.alive
