"""Split into Layers without Blender (blender_addon/core/layers.py): a layers job from a
texture on a layered model only, the layers bottom first with alpha, their image names."""

from __future__ import annotations

import numpy as np
import pytest

from blender_addon.core.job_builder import GenerationSettings, fit_to_backend
from blender_addon.core.layers import build_layers_job, layer_name, missing_for_layers, stack
from dreamwire.backend.families import family_infos
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.events import Welcome
from dreamwire.shared.family_support import LAYERS_REASON
from dreamwire.shared.job_mode import JobMode
from dreamwire.shared.result import GeneratedImage, JobResult

WELCOME = Welcome.from_body(
    {
        "protocol": 1,
        "models": ["tiny-qwen-image", "tiny-qwen-image-layered"],
        "samplers": ["Euler"],
        "model_families": {
            "tiny-qwen-image": "qwen-image",
            "tiny-qwen-image-layered": "qwen-image",
        },
        "model_modes": {
            "tiny-qwen-image": ["txt2img", "img2img", "inpaint"],
            "tiny-qwen-image-layered": ["layers"],
        },
        "default_model": "tiny-qwen-image",
        "families": family_infos(),
    }
)


def settings(model: str) -> GenerationSettings:
    s = GenerationSettings(prompt="a poster", model=model, sampler="Euler", cfg=2.5, steps=2)
    fit_to_backend(s, WELCOME)
    return s


def test_a_layers_job_sends_the_texture_and_the_count_and_comes_back_bottom_first():
    tex = np.zeros((40, 64, 4), np.uint8)
    tex[:, :32] = (10, 200, 30, 255)
    job = build_layers_job(tex, settings("tiny-qwen-image-layered"), WELCOME, 3, "layers Wall")
    assert job.mode is JobMode.LAYERS and job.layer_count == 3
    assert (job.width, job.height) == (64, 40) and job.init_image.shape == (40, 64, 3)
    assert (job.init_image[:, 32:] == 255).all()  # transparent pixels over white
    assert missing_for_layers(WELCOME, "tiny-qwen-image-layered") == []
    # The result's layers in any order come back bottom first, alpha kept.
    layers = [np.full((40, 64, 4), i * 50, np.uint8) for i in range(3)]
    images = [GeneratedImage(layers[i], 5, "", layer=i) for i in (2, 0, 1)]
    got = stack(JobResult("j", images))
    assert [i for i, _ in got] == [0, 1, 2]
    assert [int(img[0, 0, 3]) for _, img in got] == [0, 50, 100]
    assert layer_name("Wall", 0, 3) == "Wall layer 1/3"


def test_a_model_that_is_not_layered_is_refused_before_sending():
    with pytest.raises(DreamwireError) as err:
        build_layers_job(np.zeros((64, 64, 4), np.uint8), settings("tiny-qwen-image"), WELCOME)
    assert err.value.code is ErrorCode.MODEL_UNSUPPORTED and LAYERS_REASON in err.value.message
    [why] = missing_for_layers(WELCOME, "tiny-qwen-image")
    assert LAYERS_REASON in why
