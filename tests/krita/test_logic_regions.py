"""Where jobs read and where results land: geometry, plans, outpaint detection."""

from __future__ import annotations

import numpy as np
import pytest
from dreamwire_krita.logic.geometry import Rect, job_side, snap_region
from dreamwire_krita.logic.regions import (
    PlanError,
    inpaint_inputs,
    plan_generate,
    plan_inpaint,
    plan_refine,
)
from hypothesis import given, settings
from hypothesis import strategies as st

CANVAS = Rect(0, 0, 200, 150)


def test_job_side_rounds_up_to_multiple_of_8_and_a_minimum():
    assert job_side(64) == 64
    assert job_side(65) == 72
    assert job_side(10) == 64
    assert job_side(513) == 520


def test_generate_uses_document_size_without_selection():
    plan = plan_generate(CANVAS, None)
    assert plan.target == CANVAS
    assert (plan.region.w, plan.region.h) == (200, 152)
    assert plan.crop_offset == (0, 0)
    assert not plan.masked


def test_generate_uses_selection_bounds():
    sel = Rect(30, 40, 70, 50)
    plan = plan_generate(CANVAS, sel)
    assert plan.target == sel
    assert (plan.region.x, plan.region.y) == (30, 40)
    assert (plan.region.w, plan.region.h) == (72, 64)


def test_empty_selection_is_refused_with_a_message():
    with pytest.raises(PlanError, match="selection is empty"):
        plan_generate(CANVAS, Rect(0, 0, 0, 0))
    with pytest.raises(PlanError, match="Select the area"):
        plan_inpaint(CANVAS, None)


def test_refine_selection_is_masked_and_reads_inside_canvas():
    sel = Rect(180, 120, 20, 30)  # at the bottom-right corner
    plan = plan_refine(CANVAS, sel)
    assert plan.masked and plan.target == sel
    assert CANVAS.contains(plan.region)
    assert plan.region.contains(sel)


def test_refine_outside_canvas_is_refused():
    with pytest.raises(PlanError, match="outside the canvas"):
        plan_refine(CANVAS, Rect(300, 300, 10, 10))


@settings(max_examples=200, deadline=None)
@given(
    cw=st.integers(64, 400),
    ch=st.integers(64, 400),
    data=st.data(),
)
def test_inpaint_region_is_legal_covers_selection_and_stays_on_canvas(cw, ch, data):
    canvas = Rect(0, 0, cw, ch)
    x = data.draw(st.integers(0, cw - 1))
    y = data.draw(st.integers(0, ch - 1))
    w = data.draw(st.integers(1, cw - x))
    h = data.draw(st.integers(1, ch - y))
    sel = Rect(x, y, w, h)
    plan = plan_inpaint(canvas, sel)
    r = plan.region
    assert r.w % 8 == 0 and r.h % 8 == 0
    assert r.contains(sel)
    if cw >= r.w and ch >= r.h:
        assert canvas.contains(r)


def test_snap_region_falls_back_to_origin_when_canvas_is_too_small():
    r = snap_region(Rect(0, 0, 50, 40), Rect(0, 0, 50, 40))
    assert r == Rect(0, 0, 64, 64)


def _region(h=64, w=96, opaque_cols=96):
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[:, :opaque_cols] = (200, 100, 50, 255)
    return rgba


def test_inpaint_inputs_without_empty_area_is_plain_inpaint():
    rgba = _region()
    mask = np.zeros((64, 96), np.uint8)
    mask[10:20, 10:30] = 255
    out = inpaint_inputs(rgba, mask)
    assert not out.outpaint
    assert out.init_image.shape == (64, 96, 3)
    assert np.array_equal(out.mask, mask)
    assert (out.init_image[0, 0] == (200, 100, 50)).all()


def test_selection_past_content_becomes_outpaint_with_legal_margins():
    rgba = _region(opaque_cols=70)  # 26 empty columns on the right
    mask = np.zeros((64, 96), np.uint8)
    mask[:, 60:] = 255
    out = inpaint_inputs(rgba, mask)
    assert out.outpaint
    left, right, top, bottom = out.grow
    assert (left, top, bottom) == (0, 0, 0)
    assert right == 32 and right % 8 == 0  # 26 rounded up
    assert out.init_image.shape == (64, 64, 3)
    assert out.init_image.shape[1] + right == 96
    # Only content went into the init image: no white from transparent pixels.
    assert (out.init_image == (200, 100, 50)).all()
    assert out.mask.shape == (64, 64) and out.mask[:, 60:].all() and not out.mask[:, :60].any()


def test_selection_only_over_empty_area_sends_no_inner_mask():
    rgba = _region(opaque_cols=64)
    mask = np.zeros((64, 96), np.uint8)
    mask[:, 64:] = 255
    out = inpaint_inputs(rgba, mask)
    assert out.mask is None and out.grow == (0, 32, 0, 0)


def test_nothing_painted_is_refused():
    with pytest.raises(PlanError, match="nothing painted"):
        inpaint_inputs(np.zeros((64, 64, 4), np.uint8), np.full((64, 64), 255, np.uint8))
