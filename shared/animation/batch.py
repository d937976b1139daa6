"""The animatediff render mode: every frame of the range as one batch job (a motion module
sees the frames together), with a depth control per frame from the frames' own depth
(Blender's Z pass, or the flow files' depth). Frames already on disk are kept: the job still
makes the whole batch (the motion module needs its neighbours), and only missing frames are
stored, so a resumed render never changes a frame it already made (the seed is fixed).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..animatediff import MAX_FRAMES, AnimateDiff, FrameControl
from ..imaging.depth import depth_image
from ..job import Job, new_job_id
from ..job_mode import JobMode
from .motion import MotionError
from .sequence import FrameIO, FrameReport, SequenceSettings


@dataclasses.dataclass(frozen=True)
class DepthControl:
    model: str = ""  # the depth ControlNet by library name; "": the model's depth ControlNet
    weight: float = 1.0


def missing(frames: list[int], io: FrameIO) -> list[int]:
    return [f for f in frames if io.load(f) is None]


def batch_job(
    base: Job, frames: list[int], s: SequenceSettings, io: FrameIO, depth: DepthControl | None
) -> Job:
    """The base job (prompt, model, sampler, seed, size) as one animatediff job over `frames`."""
    if len(frames) > MAX_FRAMES:
        raise ValueError(f"animatediff renders at most {MAX_FRAMES} frames at once")
    controls = []
    if depth is not None:
        images = []
        for f in frames:
            z = io.motion(f).depth
            if z is None:
                raise MotionError(f"frame {f} has no depth for the depth control")
            images.append(depth_image(z))
        controls.append(FrameControl(depth.model, images, depth.weight, "depth"))
    settings = AnimateDiff(
        s.motion_module, len(frames), s.context_length, s.context_stride, controls
    )
    job = dataclasses.replace(
        base,
        job_id=new_job_id(),
        mode=JobMode.ANIMATEDIFF,
        tag=f"frames {frames[0]}-{frames[-1]}",
        init_image=None,
        mask=None,
        controls=[],
        animatediff=settings,
    )
    return job.validate()


def store(frames: list[int], images: list[np.ndarray], io: FrameIO) -> list[FrameReport]:
    """The batch's frames saved where none is on disk yet; a report per frame."""
    if len(images) != len(frames):
        raise ValueError(f"{len(images)} frames came back for {len(frames)}")
    reports = []
    for f, image in zip(frames, images, strict=True):
        if io.load(f) is not None:
            reports.append(FrameReport(f, "on disk"))
            continue
        io.save(f, image[..., :3])
        reports.append(FrameReport(f, "generated", 1.0, 1.0))
    return reports
