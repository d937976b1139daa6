"""Qwen-Image-Layered through the engine: a layers job (a picture, a caption and a layer
count) returns RGBA layers, bottom first, equal to diffusers' QwenImageLayeredPipeline over
the same components; the layer order and count survive the wire; other models refuse
(pictures scaled as tests/qwen/reference.py says)."""

from __future__ import annotations

import diffusers.pipelines.qwenimage.pipeline_qwenimage_layered as layered_module
import numpy as np
import pytest
from PIL import Image

from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job
from dreamwire.shared.job_mode import JobMode
from dreamwire.shared.protocol import parse_result, result_message
from tests.qwen.reference import BASE, PROMPT, maxdiff, reference, scale_pictures

LAYERS = dict(
    BASE, model="tiny-qwen-image-layered", mode=JobMode.LAYERS, prompt=PROMPT, layer_count=3
)


def test_layers_equal_diffusers_bottom_first(qwen_engine, init_image, monkeypatch):
    scale_pictures(monkeypatch, layered_module)
    result = qwen_engine.run(Job(**LAYERS, init_image=init_image))
    want = reference(
        qwen_engine,
        "tiny-qwen-image-layered",
        "QwenImageLayeredPipeline",
        image=Image.fromarray(init_image).convert("RGBA"),
        layers=3,
    )
    got = result.images
    assert [g.layer for g in got] == [0, 1, 2]
    assert all(g.image.shape == (64, 64, 4) for g in got)
    assert [maxdiff(g.image, w) for g, w in zip(got, want, strict=True)] == [0, 0, 0]
    # The stack and its order survive the wire as RGBA frames.
    back = parse_result(result_message(result))
    assert [g.layer for g in back.images] == [0, 1, 2]
    assert np.array_equal(back.images[2].image, got[2].image)
    # Only a layered model splits a picture; the plan says so before loading anything.
    with pytest.raises(DreamwireError) as err:
        qwen_engine.run(Job(**{**LAYERS, "model": "tiny-qwen-image"}, init_image=init_image))
    assert err.value.code is ErrorCode.MODEL_UNSUPPORTED
    assert "layered model" in err.value.message
    assert qwen_engine.capabilities()["model_modes"]["tiny-qwen-image-layered"] == ["layers"]
