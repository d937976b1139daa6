"""The job's mode across a real backend: a body without `mode` (every client from before
the field) runs as it always did; an edit job is refused with its reason, and the backend
goes on."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dreamwire.shared.client import Client
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Upscale
from dreamwire.shared.job_mode import JobMode
from tests.support.wire import small_job

_IMG = np.random.default_rng(3).integers(0, 256, (48, 64, 3), dtype=np.uint8)


def test_an_old_body_runs_and_an_edit_job_is_refused(backend):
    old = small_job(init_image=_IMG, upscale=Upscale(scale=2.0, refine=False))
    body, _ = old.to_wire()
    assert "mode" not in json.loads(json.dumps(body))  # what an older client sent
    edit = small_job(mode=JobMode.EDIT, prompt="make the barn red", init_image=_IMG)
    with Client(backend.address) as client:
        client.connect_wait(30)
        with pytest.raises(DreamwireError) as err:
            client.run(edit, timeout=120)
        result = client.run(old, timeout=120)
    assert err.value.code == ErrorCode.MODEL_UNSUPPORTED
    assert "an edit job needs an edit model" in err.value.message
    # Read as an upscale (its fields say so): the Extras result, no checkpoint involved.
    (image,) = result.images
    assert image.image.shape == (96, 128, 3)
    assert image.infotext.startswith("Postprocess upscale by: 2")
    assert backend.alive


def test_a_preprocess_job_returns_the_annotator_map(backend):
    """The annotator preview over the wire (the engine's own checks:
    tests/conditioning/test_preprocess_job.py): the map at the init image's size, and an
    unknown preprocessor refused with generation's code while the backend goes on."""
    from dreamwire.shared.job import ControlUnit, Job

    def job(name: str) -> Job:
        unit = ControlUnit("canny", None, preprocessor=name, processor_res=64)
        return Job(mode=JobMode.PREPROCESS, init_image=_IMG, controls=[unit])

    with Client(backend.address) as client:
        welcome = client.connect_wait(30)
        with pytest.raises(DreamwireError) as err:
            client.run(job("no_such_annotator"), timeout=60)
        result = client.run(job("threshold"), timeout=60)
    assert err.value.code == ErrorCode.PREPROCESSOR_UNAVAILABLE
    # The welcome names what a host may ask for (the Krita docker offers by it).
    assert {"threshold", "canny", "depth_anything_v2"} <= set(welcome.preprocessors)
    assert "no_such_annotator" not in welcome.preprocessors
    (image,) = result.images
    assert image.image.shape == (48, 64, 3)
    # A threshold map is black and white only, unlike the random picture it came from.
    assert set(np.unique(image.image)) <= {0, 255} and len(np.unique(image.image)) == 2
    assert image.infotext.startswith("Preprocessor: threshold")
    assert backend.alive
