"""Frames that need nothing from each other as the pieces of one fan-out
(shared/fanout.py), so a backend with several workers makes several at once, and a
single-process one makes them one after another as before: the fixed_seed mode's frames
(each made alone from the render's seed), and the keyframes mode's in-betweens of two
finished keyframes (sequence.RequestGroup: each blended from both keys, needing only its
own inpaint; group_fanout).

`previous` and `warp` make a frame from the one before it, and `keyframes` warps each
keyframe from the keyframe before it, so those go request by request (sequence.run).

The resume rule is sequence.run's: a frame `io.load` finds is on disk and is not sent.
Each frame is saved as it comes back, in the range's order. Frames are `batch` jobs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import DreamwireError, ErrorCode
from ..fanout import FanOut
from ..job import Job
from ..result import JobResult
from .sequence import FrameIO, FrameReport, Request, RequestGroup


def frames_fanout(
    frames: list[int], io: FrameIO, make: Callable[[Request], Job], limit: int
) -> FanOut[int]:
    """Every frame of `frames` not on disk as a txt2img piece; `make` turns a frame's
    Request into its job (the host's controls, seed and size), `limit` is
    fanout.worker_limit of the backend's welcome."""

    return FanOut(
        frames,
        lambda f: _batch(make(Request(f))),
        limit,
        on_result=lambda f, result: io.save(f, _rgb(f, result)),
        skip=lambda f: io.load(f) is not None,
    )


def group_fanout(group: RequestGroup, make: Callable[[Request], Job], limit: int) -> FanOut[int]:
    """A RequestGroup's requests as the pieces of one fan-out, keyed by frame; each picture
    goes to the group's `deliver` as the FanOut hands it over (in frame order). When the
    FanOut is done, resume the render's generator with None."""
    by_frame = {r.frame: r for r in group.requests}
    return FanOut(
        list(by_frame),
        lambda f: _batch(make(by_frame[f])),
        limit,
        on_result=lambda f, result: group.deliver(f, _rgb(f, result)),
    )


def _batch(job: Job) -> Job:
    # Many frames of one render: on a Ray cluster a live or interactive job stops one
    # (it runs again later) rather than wait for a worker behind them (PROTOCOL.md,
    # "Workers"); on one backend they queue behind the artist's single pictures.
    job.priority = "batch"
    return job


def reports(fan: FanOut[int]) -> list[FrameReport]:
    """What became of each frame, as sequence.run reports it (frames never reached left out)."""
    made, kept = set(fan.delivered), set(fan.skipped)
    return [
        FrameReport(f, "on disk") if f in kept else FrameReport(f, "generated", 1.0, 1.0)
        for f in fan.keys
        if f in made or f in kept
    ]


def _rgb(frame: int, result: JobResult) -> np.ndarray:
    if not result.images:
        raise DreamwireError(
            ErrorCode.MALFORMED_MESSAGE,
            f"the backend returned no image for frame {frame}",
            result.job_id,
        )
    image = result.images[0].image
    return image[..., :3] if image.shape[2] >= 3 else np.repeat(image, 3, axis=2)
