"""The two-pass rule's upscaler (shared.refine_upscaler): Krita AI Diffusion's upscale model
when the backend has it, else the backend's first model, else Lanczos."""

from __future__ import annotations

from dreamwire.shared.events import Welcome
from dreamwire.shared.job import Job
from dreamwire.shared.native_size import two_pass
from dreamwire.shared.refine_upscaler import (
    KAD_QUALITY,
    KAD_SMALL,
    refine_upscaler,
    upscale_models,
    upscaler_choices,
    welcome_upscalers,
)

PLAIN = ["Lanczos", "Nearest"]


def test_plain_resizes_only_or_no_welcome_keep_lanczos():
    assert refine_upscaler(None, (632, 632), (2048, 2048)) == "Lanczos"
    assert refine_upscaler(PLAIN, (632, 632), (2048, 2048)) == "Lanczos"
    assert refine_upscaler(["Latent"], (632, 632), (2048, 2048)) == "Lanczos"
    assert welcome_upscalers(None) == [] and welcome_upscalers(welcome()) == []
    assert welcome_upscalers(welcome(upscalers="Lanczos")) == []  # not a list: none


def welcome(**body) -> Welcome:
    return Welcome.from_body({"protocol": 1, **body})


def test_what_a_host_offers():
    # One rule for the Blender panel and the Krita docker.
    assert upscaler_choices(None) == PLAIN  # no backend yet: the resizes every backend has
    assert upscaler_choices(welcome(models=["a"])) == PLAIN  # an older backend
    listed = PLAIN + ["4x-UltraSharp", 7, " "]  # junk entries are dropped, not shown
    assert upscaler_choices(welcome(upscalers=listed)) == PLAIN + ["4x-UltraSharp"]


def test_first_model_the_backend_lists_when_it_lacks_krita_ai_diffusions():
    names = PLAIN + ["4x-UltraSharp", "RealESRGAN_x4plus", "R-ESRGAN 4x+"]
    assert upscale_models(names) == ["4x-UltraSharp", "RealESRGAN_x4plus", "R-ESRGAN 4x+"]
    assert refine_upscaler(names, (632, 632), (2048, 2048)) == "4x-UltraSharp"
    assert refine_upscaler(PLAIN + ["R-ESRGAN 4x+"], (632, 632), (2048, 2048)) == "R-ESRGAN 4x+"


def test_krita_ai_diffusions_model_by_step_size():
    # KAD: initial/desired side ratio below 1/1.5 -> UpscalerName.default (NMKD
    # Superscale), else fast_2x (OmniSR x2); the backend names models by stem or path.
    names = PLAIN + ["4x-UltraSharp", "upscale_models/OmniSR_X2_DIV2K", KAD_QUALITY]
    assert refine_upscaler(names, (632, 632), (2048, 2048)) == KAD_QUALITY
    assert refine_upscaler(names, (1024, 1024), (1280, 1280)) == "upscale_models/OmniSR_X2_DIV2K"
    # Exactly 1.5x is still KAD's small step.
    assert refine_upscaler(names, (1024, 1024), (1536, 1536)) == "upscale_models/OmniSR_X2_DIV2K"
    # Only one of the two installed: it serves both steps.
    only_quality = PLAIN + ["4x-UltraSharp", KAD_QUALITY + ".pth"]
    assert refine_upscaler(only_quality, (1024, 1024), (1280, 1280)) == KAD_QUALITY + ".pth"
    only_small = PLAIN + ["4x-UltraSharp", KAD_SMALL.lower()]
    assert refine_upscaler(only_small, (632, 632), (2048, 2048)) == KAD_SMALL.lower()


def test_two_pass_takes_the_welcomes_choice_and_the_job_validates():
    w, h, hires = two_pass(
        2048, 2048, "sd1", upscalers=welcome_upscalers(welcome(upscalers=PLAIN + ["4x-UltraSharp"]))
    )
    assert hires.upscaler == "4x-UltraSharp" and (hires.width, hires.height) == (2048, 2048)
    Job(prompt="x", width=w, height=h, hires=hires).validate()
    assert two_pass(2048, 2048, "sd1")[2].upscaler == "Lanczos"
    assert two_pass(512, 512, "sd1", upscalers=["4x-UltraSharp"])[2] is None
