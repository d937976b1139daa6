"""The animatediff job on the wire: frames' control images travel as arrays and come back
as the same job; settings that cannot run are refused by field before sending."""

from __future__ import annotations

import numpy as np
import pytest

from dreamwire.shared.animatediff import AnimateDiff, FrameControl
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job, LoraRef
from dreamwire.shared.job_mode import JobMode


def job(**kw) -> Job:
    frames = [np.full((32, 32, 3), i, np.uint8) for i in range(4)]
    settings = AnimateDiff("mm_sd_v15_v2", 4, 16, 4, [FrameControl("depth", frames, 0.7)])
    return Job(mode=JobMode.ANIMATEDIFF, width=32, height=32, animatediff=settings, **kw)


def test_round_trip_keeps_every_frame():
    sent = job(prompt="a fox").validate()
    body, arrays = sent.to_wire()
    assert body["mode"] == "animatediff" and len(arrays) == 4
    back = Job.from_wire(body, arrays).validate()
    assert back.animatediff.motion_module == "mm_sd_v15_v2"
    got = back.animatediff.controls[0]
    assert got.weight == 0.7 and [int(a[0, 0, 0]) for a in got.images] == [0, 1, 2, 3]
    # Any other job's body has no animatediff key (an older backend still reads it).
    assert "animatediff" not in Job(prompt="x").validate().to_wire()[0]


@pytest.mark.parametrize(
    ("change", "code", "words"),
    [
        (lambda j: setattr(j.animatediff, "frames", 0), ErrorCode.INVALID_JOB, "frames"),
        (lambda j: setattr(j.animatediff, "context_stride", 17), ErrorCode.INVALID_JOB, "stride"),
        (lambda j: setattr(j.animatediff, "motion_module", " "), ErrorCode.INVALID_JOB, "module"),
        (lambda j: j.animatediff.controls[0].images.pop(), ErrorCode.INVALID_IMAGE, "one per"),
        (
            lambda j: j.animatediff.controls[0].images.__setitem__(
                0, np.zeros((8, 8, 3), np.uint8)
            ),
            ErrorCode.INVALID_IMAGE,
            "32 x 32",
        ),
        (lambda j: setattr(j, "attention_maps", True), ErrorCode.INVALID_JOB, "attention maps"),
        (lambda j: setattr(j.animatediff.controls[0], "model", ""), ErrorCode.INVALID_JOB, "type"),
        (lambda j: setattr(j, "animatediff", None), ErrorCode.INVALID_JOB, "needs its"),
        (
            lambda j: setattr(j, "init_image", np.zeros((32, 32, 3), np.uint8)),
            ErrorCode.INVALID_JOB,
            "init image",
        ),
    ],
)
def test_refusals_name_the_field(change, code, words):
    j = job()
    change(j)
    with pytest.raises(DreamwireError) as err:
        j.validate()
    assert err.value.code is code and words in str(err.value)


def test_settings_without_the_mode_are_refused():
    j = job()
    j.mode = JobMode.TXT2IMG
    with pytest.raises(DreamwireError) as err:
        j.validate()
    assert err.value.code is ErrorCode.INVALID_JOB and "send mode animatediff" in str(err.value)


def test_batch_job_takes_each_frames_depth(tmp_path):
    from dreamwire.shared.animation import batch
    from dreamwire.shared.animation.folder import FolderFrames
    from dreamwire.shared.animation.motion import FrameMotion, flow_path, save_motion
    from dreamwire.shared.animation.sequence import settings

    flows = tmp_path / "flows"
    flows.mkdir()
    for t in (1, 2, 3):
        z = np.full((16, 16), 10.0, np.float32)
        z[:, t * 4 : t * 4 + 4] = 2.0  # a near bar moving right
        flow = np.zeros((16, 16, 2), np.float32)
        save_motion(flow_path(flows, t), FrameMotion(flow, flow, z, None))
    io = FolderFrames(flows, tmp_path / "out")
    s = settings("animatediff", 0.6, 0.15, 2, 8, (), "mm", 2, 1)
    base = Job(prompt="x", width=16, height=16, seed=5)
    j = batch.batch_job(base, [1, 2, 3], s, io, batch.DepthControl("depth_net", 0.5))
    assert j.mode is JobMode.ANIMATEDIFF and j.animatediff.frames == 3
    assert (j.animatediff.context_length, j.animatediff.context_stride) == (2, 1)
    (c,) = j.animatediff.controls
    assert c.model == "depth_net" and c.weight == 0.5
    # Each frame's own depth: the bright (near) bar is where that frame has it.
    for t, img in zip((1, 2, 3), c.images, strict=True):
        assert img[8, t * 4 + 1, 0] > img[8, 0, 0]
    io.save(2, np.zeros((16, 16, 3), np.uint8))
    reports = batch.store([1, 2, 3], [np.full((16, 16, 3), 9, np.uint8)] * 3, io)
    assert [r.source for r in reports] == ["generated", "on disk", "generated"]
    assert int(io.load(2).max()) == 0  # the frame on disk is kept


def test_loras_are_taken():
    # The job's LoRAs run in animatediff jobs as in still images (the engine patches them in).
    j = job()
    j.loras = [LoraRef("x", 0.5)]
    assert j.validate().loras[0].weight == 0.5
