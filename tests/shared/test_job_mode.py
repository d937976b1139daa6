"""The job's mode as a type: what a job naming none means (the old wire), what a named mode
requires, and the wire form both ways."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job, Outpaint, Upscale
from dreamwire.shared.job_mode import JobMode


def rgb(w: int = 64, h: int = 48) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)


MASK = np.zeros((48, 64), np.uint8)
MASK[:, :32] = 255

# A job naming no mode, and the mode the backend always ran it as.
UNNAMED = [
    ({}, JobMode.TXT2IMG),
    ({"init_image": rgb()}, JobMode.IMG2IMG),
    ({"init_image": rgb(), "mask": MASK}, JobMode.INPAINT),
    ({"init_image": rgb(), "outpaint": Outpaint(left=64)}, JobMode.INPAINT),
    ({"init_image": rgb(), "upscale": Upscale(scale=2.0)}, JobMode.UPSCALE),
]


@pytest.mark.parametrize(("fields", "mode"), UNNAMED)
def test_a_job_naming_no_mode_gets_the_one_its_fields_imply(fields, mode):
    job = Job(prompt="a fox", width=64, height=48, **fields)
    assert job.mode is None  # nothing guessed until validate
    assert job.validate().mode is mode


def _old_body(job: Job) -> tuple[dict, list]:
    """The submit body a client from before modes were typed sent: every field but mode."""
    body, arrays = job.to_wire()
    body.pop("mode", None)
    # Through JSON, as it arrives.
    return json.loads(json.dumps(body)), arrays


@pytest.mark.parametrize(("fields", "mode"), UNNAMED)
def test_an_old_wire_job_decodes_with_its_derived_mode(fields, mode):
    body, arrays = _old_body(Job(prompt="a fox", width=64, height=48, **fields))
    assert "mode" not in body
    job = Job.from_wire(body, arrays).validate()
    assert job.mode is mode


@pytest.mark.parametrize(("fields", "mode"), UNNAMED)
def test_a_mode_the_fields_imply_stays_off_the_wire(fields, mode):
    """So a backend from before modes were typed still runs every job it could run."""
    job = Job(prompt="a fox", width=64, height=48, mode=mode, **fields).validate()
    body, _ = job.to_wire()
    assert "mode" not in body
    assert Job.from_wire(*job.to_wire()).validate().mode is mode


def test_an_edit_job_names_its_mode_on_the_wire():
    job = Job(mode=JobMode.EDIT, prompt="make the barn red", init_image=rgb()).validate()
    body, arrays = job.to_wire()
    assert json.loads(json.dumps(body))["mode"] == "edit"
    back = Job.from_wire(json.loads(json.dumps(body)), arrays).validate()
    assert back.mode is JobMode.EDIT  # not the img2img its fields alone would imply
    assert back.implied_mode() is JobMode.IMG2IMG


def test_a_layers_job_names_its_mode_and_count_on_the_wire_and_only_it():
    job = Job(mode=JobMode.LAYERS, init_image=rgb(), layer_count=6).validate()
    body, arrays = job.to_wire()
    wire = json.loads(json.dumps(body))
    assert (wire["mode"], wire["layer_count"]) == ("layers", 6)
    back = Job.from_wire(wire, arrays).validate()
    assert (back.mode, back.layer_count) == (JobMode.LAYERS, 6)
    # Every other job's body is what it was before the field existed.
    assert "layer_count" not in Job(prompt="a fox").validate().to_wire()[0]


@pytest.mark.parametrize(
    ("fields", "code", "words"),
    [
        ({"mode": JobMode.TXT2IMG, "init_image": rgb()}, ErrorCode.INVALID_JOB, "init image"),
        ({"mode": JobMode.IMG2IMG}, ErrorCode.INVALID_IMAGE, "init image"),
        (
            {"mode": JobMode.IMG2IMG, "init_image": rgb(), "mask": MASK},
            ErrorCode.INVALID_JOB,
            "mask",
        ),
        ({"mode": JobMode.INPAINT, "init_image": rgb()}, ErrorCode.INVALID_MASK, "mask"),
        ({"mode": JobMode.UPSCALE, "init_image": rgb()}, ErrorCode.INVALID_JOB, "upscale"),
        (
            {"mode": JobMode.IMG2IMG, "init_image": rgb(), "upscale": Upscale()},
            ErrorCode.INVALID_JOB,
            "upscale",
        ),
        ({"mode": JobMode.EDIT}, ErrorCode.INVALID_IMAGE, "init image"),
        (
            {"mode": JobMode.EDIT, "init_image": rgb(), "prompt": " "},
            ErrorCode.INVALID_PROMPT,
            "instruction",
        ),
        ({"mode": JobMode.EDIT, "init_image": rgb(), "mask": MASK}, ErrorCode.INVALID_JOB, "mask"),
        ({"mode": JobMode.LAYERS}, ErrorCode.INVALID_IMAGE, "init image"),
        ({"mode": JobMode.LAYERS, "init_image": rgb(), "batch": 2}, ErrorCode.INVALID_JOB, "batch"),
    ],
)
def test_a_named_mode_needs_its_fields_and_no_others(fields, code, words):
    job = Job(**{"prompt": "a fox", "width": 64, "height": 48, **fields})
    with pytest.raises(DreamwireError) as err:
        job.validate()
    assert err.value.code == code
    assert words in err.value.message and str(fields["mode"]) in err.value.message


def test_a_job_changed_after_validation_is_refused_not_rerun_as_another_mode():
    job = Job(prompt="a fox", width=64, height=48).validate()  # txt2img
    job.init_image = rgb()
    with pytest.raises(DreamwireError) as err:
        job.validate()
    assert err.value.code == ErrorCode.INVALID_JOB and "txt2img" in err.value.message


@pytest.mark.parametrize("value", ["sketch", 5, True, ["txt2img"], {"a": 1}, ""])
def test_an_unknown_mode_on_the_wire_is_refused_naming_the_field(value):
    body, arrays = Job(prompt="a fox").to_wire()
    body["mode"] = value
    with pytest.raises(DreamwireError) as err:
        Job.from_wire(body, arrays).validate()
    assert err.value.code == ErrorCode.INVALID_JOB and "mode" in err.value.message


def test_a_mode_reads_as_its_value_in_text():
    # Logs and refusals print it; the wire sends the value.
    assert f"{JobMode.EDIT}" == str(JobMode.EDIT) == "edit" == JobMode.EDIT
    assert json.dumps(JobMode.INPAINT) == '"inpaint"'


def test_a_layer_count_out_of_range_is_refused_naming_the_field():
    for count in (0, 11, True):
        with pytest.raises(DreamwireError) as err:
            Job(mode=JobMode.LAYERS, init_image=rgb(), layer_count=count).validate()
        assert err.value.code == ErrorCode.INVALID_JOB and "layer_count" in err.value.message
