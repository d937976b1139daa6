"""The canvas and the infotext fields in the job plan (engine/planning.py, canvas/layout.py):
an inpaint job's layout (outpaint growth, "only masked" crop) and the infotext fields known
before running are worked out, and an empty mask refused, before any model loads."""

from __future__ import annotations

import numpy as np
import pytest

from dreamwire.backend.engine import Engine
from dreamwire.backend.engine.planning import plan
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.infotext import parse_infotext
from dreamwire.shared.job import Job, Outpaint, Upscale
from dreamwire.shared.job_mode import JobMode

PICTURE = np.full((48, 64, 3), 128, np.uint8)  # 64 wide, 48 high


def _mask(box=(40, 20, 50, 30)) -> np.ndarray:
    x1, y1, x2, y2 = box
    mask = np.zeros((48, 64), np.uint8)
    mask[y1:y2, x1:x2] = 255
    return mask


def _inpaint(**kw) -> Job:
    fields = dict(prompt="x", width=64, height=64, steps=2, init_image=PICTURE, mask=_mask())
    return Job(**{**fields, **kw})


def test_outpaint_growth_is_planned(library):
    job = _inpaint(outpaint=Outpaint(left=16, top=8), mask_blur=0)
    canvas = plan(job, library).canvas
    # The picture is resized to the job size, then grown by the border.
    assert (canvas.original, canvas.picture, canvas.size) == ((64, 48), (64, 64), (80, 72))
    assert canvas.crop is None and canvas.region is None
    assert canvas.mask.shape == (72, 80)
    assert (canvas.mask[:8] == 255).all() and (canvas.mask[:, :16] == 255).all()  # the border
    assert not canvas.mask[8:, 16:].all()  # inside it, the job's own mask


def test_only_masked_crop_is_planned(library):
    job = _inpaint(inpaint_full_res=True, inpaint_padding=4, mask_blur=2, width=32, height=32)
    canvas = plan(job, library).canvas
    # "Only masked" keeps the picture's own size and samples a crop of it.
    assert (canvas.picture, canvas.size) == ((64, 48), (64, 48))
    x1, y1, x2, y2 = canvas.crop
    assert x1 <= 40 - 4 and y1 <= 20 - 4 and x2 >= 50 + 4 and y2 >= 30 + 4  # mask + padding
    assert x2 - x1 == y2 - y1  # grown to the generation's square aspect
    assert canvas.region == (canvas.crop, (64, 48))
    assert canvas.soft.shape == (48, 64) and canvas.soft[y1:y2, x1:x2].any()


@pytest.mark.parametrize("full_res", [False, True])
def test_an_empty_mask_is_refused_by_the_plan_before_any_model_loads(library, full_res):
    job = _inpaint(mask=np.zeros((48, 64), np.uint8), inpaint_full_res=full_res)
    with pytest.raises(DreamwireError) as err:
        plan(job, library)
    assert err.value.code == ErrorCode.INVALID_MASK
    engine = Engine(library, device="cpu", extensions=[], cache_size=1)
    with pytest.raises(DreamwireError) as run_err:
        engine.run(job)
    assert run_err.value.code == ErrorCode.INVALID_MASK
    assert engine.models.keys() == []


def test_img2img_layout_and_no_canvas_for_txt2img(library):
    canvas = plan(Job(prompt="x", width=32, height=32, init_image=PICTURE), library).canvas
    assert (canvas.original, canvas.picture, canvas.mask) == ((64, 48), (32, 32), None)
    assert plan(Job(prompt="x"), library).canvas is None


def test_infotext_fields_known_before_running_are_in_the_plan(library):
    assert ("Masked content", "fill") in plan(_inpaint(inpaint_fill="fill"), library).infotext
    assert plan(_inpaint(), library).infotext == ()  # A1111 omits "original"
    up = Upscale(scale=1.0, tile=64, overlap=16, upscaler="Lanczos")
    job = Job(prompt="x", init_image=np.zeros((64, 64, 3), np.uint8), upscale=up, seamless="x")
    assert plan(job, library).infotext == (
        ("SD upscale overlap", "16"),
        ("SD upscale upscaler", "Lanczos"),
        ("SD upscale seamless", "x"),
    )


def test_a_planned_inpaint_runs_and_writes_its_planned_fields(engine):
    job = _inpaint(mode=JobMode.INPAINT, inpaint_fill="fill", outpaint=Outpaint(right=8))
    out = engine.run(job).images[0]
    assert out.image.shape == (64, 72, 3)  # the grown canvas
    assert parse_infotext(out.infotext).extras["Masked content"] == "fill"
