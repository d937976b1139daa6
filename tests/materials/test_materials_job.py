"""A materials job on the wire: its settings checked with stable codes, its mode sent, every
other body unchanged, and the map named in each result image and in the welcome."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from dreamwire.shared import protocol as P
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.events import Welcome
from dreamwire.shared.job import Job, LoraRef, Upscale
from dreamwire.shared.job_mode import JobMode
from dreamwire.shared.materials import Materials
from dreamwire.shared.result import GeneratedImage, JobResult

IMG = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)


def materials_job(**kw) -> Job:
    settings = kw.pop("materials", Materials())
    return Job(mode=JobMode.MATERIALS, init_image=IMG, seed=3, materials=settings, **kw)


def through_json(job: Job) -> Job:
    body, arrays = job.to_wire()
    return Job.from_wire(json.loads(json.dumps(body)), arrays)


def test_a_materials_job_round_trips_with_its_mode_and_settings():
    settings = Materials(maps=["normal", "albedo"], normals_model="n", steps=2, ensemble=3)
    body, _ = materials_job(materials=settings).validate().to_wire()
    assert body["mode"] == "materials"  # the fields alone would say img2img
    job = through_json(materials_job(materials=settings)).validate()
    assert job.mode is JobMode.MATERIALS and job.materials == settings


@pytest.mark.parametrize(
    "fields",
    [{}, {"init_image": IMG}, {"init_image": IMG, "upscale": Upscale(refine=False)}],
)
def test_other_bodies_carry_no_materials_key(fields):
    """So a backend from before materials jobs runs them as it always did."""
    body, _ = Job(prompt="a fox", width=64, height=48, **fields).validate().to_wire()
    assert "materials" not in body


BAD = [
    (Materials(maps=["albedo", "height"]), ErrorCode.INVALID_JOB, "materials.maps[1]"),
    (Materials(maps=[]), ErrorCode.INVALID_JOB, "names no map"),
    (Materials(maps=["normal", "normal"]), ErrorCode.INVALID_JOB, "twice"),
    (Materials(maps="albedo"), ErrorCode.INVALID_JOB, "materials.maps must be a list"),
    (Materials(steps=0), ErrorCode.INVALID_JOB, "materials.steps"),
    (Materials(steps=2.0), ErrorCode.INVALID_JOB, "materials.steps"),
    (Materials(ensemble=True), ErrorCode.INVALID_JOB, "materials.ensemble"),
    (Materials(ensemble=0), ErrorCode.INVALID_JOB, "materials.ensemble"),
    (Materials(resolution=100), ErrorCode.INVALID_SIZE, "multiple of 8"),
    (Materials(intrinsics_model=3), ErrorCode.INVALID_JOB, "materials.intrinsics_model"),
]


@pytest.mark.parametrize(("settings", "code", "words"), BAD)
def test_bad_settings_are_refused_naming_the_field(settings, code, words):
    with pytest.raises(DreamwireError) as err:
        materials_job(materials=settings).validate()
    assert err.value.code is code and words in err.value.message


@pytest.mark.parametrize(
    ("job", "code"),
    [
        (Job(mode=JobMode.MATERIALS, materials=Materials()), ErrorCode.INVALID_IMAGE),
        (Job(mode=JobMode.MATERIALS, init_image=IMG), ErrorCode.INVALID_JOB),
        (Job(init_image=IMG, materials=Materials()), ErrorCode.INVALID_JOB),  # no mode
        (materials_job(loras=[LoraRef("x")]), ErrorCode.INVALID_JOB),
        (materials_job(batch=2), ErrorCode.INVALID_JOB),
    ],
)
def test_the_mode_and_its_settings_go_together(job, code):
    with pytest.raises(DreamwireError) as err:
        job.validate()
    assert err.value.code is code


def test_a_settings_object_with_unknown_fields_is_refused():
    body, arrays = materials_job().to_wire()
    body["materials"]["height"] = True
    with pytest.raises(DreamwireError) as err:
        Job.from_wire(body, arrays)
    assert err.value.code is ErrorCode.INVALID_JOB and "height" in err.value.message


def test_result_images_carry_their_map_name_and_others_none():
    maps = GeneratedImage(IMG, 3, "Map: albedo", map="albedo")
    plain = GeneratedImage(IMG, 3, "Steps: 2")
    msg = P.result_message(JobResult("j", [maps, plain]))
    assert msg.body["images"][0]["map"] == "albedo"
    assert "map" not in msg.body["images"][1]  # a generated picture's entry is unchanged
    frames = P.encode(msg)
    back = P.parse_result(P.decode([bytes(memoryview(f)) for f in frames], P.Limits()))
    assert [g.map for g in back.images] == ["albedo", ""]


def test_welcome_materials_is_typed_and_read_defensively():
    body = {"protocol": 1, "materials": {"albedo": ["m1", "m2"], "normal": "m3", "x": [1]}}
    assert Welcome.from_body(body).materials == {"albedo": ["m1", "m2"]}
    assert Welcome.from_body({"protocol": 1, "materials": ["albedo"]}).materials == {}


def test_the_cli_builds_a_materials_job(tmp_path):
    from dreamwire.backend.cli import build_parser
    from dreamwire.backend.cli.generate import build_job

    Image.fromarray(IMG).save(tmp_path / "in.png")
    argv = ["generate", "--mode", "materials", "--init-image", str(tmp_path / "in.png")]
    job = build_job(build_parser().parse_args([*argv, "--maps", "normal, albedo"]))
    assert job.mode is JobMode.MATERIALS and job.materials.maps == ["normal", "albedo"]
    with pytest.raises(DreamwireError) as err:
        build_job(build_parser().parse_args([*argv, "--maps", "height"]))
    assert err.value.code is ErrorCode.INVALID_JOB
