"""Qwen-Image through the engine equals diffusers' Qwen pipelines (same components, seed and
thread count, so bit for bit), with real CFG over the negative prompt; what the family
cannot run is refused before anything loads."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dreamwire.backend.canvas.masks import composite
from dreamwire.shared import families
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job, Region
from tests.qwen.reference import BASE, PROMPT, maxdiff, reference

MODEL = "tiny-qwen-image"


def job(**kw) -> Job:
    return Job(**{"model": MODEL, "prompt": PROMPT, **BASE, **kw})


def expected(engine, cls_name: str, **call) -> np.ndarray:
    return reference(engine, MODEL, cls_name, height=64, width=64, **call)[0]


def test_txt2img_equals_diffusers_with_real_cfg(qwen_engine):
    result = qwen_engine.run(job())
    assert maxdiff(result.images[0].image, expected(qwen_engine, "QwenImagePipeline")) == 0
    info = result.images[0].infotext
    assert "Sampler: Euler, Schedule type: Simple, CFG scale: 2.5," in info
    # CFG 1: no negative pass, as diffusers without a negative prompt.
    plain = qwen_engine.run(job(cfg=1.0)).images[0].image
    alone = expected(qwen_engine, "QwenImagePipeline", negative_prompt=None, true_cfg_scale=1)
    assert maxdiff(plain, alone) == 0
    assert maxdiff(plain, result.images[0].image) > 0


def test_img2img_equals_diffusers(qwen_engine, init_image):
    result = qwen_engine.run(job(init_image=init_image, strength=0.6))
    want = expected(
        qwen_engine, "QwenImageImg2ImgPipeline", image=Image.fromarray(init_image), strength=0.6
    )
    assert maxdiff(result.images[0].image, want) == 0
    assert "Denoising strength: 0.6" in result.images[0].infotext


def test_inpaint_equals_diffusers_then_overlay(qwen_engine, init_image, mask):
    result = qwen_engine.run(job(init_image=init_image, mask=mask, mask_blur=0, strength=0.9))
    generated = expected(
        qwen_engine,
        "QwenImageInpaintPipeline",
        image=Image.fromarray(init_image),
        mask_image=Image.fromarray(mask),
        strength=0.9,
    )
    assert maxdiff(result.images[0].image, composite(init_image, generated, mask)) == 0
    outside = mask == 0
    assert np.array_equal(result.images[0].image[outside], init_image[outside])


def test_defaults_and_refusals_name_the_family(qwen_engine):
    assert families.QWEN_IMAGE.defaults.cfg == 2.5
    region = Region(prompt="a hat", mask=np.full((64, 64), 255, np.uint8))
    with pytest.raises(DreamwireError) as err:
        qwen_engine.run(job(regions=[region]))
    assert err.value.code is ErrorCode.MODEL_UNSUPPORTED
    assert "Qwen-Image" in err.value.message
    with pytest.raises(DreamwireError) as err:
        qwen_engine.run(job(sampler="DPM++ 2M Karras"))
    assert err.value.code is ErrorCode.UNKNOWN_SAMPLER
    img, square = np.zeros((64, 64, 3), np.uint8), np.full((64, 64), 255, np.uint8)
    with pytest.raises(DreamwireError) as err:  # SD's latent fills: refused, not a crash
        qwen_engine.run(job(init_image=img, mask=square, inpaint_fill="latent noise"))
    assert err.value.code is ErrorCode.MODEL_UNSUPPORTED and "latent noise" in err.value.message


def test_previews_unpack_qwen_latents_with_its_factors(qwen_engine):
    previews = []

    def on_progress(p):
        if getattr(p, "preview", None) is not None:
            previews.append(p.preview)

    qwen_engine.run(job(preview_every=1, width=64, height=48), on_progress=on_progress)
    # 2x2-packed 16-channel latents back to 6 x 8 (ComfyUI's Wan21 factors to RGB).
    assert previews and all(p.shape == (6, 8, 3) for p in previews)


def test_large_jobs_tile_the_qwen_vae_at_its_own_tile_sizes(qwen_parts):
    from dreamwire.backend.engine.tiled_vae import tiled

    vae = qwen_parts["vae"]  # AutoencoderKLQwenImage: no square tile size
    assert not vae.use_tiling
    with tiled(vae, True, 512) as on:
        assert on and vae.use_tiling
    assert not vae.use_tiling  # put back after the job
