"""Seamless tiling: on with the toggle or Krita's wrap-around mode, and a seamless job
reads and generates the whole tile."""

from __future__ import annotations

import numpy as np
import pytest
from dreamwire_krita.logic import tiling
from dreamwire_krita.logic.geometry import Rect
from dreamwire_krita.logic.jobs import crop_result, generate_job, inpaint_job, refine_job
from dreamwire_krita.logic.params import Params
from dreamwire_krita.logic.regions import (
    PlanError,
    inpaint_inputs,
    plan_generate,
    plan_inpaint,
    plan_refine,
)

from dreamwire.shared.job import SEAMLESS_AXES

TILE = Rect(0, 0, 128, 96)
SEL = Rect(10, 20, 30, 24)


def test_wrap_around_turns_seamless_on_whatever_the_toggle_says():
    assert tiling.seamless_axes(False, False) == "none"
    assert tiling.seamless_axes(True, False) == "both"
    assert tiling.seamless_axes(False, True) == "both"
    assert tiling.seamless_axes(True, True) in SEAMLESS_AXES


@pytest.mark.parametrize("plan_fn", [plan_generate, plan_refine, plan_inpaint])
def test_a_seamless_job_covers_the_whole_tile_and_lands_on_the_selection(plan_fn):
    plain = plan_fn(TILE, SEL)
    assert plain.region != TILE  # a window around the selection: it would not wrap
    plan = tiling.tile_plan(plain, TILE)
    assert plan.region == TILE and plan.target == SEL and plan.masked == plain.masked
    image = np.arange(96 * 128 * 3, dtype=np.uint32).reshape(96, 128, 3).astype(np.uint8)
    assert np.array_equal(crop_result(image, plan)[..., :3], image[20:44, 10:40])


def test_seamless_generate_refine_and_inpaint_jobs_are_tile_sized():
    p = Params(prompt="stone wall", steps=2, strength=0.5)
    canvas = np.full((96, 128, 4), 200, np.uint8)
    gen = generate_job(p, tiling.tile_plan(plan_generate(TILE, SEL), TILE))
    ref = refine_job(p, tiling.tile_plan(plan_refine(TILE, SEL), TILE), canvas)
    mask = np.zeros((96, 128), np.uint8)
    mask[20:44, 10:40] = 255
    inputs = inpaint_inputs(canvas, mask)
    tiling.check_inputs(inputs)
    inp = inpaint_job(p, tiling.tile_plan(plan_inpaint(TILE, SEL), TILE), inputs)
    for job in (gen, ref, inp):
        assert (job.width, job.height) == (128, 96), job.mode


def test_a_selection_past_the_tile_is_clipped_to_it():
    plan = tiling.tile_plan(plan_inpaint(TILE, Rect(100, 80, 60, 40)), TILE)
    assert plan.region == TILE and plan.target == Rect(100, 80, 28, 16)


@pytest.mark.parametrize("canvas", [Rect(0, 0, 100, 96), Rect(0, 0, 128, 60)])
def test_a_canvas_that_cannot_be_a_job_size_is_refused_with_the_reason(canvas):
    with pytest.raises(PlanError, match=f"{canvas.w}x{canvas.h}"):
        tiling.tile_plan(plan_generate(canvas, None), canvas)


def test_a_tile_with_empty_parts_is_not_outpainted():
    canvas = np.zeros((96, 128, 4), np.uint8)
    canvas[:, :64] = 255  # the right half is empty
    mask = np.zeros((96, 128), np.uint8)
    mask[10:30, 10:30] = 255
    with pytest.raises(PlanError, match="whole tile painted"):
        tiling.check_inputs(inpaint_inputs(canvas, mask))
