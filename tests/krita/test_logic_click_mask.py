"""Select by clicking, the plain part: vector shapes become clicks in canvas pixels (red
ones "not this"), the selection's bounds the box, and the mask Krita's selection bytes."""

from __future__ import annotations

import numpy as np
import pytest
from dreamwire_krita.logic.click_mask import (
    Marker,
    box_from_selection,
    clicks_from_markers,
    is_negative,
    segment_job,
    selection_bytes,
)
from dreamwire_krita.logic.geometry import Rect
from dreamwire_krita.logic.regions import PlanError

from dreamwire.shared.job_mode import JobMode
from dreamwire.shared.segment import Click

CANVAS = Rect(0, 0, 100, 80)


def _svg(fill: str) -> str:
    return f'<ellipse id="s" fill="{fill}" stroke="#000000" rx="2" ry="2"/>'


def test_red_fills_are_negative_clicks():
    assert is_negative(_svg("#ff0000")) and is_negative(_svg("#c01010"))
    assert not is_negative(_svg("#00ff00"))
    assert not is_negative(_svg("#ff8080"))  # pink: not clearly red
    assert not is_negative(_svg("#800000").replace("#800000", "none"))


def test_marker_centres_in_points_become_pixel_clicks():
    # At 144 ppi a point is two pixels; a 4 pt marker at (10, 20) pt is centred on (24, 44).
    markers = [Marker(10, 20, 4, 4, _svg("#00ff00")), Marker(30, 5, 2, 2, _svg("#ff0000"))]
    clicks = clicks_from_markers(markers, 144.0, CANVAS)
    assert clicks == [Click(24.0, 44.0, True), Click(62.0, 12.0, False)]
    assert clicks_from_markers(markers, 72.0, CANVAS)[0] == Click(12.0, 22.0, True)
    off = [Marker(200, 10, 2, 2, _svg("#00ff00"))]
    assert clicks_from_markers(off, 72.0, CANVAS) == []


def test_selection_bounds_are_the_box():
    assert box_from_selection(None, CANVAS) is None
    assert box_from_selection(Rect(10, 5, 20, 30), CANVAS) == [10.0, 5.0, 30.0, 35.0]
    assert box_from_selection(Rect(90, 70, 40, 40), CANVAS) == [90.0, 70.0, 100.0, 80.0]
    assert box_from_selection(Rect(300, 300, 5, 5), CANVAS) is None


def test_segment_job_needs_a_click_or_box_and_validates():
    px = np.zeros((80, 100, 3), np.uint8)
    job = segment_job(px, [Click(3, 4)], None)
    assert job.mode is JobMode.SEGMENT and job.segment.clicks == [Click(3, 4)]
    with pytest.raises(PlanError, match="vector layer"):
        segment_job(px, [], None)
    assert segment_job(px, [], [1.0, 1.0, 9.0, 9.0]).segment.box == [1.0, 1.0, 9.0, 9.0]


def test_mask_becomes_selection_bytes_of_the_canvas_size():
    mask = np.zeros((80, 100, 3), np.uint8)
    mask[10:20, 30:40] = 255
    data = selection_bytes(mask, (100, 80))
    back = np.frombuffer(data, np.uint8).reshape(80, 100)
    assert back.sum() == 255 * 100 and back[15, 35] == 255 and back[0, 0] == 0
    with pytest.raises(PlanError):
        selection_bytes(mask, (80, 100))
