"""A train_lora job carrying its own pictures: they travel as the job's arrays, are checked
as every picture of a job is (by name, with the image codes), and the backend writes them as
a kohya folder of its own data folder, which the dataset reader reads back as sent."""

from __future__ import annotations

import numpy as np
import pytest

from dreamwire.backend.training.dataset import read_dataset
from dreamwire.backend.training.uploads import job_folder, write_pictures
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job
from dreamwire.shared.lora_training import MAX_TRAINING_PICTURES, LoraTraining, TrainingPicture


def _picture(seed: int, shape=(16, 24, 3), caption: str = "") -> TrainingPicture:
    rng = np.random.default_rng(seed)
    return TrainingPicture((rng.random(shape) * 255).astype(np.uint8), caption)


def _job(**train) -> Job:
    return Job(
        mode="train_lora",
        prompt="x",
        width=32,
        height=32,
        train_lora=LoraTraining(**{"name": "mine", **train}),
    )


def test_pictures_travel_as_the_jobs_arrays():
    pictures = [_picture(0, caption="a cat"), _picture(1, (20, 12, 4))]
    body, arrays = _job(pictures=pictures, repeats=4).validate().to_wire()
    assert [p["image"] for p in body["train_lora"]["pictures"]] == [{"$array": 0}, {"$array": 1}]
    back = Job.from_wire(body, arrays).validate().train_lora
    assert back.repeats == 4 and [p.caption for p in back.pictures] == ["a cat", ""]
    assert all(
        np.array_equal(a.image, b.image) for a, b in zip(back.pictures, pictures, strict=True)
    )


def _refused(job: Job) -> DreamwireError:
    with pytest.raises(DreamwireError) as err:
        job.validate()
    return err.value


@pytest.mark.parametrize(
    ("train", "code", "words"),
    [
        ({"pictures": [_picture(0, (4, 24, 3))]}, ErrorCode.INVALID_SIZE, "pictures[0].image"),
        ({"pictures": [_picture(0, (16, 16, 2))]}, ErrorCode.INVALID_IMAGE, "pictures[0].image"),
        ({"pictures": [_picture(0, (16, 16, 1))]}, ErrorCode.INVALID_IMAGE, "one channel"),
        ({"pictures": [_picture(0, caption="x" * 5000)]}, ErrorCode.INVALID_JOB, "caption"),
        ({"pictures": [_picture(0)], "repeats": 0}, ErrorCode.INVALID_JOB, "repeats"),
        ({"pictures": [_picture(0)], "data": "thing"}, ErrorCode.INVALID_JOB, "not both"),
        ({}, ErrorCode.INVALID_JOB, "either data"),
        ({"pictures": ["not a picture"]}, ErrorCode.INVALID_JOB, "pictures[0]"),
    ],
)
def test_bad_pictures_are_refused_by_name(train, code, words):
    err = _refused(_job(**train))
    assert err.code is code and words in err.message


def test_too_many_pictures_are_over_the_limit():
    one = _picture(0, (8, 8, 3))
    err = _refused(_job(pictures=[one] * (MAX_TRAINING_PICTURES + 1)))
    assert err.code is ErrorCode.LIMIT_EXCEEDED and str(MAX_TRAINING_PICTURES) in err.message


def test_a_malformed_picture_on_the_wire_is_invalid_job():
    body, arrays = _job(pictures=[_picture(0)]).to_wire()
    for picture in ({"caption": "no image"}, {"image": {"$array": 0}, "alpha": 1}, "x"):
        bad = {**body, "train_lora": {**body["train_lora"], "pictures": [picture]}}
        with pytest.raises(DreamwireError) as err:
            Job.from_wire(bad, arrays)
        assert err.value.code is ErrorCode.INVALID_JOB and "pictures[0]" in err.value.message


def test_the_backend_writes_a_kohya_folder_and_reads_it_back(tmp_path):
    pictures = [_picture(0, caption="a cat, red"), _picture(1, (20, 12, 4))]
    t = LoraTraining(name="mine", pictures=pictures, repeats=3)
    folder = write_pictures(tmp_path / "uploads", "job-1", t)
    assert folder == job_folder(tmp_path / "uploads", "job-1")
    ds = read_dataset(folder)
    assert [(i.caption, i.repeats) for i in ds.images] == [("a cat, red", 3), ("mine", 3)]
    assert [(f.name, f.images) for f in ds.folders] == [("3_mine", 2)]
    # The same job again (restored after a restart) reads the folder it wrote.
    assert write_pictures(tmp_path / "uploads", "job-1", LoraTraining(name="x")) == folder
    assert not list((tmp_path / "uploads").glob("*.partial"))


def test_without_a_data_folder_a_job_with_pictures_is_refused(tmp_path):
    t = LoraTraining(name="mine", pictures=[_picture(0)])
    with pytest.raises(DreamwireError) as err:
        write_pictures(None, "job-1", t)
    assert err.value.code is ErrorCode.INVALID_JOB and "data folder" in err.value.message
