"""How an img2img or inpaint job lays its picture out, worked out when the job is planned.

A1111's inpainting decides three things before it samples: the size the init image is
resized to (the job size; its own size for "only masked"), the border an outpaint adds, and
for "only masked" the box around the blurred mask that the pass samples (padded, grown to
the generation's aspect). They depend on the job alone, so the plan computes them (and
refuses an empty mask) before any model loads; the runner then makes the pixels by them and
the conditioners lay their images out by the same layout (outpaint.Canvas).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job, Outpaint

from . import masks

Box = tuple[int, int, int, int]  # (x1, y1, x2, y2)


@dataclass(frozen=True, eq=False)
class CanvasPlan:
    original: tuple[int, int]  # (width, height) of the job's init image
    picture: tuple[int, int]  # (width, height) the init image is resized to
    border: Outpaint  # the outpaint growth (all zero when not outpainting)
    # Inpaint only: the repaint mask on the canvas (255 = repaint, the border included),
    # as sent and blurred by the job's mask blur (the sampler's mask, the paste-back alpha).
    # Kept here so the runner does not blur it a second time.
    mask: np.ndarray | None = None
    soft: np.ndarray | None = None
    # "Only masked": the box on the canvas the pass samples (A1111's crop region).
    crop: Box | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the canvas: the picture with its border."""
        b = self.border
        return self.picture[0] + b.left + b.right, self.picture[1] + b.top + b.bottom

    @property
    def region(self) -> tuple[Box, tuple[int, int]] | None:
        """For "only masked": (the crop box, the canvas size), to lay images out on the crop."""
        return None if self.crop is None else (self.crop, self.size)


def _original(job: Job) -> tuple[int, int]:
    h, w = job.init_image.shape[:2]
    return w, h


def img2img(job: Job) -> CanvasPlan:
    """The init image resized to the job size (an img2img job takes no outpaint)."""
    return CanvasPlan(_original(job), (job.width, job.height), job.outpaint)


def inpaint(job: Job, generation: tuple[int, int]) -> CanvasPlan:
    """The inpaint layout for a pass sampling at `generation` (width, height); INVALID_MASK
    when nothing is left to repaint."""
    original = _original(job)
    mask = job.mask if job.mask is not None else np.zeros(original[::-1], np.uint8)
    picture = original
    if not job.inpaint_full_res:
        picture = (job.width, job.height)
        mask = masks.resize(mask, *picture)
    if job.outpaint.any():
        o = job.outpaint
        mask = np.pad(mask, ((o.top, o.bottom), (o.left, o.right)), constant_values=255)
    # A seamless tile's mask softens round its edges as the model's padding wraps.
    soft = masks.blur(mask, job.mask_blur, masks.wrap_axes(job.seamless))
    crop = None
    if job.inpaint_full_res:
        crop = masks.crop_region(soft, job.inpaint_padding, *generation)
    if (job.inpaint_full_res and crop is None) or not soft.any():
        raise DreamwireError(ErrorCode.INVALID_MASK, "the mask is empty: nothing to repaint")
    return CanvasPlan(original, picture, job.outpaint, mask, soft, crop)
