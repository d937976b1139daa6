"""Qwen-Image through the engine equals diffusers' Qwen pipelines (same components, seed and
thread count, so bit for bit), with real CFG over the negative prompt; what the family
cannot run is refused before anything loads."""

from __future__ import annotations

import diffusers
import numpy as np
import pytest
import torch
from PIL import Image

from dreamwire.backend.canvas.masks import composite
from dreamwire.backend.engine import noise
from dreamwire.shared import families
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job, Region

PROMPT = "a cat sitting on a red chair"
BASE = dict(
    model="tiny-qwen-image",
    prompt=PROMPT,
    negative="blurry",
    sampler="Euler",
    steps=2,
    cfg=2.5,
    width=64,
    height=64,
    seed=5,
)


def job(**kw) -> Job:
    return Job(**{**BASE, **kw})


def reference(engine, cls_name: str, **kwargs) -> np.ndarray:
    comps = engine.load("tiny-qwen-image", "").components
    names = ("vae", "text_encoder", "tokenizer", "transformer")
    pipe = getattr(diffusers, cls_name)(
        **{k: comps[k] for k in names},
        scheduler=type(comps["scheduler"]).from_config(comps["scheduler"].config),
    )
    pipe.set_progress_bar_config(disable=True)
    with torch.inference_mode():
        out = pipe(
            prompt=PROMPT,
            negative_prompt=kwargs.pop("negative_prompt", "blurry"),
            true_cfg_scale=kwargs.pop("true_cfg_scale", 2.5),
            num_inference_steps=2,
            generator=noise.generators([5]),
            output_type="np",
            height=64,
            width=64,
            **kwargs,
        )
    return (out.images[0] * 255).round().astype(np.uint8)


def diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def test_txt2img_equals_diffusers_with_real_cfg(qwen_engine):
    result = qwen_engine.run(job())
    assert diff(result.images[0].image, reference(qwen_engine, "QwenImagePipeline")) == 0
    info = result.images[0].infotext
    assert "Sampler: Euler, Schedule type: Simple, CFG scale: 2.5," in info
    # CFG 1: no negative pass, as diffusers without a negative prompt.
    plain = qwen_engine.run(job(cfg=1.0)).images[0].image
    expected = reference(qwen_engine, "QwenImagePipeline", negative_prompt=None, true_cfg_scale=1)
    assert diff(plain, expected) == 0
    assert diff(plain, result.images[0].image) > 0


def test_img2img_equals_diffusers(qwen_engine, init_image):
    result = qwen_engine.run(job(init_image=init_image, strength=0.6))
    expected = reference(
        qwen_engine, "QwenImageImg2ImgPipeline", image=Image.fromarray(init_image), strength=0.6
    )
    assert diff(result.images[0].image, expected) == 0
    assert "Denoising strength: 0.6" in result.images[0].infotext


def test_inpaint_equals_diffusers_then_overlay(qwen_engine, init_image, mask):
    result = qwen_engine.run(job(init_image=init_image, mask=mask, mask_blur=0, strength=0.9))
    generated = reference(
        qwen_engine,
        "QwenImageInpaintPipeline",
        image=Image.fromarray(init_image),
        mask_image=Image.fromarray(mask),
        strength=0.9,
    )
    assert diff(result.images[0].image, composite(init_image, generated, mask)) == 0
    outside = mask == 0
    assert np.array_equal(result.images[0].image[outside], init_image[outside])


def test_defaults_and_refusals_name_the_family(qwen_engine):
    assert families.QWEN_IMAGE.defaults.cfg == 2.5
    with pytest.raises(DreamwireError) as err:
        qwen_engine.run(
            job(regions=[Region(prompt="a hat", mask=np.full((64, 64), 255, np.uint8))])
        )
    assert err.value.code is ErrorCode.MODEL_UNSUPPORTED
    assert "Qwen-Image" in err.value.message
    with pytest.raises(DreamwireError) as err:
        qwen_engine.run(job(sampler="DPM++ 2M Karras"))
    assert err.value.code is ErrorCode.UNKNOWN_SAMPLER
