"""Scene settings to Job, and plain sentences about what the backend lacks (no Blender)."""

from __future__ import annotations

import numpy as np
import pytest

from blender_addon.core.job_builder import (
    ControlSetting,
    GenerationSettings,
    build_job,
    missing_on_backend,
    round_size,
)
from dreamwire.shared.errors import DreamwireError
from dreamwire.shared.events import Welcome
from dreamwire.shared.job import Job


def settings(**kw):
    base = dict(
        prompt="stone wall",
        negative="blurry",
        model="tiny-sd1",
        sampler="Euler a",
        steps=3,
        cfg=5.0,
        seed=42,
        width=64,
        height=64,
        controls=[
            ControlSetting("depth", True, 0.8),
            ControlSetting("normals", True, 0.5, 0.1, 0.9),
            ControlSetting("pose", False, 1.0),
            ControlSetting("colour", True, 0.0),
        ],
    )
    base.update(kw)
    return GenerationSettings(**base)


def test_job_carries_settings_and_enabled_controls():
    depth = np.zeros((64, 64, 3), np.uint8)
    normals = np.full((64, 64, 3), 127, np.uint8)
    job = build_job(settings(), {"depth": depth, "normals": normals, "pose": depth})
    assert (job.prompt, job.negative, job.model, job.sampler) == (
        "stone wall",
        "blurry",
        "tiny-sd1",
        "Euler a",
    )
    assert (job.steps, job.cfg, job.seed, job.width, job.height) == (3, 5.0, 42, 64, 64)
    assert [(c.type, c.weight, c.start, c.end) for c in job.controls] == [
        ("depth", 0.8, 0.0, 1.0),
        ("normalbae", 0.5, 0.1, 0.9),
    ]
    assert job.controls[1].image is normals
    assert job.mode == "txt2img" and job.seamless == "none"


def test_seamless_inpaint_and_colour_as_init():
    col = np.full((64, 64, 3), 50, np.uint8)
    s = settings(colour_as_init=True, seamless=True)
    s.controls[3].weight = 1.0
    job = build_job(s, {"colour": col})
    assert job.init_image is col and job.mode == "img2img" and job.seamless == "both"
    mask = np.zeros((64, 64), np.uint8)
    job = build_job(settings(), {}, init_image=col, mask=mask, strength=0.6)
    assert job.mode == "inpaint" and job.strength == 0.6


def test_masked_content_goes_into_inpaint_jobs_only():
    init = np.full((64, 64, 3), 50, np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 16:48] = 255
    # A1111's default, and the Job's: the panel starts where the backend does.
    assert GenerationSettings().inpaint_fill == Job().inpaint_fill == "original"
    assert build_job(settings(), {}, init_image=init, mask=mask).inpaint_fill == "original"
    for mode in ("fill", "original", "latent noise", "latent nothing"):
        job = build_job(settings(inpaint_fill=mode), {}, init_image=init, mask=mask)
        assert Job.from_wire(*job.to_wire()).validate().inpaint_fill == mode
    # No mask, nothing for it to act on: txt2img and img2img jobs keep the default.
    s = settings(inpaint_fill="latent noise")
    assert build_job(s).inpaint_fill == "original"
    assert build_job(s, {}, init_image=init).inpaint_fill == "original"
    with pytest.raises(DreamwireError, match="masked content"):
        build_job(settings(inpaint_fill="latent something"), {}, init_image=init, mask=mask)


def test_sizes_round_to_multiples_of_eight_and_bad_values_are_refused():
    assert round_size(61) == 64 and round_size(3) == 8
    job = build_job(settings(width=100, height=70))
    assert (job.width, job.height) == (104, 72)
    with pytest.raises(DreamwireError, match="steps"):
        build_job(settings(steps=0))


def test_missing_on_backend_names_what_is_missing():
    w = Welcome(
        protocol=1,
        server_version="x",
        server_id="s",
        models=[{"name": "tiny-sd1"}],
        samplers=["Euler a", "DPM++ 2M Karras"],
        controlnets=[{"name": "control_v11f1p_sd15_depth", "type": "depth"}],
    )
    assert missing_on_backend(settings(controls=[ControlSetting("depth", True)]), w) == []
    problems = missing_on_backend(settings(model="sdxl-base", sampler="Heun"), w)
    assert "The backend has no model named 'sdxl-base'." in problems
    assert "The backend does not know the sampler 'Heun'." in problems
    assert any("Normals control needs a 'normalbae' ControlNet" in p for p in problems)
    # Disabled or zero-weight controls are not required.
    assert not any("Pose" in p or "Colour" in p for p in problems)
