"""The job plan (engine/planning.py): laid out before anything loads, refusing early."""

from __future__ import annotations

import numpy as np
import pytest

from dreamwire.backend.engine import Engine
from dreamwire.backend.engine.planning import LoraRequest, plan, serves
from dreamwire.backend.families import SPECS
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import HiresFix, Job, LoraRef, Outpaint, Region, Upscale
from dreamwire.shared.job_mode import JobMode

PICTURE = np.zeros((64, 64, 3), np.uint8)
MASK = np.full((64, 64), 255, np.uint8)


def test_txt2img_with_hires_fix(library):
    job = Job(prompt="x", width=64, height=64, steps=10, hires=HiresFix(scale=1.5, denoise=0.5))
    p = plan(job, library)
    assert (p.mode, p.family) == ("txt2img", "sd1")
    first, second = p.passes
    assert (first.mode, first.width, first.height, first.executed_steps) == ("txt2img", 64, 64, 10)
    assert (second.mode, second.width, second.height, second.hires) == ("img2img", 96, 96, True)
    # A1111's Hires.fix runs all its steps over a schedule stretched to 10 / 0.5 = 20.
    assert second.schedule.length == 20 and second.schedule.start == 10
    assert second.executed_steps == 10 and p.total_steps == 20


def test_inpaint_outpaint_samples_the_grown_canvas(library):
    job = Job(prompt="x", width=64, height=64, init_image=PICTURE, mask=MASK, strength=0.5)
    job.outpaint = Outpaint(left=16)
    (only,) = plan(job, library).passes
    # A1111: int(0.5 * 20) + 1 steps of the job's (default) 20-step schedule.
    assert (only.mode, only.width, only.height, only.executed_steps) == ("inpaint", 80, 64, 11)


def test_family_comes_from_the_library_without_loading(library):
    assert plan(Job(prompt="x", model="tiny-sdxl"), library).family == "sdxl"
    plain = Job(prompt="x", init_image=PICTURE, upscale=Upscale(refine=False))
    assert plan(plain, library).passes == ()  # a plain upscale samples nothing


def test_loras_from_the_job_then_the_prompt(library):
    job = Job(prompt="a cat <lora:style:0.5:0.25>", loras=[LoraRef("detail", 0.7)])
    assert plan(job, library).loras == (
        LoraRequest("detail", 0.7, 0.7),
        LoraRequest("style", 0.25, 0.5),  # A1111: <lora:name:te:unet>
    )


@pytest.mark.parametrize(
    ("fields", "composable"),
    [
        ({"prompt": "a cat"}, False),
        ({"prompt": "a cat, (a hat:1.2) <lora:style:1>"}, False),  # weights inside one term
        ({"prompt": "a cat AND a dog :0.5"}, True),
        ({"prompt": "a cat :1.5"}, True),  # one weighted subprompt runs composable too
        # Only the Hires.fix pass's own prompt is composable.
        ({"prompt": "a cat", "hires": HiresFix(prompt="a cat AND a hat")}, True),
        ({"prompt": "a cat", "regions": [Region("a barn", MASK)]}, True),
    ],
)
def test_the_plan_says_which_passes_compose_their_prompt(library, fields, composable):
    p = plan(Job(**{"width": 64, "height": 64, **fields}), library)
    assert p.composable is composable
    assert p.regions == tuple(fields.get("regions", ()))


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"sampler": "No Such Sampler"}, ErrorCode.UNKNOWN_SAMPLER),
        ({"prompt": "a cat <hypernet:old:1>"}, ErrorCode.MODEL_UNSUPPORTED),
        ({"hires": HiresFix(upscaler="not-installed")}, ErrorCode.MODEL_NOT_FOUND),
        ({"model": "not-a-checkpoint"}, ErrorCode.MODEL_NOT_FOUND),
        ({"init_image": PICTURE, "hires": HiresFix()}, ErrorCode.INVALID_JOB),
    ],
)
def test_refused_before_any_model_loads(library, fields, code):
    engine = Engine(library, device="cpu", extensions=[], cache_size=1)
    with pytest.raises(DreamwireError) as err:
        engine.run(Job(**{"prompt": "x", "width": 64, "height": 64, "steps": 2, **fields}))
    assert err.value.code == code
    assert engine.models.keys() == []  # nothing was loaded to find out


@pytest.mark.parametrize("model", ["tiny-sd1", "tiny-sdxl"])
def test_an_edit_job_needs_an_edit_model(library, model):
    """No family here names an edit pipeline: the plan refuses, naming what is missing,
    before any model loads."""
    assert not serves(plan(Job(prompt="x", model=model), library).family, JobMode.EDIT)
    engine = Engine(library, device="cpu", extensions=[], cache_size=1)
    job = Job(mode=JobMode.EDIT, prompt="make the barn red", model=model, init_image=PICTURE)
    with pytest.raises(DreamwireError) as err:
        engine.run(job)
    assert err.value.code == ErrorCode.MODEL_UNSUPPORTED
    assert "an edit job needs an edit model" in err.value.message and model in err.value.message
    assert engine.models.keys() == []


def test_every_family_serves_the_modes_it_served():
    for key in SPECS:
        for mode in (JobMode.TXT2IMG, JobMode.IMG2IMG, JobMode.INPAINT):
            # Flux.2 Klein has no img2img pipeline in diffusers (its edit takes the picture).
            assert serves(key, mode) == (key != "flux2" or mode != JobMode.IMG2IMG), (key, mode)
    assert serves("flux2", JobMode.EDIT)


def test_an_sd_upscale_is_planned_as_its_tile_pass(library):
    big = np.zeros((64, 96, 3), np.uint8)
    up = Upscale(scale=2.0, tile=64, overlap=16)
    p = plan(Job(prompt="x", init_image=big, upscale=up, steps=10, strength=0.5), library)
    (tile,) = p.passes
    assert (p.mode, tile.mode, tile.width, tile.height, tile.executed_steps) == (
        JobMode.UPSCALE,
        JobMode.IMG2IMG,
        64,
        64,
        6,  # A1111's SD upscale tiles are img2img: int(0.5 * 10) + 1 steps
    )
    assert p.size == (64, 64) and (p.upscale.width, p.upscale.height) == (192, 128)
    # A seamless texture's tiles wrap only along an axis one tile spans whole.
    wide = Job(
        prompt="x", init_image=big, upscale=Upscale(scale=1.0, tile=64, overlap=16), seamless="both"
    )
    assert (plan(wide, library).seamless, wide.seamless) == ("y", "both")
