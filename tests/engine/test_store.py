"""The result store: PNGs with A1111 infotext and a JSON record, re-read by job id."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from dreamwire.backend.store import ResultStore
from dreamwire.shared.infotext import parse_infotext
from dreamwire.shared.job import Job
from dreamwire.shared.result import GeneratedImage, JobResult


def _result(job: Job) -> JobResult:
    rng = np.random.default_rng(0)
    text = (
        "a cat\nNegative prompt: dog\nSteps: 4, Sampler: Euler, CFG scale: 7, Seed: 5, Size: 16x8"
    )
    images = [
        GeneratedImage(rng.integers(0, 255, (8, 16, 3), dtype=np.uint8), 5, text),
        GeneratedImage(rng.integers(0, 255, (8, 16, 4), dtype=np.uint8), 6, text.replace("5", "6")),
    ]
    return JobResult(job.job_id, images, timings={"total": 1.5}, model="tiny-sd1", tag="frame 3")


def test_save_writes_pngs_with_parameters_and_record(tmp_path):
    job = Job(prompt="a cat", negative="dog", init_image=np.zeros((8, 8, 3), np.uint8))
    saved = ResultStore(tmp_path).save(job, _result(job))
    folder = tmp_path / "jobs" / job.job_id
    assert [g.path for g in saved.images] == [str(folder / "00-5.png"), str(folder / "01-6.png")]
    with Image.open(saved.images[0].path) as img:
        assert img.format == "PNG" and img.size == (16, 8)
        info = parse_infotext(img.info["parameters"])
    assert info.prompt == "a cat" and info.seed == 5 and info.sampler == "Euler"
    record = json.loads((folder / "result.json").read_text())
    assert record["job_id"] == job.job_id and record["tag"] == "frame 3"
    assert record["job"]["prompt"] == "a cat" and record["job"]["init_image"] == "array"
    assert [i["seed"] for i in record["images"]] == [5, 6]


def test_load_by_job_id_round_trips(tmp_path):
    job = Job(prompt="a cat")
    original = _result(job)
    ResultStore(tmp_path).save(job, original)
    loaded = ResultStore(tmp_path).load(job.job_id)
    assert loaded is not None and loaded.job_id == job.job_id and loaded.tag == "frame 3"
    for a, b in zip(original.images, loaded.images, strict=True):
        assert np.array_equal(a.image, b.image) and a.seed == b.seed and a.infotext == b.infotext


def test_load_unknown_or_hostile_ids(tmp_path):
    store = ResultStore(tmp_path)
    assert store.load("0" * 32) is None
    assert store.load("../../etc") is None
    assert store.load("") is None


def test_unfinished_write_is_not_reported(tmp_path):
    job = Job()
    store = ResultStore(tmp_path)
    store.save(job, _result(job))
    (tmp_path / "jobs" / job.job_id / "result.json").unlink()
    assert store.load(job.job_id) is None
