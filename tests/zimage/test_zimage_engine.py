"""Z-Image Turbo through the engine equals diffusers' Z-Image pipelines (same components,
seed and thread count, so bit for bit), from ComfyUI's single files; what the family cannot
run is refused before anything loads."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dreamwire.backend.canvas.masks import composite
from dreamwire.shared import families
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import ControlUnit, HiresFix, Job
from tests.support.pipeline_reference import reference_image

MODEL = "z_image_turbo_bf16"  # ComfyUI's transformer file: its parts come from the library
PROMPT = "a cat sitting on a red chair"
CANNY = np.zeros((64, 64, 3), np.uint8)
BASE = dict(model=MODEL, prompt=PROMPT, sampler="Euler", steps=2, cfg=1.0, width=64, height=64)


def job(**kw) -> Job:
    return Job(**{**BASE, "seed": 5, **kw})


def reference(engine, cls_name: str, chat_tokenizer, **kwargs) -> np.ndarray:
    """diffusers' own pipeline over the engine's loaded components, with the diffusers
    folder's tokenizer (Qwen3's chat template applied by diffusers itself)."""
    return reference_image(engine, MODEL, cls_name, PROMPT, tokenizer=chat_tokenizer, **kwargs)


@pytest.fixture(scope="module")
def chat_tokenizer(zimage_tree):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(
        str(zimage_tree.root / "models" / "diffusers" / "tiny-zimage" / "tokenizer")
    )


def diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def test_txt2img_equals_diffusers(zimage_engine, chat_tokenizer):
    result = zimage_engine.run(job())
    expected = reference(zimage_engine, "ZImagePipeline", chat_tokenizer, guidance_scale=0.0)
    assert diff(result.images[0].image, expected) == 0
    info = result.images[0].infotext
    assert "Sampler: Euler, Schedule type: Simple, CFG scale: 1," in info


def test_cfg_above_one_runs_the_negative_prompt(zimage_engine, chat_tokenizer):
    # ComfyUI's CFG 3 is diffusers' guidance_scale 2 (cond + 2 * (cond - uncond)).
    result = zimage_engine.run(job(cfg=3.0, negative="blurry"))
    expected = reference(
        zimage_engine,
        "ZImagePipeline",
        chat_tokenizer,
        guidance_scale=2.0,
        negative_prompt="blurry",
    )
    assert diff(result.images[0].image, expected) == 0
    plain = zimage_engine.run(job()).images[0].image
    assert diff(result.images[0].image, plain) > 0


def test_img2img_equals_diffusers(zimage_engine, chat_tokenizer, init_image):
    result = zimage_engine.run(job(init_image=init_image, strength=0.6))
    expected = reference(
        zimage_engine,
        "ZImageImg2ImgPipeline",
        chat_tokenizer,
        image=Image.fromarray(init_image),
        strength=0.6,
        guidance_scale=0.0,
    )
    assert diff(result.images[0].image, expected) == 0
    assert "Denoising strength: 0.6" in result.images[0].infotext


def test_inpaint_equals_diffusers_then_overlay(zimage_engine, chat_tokenizer, init_image, mask):
    result = zimage_engine.run(job(init_image=init_image, mask=mask, mask_blur=0, strength=0.9))
    generated = reference(
        zimage_engine,
        "ZImageInpaintPipeline",
        chat_tokenizer,
        image=Image.fromarray(init_image),
        mask_image=Image.fromarray(mask),
        strength=0.9,
        guidance_scale=0.0,
    )
    assert diff(result.images[0].image, composite(init_image, generated, mask)) == 0
    outside = mask == 0
    assert np.array_equal(result.images[0].image[outside], init_image[outside])


@pytest.mark.parametrize(
    ("kw", "code"),
    [
        (dict(prompt="a [cat:dog:0.5]"), ErrorCode.MODEL_UNSUPPORTED),
        (dict(hires=HiresFix(scale=2.0, upscaler="Latent")), ErrorCode.MODEL_UNSUPPORTED),
        (dict(seamless="both"), ErrorCode.MODEL_UNSUPPORTED),
        (dict(sampler="DPM++ 2M Karras"), ErrorCode.UNKNOWN_SAMPLER),
        (dict(controls=[ControlUnit(type="ip-adapter", image=CANNY)]), ErrorCode.MODEL_UNSUPPORTED),
    ],
)
def test_what_z_image_cannot_run_is_refused_by_name(zimage_engine, kw, code):
    with pytest.raises(DreamwireError) as err:
        zimage_engine.run(job(**kw))
    assert err.value.code == code
    assert "Z-Image" in err.value.message


def test_welcome_defaults_are_turbo_s():
    from dreamwire.backend.families import family_infos

    info = family_infos()["zimage"]
    assert info["defaults"] == families.ZIMAGE.defaults.to_wire()
    assert (info["defaults"]["steps"], info["defaults"]["cfg"]) == (8, 1.0)
    assert info["modes"] == ["txt2img", "img2img", "inpaint"]
    assert "controlnet" in info["supports"] and "regions" not in info["supports"]
