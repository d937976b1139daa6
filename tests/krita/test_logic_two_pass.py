"""Large Generate regions in two passes (native size, then Hires.fix to the region), the
docker's switch for it, and one such job through a real engine."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from dreamwire_krita.logic.geometry import Rect
from dreamwire_krita.logic.history import params_from_infotext
from dreamwire_krita.logic.jobs import crop_result, generate_job, inpaint_job, refine_job
from dreamwire_krita.logic.params import Params
from dreamwire_krita.logic.regions import InpaintInputs, plan_generate, plan_inpaint, plan_refine

from dreamwire.shared.families import NativeResolution, family
from dreamwire.shared.infotext import format_infotext
from dreamwire.shared.native_size import REFINE_DENOISE

P = Params(prompt="a lighthouse at dusk", model="tiny-sd1", steps=2, seed=5)


def test_large_canvas_generates_small_then_hires_to_the_region():
    plan = plan_generate(Rect(0, 0, 2048, 1536), None)
    job = generate_job(P, plan, family="sd1")
    assert job.mode == "txt2img"
    assert (job.width, job.height) == (728, 544)  # SD1 512x768 pixel budget, aspect kept
    assert (job.hires.width, job.hires.height) == (2048, 1536)
    assert job.hires.plan(job.width, job.height).size == (2048, 1536)
    assert job.hires.denoise == REFINE_DENOISE and job.hires.prompt == ""
    xl = generate_job(P, plan, family="sdxl")
    assert (xl.width, xl.height) == (1184, 888) and xl.hires.width == 2048


def test_second_pass_enlarges_with_the_backends_upscale_model():
    # The welcome's list: Krita AI Diffusion's quality model when there, else the first
    # model, else Lanczos (shared.refine_upscaler).
    plan = plan_generate(Rect(0, 0, 2048, 1536), None)
    plain = ["Lanczos", "Nearest"]
    assert generate_job(P, plan, upscalers=plain).hires.upscaler == "Lanczos"
    models = plain + ["4x-UltraSharp", "R-ESRGAN 4x+"]
    assert generate_job(P, plan, upscalers=models).hires.upscaler == "4x-UltraSharp"
    kad = models + ["4x_NMKD-Superscale-SP_178000_G"]
    assert generate_job(P, plan, upscalers=kad).hires.upscaler == kad[-1]


def test_selection_and_small_canvases_stay_one_pass():
    assert generate_job(P, plan_generate(Rect(0, 0, 640, 512), None), family="sd1").hires is None
    sel = plan_generate(Rect(0, 0, 4000, 3000), Rect(100, 100, 512, 512))
    job = generate_job(P, sel, family="sd1")
    assert job.hires is None and (job.width, job.height) == (512, 512)
    # 1024x1024 is SDXL's own size, but twice too large for SD1.
    square = plan_generate(Rect(0, 0, 1024, 1024), None)
    assert generate_job(P, square, family="sdxl").hires is None
    assert generate_job(P, square, family="sd1").hires is not None


def test_the_docker_switch_turns_it_off_and_persists():
    off = Params.from_dict({**P.to_dict(), "two_pass": False})
    assert off.two_pass is False and Params().two_pass is True
    job = generate_job(off, plan_generate(Rect(0, 0, 2048, 1536), None), family="sd1")
    assert job.hires is None and (job.width, job.height) == (2048, 1536)


def test_refine_and_inpaint_never_get_hires():
    canvas = Rect(0, 0, 2048, 1536)
    plan = plan_refine(canvas, None)
    region = np.full((plan.region.h, plan.region.w, 4), 200, np.uint8)
    assert refine_job(P, plan, region).hires is None
    ip = plan_inpaint(canvas, Rect(100, 100, 1200, 1200))
    init = np.full((ip.region.h, ip.region.w, 3), 90, np.uint8)
    mask = np.zeros(init.shape[:2], np.uint8)
    mask[50:-50, 50:-50] = 255
    assert inpaint_job(P, ip, InpaintInputs(init, mask, (0, 0, 0, 0))).hires is None


def test_copy_back_keeps_the_strength_hires_denoise_is_not_it():
    text = format_infotext(
        prompt="a lighthouse",
        steps=20,
        seed=3,
        width=592,
        height=448,
        denoising_strength=0.4,
        hires_resize=(2048, 1536),
        hires_upscaler="Lanczos",
    )
    assert params_from_infotext(text, Params(strength=0.65)).strength == 0.65
    plain = format_infotext(prompt="a", steps=20, seed=3, denoising_strength=0.3)
    assert params_from_infotext(plain, Params(strength=0.65)).strength == 0.3


@pytest.fixture(scope="module")
def engine(library):

    from dreamwire.backend.engine import Engine

    return Engine(library, device="cpu", extensions=[], cache_size=1)


def test_two_pass_job_runs_and_lands_on_the_region(engine):
    canvas = Rect(0, 0, 1000, 800)
    job = generate_job(P, plan_generate(canvas, None), family="sd1")
    assert (job.width, job.height) == (704, 568)
    assert (job.hires.width, job.hires.height) == (1000, 800)
    # The real engine runs the same rule with a family as a backend's welcome may describe
    # it, small (64 px native): SD1's own sizes take a minute of CPU on the tiny model
    # (a 1000x800 second pass) and test nothing more about the two passes.
    small = replace(family("sd1"), resolution=NativeResolution(64, 96, 64 * 96))
    canvas = Rect(0, 0, 128, 96)
    plan = plan_generate(canvas, None)
    job = generate_job(P, plan, family=small)
    assert job.hires is not None and (job.width, job.height) == (96, 72)
    result = engine.run(job)
    image = np.asarray(result.images[0].image)
    assert image.shape == (96, 128, 3)
    placed = crop_result(image, plan)
    assert placed.shape == (96, 128, 4)
    assert "Hires resize: 128x96" in result.images[0].infotext
