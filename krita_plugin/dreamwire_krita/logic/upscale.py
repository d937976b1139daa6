"""The Upscale action, as Krita AI Diffusion's Upscale workspace does it.

The whole visible canvas is upscaled by a factor with the chosen upscaler ("Lanczos",
"Nearest" or a model the backend lists in its welcome), optionally refined tile by tile
at a low strength (the backend adds a tile ControlNet per tile when it has one). When the
result arrives the document is scaled by the same factor and the result lands on it as a
new layer covering the whole canvas, so the artist's layers stay (resampled) beneath it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dreamwire.shared.families import DEFAULT, FamilyInfo, ModelFamily
from dreamwire.shared.family_support import described
from dreamwire.shared.job import Job, Upscale
from dreamwire.shared.job_mode import JobMode
from dreamwire.shared.panel_job import panel_job
from dreamwire.shared.refine_upscaler import refine_upscaler

from .geometry import Rect
from .params import Params
from .pixels import flatten_rgb
from .regions import Plan, PlanError

FACTORS = (1.5, 2.0, 3.0, 4.0)
# Krita AI Diffusion's upscale refine strength: enough for new detail at the larger size,
# too little to redraw the picture (the tile ControlNet holds it in place as well).
REFINE_STRENGTH = 0.3
PREVIEW_EVERY = 2


@dataclass
class UpscaleChoice:
    """What the docker's upscale controls hold."""

    factor: float = 2.0
    upscaler: str = "Lanczos"
    refine: bool = True
    strength: float = REFINE_STRENGTH


def default_upscaler(upscalers: list[str], factor: float = UpscaleChoice.factor) -> str:
    """The upscaler the docker starts with: the best upscale model the backend lists for
    a `factor` enlargement (Krita AI Diffusion's choice rule, shared.refine_upscaler), a
    Lanczos resize only when it lists no model."""
    return refine_upscaler(upscalers, (100, 100), (round(100 * factor), round(100 * factor)))


def plan_upscale(canvas: Rect, factor: float) -> Plan:
    """The result covers the whole scaled canvas (the backend's round(side * factor))."""
    if canvas.empty():
        raise PlanError("The document is empty.")
    w, h = Upscale(scale=factor).size(canvas.w, canvas.h)
    region = Rect(0, 0, w, h)
    return Plan("upscale", region, region, masked=False)


def upscale_job(
    p: Params,
    canvas_rgba: np.ndarray,
    choice: UpscaleChoice,
    family: str | ModelFamily | FamilyInfo = DEFAULT.key,
) -> Job:
    """One image (the canvas has one upscale), refined with the panel's prompt, model,
    sampler, steps, CFG and seed at the choice's strength; `family`: the model's."""
    info = described(family)
    job = panel_job(
        p.for_job(),
        info.family,
        info.supports,
        mode=JobMode.UPSCALE,
        init_image=flatten_rgb(canvas_rgba),
        strength=float(choice.strength),
        upscale=Upscale(
            scale=float(choice.factor), upscaler=choice.upscaler, refine=bool(choice.refine)
        ),
        preview_every=PREVIEW_EVERY,
        tag="krita:upscale",
    )
    return job.validate()
