"""Edit Texture without Blender (blender_addon/core/edit.py): an edit job from a texture on
an edit model only, at a job-legal size, the result's name."""

from __future__ import annotations

import numpy as np
import pytest

from blender_addon.core.edit import (
    build_edit_job,
    edit_size,
    edited_name,
    missing_for_edit,
)
from blender_addon.core.job_builder import GenerationSettings, fit_to_backend
from dreamwire.backend.families import family_infos
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.events import Welcome
from dreamwire.shared.families import FLUX
from dreamwire.shared.family_support import EDIT_REASON
from dreamwire.shared.job_mode import JobMode

WELCOME = Welcome.from_body(
    {
        "protocol": 1,
        "models": ["tiny-flux", "tiny-flux-kontext"],
        "samplers": ["Euler"],
        "model_families": {"tiny-flux": "flux", "tiny-flux-kontext": "flux"},
        "model_modes": {
            "tiny-flux": ["txt2img", "img2img", "inpaint"],
            "tiny-flux-kontext": ["txt2img", "img2img", "edit"],
        },
        "default_model": "tiny-flux",
        "families": family_infos(),
    }
)


def settings(model: str) -> GenerationSettings:
    s = GenerationSettings(prompt="make it red", model=model, sampler="Euler", cfg=1.0, steps=2)
    fit_to_backend(s, WELCOME)
    return s


def test_an_edit_job_sends_the_texture_and_the_instruction():
    tex = np.zeros((40, 64, 4), np.uint8)
    tex[:, :32] = (10, 200, 30, 255)  # the right half transparent
    job = build_edit_job(tex, settings("tiny-flux-kontext"), WELCOME, tag="edit Wall")
    assert job.mode is JobMode.EDIT and job.prompt == "make it red"
    assert (job.width, job.height) == (64, 40) and job.init_image.shape == (40, 64, 3)
    # Painted pixels as they are, transparent ones over white.
    assert (job.init_image[:, :32] == (10, 200, 30)).all() and (job.init_image[:, 32:] == 255).all()
    assert missing_for_edit(WELCOME, "tiny-flux-kontext") == []


def test_a_model_that_is_not_an_edit_model_is_refused_before_sending():
    with pytest.raises(DreamwireError) as err:
        build_edit_job(np.zeros((64, 64, 4), np.uint8), settings("tiny-flux"), WELCOME)
    assert err.value.code is ErrorCode.MODEL_UNSUPPORTED and EDIT_REASON in err.value.message
    [why] = missing_for_edit(WELCOME, "tiny-flux")
    assert EDIT_REASON in why
    assert missing_for_edit(WELCOME, "") == [why]  # the default model, tiny-flux


def test_a_large_or_odd_texture_is_sent_at_a_legal_size_within_the_familys_budget():
    w, h = edit_size(4096, 2048, FLUX)
    assert w % 8 == 0 and h % 8 == 0 and w * h <= FLUX.resolution.max_pixels
    assert abs(w / h - 2.0) < 0.05  # the aspect ratio kept
    assert edit_size(100, 70, FLUX) == (96, 64)
    job = build_edit_job(
        np.full((70, 100, 3), 90, np.uint8), settings("tiny-flux-kontext"), WELCOME
    )
    assert job.init_image.shape == (64, 96, 3) and (job.init_image == 90).all()


def test_edited_names_do_not_stack():
    assert edited_name("Wall") == "Wall (Edited)"
    assert edited_name("Wall (Edited)") == "Wall (Edited)"
