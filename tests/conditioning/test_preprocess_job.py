"""The preprocess job (JobMode.PREPROCESS, A1111's "preview annotator result") through the
engine: the init image through its one unit's preprocessor, no checkpoint loaded."""

from __future__ import annotations

import numpy as np
import pytest

from dreamwire.backend.conditioning import engine_extensions, preprocess
from dreamwire.backend.engine import Engine
from dreamwire.backend.library.library import ModelLibrary
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import ControlUnit, Job, LoraRef
from dreamwire.shared.job_mode import JobMode


def picture(h: int = 40, w: int = 56) -> np.ndarray:
    """A dark disc and a bar on light grey: edges, lines and thresholds all find something."""
    yy, xx = np.mgrid[:h, :w]
    img = np.full((h, w, 3), 200, np.uint8)
    img[(yy - h // 2) ** 2 + (xx - w // 3) ** 2 < (h // 4) ** 2] = 30
    img[5:9, w // 2 : w - 4] = (20, 60, 90)
    return img


def preprocess_job(name: str, processor_res: int = -1, **kw) -> Job:
    unit = ControlUnit("canny", None, preprocessor=name, processor_res=processor_res)
    return Job(mode=JobMode.PREPROCESS, init_image=picture(), controls=[unit], **kw)


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    # An empty model root: a preprocess job must not need any checkpoint.
    root = tmp_path_factory.mktemp("empty-root")
    return Engine(ModelLibrary([root]), device="cpu", extensions=engine_extensions())


@pytest.mark.parametrize("name", ["canny", "threshold", "lineart_standard"])
def test_result_is_the_annotator_map_at_the_init_size(engine, name):
    job = preprocess_job(name, processor_res=128)
    result = engine.run(job)
    (image,) = result.images
    # What the unit's ControlNet would be given: the map at the detect resolution (128 on
    # the short side), then brought to the picture's size.
    detected = preprocess.run(name, picture(), processor_res=128)
    assert detected.shape[:2] != picture().shape[:2]
    assert image.image.shape == (*picture().shape[:2], 3)
    assert image.image.dtype == np.uint8
    assert np.array_equal(image.image, _resized(detected))
    assert image.image.max() > image.image.min()  # it found the disc, not a blank map
    assert f"Preprocessor: {name}" in image.infotext
    assert engine.loaded_models() == []  # no checkpoint was loaded


def _resized(detected: np.ndarray) -> np.ndarray:
    from dreamwire.backend.conditioning import control_image

    h, w = picture().shape[:2]
    return control_image.resize(detected, w, h, "just_resize")


def test_processor_res_changes_the_map(engine):
    low = engine.run(preprocess_job("canny", processor_res=64)).images[0].image
    high = engine.run(preprocess_job("canny", processor_res=512)).images[0].image
    assert low.shape == high.shape
    assert not np.array_equal(low, high)


def test_unknown_preprocessor_and_missing_weights_are_generations_codes(
    engine, tmp_path, monkeypatch
):
    with pytest.raises(DreamwireError) as err:
        engine.run(preprocess_job("no_such_annotator"))
    assert err.value.code is ErrorCode.PREPROCESSOR_UNAVAILABLE
    assert "no_such_annotator" in str(err.value)
    monkeypatch.setenv("DREAMWIRE_ANNOTATORS", str(tmp_path))  # an empty annotator folder
    with pytest.raises(DreamwireError) as err:
        engine.run(preprocess_job("softedge_hed"))
    assert err.value.code is ErrorCode.PREPROCESSOR_UNAVAILABLE
    assert "ControlNetHED.pth" in str(err.value)
    # The engine keeps answering after both.
    assert engine.run(preprocess_job("canny")).images[0].image.shape[:2] == (40, 56)


def test_without_preprocessors_the_engine_says_so(tmp_path):
    bare = Engine(ModelLibrary([tmp_path]), device="cpu")
    with pytest.raises(DreamwireError) as err:
        bare.run(preprocess_job("canny"))
    assert err.value.code is ErrorCode.PREPROCESSOR_UNAVAILABLE


@pytest.mark.parametrize(
    "change",
    [
        dict(controls=[]),
        dict(controls=[ControlUnit("canny", None, preprocessor="none")]),
        dict(controls=[ControlUnit("canny", None, preprocessor="canny")] * 2),
        dict(controls=[ControlUnit("canny", picture(), preprocessor="canny")]),
        dict(loras=[LoraRef("x")]),
        dict(batch=2),
    ],
)
def test_malformed_preprocess_jobs_are_invalid_job(change):
    job = preprocess_job("canny")
    for k, v in change.items():
        setattr(job, k, v)
    with pytest.raises(DreamwireError) as err:
        job.validate()
    assert err.value.code is ErrorCode.INVALID_JOB


def test_preprocess_job_needs_an_init_image_and_round_trips_the_wire_form():
    job = preprocess_job("canny", processor_res=256)
    body, arrays = job.to_wire()
    assert body["mode"] == "preprocess"  # named: the fields alone imply img2img
    back = Job.from_wire(body, arrays).validate()
    assert back.mode is JobMode.PREPROCESS
    assert back.controls[0].processor_res == 256
    job.init_image = None
    with pytest.raises(DreamwireError) as err:
        job.validate()
    assert err.value.code is ErrorCode.INVALID_IMAGE
