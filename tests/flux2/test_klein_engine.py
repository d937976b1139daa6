"""Flux.2 Klein through the engine equals diffusers' Klein pipelines (same components, seed
and thread count, so bit for bit): txt2img, the image-reference edit and inpaint; img2img
(no pipeline) is refused by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dreamwire.backend.canvas.masks import composite
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job
from dreamwire.shared.job_mode import JobMode
from tests.support.pipeline_reference import reference_image

PROMPT = "a cat sitting on a red chair"
BASE = dict(model="klein", prompt=PROMPT, sampler="Euler", steps=2, cfg=1.0, width=64, height=64)


def job(**kw) -> Job:
    return Job(**{**BASE, "seed": 5, **kw})


def reference(engine, cls_name: str, prompt: str = PROMPT, **kwargs) -> np.ndarray:
    return reference_image(engine, "klein", cls_name, prompt, **kwargs)


def diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def test_txt2img_equals_diffusers(klein_engine):
    result = klein_engine.run(job())
    expected = reference(klein_engine, "Flux2KleinPipeline", guidance_scale=1.0)
    assert diff(result.images[0].image, expected) == 0
    assert "Sampler: Euler, Schedule type: Simple, CFG scale: 1," in result.images[0].infotext


def test_edit_with_the_picture_as_reference_equals_diffusers(klein_engine, init_image):
    edit = job(mode=JobMode.EDIT, init_image=init_image, prompt="make the chair blue")
    result = klein_engine.run(edit)
    expected = reference(
        klein_engine,
        "Flux2KleinPipeline",
        prompt="make the chair blue",
        image=Image.fromarray(init_image),
        guidance_scale=1.0,
    )
    assert diff(result.images[0].image, expected) == 0
    plain = reference(klein_engine, "Flux2KleinPipeline", prompt="make the chair blue")
    assert diff(expected, plain) > 0  # the reference changed the picture


def test_inpaint_equals_diffusers_then_overlay(klein_engine, init_image, mask):
    result = klein_engine.run(job(init_image=init_image, mask=mask, mask_blur=0, strength=0.9))
    generated = reference(
        klein_engine,
        "Flux2KleinInpaintPipeline",
        image=Image.fromarray(init_image),
        mask_image=Image.fromarray(mask),
        strength=0.9,
        guidance_scale=1.0,
    )
    assert diff(result.images[0].image, composite(init_image, generated, mask)) == 0


def test_img2img_is_refused_by_name(klein_engine, init_image):
    with pytest.raises(DreamwireError) as err:
        klein_engine.run(job(init_image=init_image, strength=0.5))
    assert err.value.code == ErrorCode.MODEL_UNSUPPORTED
    assert "Flux.2 Klein" in err.value.message and "img2img" in err.value.message


def test_welcome_describes_klein():
    from dreamwire.backend.families import family_infos

    info = family_infos()["flux2"]
    assert (info["defaults"]["steps"], info["defaults"]["cfg"]) == (4, 1.0)
    assert info["modes"] == ["txt2img", "inpaint", "edit"]


def test_previews_unpack_klein_latents_in_comfyuis_order_with_its_factors():
    from diffusers import Flux2KleinPipeline

    from dreamwire.backend.engine import preview

    # The sampler loop's 64 px latents: 4 x 4 tokens of 32 channels x 2 x 2 (diffusers'
    # packing), back to ComfyUI's 32 x 8 x 8 (its Flux2 latent_rgb_factors_reshape).
    patched = torch.randn(1, 128, 4, 4)
    latents = preview.unpack_patches(Flux2KleinPipeline._pack_latents(patched), 64, 64, 8)
    comfy = patched.reshape(1, 32, 2, 2, 4, 4).permute(0, 1, 4, 2, 5, 3).reshape(1, 32, 8, 8)
    assert torch.equal(latents, comfy)
    # Channel 3 is ComfyUI's brightest (0.21, 0.30, 0.37), channel 8 its darkest: set in the
    # top-left pixel of each 2x2 patch, they light and darken just those pixels.
    for channel, lighter in ((3, True), (8, False)):
        lit = torch.zeros(1, 128, 4, 4)
        lit[:, channel * 4] = 3.0
        rgb = preview.latents_to_rgb(
            preview.unpack_patches(Flux2KleinPipeline._pack_latents(lit), 64, 64, 8), "flux2"
        ).astype(int)
        corner, rest = rgb[0::2, 0::2].mean(), rgb[1::2, 1::2].mean()
        assert (corner - rest > 40) if lighter else (rest - corner > 40), channel


def test_a_klein_job_previews_in_colour(klein_engine):
    previews = []

    def on_progress(p):
        if getattr(p, "preview", None) is not None:
            previews.append(p.preview)

    klein_engine.run(job(preview_every=1, steps=1), on_progress=on_progress)
    assert previews and all(p.shape == (8, 8, 3) for p in previews)
    assert np.ptp(previews[-1].astype(int)) > 0  # not the flat grey of all-zero factors
