"""A Flux model in the Blender panel: the job carries the Distilled CFG, is sized by the
welcome's Flux resolution, sends the captures the backend's Flux ControlNets serve (the
others left out with the backend's reason) and the family's refusals reach the artist
before anything is sent."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from blender_addon.core.job_builder import (
    ControlSetting,
    GenerationSettings,
    build_job,
    fit_to_backend,
    missing_on_backend,
)
from blender_addon.core.upscale import UpscaleSettings, build_upscale_job, missing_for_upscale
from dreamwire.backend.families import family_infos
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.events import Welcome

FLUX_REASON = "Flux.1 models: "
NO_NORMALS = "no normalbae ControlNet, T2I-Adapter or Union model for Flux.1"


def welcome(**flux_changes) -> Welcome:
    families = family_infos()
    families["flux"] = {**families["flux"], **flux_changes}
    return Welcome.from_body(
        {
            "protocol": 1,
            "models": ["tiny-flux", "tiny-sd1"],
            "samplers": ["Euler", "Euler a"],
            "model_families": {"tiny-flux": "flux", "tiny-sd1": "sd1"},
            "control_types": {
                "sd1": {"depth": "depth.safetensors"},
                "flux": {"depth": "flux-controlnet-union"},
            },
            "control_missing": {"flux": {"normalbae": NO_NORMALS}},
            "families": families,
        }
    )


def flux_settings(**kw) -> GenerationSettings:
    base = dict(prompt="moss", model="tiny-flux", sampler="Euler", cfg=1.0, distilled_cfg=2.5)
    base.update(steps=4, seed=3, width=64, height=64)
    base.update(kw)
    return GenerationSettings(**base)


def test_flux_job_carries_the_distilled_cfg_and_sd_jobs_do_not():
    s = flux_settings()
    assert fit_to_backend(s, welcome()) == "" and s.family == "flux"
    assert build_job(s).distilled_cfg == 2.5
    sd = flux_settings(model="tiny-sd1")
    fit_to_backend(sd, welcome())
    assert build_job(sd).distilled_cfg is None


def test_a_schnell_job_carries_no_distilled_cfg_and_kontext_its_own_default():
    # The welcome's per-model defaults (Engine.capabilities' model_defaults) reach the job.
    w = welcome()
    w.models += ["flux1-schnell"]
    w.model_families["flux1-schnell"] = "flux"
    w.model_defaults["flux1-schnell"] = replace(
        w.families["flux"].family.defaults, steps=4, distilled_cfg=None
    )
    s = flux_settings(model="flux1-schnell", distilled_cfg=3.5)
    fit_to_backend(s, w)
    assert s.info.family.defaults.steps == 4
    assert build_job(s).distilled_cfg is None
    dev = flux_settings(distilled_cfg=3.5)
    fit_to_backend(dev, w)
    assert build_job(dev).distilled_cfg == 3.5


def test_the_welcomes_flux_resolution_sizes_the_two_passes():
    resolution = {"native": 512, "max_side": 768, "max_pixels": 512 * 512}
    small = flux_settings(width=1024, height=1024)
    fit_to_backend(small, welcome(resolution=resolution))
    job = build_job(small)
    assert (job.width, job.height) == (512, 512) and job.hires.width == 1024
    usual = flux_settings(width=1024, height=1024)
    fit_to_backend(usual, welcome())
    assert build_job(usual).hires is None  # Flux's own 2048 side: one pass


def test_captures_run_on_the_backends_flux_controlnets_the_rest_left_out_with_its_reason():
    s = flux_settings(
        controls=[ControlSetting("depth", True, 1.0), ControlSetting("normals", True, 1.0)]
    )
    note = fit_to_backend(s, welcome())
    assert note.startswith("Left out Normals") and NO_NORMALS in note
    pixels = np.zeros((64, 64, 3), np.uint8)
    job = build_job(s, {"depth": pixels, "normals": pixels})
    assert [u.type for u in job.controls] == ["depth"]


def test_seamless_and_refine_are_refused_before_sending():
    s = flux_settings(seamless=True)
    (problem,) = missing_on_backend(s, welcome())
    assert problem.startswith(FLUX_REASON + "seamless tiling") and "Seamless off" in problem
    fit_to_backend(s, welcome())
    with pytest.raises(DreamwireError) as err:
        build_job(s)
    assert err.value.code == ErrorCode.MODEL_UNSUPPORTED
    u = UpscaleSettings(refine=True)
    (problem,) = missing_for_upscale(u, welcome(), "tiny-flux")
    assert problem.startswith(FLUX_REASON + "tiled upscale-and-refine")
    assert missing_for_upscale(u, welcome(), "tiny-sd1") == []
    pixels = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(DreamwireError):
        build_upscale_job(pixels, u, s, "none")
    plain = build_upscale_job(pixels, UpscaleSettings(refine=False), s, "both")
    assert plain.upscale.refine is False  # a plain upscale runs no model: never refused
