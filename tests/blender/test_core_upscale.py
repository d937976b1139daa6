"""The Blender Upscale action's plain logic: the job, the seamless default, the name and
pixels of the result (no Blender)."""

from __future__ import annotations

import numpy as np
import pytest

from blender_addon.core.job_builder import GenerationSettings
from blender_addon.core.upscale import (
    FROM_IMAGE,
    UpscaleSettings,
    build_upscale_job,
    missing_for_upscale,
    resize_alpha,
    result_pixels,
    seamless_for,
    seamless_record,
    upscaled_name,
)
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.events import Welcome
from dreamwire.shared.job import Job, Upscale
from dreamwire.shared.job_mode import JobMode


def gen(**kw) -> GenerationSettings:
    base = dict(prompt="moss", negative="blurry", model="tiny-sd1", sampler="Euler", steps=6)
    base.update(kw)
    return GenerationSettings(cfg=5.0, seed=9, **base)


def test_job_upscales_the_rgb_with_the_panels_prompt():
    rgba = np.random.default_rng(1).integers(0, 256, (40, 48, 4), dtype=np.uint8)
    u = UpscaleSettings(upscaler="R-ESRGAN 4x+", factor=1.5, refine=True, strength=0.25)
    job = build_upscale_job(rgba, u, gen(), "both", tag="upscale Wall")
    assert isinstance(job, Job) and job.mode is JobMode.UPSCALE
    assert np.array_equal(job.init_image, rgba[..., :3])
    assert job.upscale == Upscale(scale=1.5, upscaler="R-ESRGAN 4x+", refine=True)
    assert job.upscale.size(48, 40) == (72, 60)
    assert (job.prompt, job.negative, job.model, job.sampler) == (
        "moss",
        "blurry",
        "tiny-sd1",
        "Euler",
    )
    assert (job.steps, job.cfg, job.seed, job.strength) == (6, 5.0, 9, 0.25)
    assert job.seamless == "both" and job.tag == "upscale Wall" and job.hires is None
    # The wire form the backend reads carries all of it.
    body, _ = job.to_wire()
    assert body["upscale"]["upscaler"] == "R-ESRGAN 4x+" and body["seamless"] == "both"


def test_bad_factor_is_a_clear_error():
    with pytest.raises(DreamwireError) as err:
        build_upscale_job(np.zeros((8, 8, 3), np.uint8), UpscaleSettings(factor=9), gen(), "none")
    assert err.value.code == ErrorCode.INVALID_JOB and "scale" in err.value.message


@pytest.mark.parametrize(
    "choice,recorded,expected",
    [
        (FROM_IMAGE, "both", "both"),
        (FROM_IMAGE, "x", "x"),
        (FROM_IMAGE, None, "none"),
        (FROM_IMAGE, "diagonal", "none"),  # a record we did not write
        ("none", "both", "none"),  # the artist's choice wins
        ("y", None, "y"),
    ],
)
def test_seamless_defaults_to_what_the_image_recorded(choice, recorded, expected):
    assert seamless_for(choice, recorded) == expected


def test_generated_textures_record_their_axes():
    assert seamless_record("both") == "both" and seamless_record("x") == "x"
    assert seamless_record("none") is None


def test_result_name_as_dream_textures():
    assert upscaled_name("Dreamwire Wall") == "Dreamwire Wall (Upscaled)"
    assert upscaled_name("Dreamwire Wall (Upscaled)") == "Dreamwire Wall (Upscaled)"


def test_result_keeps_the_sources_alpha():
    rgb = np.full((8, 12, 3), 100, np.uint8)
    opaque = np.full((4, 6, 4), 200, np.uint8)
    opaque[..., 3] = 255
    out = result_pixels(opaque, rgb, "none")
    assert out.shape == (8, 12, 4) and (out[..., 3] == 255).all()
    assert np.array_equal(out[..., :3], rgb)
    cut = opaque.copy()
    cut[:, :3, 3] = 0  # the left half is transparent
    alpha = result_pixels(cut, rgb, "none")[..., 3]
    assert (alpha[:, :5] == 0).all() and (alpha[:, 7:] == 255).all()
    # Bilinear between the halves, and wrapping round when the texture tiles.
    assert 0 < alpha[0, 5] < 255 and alpha[0, 11] == 255
    assert resize_alpha(cut[..., 3], 12, 8, "x")[0, 11] < 255


def test_upscalers_from_the_welcome_and_what_is_missing():
    w = Welcome.from_body(
        {
            "protocol": 1,
            "models": ["tiny-sd1"],
            "upscalers": ["Lanczos", "Nearest", "tiny-compact-x4"],
        }
    )
    assert missing_for_upscale(UpscaleSettings(upscaler="tiny-compact-x4", refine=True), w) == []
    (problem,) = missing_for_upscale(UpscaleSettings(upscaler="4x-UltraSharp"), w)
    assert "no upscaler named '4x-UltraSharp'" in problem and "tiny-compact-x4" in problem
    w.models = []
    assert missing_for_upscale(UpscaleSettings(refine=False), w) == []  # Extras needs none
    assert "Refine needs" in missing_for_upscale(UpscaleSettings(refine=True), w)[0]
