"""Qwen-Image-Edit through the engine: an edit job (picture + instruction) equals diffusers'
QwenImageEditPipeline over the same components, its processor built offline from the
folder; a plain Qwen-Image refuses an edit job before loading (pictures scaled as
tests/qwen/reference.py says)."""

from __future__ import annotations

import diffusers.pipelines.qwenimage.pipeline_qwenimage_edit as edit_module
import pytest
from PIL import Image

from dreamwire.shared.errors import DreamwireError
from dreamwire.shared.job import Job
from dreamwire.shared.job_mode import JobMode
from tests.qwen.reference import BASE, maxdiff, reference, scale_pictures

EDIT = dict(BASE, model="tiny-qwen-image-edit", mode=JobMode.EDIT, prompt="make the cat red")


def test_edit_equals_diffusers_and_plain_models_refuse(qwen_engine, init_image, monkeypatch):
    scale_pictures(monkeypatch, edit_module)
    result = qwen_engine.run(Job(**EDIT, init_image=init_image))
    assert qwen_engine.load("tiny-qwen-image-edit", "").components["processor"] is not None
    (want,) = reference(
        qwen_engine,
        "tiny-qwen-image-edit",
        "QwenImageEditPipeline",
        image=Image.fromarray(init_image),
        prompt="make the cat red",
        height=64,
        width=64,
    )
    assert maxdiff(result.images[0].image, want) == 0
    assert "Denoising strength" not in result.images[0].infotext
    modes = qwen_engine.capabilities()["model_modes"]
    assert modes["tiny-qwen-image-edit"] == ["edit"]
    assert modes["tiny-qwen-image"] == ["txt2img", "img2img", "inpaint"]
    with pytest.raises(DreamwireError) as err:
        qwen_engine.run(Job(**{**EDIT, "model": "tiny-qwen-image"}, init_image=init_image))
    assert "needs an edit model" in err.value.message
