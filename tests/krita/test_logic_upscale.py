"""The Upscale action's plain logic: the job built from the canvas and the docker's
choice, the plan covering the scaled canvas, the upscaler list from the welcome."""

from __future__ import annotations

import numpy as np
import pytest
from dreamwire_krita.logic.geometry import Rect
from dreamwire_krita.logic.jobs import crop_result
from dreamwire_krita.logic.params import Params
from dreamwire_krita.logic.regions import PlanError
from dreamwire_krita.logic.upscale import (
    REFINE_STRENGTH,
    UpscaleChoice,
    plan_upscale,
    upscale_job,
)

from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job
from dreamwire.shared.job_mode import JobMode

P = Params(prompt="a lighthouse", negative="blur", model="tiny-sd1", steps=3, seed=5, batch=4)


def canvas(h: int = 30, w: int = 50) -> np.ndarray:
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, : w // 2, 3] = 255  # half painted, half transparent
    return rgba


def test_job_carries_the_choice_and_the_panel():
    choice = UpscaleChoice(factor=1.5, upscaler="4x-UltraSharp", refine=True, strength=0.25)
    job = upscale_job(P, canvas(), choice)
    up = job.upscale
    assert (up.scale, up.upscaler, up.refine, up.tile, up.overlap, up.tile_control) == (
        1.5,
        "4x-UltraSharp",
        True,
        0,
        64,
        True,
    )
    assert (job.prompt, job.negative, job.model, job.seed, job.steps) == (
        "a lighthouse",
        "blur",
        "tiny-sd1",
        5,
        3,
    )
    assert job.strength == 0.25 and job.batch == 1 and job.mode is JobMode.UPSCALE
    assert job.mask is None and job.hires is None and job.tag == "krita:upscale"
    # RGB over white, as Refine flattens the canvas.
    assert job.init_image.shape == (30, 50, 3)
    assert tuple(job.init_image[0, 0]) == (200, 0, 0) and tuple(job.init_image[0, -1]) == (
        255,
        255,
        255,
    )
    # Survives the wire as the backend sees it.
    back = Job.from_wire(*job.to_wire())
    assert back.upscale == up and np.array_equal(back.init_image, job.init_image)


def test_defaults_and_no_refine():
    job = upscale_job(P, canvas(), UpscaleChoice())
    assert job.upscale.scale == 2.0 and job.upscale.upscaler == "Lanczos"
    assert job.strength == REFINE_STRENGTH
    plain = upscale_job(P, canvas(), UpscaleChoice(refine=False))
    assert plain.upscale.refine is False


def test_plan_covers_the_scaled_canvas():
    plan = plan_upscale(Rect(0, 0, 50, 30), 1.5)
    assert plan.action == "upscale" and not plan.masked
    assert (plan.region.w, plan.region.h) == (75, 45) == (plan.target.w, plan.target.h)
    result = np.full((45, 75, 3), 9, np.uint8)
    assert crop_result(result, plan).shape == (45, 75, 4)
    with pytest.raises(PlanError):
        plan_upscale(Rect(0, 0, 0, 0), 2.0)


def test_bad_choices_are_job_errors():
    with pytest.raises(DreamwireError) as err:
        upscale_job(P, canvas(), UpscaleChoice(factor=0.5))
    assert err.value.code == ErrorCode.INVALID_JOB
    with pytest.raises(DreamwireError) as err:
        upscale_job(P, canvas(4000, 10), UpscaleChoice(factor=4))
    assert err.value.code == ErrorCode.INVALID_SIZE
