"""Flux.1 through the engine equals diffusers' Flux pipelines (same components, seed and
thread count, so bit for bit), with Forge's settings and infotext; what the family cannot
run yet is refused before anything loads."""

from __future__ import annotations

import re
from dataclasses import replace

import diffusers
import numpy as np
import pytest
import torch
from PIL import Image

from dreamwire.backend.canvas.masks import composite
from dreamwire.backend.engine import noise, planning
from dreamwire.shared import families
from dreamwire.shared.errors import DreamwireError
from dreamwire.shared.events import Welcome
from dreamwire.shared.job import ControlUnit, HiresFix, Job, Outpaint, Region
from dreamwire.shared.job_mode import JobMode
from tests.engine.reference import a1111_steps

FLUX_DEFAULTS = families.FLUX.defaults

PROMPT = "a cat sitting on a red chair"
BASE = dict(
    model="tiny-flux", prompt=PROMPT, sampler="Euler", steps=4, cfg=1.0, width=64, height=64, seed=5
)


def job(**kw) -> Job:
    return Job(**{**BASE, **kw})


def reference(
    engine, cls_name: str, seed: int = 5, model: str = "tiny-flux", **kwargs
) -> np.ndarray:
    comps = engine.load(model, "").components
    names = ("vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "transformer")
    pipe = getattr(diffusers, cls_name)(
        **{k: comps[k] for k in names},
        scheduler=type(comps["scheduler"]).from_config(comps["scheduler"].config),
    )
    pipe.set_progress_bar_config(disable=True)
    prompt = kwargs.pop("prompt_override", PROMPT)
    with torch.inference_mode():
        out = pipe(
            prompt=prompt,
            num_inference_steps=kwargs.pop("num_inference_steps", 4),
            generator=noise.generators([seed]),
            output_type="np",
            **kwargs,
        )
    return (out.images[0] * 255).round().astype(np.uint8)


def diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def test_txt2img_equals_diffusers_with_forge_infotext(flux_engine):
    result = flux_engine.run(job())
    expected = reference(flux_engine, "FluxPipeline", guidance_scale=3.5, height=64, width=64)
    assert diff(result.images[0].image, expected) == 0
    info = result.images[0].infotext
    assert "Sampler: Euler, Schedule type: Simple, CFG scale: 1," in info
    assert "Distilled CFG Scale: 3.5" in info


def test_distilled_cfg_and_real_cfg_reach_the_pipeline(flux_engine):
    result = flux_engine.run(job(distilled_cfg=2.0, cfg=3.0, negative="blurry"))
    expected = reference(
        flux_engine,
        "FluxPipeline",
        guidance_scale=2.0,
        true_cfg_scale=3.0,
        negative_prompt="blurry",
        height=64,
        width=64,
    )
    assert diff(result.images[0].image, expected) == 0
    plain = flux_engine.run(job()).images[0].image
    assert diff(result.images[0].image, plain) > 0  # the settings changed the init_image
    assert re.search(r"Distilled CFG Scale: 2(,|$)", result.images[0].infotext)


def test_img2img_equals_diffusers(flux_engine, init_image):
    result = flux_engine.run(job(init_image=init_image, strength=0.6))
    expected = reference(
        flux_engine,
        "FluxImg2ImgPipeline",
        image=Image.fromarray(init_image),
        **a1111_steps(4, 0.6, flow=True),  # A1111/Forge: int(0.6 * 4) + 1 = 3 steps of 4
        guidance_scale=3.5,
        height=64,
        width=64,
    )
    assert diff(result.images[0].image, expected) == 0
    assert "Denoising strength: 0.6" in result.images[0].infotext


def test_inpaint_equals_diffusers_then_overlay(flux_engine, init_image, mask):
    # "off": on the job's own model, though the library has a Fill model.
    inpaint = dict(init_image=init_image, mask=mask, mask_blur=0, strength=0.9)
    result = flux_engine.run(job(**inpaint, inpaint_model="off"))
    generated = reference(
        flux_engine,
        "FluxInpaintPipeline",
        image=Image.fromarray(init_image),
        mask_image=Image.fromarray(mask),
        **a1111_steps(4, 0.9, flow=True),  # A1111/Forge: all 4 steps
        guidance_scale=3.5,
        height=64,
        width=64,
    )
    assert diff(result.images[0].image, composite(init_image, generated, mask)) == 0
    outside = mask == 0
    assert np.array_equal(result.images[0].image[outside], init_image[outside])


def test_fill_model_inpaints_with_its_own_pipeline_and_guidance(flux_engine, init_image, mask):
    fill = dict(model="tiny-flux-fill", init_image=init_image, mask=mask, mask_blur=0)
    result = flux_engine.run(job(**fill, strength=1.0))
    generated = reference(
        flux_engine,
        "FluxFillPipeline",
        model="tiny-flux-fill",
        image=Image.fromarray(init_image),
        mask_image=Image.fromarray(mask),
        guidance_scale=30.0,  # Fill's default Distilled CFG
        height=64,
        width=64,
    )
    assert diff(result.images[0].image, composite(init_image, generated, mask)) == 0
    assert "Distilled CFG Scale: 30" in result.images[0].infotext
    # What a Fill model cannot do is refused before sampling, naming why.
    for bad, words in (
        (dict(model="tiny-flux-fill"), "cannot run txt2img"),
        (dict(**fill, cfg=4.0), "no negative prompt"),
    ):
        with pytest.raises(DreamwireError) as err:
            flux_engine.run(job(**bad))
        assert words in err.value.message and "Fill" in err.value.message


def test_inpaint_on_dev_runs_on_the_librarys_fill_model(flux_engine, init_image, mask):
    # The artist's dev settings, Distilled CFG included: Fill runs at its own 30.
    inpaint = dict(init_image=init_image, mask=mask, mask_blur=0, strength=1.0)
    auto = flux_engine.run(job(**inpaint, distilled_cfg=3.5))
    on_fill = flux_engine.run(job(**inpaint, model="tiny-flux-fill"))
    assert diff(auto.images[0].image, on_fill.images[0].image) == 0
    info = auto.images[0].infotext
    assert "Model: tiny-flux-fill," in info and "Inpaint model: auto for tiny-flux" in info
    assert "Distilled CFG Scale: 30" in info
    off = flux_engine.run(job(**inpaint, inpaint_model="off", distilled_cfg=3.5))
    assert diff(off.images[0].image, auto.images[0].image) > 0
    assert "Model: tiny-flux," in off.images[0].infotext
    assert "Inpaint model" not in off.images[0].infotext


def test_the_fill_model_is_chosen_at_plan_time_only_where_it_can_run(
    flux_root, flux_library, mask, tmp_path
):
    from dreamwire.backend.engine import inpaint_model
    from dreamwire.backend.library import ModelLibrary

    image = np.zeros((64, 64, 3), np.uint8)
    inpaint = dict(init_image=image, mask=mask)
    plan = planning.plan(job(**inpaint).validate(), flux_library)
    assert (plan.checkpoint, plan.stands_in_for) == ("tiny-flux-fill", "tiny-flux")
    # Kept on the job's model: turned off, another mode, real CFG (Fill takes no negative
    # prompt), a ControlNet unit (Fill has no ControlNet pipeline), an edit model.
    for kept in (
        job(**inpaint, inpaint_model="off"),
        job(init_image=image),
        job(**inpaint, cfg=3.0),
        job(**inpaint, controls=[ControlUnit(type="canny", image=image)]),
        job(**inpaint, model="tiny-flux-kontext"),
    ):
        # The decision itself (a plan of the unit job would also resolve its unit's file).
        kept.validate()
        entry = flux_library.find("checkpoint", kept.model or "tiny-flux")
        assert inpaint_model.stand_in(kept, entry, "flux", flux_library) is None
    assert planning.plan(job(**inpaint, cfg=3.0).validate(), flux_library).checkpoint == ""
    # A library without a Fill model: today's FluxInpaintPipeline path.
    checkpoints = tmp_path / "models" / "Stable-diffusion"
    checkpoints.mkdir(parents=True)
    (checkpoints / "tiny-flux").symlink_to(flux_root / "models" / "Stable-diffusion" / "tiny-flux")
    without = ModelLibrary([tmp_path])
    assert planning.plan(job(**inpaint).validate(), without).checkpoint == ""
    with pytest.raises(DreamwireError, match="inpaint_model"):
        job(**inpaint, inpaint_model="always").validate()


def test_kontext_edit_follows_the_instruction_with_the_picture_as_reference(
    flux_engine, init_image
):
    edit = job(
        model="tiny-flux-kontext",
        mode=JobMode.EDIT,
        prompt="make the cat red",
        init_image=init_image,
    )
    result = flux_engine.run(edit)
    expected = reference(
        flux_engine,
        "FluxKontextPipeline",
        model="tiny-flux-kontext",
        image=Image.fromarray(init_image),
        prompt_override="make the cat red",
        guidance_scale=2.5,  # Kontext's default Distilled CFG
        height=64,
        width=64,
        _auto_resize=False,
        max_area=64 * 64,
    )
    assert diff(result.images[0].image, expected) == 0
    assert "Distilled CFG Scale: 2.5" in result.images[0].infotext
    assert "Denoising strength" not in result.images[0].infotext
    # Without the picture, the same model draws from the instruction alone.
    other = flux_engine.run(job(model="tiny-flux-kontext", prompt="make the cat red"))
    assert diff(other.images[0].image, result.images[0].image) > 0
    # A model with no edit pipeline refuses an edit job before loading anything.
    with pytest.raises(DreamwireError) as err:
        flux_engine.run(job(mode=JobMode.EDIT, prompt="make it red", init_image=init_image))
    assert "needs an edit model" in err.value.message


def test_batch_images_follow_their_own_seeds(flux_engine):
    # A1111's batch rule on Flux too: image i is what seed + i gives alone.
    batch = flux_engine.run(job(batch=2, seed=11)).images
    alone = flux_engine.run(job(seed=12)).images[0]
    assert [im.seed for im in batch] == [11, 12]
    assert diff(batch[1].image, alone.image) <= 1


def test_hires_fix_with_a_pixel_upscaler_and_outpaint_run_on_flux(flux_engine, init_image):
    hires = flux_engine.run(job(hires=HiresFix(scale=1.5, denoise=0.5, upscaler="Lanczos")))
    image = hires.images[0]
    assert image.image.shape == (96, 96, 3)
    assert "Hires upscaler: Lanczos" in image.infotext
    grown = flux_engine.run(
        job(init_image=init_image, outpaint=Outpaint(right=16, top=8), strength=1.0)
    ).images[0]
    assert grown.image.shape == (72, 80, 3)
    # The original picture is kept where nothing was repainted (soft mask edge aside).
    assert diff(grown.image[40:, :40], init_image[32:, :40]) == 0


def test_weights_act_on_t5_and_break_keeps_clips_first_chunk(flux_engine):
    from dreamwire.backend.clip_t5_encoding import encode

    comps = flux_engine.load("tiny-flux", "").components
    pipe = diffusers.FluxPipeline(**{k: comps[k] for k in comps})
    with torch.inference_mode():
        plain = encode(pipe, "a cat on a chair")
        weighted = encode(pipe, "a (cat:1.5) on a chair")
        broken = encode(pipe, "a cat on a chair BREAK red house")
    # The weighted sequence differs, with its mean restored (A1111 "Original" emphasis).
    assert not torch.equal(plain.sequence, weighted.sequence)
    assert torch.allclose(plain.sequence.mean(), weighted.sequence.mean(), atol=1e-5)
    # The pooled CLIP vector ignores weights and comes from the text before BREAK.
    assert torch.equal(plain.pooled, weighted.pooled)
    assert torch.equal(plain.pooled, broken.pooled)
    assert not torch.equal(plain.sequence, broken.sequence)


def test_previews_unpack_flux_latents(flux_engine):
    shapes = []

    def on_progress(p):
        if getattr(p, "preview", None) is not None:
            shapes.append(p.preview.shape)

    flux_engine.run(job(preview_every=1, width=64, height=48), on_progress=on_progress)
    assert shapes and all(s[:2] == (6, 8) and s[2] == 3 for s in shapes)


@pytest.mark.parametrize(
    "changes, words",
    [
        (dict(sampler="DPM++ 2M Karras"), "sample with Euler"),
        (dict(hires=HiresFix(upscaler="Latent")), "Latent upscaler"),
        (dict(seamless="both"), "seamless"),
        (dict(prompt="a cat AND a dog"), "AND prompts"),
        (dict(prompt="a [cat:dog:2]"), "prompt editing"),
        (dict(subseed_strength=0.3, subseed=2), "variation seeds"),
        (dict(regions=[Region(prompt="a dog", mask=np.full((64, 64), 255, np.uint8))]), "regional"),
    ],
)
def test_what_flux_cannot_run_is_refused_before_loading(flux_library, changes, words):
    from dreamwire.backend.engine import Engine

    engine = Engine(flux_library, device="cpu", extensions=[], cache_size=1)
    with pytest.raises(DreamwireError) as err:
        engine.run(job(**changes))
    assert "Flux.1" in err.value.message and words in err.value.message
    assert len(engine.models) == 0  # refused by the plan: nothing was loaded


def test_the_welcome_names_the_modes_each_model_runs(flux_engine):
    # From each checkpoint's catalog variant, read without loading anything: the hosts
    # offer an edit only on a model listing it.
    modes = flux_engine.capabilities()["model_modes"]
    assert "edit" in modes["tiny-flux-kontext"]
    assert modes["tiny-flux"] == ["txt2img", "img2img", "inpaint"]
    assert set(modes) == set(flux_engine.capabilities()["models"])


def test_the_welcome_names_the_models_with_defaults_of_their_own(flux_engine):
    # Fill and Kontext have their own Distilled CFG; tiny-flux (dev) has the family's.
    defaults = Welcome.from_body(flux_engine.capabilities()).model_defaults
    assert set(defaults) == {"tiny-flux-fill", "tiny-flux-kontext"}
    assert defaults["tiny-flux-kontext"] == replace(FLUX_DEFAULTS, distilled_cfg=2.5)
    assert defaults["tiny-flux-fill"].distilled_cfg == 30.0
    # schnell (no tiny one is built): 4 steps, no guidance input, from its catalog variant.
    schnell = planning.model_defaults("flux", "flux-schnell")
    assert (schnell.steps, schnell.distilled_cfg) == (4, None)
    assert planning.model_defaults("flux", "flux-dev") == FLUX_DEFAULTS


def test_admission_counts_the_fill_model_an_inpaint_job_runs_on(flux_engine, init_image, mask):
    from dreamwire.backend.engine import library_adapter as libs

    flux_engine.load("tiny-flux")  # resident: a job kept on it adds no weights
    inpaint = dict(init_image=init_image, mask=mask, mask_blur=0, strength=1.0)
    (kept,) = flux_engine.check_memory(job(**inpaint, inpaint_model="off"))
    (on_fill,) = flux_engine.check_memory(job(**inpaint))
    fill = libs.params(libs.checkpoint(flux_engine.library, "tiny-flux-fill"))
    assert on_fill.weights - kept.weights == fill * 4  # fp32 on the CPU
