"""Helpers for tests that drive a backend through the client: small jobs, event waits."""

from __future__ import annotations

import json
import time
from typing import Any

from dreamwire.shared import events as ev
from dreamwire.shared import protocol as P
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


def submit_frames(job: Job, patch: dict[str, Any] | None = None) -> list[bytes]:
    """A submit for `job` as a raw peer sends it, unvalidated; `patch` overrides body fields
    by dotted path ("upscale.scale", "regions.0.weight") with any JSON, NaN included."""
    body, arrays = job.to_wire()
    for path, value in (patch or {}).items():
        *head, last = path.split(".")
        node = body
        for key in head:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[int(last) if isinstance(node, list) else last] = value
    frames = P.encode(P.Message(P.SUBMIT, {}, arrays, job_id=job.job_id))
    return [bytes(memoryview(f)) for f in (frames[0], frames[1])] + [
        json.dumps(body).encode(),
        *(bytes(memoryview(f)) for f in frames[3:]),
    ]


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
