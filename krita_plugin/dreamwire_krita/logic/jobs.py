"""Build the one typed Job from the docker's parameters and the pixels a plan read."""

from __future__ import annotations

import numpy as np

from dreamwire.shared.families import DEFAULT, FamilyInfo, ModelFamily
from dreamwire.shared.family_support import described
from dreamwire.shared.job import ControlUnit, Job, Outpaint
from dreamwire.shared.job_mode import JobMode
from dreamwire.shared.native_size import two_pass
from dreamwire.shared.panel_job import panel_job

from .params import Params
from .pixels import flatten_rgb
from .regions import InpaintInputs, Plan, PlanError

PREVIEW_EVERY = 2


# A job builder's `family`: the model's, as the backend's welcome describes it
# (shared.family_support.model_info(...): its features decide which panel settings travel),
# or a bare family / key of the shared table.
Family = str | ModelFamily | FamilyInfo


def _base(
    p: Params, plan: Plan, controls: list[ControlUnit], mode: JobMode, family: Family, **fields
) -> Job:
    info = described(family)
    size = {"width": plan.region.w, "height": plan.region.h}
    return panel_job(
        p.for_job(),
        info.family,
        info.supports,
        mode=mode,
        **{**size, **fields},
        batch=int(p.batch),
        controls=list(controls),
        preview_every=PREVIEW_EVERY,
        tag=f"krita:{plan.action}",
        attention_maps=bool(p.attention_maps),
    )


def generate_job(
    p: Params,
    plan: Plan,
    controls: list[ControlUnit] = (),
    family: Family = DEFAULT.key,
    upscalers: list[str] = (),
) -> Job:
    """txt2img over the plan's region; a region too large for the model `family` to
    compose at is sampled smaller and Hires.fix'ed to exactly the region's size, so the
    result still covers the region pixel for pixel. `upscalers` (the welcome's list):
    the second pass enlarges with an upscale model among them, as Krita AI Diffusion's
    does, else Lanczos (shared.refine_upscaler)."""
    sizing = {}
    if p.two_pass:
        w, h, hires = two_pass(
            plan.region.w, plan.region.h, described(family).family, upscalers=list(upscalers)
        )
        sizing = {"width": w, "height": h, "hires": hires}
    return _base(p, plan, list(controls), JobMode.TXT2IMG, family, **sizing).validate()


def refine_job(
    p: Params,
    plan: Plan,
    region_rgba: np.ndarray,
    controls: list[ControlUnit] = (),
    family: Family = DEFAULT.key,
) -> Job:
    job = _base(p, plan, list(controls), JobMode.IMG2IMG, family)
    job.init_image = flatten_rgb(region_rgba)
    job.strength = float(p.strength)
    return job.validate()


def edit_job(
    p: Params,
    plan: Plan,
    layer_rgba: np.ndarray,
    family: Family = DEFAULT.key,
) -> Job:
    """The layer's pixels over the plan's region changed as the prompt instructs (an edit
    model: Flux Kontext); the result covers the region as refine's does. No control units
    or regions: the picture itself is the edit's reference."""
    job = _base(p, plan, [], JobMode.EDIT, family)
    job.init_image = flatten_rgb(layer_rgba)
    return job.validate()


def layers_job(
    p: Params,
    plan: Plan,
    layer_rgba: np.ndarray,
    family: Family = DEFAULT.key,
    count: int = 4,
) -> Job:
    """The layer's pixels over the plan's region split into `count` RGBA layers (a
    layered model: Qwen-Image-Layered); the prompt describes the picture. One stack."""
    job = _base(p, plan, [], JobMode.LAYERS, family)
    job.init_image = flatten_rgb(layer_rgba)
    job.layer_count = int(count)
    job.batch = 1
    return job.validate()


def inpaint_job(
    p: Params,
    plan: Plan,
    inputs: InpaintInputs,
    controls: list[ControlUnit] = (),
    family: Family = DEFAULT.key,
) -> Job:
    if inputs.mask is None and not inputs.outpaint:
        raise PlanError("The selection is empty: select some pixels, or deselect all.")
    job = _base(p, plan, list(controls), JobMode.INPAINT, family)
    job.init_image = inputs.init_image
    # The engine takes width/height as the init image's size and grows it by the outpaint
    # margins, so the result covers the whole plan region.
    job.height, job.width = inputs.init_image.shape[:2]
    job.mask = inputs.mask
    # The selection already carries the artist's feathering: blurring again would widen it.
    job.mask_blur = 0
    job.strength = float(p.strength)
    # Only inpaint jobs carry it: generate and refine have no mask for it to act on.
    job.inpaint_fill = p.inpaint_fill
    left, right, top, bottom = inputs.grow
    job.outpaint = Outpaint(left=left, right=right, top=top, bottom=bottom)
    return job.validate()


def crop_result(image: np.ndarray, plan: Plan) -> np.ndarray:
    """The part of a generated image that lands on the canvas, always RGBA."""
    ox, oy = plan.crop_offset
    t = plan.target
    if image.shape[0] < oy + t.h or image.shape[1] < ox + t.w:
        raise ValueError(
            f"result is {image.shape[1]}x{image.shape[0]}, smaller than the planned "
            f"{plan.region.w}x{plan.region.h}"
        )
    part = image[oy : oy + t.h, ox : ox + t.w]
    if part.shape[2] == 3:
        part = np.concatenate([part, np.full(part.shape[:2] + (1,), 255, np.uint8)], axis=2)
    return np.ascontiguousarray(part)
