"""SD3.5 through the engine equals diffusers' SD3 pipelines (same components, seed and
thread count, so bit for bit), with its defaults and infotext; what the family cannot run
is refused before anything loads."""

from __future__ import annotations

import diffusers
import numpy as np
import pytest
import torch
from PIL import Image

from dreamwire.backend.canvas.masks import composite
from dreamwire.backend.engine import noise, planning
from dreamwire.backend.families import SPECS
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job, Region

PROMPT = "a cat sitting on a red chair"
BASE = dict(
    model="tiny-sd3",
    prompt=PROMPT,
    negative="blurry",
    sampler="Euler",
    steps=2,
    cfg=3.5,
    width=64,
    height=64,
    seed=5,
)
NAMES = tuple(c for c in SPECS["sd3"].components if c != "scheduler")


def job(**kw) -> Job:
    return Job(**{**BASE, **kw})


def reference(engine, cls_name: str, model: str = "tiny-sd3", **kwargs) -> np.ndarray:
    comps = engine.load(model, "").components
    pipe = getattr(diffusers, cls_name)(
        **{k: comps[k] for k in NAMES},
        scheduler=type(comps["scheduler"]).from_config(comps["scheduler"].config),
    )
    pipe.set_progress_bar_config(disable=True)
    kwargs.setdefault("negative_prompt", "blurry")
    kwargs.setdefault("guidance_scale", 3.5)
    kwargs.setdefault("num_inference_steps", 2)
    with torch.inference_mode():
        out = pipe(
            prompt=PROMPT,
            generator=noise.generators([5]),
            output_type="np",
            height=64,
            width=64,
            **kwargs,
        )
    return (out.images[0] * 255).round().astype(np.uint8)


def diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def test_txt2img_equals_diffusers_with_infotext(sd3_engine):
    result = sd3_engine.run(job())
    assert diff(result.images[0].image, reference(sd3_engine, "StableDiffusion3Pipeline")) == 0
    info = result.images[0].infotext
    assert "Sampler: Euler, Schedule type: Simple, CFG scale: 3.5," in info
    assert "Distilled CFG Scale" not in info


def test_img2img_equals_diffusers(sd3_engine, init_image):
    result = sd3_engine.run(job(init_image=init_image, strength=0.6))
    expected = reference(
        sd3_engine,
        "StableDiffusion3Img2ImgPipeline",
        image=Image.fromarray(init_image),
        strength=0.6,
    )
    assert diff(result.images[0].image, expected) == 0
    assert "Denoising strength: 0.6" in result.images[0].infotext


def test_inpaint_equals_diffusers_then_overlay(sd3_engine, init_image, mask):
    result = sd3_engine.run(job(init_image=init_image, mask=mask, mask_blur=0, strength=0.9))
    generated = reference(
        sd3_engine,
        "StableDiffusion3InpaintPipeline",
        image=Image.fromarray(init_image),
        mask_image=Image.fromarray(mask),
        strength=0.9,
    )
    assert diff(result.images[0].image, composite(init_image, generated, mask)) == 0
    outside = mask == 0
    assert np.array_equal(result.images[0].image[outside], init_image[outside])


def test_skip_layer_guidance_equals_diffusers_and_is_refused_where_it_cannot_run(
    sd3_engine, init_image
):
    # diffusers skips layers from 1 % to 20 % of the steps: 6 steps reach step 1.
    result = sd3_engine.run(job(slg_scale=3.0, steps=6))
    expected = reference(
        sd3_engine,
        "StableDiffusion3Pipeline",
        num_inference_steps=6,
        skip_guidance_layers=[1],  # tiny-sd3's, from the catalog
        skip_layer_guidance_scale=3.0,
    )
    assert diff(result.images[0].image, expected) == 0
    plain = reference(sd3_engine, "StableDiffusion3Pipeline", num_inference_steps=6)
    assert diff(result.images[0].image, plain) > 0
    assert "SLG Scale: 3, SLG Layers: 1" in result.images[0].infotext
    for bad, words in ((dict(init_image=init_image), "txt2img"), (dict(cfg=1.0), "CFG")):
        with pytest.raises(DreamwireError) as err:
            sd3_engine.run(job(slg_scale=3.0, **bad))
        assert words in err.value.message
    from dreamwire.backend.engine import family_support

    with pytest.raises(DreamwireError) as err:  # another family: refused by its spec
        family_support.check(job(slg_scale=3.0), "flux")
    assert "Flux.1" in err.value.message and "skip-layer" in err.value.message


def test_cfg_1_skips_the_negative_prompt_as_turbo_runs(sd3_engine):
    # At CFG 1 diffusers runs no negative pass: the negative prompt changes nothing.
    one = sd3_engine.run(job(cfg=1.0)).images[0].image
    other = sd3_engine.run(job(cfg=1.0, negative="ugly text")).images[0].image
    assert diff(one, other) == 0
    expected = reference(sd3_engine, "StableDiffusion3Pipeline", guidance_scale=1.0)
    assert diff(one, expected) == 0


def test_every_single_file_layout_loads_the_diffusers_folders_weights(sd3_library):
    # Stability's file (MMDiT + VAE, text encoders from the folders), the incl_clips
    # bundle and a bare MMDiT (VAE from models/vae) hold the diffusers folder's weights.
    folder = sd3_library.load_pipeline("tiny-sd3").components
    for name in ("sd3.5_large", "sd3.5_medium_incl_clips_t5xxl", "sd3.5_mmdit"):
        loaded = sd3_library.load_pipeline(name)
        assert type(loaded).__name__ == "StableDiffusion3Pipeline"
        for part in ("transformer", "vae", "text_encoder", "text_encoder_2", "text_encoder_3"):
            want, got = folder[part].state_dict(), loaded.components[part].state_dict()
            assert set(got) == set(want), (name, part)
            assert all(torch.equal(got[k], want[k]) for k in want), (name, part)


def test_weights_act_on_every_encoder_and_the_plain_prompt_is_diffusers(sd3_engine):
    from dreamwire.backend.sd3_encoding import encode

    comps = sd3_engine.load("tiny-sd3", "").components
    pipe = diffusers.StableDiffusion3Pipeline(
        **{k: comps[k] for k in comps if k in NAMES or k == "scheduler"}
    )
    with torch.inference_mode():
        plain = encode(pipe, PROMPT)
        embeds, _, pooled, _ = pipe.encode_prompt(
            PROMPT, None, None, do_classifier_free_guidance=False
        )
        weighted = encode(pipe, "a (cat:1.5) sitting on a red chair")
    assert torch.equal(plain.sequence, embeds) and torch.equal(plain.pooled, pooled)
    # CLIP's part (first 77 tokens) and T5's part both change; the pooled vector does not.
    assert not torch.equal(weighted.sequence[:, :77], plain.sequence[:, :77])
    assert not torch.equal(weighted.sequence[:, 77:], plain.sequence[:, 77:])
    assert torch.equal(weighted.pooled, plain.pooled)


def test_turbo_and_family_defaults(sd3_library):
    from dreamwire.backend.families import family_infos

    assert planning.model_defaults("sd3", "tiny-sd3-turbo").steps == 4
    assert planning.model_defaults("sd3", "sd3.5-large-turbo").cfg == 1.0
    assert planning.model_defaults("sd3", "sd3.5-medium").steps == 40
    large = planning.model_defaults("sd3", "sd3.5-large")
    assert (large.steps, large.cfg, large.sampler, large.distilled_cfg) == (28, 3.5, "Euler", None)
    info = family_infos()["sd3"]
    assert info["modes"] == ["txt2img", "img2img", "inpaint"]
    assert "controlnet" in info["supports"] and "regions" not in info["supports"]
    assert sd3_library.find("checkpoint", "sd3.5_large_turbo").arch == "tiny-sd3-turbo"


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (dict(regions=[Region(prompt="a dog", mask=np.full((64, 64), 255, np.uint8))]), "region"),
        (dict(prompt="a cat AND a dog"), "AND"),
        (dict(prompt="a [cat:dog:0.5]"), "prompt editing"),
        (dict(sampler="DPM++ 2M Karras"), "Euler"),
    ],
)
def test_what_sd3_cannot_run_is_refused_by_name(sd3_engine, extra, words):
    with pytest.raises(DreamwireError) as err:
        sd3_engine.run(job(**extra))
    assert words.lower() in err.value.message.lower()
    assert err.value.code in (ErrorCode.MODEL_UNSUPPORTED, ErrorCode.UNKNOWN_SAMPLER)
