"""A batch of animation frames from an AnimateDiff motion module: the settings of an
`animatediff` job (JobMode.ANIMATEDIFF). Frames out: the result holds `frames` images, in
order (GeneratedImage.index is the frame's place in the batch).

The backend runs diffusers' AnimateDiffPipeline (AnimateDiffControlNetPipeline when
`controls` are given) on the job's SD checkpoint with the motion module added, and FreeNoise
(`enable_free_noise(context_length, context_stride)`) when there are more frames than one
context window: the motion module sees overlapping windows of `context_length` frames, each
`context_stride` after the one before, and their results are blended. Per-frame controls
carry one image per frame (Blender's depth or pose capture of each frame), frames in,
frames out.

Stdlib + numpy only: this module ships inside the Blender and Krita plugins.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import DreamwireError, ErrorCode
from .job_fields import FieldCheck

MAX_FRAMES = 256
CONTEXT_LENGTH = 16  # the frames AnimateDiff's SD1.5 modules were trained on


@dataclass
class FrameControl:
    """One ControlNet over every frame: `images[i]` conditions frame i (ready-made control
    images, H x W x 3 uint8; no preprocessor runs)."""

    model: str  # a ControlNet by library name; "": the first one of `type` for the model
    images: list[np.ndarray] = field(default_factory=list)
    weight: float = 1.0
    type: str = ""  # the control type (Job's CONTROL_TYPES), for a control naming no model


@dataclass
class AnimateDiff:
    motion_module: str  # by name: the file's stem or a MotionAdapter folder's name
    frames: int = 16
    context_length: int = CONTEXT_LENGTH
    context_stride: int = 4
    controls: list[FrameControl] = field(default_factory=list)


def check_animatediff(a: object, job_id: str, size: tuple[int, int]) -> None:
    """Every field's type and range, and each control's image count and size (`size` is the
    job's width, height); DreamwireError naming the field."""
    f = FieldCheck(job_id)
    f.kind("animatediff", a, AnimateDiff)
    fa = f.nested("animatediff.")
    fa.text("motion_module", a.motion_module)
    if not a.motion_module.strip():
        raise fa.fail(
            "motion_module", "a motion module's name", a.motion_module, ErrorCode.INVALID_JOB
        )
    fa.whole("frames", a.frames, 1, MAX_FRAMES)
    fa.whole("context_length", a.context_length, 2, MAX_FRAMES)
    fa.whole("context_stride", a.context_stride, 1, a.context_length)
    fa.listed("controls", a.controls)
    w, h = size
    for i, c in enumerate(a.controls):
        fc = f.nested(f"animatediff.controls[{i}].")
        f.kind(f"animatediff.controls[{i}]", c, FrameControl)
        fc.text("model", c.model)
        fc.text("type", c.type)
        if not (c.model or c.type):
            raise fc.fail(
                "model", "a ControlNet's name (or give a type)", c.model, ErrorCode.INVALID_JOB
            )
        fc.number("weight", c.weight, 0.0, 2.0)
        fc.listed("images", c.images)
        if len(c.images) != a.frames:
            raise DreamwireError(
                ErrorCode.INVALID_IMAGE,
                f"animatediff.controls[{i}] has {len(c.images)} images for {a.frames} frames "
                "(one per frame)",
                job_id,
            )
        for j, img in enumerate(c.images):
            ok = (
                isinstance(img, np.ndarray)
                and img.dtype == np.uint8
                and img.ndim == 3
                and img.shape[2] in (3, 4)
            )
            if not ok or img.shape[:2] != (h, w):
                got = getattr(img, "shape", type(img).__name__)
                raise DreamwireError(
                    ErrorCode.INVALID_IMAGE,
                    f"animatediff.controls[{i}].images[{j}] must be {h} x {w} x 3 uint8, got {got}",
                    job_id,
                )
