"""An animatediff job through a real backend process over ZeroMQ: the welcome lists the
motion modules in the model roots' AnimateDiff folders, the queue runs the job and every
frame comes back (equal to the engine's frames for the same job), and a missing motion
module is model_not_found while the backend keeps serving."""

from __future__ import annotations

import numpy as np

from dreamwire.shared.animatediff import AnimateDiff
from dreamwire.shared.client import Client
from dreamwire.shared.errors import ErrorCode
from dreamwire.shared.events import ErrorEvent, ResultEvent
from dreamwire.shared.job import Job
from dreamwire.shared.job_mode import JobMode
from tests.support.wire import collect, ended


def ad_job(module: str) -> Job:
    return Job(
        mode=JobMode.ANIMATEDIFF,
        prompt="a fox running",
        model="tiny-sd1",
        sampler="Euler",
        steps=1,
        cfg=5.0,
        seed=3,
        width=32,
        height=32,
        animatediff=AnimateDiff(module, 3, context_length=2, context_stride=1),
    )


def test_frames_over_the_wire(backend):
    client = Client(backend.address)
    try:
        client.connect_wait(60)
        assert "tiny_mm_sd1" in client.welcome.motion_modules
        missing = client.submit(ad_job("mm_sd_v15_v2"))
        good = client.submit(ad_job("tiny_mm_sd1_v2"))
        events = collect(client, lambda es: ended(missing)(es) and ended(good)(es), 240)
    finally:
        client.close()
    (err,) = [e for e in events if isinstance(e, ErrorEvent) and e.job_id == missing]
    assert err.error.code is ErrorCode.MODEL_NOT_FOUND
    (res,) = [e for e in events if isinstance(e, ResultEvent) and e.job_id == good]
    frames = [g.image for g in res.result.images]
    assert len(frames) == 3 and frames[0].shape == (32, 32, 3)
    assert not np.array_equal(frames[0], frames[2])
