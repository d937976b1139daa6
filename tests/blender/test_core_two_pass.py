"""Large textures in two passes: the job builder sizes txt2img jobs for the model's native
resolution and Hires.fixes them to the requested texture size."""

from __future__ import annotations

import numpy as np

from blender_addon.core.job_builder import (
    ControlSetting,
    GenerationSettings,
    build_job,
    fit_to_backend,
    two_pass_note,
)
from dreamwire.shared.events import Welcome
from dreamwire.shared.family_support import family_info
from dreamwire.shared.native_size import REFINE_DENOISE, model_family


def settings(**kw):
    base = dict(prompt="mossy bricks", model="tiny-sd1", steps=3, seed=4, width=2048, height=2048)
    base.update(kw)
    return GenerationSettings(**base)


def test_large_texture_is_generated_native_then_hires_to_the_requested_size():
    job = build_job(settings(seamless=True))
    assert (job.width, job.height) == (632, 632)  # SD1 512x768 pixel budget, square
    assert (job.hires.width, job.hires.height) == (2048, 2048)
    assert job.hires.plan(job.width, job.height).size == (2048, 2048)
    assert job.hires.denoise == REFINE_DENOISE and job.seamless == "both"
    xl = build_job(settings(info=family_info("sdxl", None)))
    assert (xl.width, xl.height) == (1024, 1024) and xl.hires.width == 2048


def test_native_sizes_and_the_panel_switch_stay_one_pass():
    assert build_job(settings(width=512, height=512)).hires is None
    assert (
        build_job(settings(width=1024, height=1024, info=family_info("sdxl", None))).hires is None
    )
    off = build_job(settings(two_pass=False))
    assert off.hires is None and (off.width, off.height) == (2048, 2048)


def test_projection_size_and_controls_keep_the_full_size():
    depth = np.zeros((1200, 1600, 3), np.uint8)
    s = settings(controls=[ControlSetting("depth", True, 1.0)])
    job = build_job(s, {"depth": depth}, size=(1600, 1200))
    # The control image stays at the requested size; the backend fits it to each pass.
    assert job.controls[0].image is depth and job.hires.plan(job.width, job.height).size == (
        1600,
        1200,
    )


def test_img2img_and_inpaint_jobs_are_never_split():
    init = np.full((2048, 2048, 3), 90, np.uint8)
    mask = np.zeros((2048, 2048), np.uint8)
    mask[100:200, 100:200] = 255
    assert build_job(settings(), {}, init_image=init).hires is None
    assert build_job(settings(), {}, init_image=init, mask=mask).hires is None


def test_family_comes_from_the_backend_welcome():
    body = {
        "protocol": 1,
        "server_version": "x",
        "server_id": "y",
        "models": ["tiny-sd1", "tiny-sdxl"],
        "model_families": {"tiny-sd1": "sd1", "tiny-sdxl": "sdxl"},
        "default_model": "tiny-sdxl",
    }
    w = Welcome.from_body(body)
    assert model_family("tiny-sdxl", w) == "sdxl" and model_family("", w) == "sdxl"
    assert model_family("tiny-sd1", w) == "sd1"
    assert w.model_families == body["model_families"] and w.default_model == "tiny-sdxl"


def test_second_pass_enlarges_with_the_backends_upscale_model_and_says_so():
    def welcome(upscalers):
        return Welcome(
            protocol=1,
            server_version="x",
            server_id="y",
            models=["tiny-sd1"],
            model_families={"tiny-sd1": "sd1"},
            upscalers=list(upscalers),
        )

    s = settings()
    fit_to_backend(s, welcome(["Lanczos", "Nearest"]))
    job = build_job(s)
    assert job.hires.upscaler == "Lanczos"
    assert (
        two_pass_note(job) == " In two passes: 632x632, then Hires.fix to 2048x2048 with Lanczos."
    )
    # The backend's first upscale model, or Krita AI Diffusion's when it has that one.
    fit_to_backend(s, welcome(["Lanczos", "Nearest", "4x-UltraSharp", "R-ESRGAN 4x+"]))
    assert build_job(s).hires.upscaler == "4x-UltraSharp"
    fit_to_backend(s, welcome(["Lanczos", "4x-UltraSharp", "4x_NMKD-Superscale-SP_178000_G"]))
    job = build_job(s)
    assert job.hires.upscaler == "4x_NMKD-Superscale-SP_178000_G"
    assert two_pass_note(job).endswith("with 4x_NMKD-Superscale-SP_178000_G.")
    assert two_pass_note(build_job(settings(width=512, height=512))) == ""
