"""The typed job: validation on both sides of the wire and its wire form."""

from __future__ import annotations

import numpy as np
import pytest

from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import ControlUnit, HiresFix, Job, LoraRef, Outpaint


def rgb(w: int = 64, h: int = 48) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("changes", "code", "words"),
    [
        ({"width": 100}, ErrorCode.INVALID_SIZE, "multiple of 8"),
        ({"height": 0}, ErrorCode.INVALID_SIZE, "height"),
        ({"width": 16384}, ErrorCode.INVALID_SIZE, "larger"),
        ({"strength": 1.5}, ErrorCode.INVALID_STRENGTH, "0..1"),
        ({"steps": 0}, ErrorCode.INVALID_JOB, "steps"),
        ({"batch": 99}, ErrorCode.INVALID_JOB, "batch"),
        ({"seamless": "z"}, ErrorCode.INVALID_JOB, "seamless"),
        ({"mask": np.zeros((8, 8), np.uint8)}, ErrorCode.INVALID_MASK, "init image"),
        ({"init_image": np.zeros((64, 64), np.uint8)}, ErrorCode.INVALID_IMAGE, "uint8"),
        ({"hires": HiresFix(scale=9)}, ErrorCode.INVALID_JOB, "Hires.fix"),
        ({"loras": [LoraRef("../etc/passwd")]}, ErrorCode.INVALID_JOB, "LoRA"),
        ({"outpaint": Outpaint(left=8)}, ErrorCode.INVALID_JOB, "init image"),
    ],
)
def test_validation_names_the_problem(changes, code, words):
    job = Job(**changes)
    with pytest.raises(DreamwireError) as info:
        job.validate()
    assert info.value.code is code
    assert words in info.value.message
    assert info.value.job_id == job.job_id


def test_mask_must_match_init_image():
    job = Job(init_image=rgb(64, 48), mask=np.zeros((48, 32), np.uint8))
    with pytest.raises(DreamwireError, match="mask is 32x48 but the init image is 64x48"):
        job.validate()


def test_control_unit_checks():
    good = ControlUnit("depth", np.zeros((64, 64), np.float32))
    Job(controls=[good]).validate()
    with pytest.raises(DreamwireError, match="unknown type"):
        Job(controls=[ControlUnit("telepathy", rgb())]).validate()
    with pytest.raises(DreamwireError, match="start <= end"):
        Job(controls=[ControlUnit("depth", rgb(), start=0.8, end=0.2)]).validate()


def test_wire_round_trip_keeps_arrays_and_nested_types():
    job = Job(
        prompt="a (red:1.2) house",
        init_image=rgb(),
        mask=np.full((48, 64), 255, np.uint8),
        outpaint=Outpaint(top=8),
        controls=[ControlUnit("depth", np.ones((48, 64), np.float32), weight=0.5, end=0.6)],
        loras=[LoraRef("detail", 0.7)],
    ).validate()
    body, arrays = job.to_wire()
    assert len(arrays) == 3
    back = Job.from_wire(body, arrays).validate()
    assert back.job_id == job.job_id
    assert back.outpaint == job.outpaint and back.loras == job.loras
    np.testing.assert_array_equal(back.init_image, job.init_image)
    np.testing.assert_array_equal(back.controls[0].image, job.controls[0].image)
    assert back.controls[0].end == 0.6
    txt2img = Job(prompt="x", hires=HiresFix(scale=1.5, denoise=0.4)).validate()
    assert Job.from_wire(*txt2img.to_wire()).validate().hires == txt2img.hires


@pytest.mark.parametrize(
    "body",
    [
        {"prompt": "x", "bogus": 1},
        {"init_image": {"$array": 5}},
        {"controls": [{"type": "depth", "image": {"$array": 0}, "colour": 1}]},
        {"hires": "yes"},
    ],
)
def test_from_wire_rejects_malformed(body):
    with pytest.raises(DreamwireError) as info:
        Job.from_wire(body, [])
    assert info.value.code is ErrorCode.INVALID_JOB


@pytest.mark.parametrize("changes", [{"cfg": [1]}, {"strength": "lots"}, {"outpaint": 3}])
def test_wrong_json_types_are_invalid_job_not_a_crash(changes):
    with pytest.raises(DreamwireError) as info:
        Job(**changes).validate()
    assert info.value.code is ErrorCode.INVALID_JOB


def test_hires_fix_is_txt2img_only_on_both_sides():
    # Job.validate holds the rule, so a host refuses what the backend would refuse.
    picture = np.zeros((64, 64, 3), np.uint8)
    job = Job(prompt="x", width=64, height=64, init_image=picture, hires=HiresFix(scale=2.0))
    with pytest.raises(DreamwireError) as err:
        job.validate()
    assert err.value.code == ErrorCode.INVALID_JOB and "txt2img" in err.value.message
    Job(prompt="x", width=64, height=64, hires=HiresFix(scale=2.0)).validate()


def test_inpaint_model_travels_only_when_turned_off():
    # "auto" (the default) stays off the wire, so a backend from before the field runs the
    # job; "off" goes out and comes back.
    body, _ = Job(prompt="a fox").to_wire()
    assert "inpaint_model" not in body
    assert Job.from_wire(body, []).inpaint_model == "auto"
    off = Job(prompt="a fox", inpaint_model="off")
    body, arrays = off.to_wire()
    assert body["inpaint_model"] == "off"
    assert Job.from_wire(body, arrays).validate().inpaint_model == "off"
    with pytest.raises(DreamwireError) as err:
        Job(prompt="a fox", inpaint_model=3).validate()
    assert err.value.code == ErrorCode.INVALID_JOB and "inpaint_model" in err.value.message
