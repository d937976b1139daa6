"""Select by clicking, the plain part: vector shapes become clicks in canvas pixels (red
ones "not this"), the selection's bounds the box, and the mask Krita's selection bytes."""

from __future__ import annotations

import numpy as np
import pytest
from dreamwire_krita.logic.click_mask import (
    box_from_selection,
    clicks_from_dots,
    clicks_layer,
    is_negative,
    segment_job,
    selection_bytes,
    subject_job,
)
from dreamwire_krita.logic.geometry import Rect
from dreamwire_krita.logic.prompt_regions import LayerInfo
from dreamwire_krita.logic.regions import PlanError

from dreamwire.shared.job_mode import JobMode
from dreamwire.shared.segment import Click

CANVAS = Rect(0, 0, 100, 80)


def test_red_dots_are_negative_clicks():
    assert is_negative((255, 0, 0)) and is_negative((192, 16, 16))
    assert not is_negative((0, 255, 0)) and not is_negative((255, 128, 128))  # pink
    assert not is_negative((100, 0, 0))  # too dark to tell from a shadow


def test_each_dot_is_a_click_at_its_centre():
    layer = np.zeros((80, 100, 4), np.uint8)
    layer[39:42, 29:32] = (0, 255, 0, 255)  # centre (30.5, 40.5)
    layer[10:12, 60:62] = (255, 0, 0, 200)  # 2 x 2 red: centre (61, 11)
    layer[50, 5] = (0, 0, 255, 255)  # a single pixel: (5.5, 50.5)
    layer[51, 6] = (0, 0, 255, 255)  # touching it diagonally: the same dot
    layer[70, 90] = (0, 255, 0, 60)  # mostly transparent: no dot
    clicks = sorted(clicks_from_dots(layer), key=lambda c: c.x)
    assert clicks == [Click(6.0, 51.0, True), Click(30.5, 40.5, True), Click(61.0, 11.0, False)]
    assert clicks_from_dots(np.zeros((8, 8, 4), np.uint8)) == []


def test_a_painted_layer_is_not_taken_for_dots():
    artwork = np.full((80, 100, 4), 255, np.uint8)
    with pytest.raises(PlanError, match="empty layer"):
        clicks_from_dots(artwork)


def test_selection_bounds_are_the_box():
    assert box_from_selection(None, CANVAS) is None
    assert box_from_selection(Rect(10, 5, 20, 30), CANVAS) == [10.0, 5.0, 30.0, 35.0]
    assert box_from_selection(Rect(90, 70, 40, 40), CANVAS) == [90.0, 70.0, 100.0, 80.0]
    assert box_from_selection(Rect(300, 300, 5, 5), CANVAS) is None


def test_segment_job_needs_a_click_or_box_and_validates():
    px = np.zeros((80, 100, 3), np.uint8)
    job = segment_job(np.dstack([px, np.full((80, 100), 255, np.uint8)]), [Click(3, 4)], None)
    assert job.init_image.shape == (80, 100, 3)  # RGBA flattened, as refine sends it
    assert job.mode is JobMode.SEGMENT and job.segment.clicks == [Click(3, 4)]
    with pytest.raises(PlanError, match="dots"):
        segment_job(px, [], None)
    assert segment_job(px, [], [1.0, 1.0, 9.0, 9.0]).segment.box == [1.0, 1.0, 9.0, 9.0]


def test_subject_job_sends_the_flattened_canvas_and_no_clicks():
    px = np.zeros((80, 100, 4), np.uint8)
    px[..., 0] = 200  # transparent red: white once flattened
    px[5:10, 5:10] = (0, 0, 255, 255)
    job = subject_job(px)
    assert job.mode is JobMode.SEGMENT and job.segment.subject
    assert job.segment.clicks == [] and job.segment.box is None
    assert (job.init_image[0, 0] == 255).all() and tuple(job.init_image[7, 7]) == (0, 0, 255)
    assert job.to_wire()[0]["segment"]["subject"] is True


def test_a_soft_mask_keeps_its_grey_levels_in_the_selection():
    mask = np.repeat(np.arange(0, 256, 32, dtype=np.uint8)[None, :, None], 3, axis=2)
    back = np.frombuffer(selection_bytes(mask, (8, 1)), np.uint8)
    np.testing.assert_array_equal(back, mask[0, :, 0])


def test_mask_becomes_selection_bytes_of_the_canvas_size():
    mask = np.zeros((80, 100, 3), np.uint8)
    mask[10:20, 30:40] = 255
    data = selection_bytes(mask, (100, 80))
    back = np.frombuffer(data, np.uint8).reshape(80, 100)
    assert back.sum() == 255 * 100 and back[15, 35] == 255 and back[0, 0] == 0
    with pytest.raises(PlanError):
        selection_bytes(mask, (80, 100))


def test_the_clicks_layer_is_found_by_name():
    layers = [LayerInfo("a", "paint", True), LayerInfo("b", " Clicks ", False)]
    assert clicks_layer(layers).node_id == "b"
    assert clicks_layer(layers + [LayerInfo("c", "clicks", True)]).node_id == "c"
    assert clicks_layer(layers[:1]) is None
