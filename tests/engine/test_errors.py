"""Bad input gives a DreamwireError with a stable code and a message naming the problem."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import ControlUnit, HiresFix, Job, LoraRef


def job(**kw) -> Job:
    base = dict(prompt="x", sampler="Euler", steps=2, width=64, height=64, seed=1)
    base.update(kw)
    return Job(**base)


def fails(engine, j: Job) -> DreamwireError:
    with pytest.raises(DreamwireError) as err:
        engine.run(j)
    assert err.value.job_id == j.job_id
    return err.value


def test_missing_model(engine):
    e = fails(engine, job(model="no-such-model"))
    assert e.code == ErrorCode.MODEL_NOT_FOUND and "no-such-model" in e.message


def test_missing_vae(engine):
    e = fails(engine, job(vae="no-such-vae"))
    assert e.code == ErrorCode.MODEL_NOT_FOUND and "no-such-vae" in e.message


def test_unknown_sampler_lists_known_ones(engine):
    e = fails(engine, job(sampler="Euler z"))
    assert e.code == ErrorCode.UNKNOWN_SAMPLER
    assert "Euler z" in e.message and "DPM++ 2M" in e.message


@pytest.mark.parametrize("field", ["width", "height"])
def test_size_not_multiple_of_8(engine, field):
    e = fails(engine, job(**{field: 70}))
    assert e.code == ErrorCode.INVALID_SIZE and field in e.message and "8" in e.message


@pytest.mark.parametrize("strength", [-0.1, 1.5])
def test_strength_outside_0_1(engine, init_image, strength):
    e = fails(engine, job(init_image=init_image, strength=strength))
    assert e.code == ErrorCode.INVALID_STRENGTH and "0..1" in e.message


def test_hires_denoise_outside_0_1(engine):
    e = fails(engine, job(hires=HiresFix(denoise=2.0)))
    assert e.code == ErrorCode.INVALID_STRENGTH


def test_mask_of_wrong_size(engine, init_image):
    e = fails(engine, job(init_image=init_image, mask=np.zeros((32, 64), np.uint8)))
    assert e.code == ErrorCode.INVALID_MASK and "64x32" in e.message


def test_empty_mask(engine, init_image):
    e = fails(engine, job(init_image=init_image, mask=np.zeros((64, 64), np.uint8)))
    assert e.code == ErrorCode.INVALID_MASK and "empty" in e.message


def test_hires_needs_txt2img(engine, init_image):
    e = fails(engine, job(init_image=init_image, hires=HiresFix()))
    assert e.code == ErrorCode.INVALID_JOB and "txt2img" in e.message


def test_controls_and_loras_without_an_extension_are_refused(engine):
    control = ControlUnit(type="depth", image=np.zeros((64, 64, 3), np.uint8))
    assert fails(engine, job(controls=[control])).code == ErrorCode.CONTROLNET_NOT_FOUND
    assert fails(engine, job(loras=[LoraRef("tiny_style")])).code == ErrorCode.LORA_NOT_FOUND


def test_cancel_before_start(engine):
    with pytest.raises(DreamwireError) as err:
        engine.run(job(), should_cancel=lambda: True)
    assert err.value.code == ErrorCode.CANCELLED


@pytest.mark.parametrize("name", ["tpu", "cuda:99" if torch.cuda.is_available() else "cuda"])
def test_unavailable_device_is_a_clear_error(library, name):
    from dreamwire.backend.engine import Engine

    with pytest.raises(DreamwireError) as err:
        Engine(library, device=name, extensions=[])
    assert (
        err.value.code == ErrorCode.BACKEND_UNAVAILABLE and name.split(":")[0] in err.value.message
    )
