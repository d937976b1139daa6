"""Helpers for tests that drive a backend through the client: small jobs, event waits."""

from __future__ import annotations

import time

from dreamwire.shared import events as ev
from dreamwire.shared.client import Client
from dreamwire.shared.job import Job

# Long enough to be caught mid-run, short enough to stay cheap on 2 cores.
LONG_STEPS = 400


def small_job(**kw) -> Job:
    kw = {
        "prompt": "a red fox",
        "width": 64,
        "height": 64,
        "steps": 2,
        "sampler": "Euler",
        "seed": 7,
        **kw,
    }
    return Job(**kw)


def collect(client: Client, until, timeout: float = 120.0) -> list:
    """Events until `until(events)` is true."""
    seen: list = []
    deadline = time.monotonic() + timeout
    while not until(seen):
        assert time.monotonic() < deadline, f"timed out; saw {seen!r}"
        seen += client.wait(1.0)
    return seen


def ended(job_id: str):
    return lambda es: any(
        isinstance(e, ev.ResultEvent | ev.ErrorEvent | ev.Cancelled) and e.job_id == job_id
        for e in es
    )


def first_step(job_id: str):
    return lambda es: any(
        isinstance(e, ev.ProgressEvent) and e.job_id == job_id and e.progress.step >= 1 for e in es
    )
