"""The engine's output equals diffusers' own pipelines for the same components, seed and
sampler: the engine adds plumbing, never different maths. img2img and inpaint run A1111's
step counts (reference.a1111_steps), which diffusers' pipelines are given as their own
num_inference_steps and strength."""

from __future__ import annotations

import numpy as np
import pytest
from reference import JOB_BASE, SIZE, a1111_steps, maxdiff, pil, reference_pipe, run_job_settings

from dreamwire.backend.canvas.masks import composite
from dreamwire.shared.job import Job


def job(**kw) -> Job:
    return Job(**{**JOB_BASE, **kw})


@pytest.mark.parametrize("sampler", ["Euler", "DPM++ 2M Karras", "DDIM"])
def test_txt2img_equals_diffusers(engine, sampler):
    result = engine.run(job(sampler=sampler))
    pipe = reference_pipe(engine, "StableDiffusionPipeline", sampler)
    ref = run_job_settings(pipe, **SIZE)
    assert result.images[0].seed == 1234
    assert result.images[0].image.shape == (64, 64, 3)
    assert maxdiff(result.images[0].image, ref[0]) <= 1
    assert ref[0].std() > 5  # not a blank image that would match anything


def test_img2img_equals_diffusers(engine, init_image):
    result = engine.run(job(sampler="Euler a", init_image=init_image, strength=0.6, steps=5))
    pipe = reference_pipe(engine, "StableDiffusionImg2ImgPipeline", "Euler a")
    # A1111: int(0.6 * 5) + 1 = 4 steps of 5 (diffusers' own rule would run 3).
    ref = run_job_settings(pipe, image=pil(init_image), **a1111_steps(5, 0.6))
    assert maxdiff(result.images[0].image, ref[0]) <= 1
    assert maxdiff(ref[0], init_image) > 10  # it did change the image


def test_inpaint_equals_diffusers_then_overlay(engine, init_image, mask):
    result = engine.run(
        job(sampler="Euler", init_image=init_image, mask=mask, mask_blur=0, strength=0.7)
    )
    pipe = reference_pipe(engine, "StableDiffusionInpaintPipeline", "Euler")
    inpaint = dict(image=pil(init_image), mask_image=pil(mask), **SIZE)
    ref = run_job_settings(pipe, **inpaint, **a1111_steps(4, 0.7))  # A1111: 3 steps of 4
    # A1111 pastes the generated pixels over the original through the mask.
    expected = composite(init_image, ref[0], mask)
    out = result.images[0].image
    assert maxdiff(out, expected) <= 1
    assert np.array_equal(out[mask == 0], init_image[mask == 0])  # outside: untouched
    assert maxdiff(out[mask > 0], init_image[mask > 0]) > 10  # inside: repainted


def test_batch_equals_per_image_seeds(engine):
    result = engine.run(job(sampler="Euler", batch=2))
    assert [g.seed for g in result.images] == [1234, 1235]
    pipe = reference_pipe(engine, "StableDiffusionPipeline", "Euler")
    ref = run_job_settings(pipe, [1234, 1235], num_images_per_prompt=2, **SIZE)
    for got, want in zip(result.images, ref, strict=True):
        assert maxdiff(got.image, want) <= 1
    # image 1 of the batch is what a single job with seed+1 gives (A1111's batch seeds)
    single = engine.run(job(sampler="Euler", seed=1235))
    assert maxdiff(single.images[0].image, result.images[1].image) <= 1
    assert maxdiff(result.images[0].image, result.images[1].image) > 10


def test_sdxl_txt2img_equals_diffusers(engine):
    result = engine.run(job(model="tiny-sdxl", sampler="Euler"))
    pipe = reference_pipe(engine, "StableDiffusionXLPipeline", "Euler", model="tiny-sdxl")
    ref = run_job_settings(pipe, **SIZE)
    assert maxdiff(result.images[0].image, ref[0]) <= 1


def test_sdxl_img2img_and_inpaint_equal_diffusers(engine, init_image, mask):
    got = engine.run(job(model="tiny-sdxl", sampler="Euler", init_image=init_image, strength=0.7))
    pipe = reference_pipe(engine, "StableDiffusionXLImg2ImgPipeline", "Euler", model="tiny-sdxl")
    ref = run_job_settings(pipe, image=pil(init_image), **a1111_steps(4, 0.7))
    assert maxdiff(got.images[0].image, ref[0]) <= 1

    got = engine.run(
        job(
            model="tiny-sdxl",
            sampler="Euler",
            init_image=init_image,
            mask=mask,
            mask_blur=0,
            strength=0.6,
        )
    )
    pipe = reference_pipe(engine, "StableDiffusionXLInpaintPipeline", "Euler", model="tiny-sdxl")
    inpaint = dict(image=pil(init_image), mask_image=pil(mask), **SIZE)
    ref = run_job_settings(pipe, **inpaint, **a1111_steps(4, 0.6))
    assert maxdiff(got.images[0].image, composite(init_image, ref[0], mask)) <= 1
