"""The two-pass rule for large outputs (shared.native_size), as Krita AI Diffusion sizes
its first pass (resolution.prepare_diffusion_input)."""

from __future__ import annotations

import math

import pytest

from dreamwire.shared.events import Welcome
from dreamwire.shared.families import family as family_spec
from dreamwire.shared.job import Job
from dreamwire.shared.native_size import (
    REFINE_DENOISE,
    first_pass_size,
    model_family,
    two_pass,
)


def kad_initial(width: int, height: int, family: str):
    """Krita AI Diffusion's branch, written out: two passes when max_scale < 1 and a side
    exceeds max_size; initial = (extent * max_scale).multiple_of(8)."""
    res = family_spec(family).resolution
    max_scale = math.sqrt(res.max_pixels / (width * height))
    if not (max_scale < 1 and any(x > res.max_side for x in (width, height))):
        return None
    return tuple(math.ceil(round(x * max_scale) / 8) * 8 for x in (width, height))


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
@pytest.mark.parametrize(
    "size",
    [(512, 512), (768, 512), (1024, 1024), (2048, 2048), (3000, 1000), (1600, 256), (1280, 1024)],
)
def test_first_pass_matches_krita_ai_diffusion(family, size):
    assert first_pass_size(*size, family) == kad_initial(*size, family)


def test_examples_per_family():
    assert first_pass_size(2048, 2048, "sd1") == (632, 632)
    assert first_pass_size(2048, 2048, "sdxl") == (1024, 1024)
    assert first_pass_size(2048, 1024, "sd2") == (1088, 544)
    # Within a family's range: one pass at the requested size.
    assert first_pass_size(768, 512, "sd1") is None
    assert first_pass_size(1024, 1024, "sdxl") is None
    # A long strip under the pixel budget stays one pass, as in Krita AI Diffusion.
    assert first_pass_size(1600, 192, "sd1") is None


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
@pytest.mark.parametrize("size", [(2048, 2048), (2000, 1200), (1200, 3000), (1416, 1064)])
def test_two_pass_job_lands_exactly_on_the_region(family, size):
    w, h, hires = two_pass(*size, family)
    assert hires is not None and (hires.width, hires.height) == size
    assert hires.denoise == REFINE_DENOISE and hires.upscaler == "Lanczos"
    assert w % 8 == 0 and h % 8 == 0 and w * h < size[0] * size[1]
    # Aspect kept to the 8-pixel grid.
    assert abs(w / h - size[0] / size[1]) < 8 / min(w, h)
    job = Job(prompt="x", width=w, height=h, hires=hires).validate()
    assert job.hires.plan(w, h).size == size


def test_small_regions_stay_one_pass():
    assert two_pass(512, 512, "sd1") == (512, 512, None)


def welcome(**body):
    return Welcome.from_body({"protocol": 1, **body})


def test_model_family_from_the_welcome_then_the_name():
    w = welcome(
        model_families={"juggernaut": "sdxl", "dreamshaper_8": "sd1", "v2-1_768": "sd2"},
        default_model="juggernaut",
    )
    assert model_family("", w) == "sdxl"  # the backend's default model
    assert model_family("dreamshaper_8", w) == "sd1"
    assert model_family("models/v2-1_768.safetensors", w) == "sd2"
    # Not reported (an older backend, or no connection): a guess from the name.
    assert model_family("sd_xl_base_1.0", None) == "sdxl"
    assert model_family("v2-1_768-ema-pruned", welcome()) == "sd2"
    assert model_family("", None) == "sd1"
