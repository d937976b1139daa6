"""Qwen-Image-Edit through the engine: an edit job (picture + instruction) equals diffusers'
QwenImageEditPipeline over the same components, its processor built offline from the
folder; a plain Qwen-Image refuses an edit job before loading.

diffusers' Edit pipeline scales every picture to 1 MP (`calculate_dimensions(1024 * 1024,
...)`) before its VAE and Qwen2.5-VL see it: ~50 s for the tiny model on the shared 2-core
box. The test scales it to the job's 64x64 area instead, for the engine's run and the
reference alike, so both still run the same diffusers code on the same inputs.
"""

from __future__ import annotations

import diffusers
import diffusers.pipelines.qwenimage.pipeline_qwenimage_edit as edit_module
import numpy as np
import pytest
import torch
from PIL import Image

from dreamwire.backend.engine import noise
from dreamwire.shared.errors import DreamwireError
from dreamwire.shared.job import Job
from dreamwire.shared.job_mode import JobMode

EDIT = dict(
    model="tiny-qwen-image-edit",
    mode=JobMode.EDIT,
    prompt="make the cat red",
    negative="blurry",
    sampler="Euler",
    steps=2,
    cfg=2.5,
    width=64,
    height=64,
    seed=3,
)


@pytest.fixture
def small_pictures(monkeypatch):
    full = edit_module.calculate_dimensions
    monkeypatch.setattr(edit_module, "calculate_dimensions", lambda _, ratio: full(64 * 64, ratio))


def test_edit_equals_diffusers_and_plain_models_refuse(qwen_engine, init_image, small_pictures):
    result = qwen_engine.run(Job(**EDIT, init_image=init_image))
    comps = qwen_engine.load("tiny-qwen-image-edit", "").components
    assert comps["processor"] is not None  # built from the folder's processor/ files
    names = ("vae", "text_encoder", "tokenizer", "processor", "transformer")
    pipe = diffusers.QwenImageEditPipeline(
        **{k: comps[k] for k in names},
        scheduler=type(comps["scheduler"]).from_config(comps["scheduler"].config),
    )
    pipe.set_progress_bar_config(disable=True)
    with torch.inference_mode():
        out = pipe(
            image=Image.fromarray(init_image),
            prompt="make the cat red",
            negative_prompt="blurry",
            true_cfg_scale=2.5,
            num_inference_steps=2,
            generator=noise.generators([3]),
            output_type="np",
            height=64,
            width=64,
        )
    assert np.isfinite(out.images[0]).all()
    expected = (out.images[0] * 255).round().astype(np.uint8)
    assert int(np.abs(result.images[0].image.astype(int) - expected.astype(int)).max()) == 0
    assert "Denoising strength" not in result.images[0].infotext
    modes = qwen_engine.capabilities()["model_modes"]
    assert modes["tiny-qwen-image-edit"] == ["edit"]
    assert modes["tiny-qwen-image"] == ["txt2img", "img2img", "inpaint"]
    with pytest.raises(DreamwireError) as err:
        qwen_engine.run(Job(**{**EDIT, "model": "tiny-qwen-image"}, init_image=init_image))
    assert "needs an edit model" in err.value.message
