"""One real backend fed bad jobs in the newer fields (regions, upscale, Hires.fix resize and
upscaler models, control types, "live", AND prompts) between good tiny jobs: each bad job gets
an error event with its stable code, each good job completes and is on disk, and the backend
keeps serving.

The bad jobs go out on a raw socket: the Client validates before sending, a foreign or
hostile peer does not.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np
import zmq

from dreamwire.shared import protocol as P
from dreamwire.shared.client import Client
from dreamwire.shared.errors import ErrorCode
from dreamwire.shared.job import ControlUnit, HiresFix, Job, Region, Upscale
from tests.support.wire import small_job, submit_frames

_IMG = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
_MASK = np.zeros((64, 64), np.uint8)
_MASK[:, :32] = 255


def _frames(job: Job, **patch) -> list[bytes]:
    return submit_frames(job, patch)


def _region_job(*regions: Region, **kw) -> Job:
    return small_job(prompt=kw.pop("prompt", "a green field"), regions=list(regions), **kw)


def _upscale_job(**kw) -> Job:
    return small_job(init_image=_IMG, upscale=Upscale(**{"refine": False, **kw}))


def _bad_jobs() -> list[tuple[str, list[bytes], ErrorCode, str]]:
    """(name, frames, code, job id). Caught by Job.validate on arrival unless noted."""
    cases = {
        "AND in the background prompt": (
            _frames(_region_job(Region("a barn", _MASK), prompt="field AND sky")),
            ErrorCode.INVALID_REGION,
        ),
        "AND in a region prompt": (
            _frames(_region_job(Region("a barn AND a cow", _MASK))),
            ErrorCode.INVALID_REGION,
        ),
        "empty region prompt": (
            _frames(_region_job(Region("   ", _MASK))),
            ErrorCode.INVALID_REGION,
        ),
        "region weight 10**400": (
            _frames(_region_job(Region("a barn", _MASK)), **{"regions.0.weight": 10**400}),
            ErrorCode.MALFORMED_MESSAGE,  # the decoder refuses integers of over 20 digits
        ),
        "region weight as text": (
            _frames(_region_job(Region("a barn", _MASK)), **{"regions.0.weight": "heavy"}),
            ErrorCode.INVALID_REGION,
        ),
        "float region mask": (
            _frames(_region_job(Region("a barn", _MASK.astype(np.float32)))),
            ErrorCode.INVALID_REGION,
        ),
        "RGB region mask": (
            _frames(_region_job(Region("a barn", _IMG))),
            ErrorCode.INVALID_REGION,
        ),
        "region mask of another shape": (
            _frames(_region_job(Region("a barn", np.zeros((64, 256), np.uint8)))),
            ErrorCode.INVALID_REGION,
        ),
        "12 regions": (
            _frames(_region_job(*[Region(f"thing {i}", _MASK, 0.1) for i in range(12)])),
            ErrorCode.INVALID_REGION,
        ),
        "regions not a list": (
            _frames(_region_job(Region("a barn", _MASK)), regions=7),
            ErrorCode.INVALID_JOB,
        ),
        "regions with an upscale": (
            _frames(small_job(init_image=_IMG, upscale=Upscale(), regions=[Region("barn", _MASK)])),
            ErrorCode.INVALID_REGION,
        ),
        "upscale scale infinite (JSON Infinity)": (
            _frames(_upscale_job(), **{"upscale.scale": math.inf}),
            ErrorCode.MALFORMED_MESSAGE,  # the decoder refuses NaN/Infinity tokens
        ),
        "upscale scale 10**400": (
            _frames(_upscale_job(), **{"upscale.scale": 10**400}),
            ErrorCode.MALFORMED_MESSAGE,
        ),
        "upscale scale 0.5": (_frames(_upscale_job(scale=0.5)), ErrorCode.INVALID_JOB),
        "upscale tile -8": (_frames(_upscale_job(tile=-8)), ErrorCode.INVALID_SIZE),
        "upscale tile 10**9": (_frames(_upscale_job(tile=10**9)), ErrorCode.INVALID_SIZE),
        "upscale overlap >= tile": (
            _frames(_upscale_job(tile=64, overlap=64)),
            ErrorCode.INVALID_JOB,
        ),
        "upscaler name a number": (
            _frames(_upscale_job(), **{"upscale.upscaler": 4}),
            ErrorCode.INVALID_JOB,
        ),
        "upscale without an image": (
            _frames(small_job(upscale=Upscale())),
            ErrorCode.INVALID_IMAGE,
        ),
        "unknown upscale field": (
            _frames(_upscale_job(), **{"upscale.sharpen": 1}),
            ErrorCode.INVALID_JOB,
        ),
        "Hires.fix width -8": (
            _frames(small_job(hires=HiresFix(width=-8))),
            ErrorCode.INVALID_SIZE,
        ),
        "Hires.fix height 10**6": (
            _frames(small_job(hires=HiresFix(height=10**6))),
            ErrorCode.INVALID_SIZE,
        ),
        "Hires.fix width as text": (
            _frames(small_job(hires=HiresFix()), **{"hires.width": "wide"}),
            ErrorCode.INVALID_SIZE,
        ),
        "Hires.fix latent mode A1111 has but we do not": (
            _frames(small_job(hires=HiresFix(upscaler="Latent (bicubic)"))),
            ErrorCode.INVALID_JOB,
        ),
        "unknown control type": (
            _frames(small_job(init_image=_IMG, controls=[ControlUnit("ip-adapter-xl", _IMG)])),
            ErrorCode.INVALID_JOB,
        ),
        "control without image or init image": (
            _frames(small_job(controls=[ControlUnit("color", None)])),
            ErrorCode.INVALID_IMAGE,
        ),
        "ip-adapter image of floats 3-D": (
            _frames(
                small_job(controls=[ControlUnit("ip-adapter", np.zeros((64, 64, 3), np.float32))])
            ),
            ErrorCode.INVALID_IMAGE,
        ),
        "priority LIVE": (_frames(small_job(priority="LIVE")), ErrorCode.INVALID_JOB),
        "priority a list": (_frames(small_job(), priority=["live"]), ErrorCode.INVALID_JOB),
        # Past Job.validate: only the backend knows its library.
        "unknown Hires.fix upscaler model": (
            _frames(small_job(hires=HiresFix(upscaler="4x-NoSuchModel", scale=1.5))),
            ErrorCode.MODEL_NOT_FOUND,
        ),
        "unknown upscale model": (
            _frames(_upscale_job(upscaler="4x-NoSuchModel")),
            ErrorCode.MODEL_NOT_FOUND,
        ),
    }
    return [(n, f, code, json.loads(f[1])["job_id"]) for n, (f, code) in cases.items()]


def _good_jobs() -> list[Job]:
    return [
        small_job(),
        _region_job(Region("a red barn", _MASK, 0.8), Region("a blue sky", 255 - _MASK)),
        _upscale_job(scale=1.5, upscaler="Nearest"),
        small_job(init_image=_IMG, strength=0.5, priority="interactive"),
    ]


def _ends(msgs: list[P.Message]) -> dict[str, P.Message]:
    return {m.job_id: m for m in msgs if m.type in (P.RESULT, P.ERROR, P.CANCELLED)}


def test_bad_new_fields_get_codes_good_jobs_complete_backend_stays_up(backend):
    bad = _bad_jobs()
    good = _good_jobs()
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(backend.address)
    msgs: list[P.Message] = []
    try:
        # Interleaved: a good job after every few bad ones, so bad ones land on a busy queue.
        sends: list[list[bytes]] = []
        goods = iter(good)
        for i, (_, frames, _, _) in enumerate(bad):
            if i % 8 == 0 and (job := next(goods, None)) is not None:
                sends.append(_frames(job))
            sends.append(frames)
        sends += [_frames(job) for job in goods]
        for frames in sends:
            sock.send_multipart(frames)
        want = {job_id for *_, job_id in bad} | {job.job_id for job in good}
        deadline = time.monotonic() + 180
        while not want <= set(_ends(msgs)):
            assert time.monotonic() < deadline, sorted(want - set(_ends(msgs)))
            if sock.poll(1000):
                msgs.append(P.decode(sock.recv_multipart(), P.Limits()))
    finally:
        sock.close(0)
    ends = _ends(msgs)
    for name, _, code, job_id in bad:
        end = ends[job_id]
        assert end.type == P.ERROR, (name, end.type)
        assert end.body["code"] == code.value, (name, end.body)
        assert end.body["message"], name
    for job in good:
        end = ends[job.job_id]
        assert end.type == P.RESULT, (job, end.body)
        # Made and kept: the result is on disk in the output folder.
        assert list(backend.out_dir.rglob(f"{job.job_id}/*.png")), job.job_id
        assert list(backend.out_dir.rglob(f"{job.job_id}/result.json")), job.job_id
    assert backend.alive
    with Client(backend.address) as client:
        client.connect_wait(30)
        result = client.run(small_job(priority="live"), timeout=120)
        assert result.images
