"""A Flux model in the Krita docker's logic: jobs carry the Distilled CFG, control types
the backend's Flux ControlNets do not serve are greyed out with its reason, and a Flux
result's parameters copy back."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from dreamwire_krita.logic import controls
from dreamwire_krita.logic.geometry import Rect
from dreamwire_krita.logic.history import params_from_infotext
from dreamwire_krita.logic.jobs import generate_job, refine_job
from dreamwire_krita.logic.params import Params
from dreamwire_krita.logic.regions import plan_generate, plan_refine
from dreamwire_krita.logic.upscale import UpscaleChoice, upscale_job

from dreamwire.backend.families import family_infos
from dreamwire.shared.errors import DreamwireError
from dreamwire.shared.events import Welcome
from dreamwire.shared.family_presets import FamilyPresets, Sampling
from dreamwire.shared.family_support import check_job, model_info

WELCOME = Welcome.from_body(
    {
        "protocol": 1,
        "models": ["tiny-flux", "tiny-sd1"],
        "model_families": {"tiny-flux": "flux", "tiny-sd1": "sd1"},
        "control_types": {"sd1": {"depth": "d.safetensors"}, "flux": {"canny": "union"}},
        "control_missing": {"flux": {"normalbae": "no normalbae ControlNet for Flux.1"}},
        "families": family_infos(),
    }
)
FLUX = model_info("tiny-flux", WELCOME)
# The welcome of a backend with a schnell checkpoint: its own defaults (Engine.capabilities).
SCHNELL_WELCOME = Welcome.from_body(
    {
        "protocol": 1,
        "models": ["tiny-flux", "flux1-schnell"],
        "model_families": {"tiny-flux": "flux", "flux1-schnell": "flux"},
        "model_defaults": {
            "flux1-schnell": {"steps": 4, "cfg": 1.0, "sampler": "Euler", "distilled_cfg": None}
        },
        "families": family_infos(),
    }
)
P = Params(prompt="a fox", model="tiny-flux", sampler="Euler", cfg=1.0, distilled_cfg=2.5)


def test_flux_jobs_carry_the_distilled_cfg_and_sd_jobs_do_not():
    plan = plan_generate(Rect(0, 0, 64, 64), None)
    assert generate_job(P, plan, family=FLUX.family).distilled_cfg == 2.5
    assert generate_job(P, plan, family="sd1").distilled_cfg is None
    rgba = np.full((64, 64, 4), 200, np.uint8)
    refine = refine_job(P, plan_refine(Rect(0, 0, 64, 64), None), rgba, family=FLUX.family)
    assert refine.distilled_cfg == 2.5 and refine.mode == "img2img"
    stored = Params.from_dict(P.to_dict())
    assert stored.distilled_cfg == 2.5 and Params.from_dict({}).distilled_cfg == 3.5


def test_picking_schnell_takes_its_steps_and_sends_no_distilled_cfg():
    # The docker's model change (docker._family_changed): the panel's values, the rule.
    presets = FamilyPresets(family="flux")
    p = Params(model="flux1-schnell", sampler="Euler", steps=20, cfg=1.0, distilled_cfg=3.5)
    info = model_info(p.model, SCHNELL_WELCOME)
    new = presets.pick(p.model, SCHNELL_WELCOME, Sampling(p.steps, p.cfg, p.sampler, 3.5))
    assert new == Sampling(4, 1.0, "Euler", 3.5)
    p = replace(p, steps=new.steps)
    job = generate_job(p, plan_generate(Rect(0, 0, 64, 64), None), family=info.family)
    assert job.steps == 4 and job.distilled_cfg is None
    # Tuned to 6 steps, back on dev: the artist's 6 stay; the Distilled CFG travels again.
    dev = model_info("tiny-flux", SCHNELL_WELCOME)
    assert presets.pick("tiny-flux", SCHNELL_WELCOME, Sampling(6, 1.0, "Euler", 3.5)) is None
    p = replace(p, model="tiny-flux", steps=6)
    job = generate_job(p, plan_generate(Rect(0, 0, 64, 64), None), family=dev.family)
    assert job.steps == 6 and job.distilled_cfg == 3.5


def test_flux_control_types_follow_the_backends_flux_controlnets():
    flux = {o.label: o for o in controls.offers(WELCOME, "flux")}
    assert flux["Canny"].available and not flux["Depth"].available
    assert flux["Normals"].why.endswith("no normalbae ControlNet for Flux.1")
    sd1 = {o.label: o for o in controls.offers(WELCOME, "sd1")}
    assert sd1["Depth"].available and not sd1["Canny"].available


def test_an_upscale_refine_is_refused_for_flux_and_a_plain_one_is_not():
    canvas = np.full((32, 32, 4), 90, np.uint8)
    refine = upscale_job(P, canvas, UpscaleChoice(refine=True), FLUX.family)
    with pytest.raises(DreamwireError, match="] Flux.1 models: tiled upscale-and-refine"):
        check_job(refine, FLUX)
    plain = upscale_job(P, canvas, UpscaleChoice(refine=False), FLUX.family)
    assert check_job(plain, FLUX) is plain


def test_a_flux_results_parameters_copy_back():
    text = (
        "a fox\nSteps: 4, Sampler: Euler, Schedule type: Simple, CFG scale: 1, "
        "Distilled CFG Scale: 2.8, Seed: 9, Size: 64x64, Model: tiny-flux"
    )
    back = params_from_infotext(text, Params(sampler="DPM++ 2M Karras", distilled_cfg=3.5))
    assert (back.sampler, back.cfg, back.distilled_cfg, back.steps) == ("Euler", 1.0, 2.8, 4)
    sd = params_from_infotext("x\nSteps: 4, Sampler: DPM++ 2M, Schedule type: Karras, Seed: 1")
    assert sd.sampler == "DPM++ 2M Karras" and sd.distilled_cfg == 3.5


def test_cfg_rescale_and_slg_travel_where_the_family_runs_them_and_copy_back():
    welcome = Welcome.from_body(
        {
            "protocol": 1,
            "models": ["tiny-flux", "tiny-sd1", "tiny-sd3"],
            "model_families": {"tiny-flux": "flux", "tiny-sd1": "sd1", "tiny-sd3": "sd3"},
            "families": family_infos(),
        }
    )
    p = Params(sampler="Euler", cfg=5.0, cfg_rescale=0.7, slg_scale=3.0, two_pass=False)
    canvas = Rect(0, 0, 64, 64)

    def sent(model, **kw):
        info = model_info(model, welcome)
        job = generate_job(replace(p, model=model, **kw), plan_generate(canvas, None), [], info)
        return check_job(job, info).cfg_rescale, job.slg_scale

    assert sent("tiny-sd1") == (0.7, 0.0)
    assert sent("tiny-sd3") == (0.0, 3.0)
    assert sent("tiny-flux", cfg=1.0) == (0.0, 0.0)
    # A two-pass job (Hires.fix) runs no SLG: left out, not refused.
    big = plan_generate(Rect(0, 0, 1536, 1536), None)
    info = model_info("tiny-sd3", welcome)
    job = generate_job(replace(p, model="tiny-sd3", two_pass=True), big, [], info)
    assert job.hires is not None and job.slg_scale == 0.0
    back = params_from_infotext("x\nSteps: 4, Sampler: Euler, CFG Rescale: 0.6, SLG Scale: 2.5")
    assert (back.cfg_rescale, back.slg_scale) == (0.6, 2.5)
    assert params_from_infotext("x\nSteps: 4, Seed: 1", p).cfg_rescale == 0.7  # left alone
