"""What a family can do, as the hosts check it before sending (shared.family_support), and
the panel settings that follow the model's family (shared.family_presets, panel_job)."""

from __future__ import annotations

from dataclasses import fields, replace

import numpy as np
import pytest

from dreamwire.backend.engine import family_support as backend_support
from dreamwire.backend.families import family_infos, spec_for
from dreamwire.backend.families.spec import Support
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.events import Welcome
from dreamwire.shared.families import FLUX, SD1, SDXL
from dreamwire.shared.family_presets import FamilyPresets, Sampling
from dreamwire.shared.family_support import (
    EDIT_REASON,
    FEATURES,
    LAYERS_REASON,
    check_edit,
    check_job,
    check_mode,
    edit_refusal,
    family_info,
    job_features,
    mode_refusal,
    model_info,
    refusal,
    skip_layer_guidance_refusal,
)
from dreamwire.shared.job import ControlUnit, HiresFix, Job, Region, Upscale
from dreamwire.shared.panel_job import panel_job

WELCOME = Welcome.from_body(
    {
        "protocol": 1,
        "models": ["tiny-flux", "tiny-sd1"],
        "model_families": {"tiny-flux": "flux", "tiny-sd1": "sd1"},
        "default_model": "tiny-flux",
        "families": family_infos(),
    }
)
IMG = np.zeros((64, 64, 3), np.uint8)
# One job per feature a host can ask for (with Flux's sampler: the backend checks it first).
JOBS = {
    "hires_latent": dict(hires=HiresFix(upscaler="Latent")),
    "seamless": dict(seamless="both"),
    "regions": dict(regions=[Region(prompt="a cat", mask=np.full((64, 64), 255, np.uint8))]),
    "variation_seed": dict(subseed=3, subseed_strength=0.5),
    "refine_upscale": dict(init_image=IMG, upscale=Upscale(scale=2.0, refine=True)),
    "latent_fill": dict(
        init_image=IMG, mask=np.full((64, 64), 255, np.uint8), inpaint_fill="latent noise"
    ),
    "cfg_rescale": dict(cfg_rescale=0.7, cfg=1.0),
}


def test_every_backend_support_flag_has_a_reason_the_hosts_share():
    assert {f.name for f in fields(Support)} == set(FEATURES)


@pytest.mark.parametrize("feature", sorted(JOBS))
def test_the_host_refuses_what_the_backend_refuses_in_its_words(feature):
    job = Job(sampler="Euler", **JOBS[feature])
    # The hosts see the same features in a job as the backend's plan-time check does.
    assert job_features(job) == [feature] and feature in backend_support.requested(job)
    flux = model_info("tiny-flux", WELCOME)
    with pytest.raises(DreamwireError) as host:
        check_job(job, flux)
    with pytest.raises(DreamwireError) as backend:
        backend_support.check(job, "flux")
    assert host.value.code == ErrorCode.MODEL_UNSUPPORTED == backend.value.code
    assert host.value.message == backend.value.message == refusal(flux, feature)
    assert host.value.message.startswith("Flux.1 models: ")
    assert check_job(job, model_info("tiny-sd1", WELCOME)) is job  # SD1 runs them all


def test_flux_runs_controlnet_units():
    job = Job(sampler="Euler", controls=[ControlUnit(type="depth", image=IMG)])
    assert job_features(job) == ["controlnet"]
    assert check_job(job, model_info("tiny-flux", WELCOME)) is job
    backend_support.check(job, "flux")  # T2I-Adapter files are refused once found


def test_an_older_backend_leaves_every_feature_to_the_backend():
    old = Welcome.from_body({"protocol": 1, "model_families": {"flux1-dev": "flux"}})
    info = model_info("flux1-dev", old)
    assert info.family.key == "flux" and all(refusal(info, f) is None for f in FEATURES)
    assert model_info("flux1-dev-Q4", None).family is FLUX  # guessed from the name


def test_a_plain_upscale_runs_no_model_and_is_never_refused():
    job = Job(init_image=IMG, upscale=Upscale(scale=2.0, refine=False), seamless="both")
    assert job_features(job) == []
    assert check_job(job, model_info("tiny-flux", WELCOME)) is job


def test_the_welcomes_family_description_wins_over_the_hosts_table():
    body = {
        "protocol": 1,
        "model_families": {"m": "flux"},
        "families": {"flux": {**family_infos()["flux"], "label": "Flux (remote)"}},
    }
    info = model_info("m", Welcome.from_body(body))
    assert info.family.label == "Flux (remote)"
    assert refusal(info, "seamless").startswith("Flux (remote) models: ")
    assert spec_for("flux").refusal("seamless").message == refusal(
        replace(info, family=FLUX), "seamless"
    )


def _panel(**kw):
    base = dict(prompt="p", negative="", model="m", sampler="Euler a", steps=9, cfg=5.0)
    base.update(distilled_cfg=2.5, seed=1, cfg_rescale=0.7, slg_scale=3.0)
    base.update(kw)
    return type("Panel", (), base)()


def test_distilled_cfg_travels_only_for_a_family_that_takes_it():
    assert panel_job(_panel(), FLUX).distilled_cfg == 2.5
    assert panel_job(_panel(), SD1).distilled_cfg is None
    assert panel_job(_panel()).distilled_cfg is None
    assert panel_job(_panel(), FLUX).validate().distilled_cfg == 2.5


def test_cfg_rescale_and_slg_travel_only_where_the_family_and_the_job_run_them():
    def sent(family, **fields):
        info = family_info(family, WELCOME)
        job = panel_job(_panel(sampler="Euler"), info.family, info.supports, **fields)
        assert check_job(job, info) is job  # never a refusal of a setting the panel hides
        backend_support.check(job, family)
        return job.cfg_rescale, job.slg_scale

    assert sent("sdxl") == (0.7, 0.0)
    assert sent("sd3") == (0.0, 3.0)
    assert sent("flux") == (0.0, 0.0)
    # SD3.5 runs SLG in plain txt2img only: a two-pass or img2img job leaves it out.
    assert sent("sd3", hires=HiresFix(upscaler="Lanczos")) == (0.0, 0.0)
    assert sent("sd3", init_image=IMG, strength=0.5) == (0.0, 0.0)
    # What a job does run is refused by the backend in the shared words.
    job = Job(sampler="Euler", slg_scale=3.0, init_image=IMG, strength=0.5)
    with pytest.raises(DreamwireError) as err:
        backend_support.check(job, "sd3")
    assert skip_layer_guidance_refusal(job) in err.value.message


def test_a_model_of_another_family_switches_to_its_defaults_and_keeps_the_artists():
    presets = FamilyPresets()  # a new panel: SD's values
    sd_mine = Sampling(30, 6.0, "DPM++ 2M Karras", 3.5)
    flux = presets.switch(FLUX, sd_mine)
    assert flux == Sampling(20, 1.0, "Euler", 3.5)  # Forge's Flux preset
    # The artist tunes Flux; another Flux model keeps it.
    flux_mine = Sampling(12, 1.5, "Euler", 2.8)
    assert presets.switch(FLUX, flux_mine) is None
    # Back to SD: the artist's SD values, not SD's defaults; then Flux as left.
    assert presets.switch(SD1, flux_mine) == replace(sd_mine)
    assert presets.switch(FLUX, sd_mine) == flux_mine
    # SDXL, never used: its defaults; the hidden Distilled CFG stays as the panel has it.
    assert presets.switch(SDXL, flux_mine) == Sampling(20, 7.0, "DPM++ 2M Karras", 2.8)
    again = FamilyPresets.from_json(presets.to_json())
    assert again == presets and again.family == "sdxl"
    assert FamilyPresets.from_json("{broken") == FamilyPresets()
    assert FamilyPresets.from_json('{"kept": {"flux": {"steps": 1}}}') == FamilyPresets()


# A backend's welcome with Flux models of their own defaults (as Engine.capabilities
# writes them from the family spec's variants).
MODELS_WELCOME = Welcome.from_body(
    {
        "protocol": 1,
        "models": ["flux1-dev", "flux1-schnell", "flux1-kontext", "tiny-sd1"],
        "model_families": {
            "flux1-dev": "flux",
            "flux1-schnell": "flux",
            "flux1-kontext": "flux",
            "tiny-sd1": "sd1",
        },
        "model_defaults": {
            name: spec_for("flux").defaults(variant).to_wire()
            for name, variant in (("flux1-schnell", "schnell"), ("flux1-kontext", "kontext"))
        },
        "families": family_infos(),
    }
)


def test_a_model_with_defaults_of_its_own_is_described_with_them():
    schnell = model_info("flux1-schnell", MODELS_WELCOME).family.defaults
    assert (schnell.steps, schnell.cfg, schnell.sampler) == (4, 1.0, "Euler")
    assert schnell.distilled_cfg is None  # schnell has no guidance input
    assert model_info("flux1-kontext.safetensors", MODELS_WELCOME).family.defaults == replace(
        FLUX.defaults, distilled_cfg=2.5
    )
    assert model_info("flux1-dev", MODELS_WELCOME).family.defaults == FLUX.defaults
    # The job leaves out a Distilled CFG the model does not take.
    info = model_info("flux1-schnell", MODELS_WELCOME)
    assert panel_job(_panel(model="flux1-schnell"), info.family).distilled_cfg is None
    kontext = model_info("flux1-kontext", MODELS_WELCOME).family
    assert panel_job(_panel(model="flux1-kontext"), kontext).distilled_cfg == 2.5


def test_picking_a_model_moves_the_values_left_at_defaults_and_keeps_the_artists():
    def pick(model, current):
        return presets.pick(model, MODELS_WELCOME, current)

    presets = FamilyPresets()
    dev = pick("flux1-dev", Sampling(30, 6.0, "DPM++ 2M Karras", 3.5))
    assert dev == Sampling(20, 1.0, "Euler", 3.5)
    # schnell: its 4 steps; its hidden Distilled CFG stays as the panel has it.
    schnell = pick("flux1-schnell", dev)
    assert schnell == Sampling(4, 1.0, "Euler", 3.5)
    # Kontext: dev's steps again and its own 2.5, all values having been left alone.
    assert pick("flux1-kontext", schnell) == Sampling(20, 1.0, "Euler", 2.5)
    # The artist sets steps 28 and Distilled CFG 4 on Kontext: schnell keeps both (the
    # Distilled CFG hidden), dev too; the CFG left at 1 stays 1.
    mine = Sampling(28, 1.0, "Euler", 4.0)
    assert pick("flux1-schnell", mine) is None
    assert pick("flux1-dev", mine) is None
    # Steps back at dev's default: they follow the next model's again.
    assert pick("flux1-schnell", replace(mine, steps=20)) == replace(mine, steps=4)
    # Through another family and back: the Flux values as left, moved to the model picked.
    left = replace(mine, steps=4)
    sd = pick("tiny-sd1", left)
    assert sd == Sampling(30, 6.0, "DPM++ 2M Karras", 3.5)  # SD's as the panel left them
    assert pick("flux1-kontext", sd) == replace(mine, steps=20)
    again = FamilyPresets.from_json(presets.to_json())
    assert again == presets and again.origin["flux"].distilled_cfg == 2.5
    # A record from before origins were kept follows from the family's shared defaults.
    old = FamilyPresets.from_json('{"family": "flux", "kept": {}}')
    assert old.pick("flux1-schnell", MODELS_WELCOME, dev).steps == 4


EDIT_WELCOME = replace(
    WELCOME,
    models=["tiny-flux", "tiny-flux-kontext", "tiny-sd1"],
    model_families={**WELCOME.model_families, "tiny-flux-kontext": "flux"},
    model_modes={
        "tiny-flux": ["txt2img", "img2img", "inpaint"],
        "tiny-flux-kontext": ["txt2img", "img2img", "edit"],
        "tiny-sd1": ["txt2img", "img2img", "inpaint", "edit"],  # a family without "edit"
    },
)


def test_only_an_edit_model_of_an_edit_family_is_offered_an_edit():
    assert edit_refusal("tiny-flux-kontext", EDIT_WELCOME) is None
    assert edit_refusal("tiny-flux-kontext.safetensors", EDIT_WELCOME) is None  # a file name
    assert edit_refusal("tiny-flux", EDIT_WELCOME) == EDIT_REASON
    assert edit_refusal("", EDIT_WELCOME) == EDIT_REASON  # the default: tiny-flux
    # SD's family lists no edit mode, whatever a (wrong) model entry says.
    assert edit_refusal("tiny-sd1", EDIT_WELCOME) == EDIT_REASON
    # An older backend that does not name its models' modes, or none at all: no edit.
    assert edit_refusal("tiny-flux-kontext", WELCOME) == EDIT_REASON
    assert edit_refusal("tiny-flux-kontext", None) == EDIT_REASON
    with pytest.raises(DreamwireError) as err:
        check_edit("tiny-flux", EDIT_WELCOME)
    assert err.value.code is ErrorCode.MODEL_UNSUPPORTED and EDIT_REASON in err.value.message
    check_edit("tiny-flux-kontext", EDIT_WELCOME)


def test_only_a_layered_model_is_offered_layers():
    qwen = {"tiny-qwen-image": "qwen-image", "tiny-qwen-image-layered": "qwen-image"}
    welcome = replace(
        WELCOME,
        models=[*WELCOME.models, *qwen],
        model_families={**WELCOME.model_families, **qwen},
        model_modes={
            "tiny-flux": ["txt2img", "img2img", "inpaint"],
            "tiny-qwen-image": ["txt2img", "img2img", "inpaint"],
            "tiny-qwen-image-layered": ["layers"],
        },
    )
    assert mode_refusal("layers", "tiny-qwen-image-layered", welcome) is None
    assert mode_refusal("layers", "tiny-qwen-image", welcome) == LAYERS_REASON
    assert mode_refusal("layers", "tiny-flux", welcome) == LAYERS_REASON  # no such family mode
    assert mode_refusal("layers", "tiny-qwen-image-layered", WELCOME) == LAYERS_REASON
    with pytest.raises(DreamwireError) as err:
        check_mode("layers", "tiny-qwen-image", welcome)
    assert err.value.code is ErrorCode.MODEL_UNSUPPORTED and LAYERS_REASON in err.value.message
    check_mode("layers", "tiny-qwen-image-layered", welcome)
