"""Real Krita (kritarunner, offscreen) without a backend: refusals, layers, masks, colours.
The first part of the Krita run shared with test_krita_backend (krita_session.py)."""

from __future__ import annotations

import pytest
from krita_harness import KRITARUNNER
from krita_session import SPACES

pytestmark = [
    pytest.mark.krita,
    pytest.mark.skipif(KRITARUNNER is None, reason="Krita (kritarunner) is not installed"),
]


@pytest.fixture(scope="module")
def offline(krita_session):
    return krita_session.part("dw_offline")


def test_the_vendored_shared_package_is_used(offline):
    assert "/pykrita/dreamwire_krita/vendor/dreamwire/shared/" in offline["shared_from"]


def test_no_document_is_a_clear_message(offline):
    job_id, message = offline["no_document"]
    assert job_id is None and message == "Open or create a document first."


def test_empty_selection_is_a_clear_message(offline):
    job_id, message = offline["empty_selection"]
    assert job_id is None and "selection is empty" in message


def test_backend_down_is_a_clear_message_and_leaves_documents_alone(offline):
    assert offline["not_connected"][0] is None and "Not connected" in offline["not_connected"][1]
    job_id, message, state = offline["backend_down"]
    assert job_id is None and state == "connecting"
    assert "not answering" in message
    assert offline["layers_unchanged"]


def test_masked_result_leaves_pixels_outside_the_selection_untouched(offline):
    m = offline["mask"]
    assert m["kind"] in ("transparency mask", "alpha")
    assert m["layer_bounds"] == m["selection"]
    assert m["outside_unchanged"] and m["inside_is_result"]
    # The feathered edge blends in proportion to the selection, as the artist selected.
    assert m["feather_levels"] > 4 and m["partial_blends"]


@pytest.mark.parametrize("space", [f"{m}/{d}" for m, d in SPACES])
def test_colour_spaces_convert_for_sending_and_back(offline, space):
    entry = offline["colours"][space]
    assert "refused" not in entry, entry
    model, depth = space.split("/")
    assert entry["doc"][:2] == [model, depth]
    assert entry["layer_space"] == [model, depth]  # results land in the document's space
    # Exactly what Krita's own conversion of the same sRGB picture gives...
    assert entry["max_err_vs_krita"] <= 2, entry  # 8-bit rounding on each side
    # ...which for RGB at any depth is the picture itself, and for grey is grey.
    if model == "RGBA":
        assert entry["max_err"] <= 1, entry
    if model == "GRAYA":
        assert entry["grey"]


def test_control_marks_are_stored_in_the_document_and_read_as_images(offline):
    c = offline["controls"]
    # A mark is stored switched on (the docker's per-layer tick can leave it out of jobs).
    mark = {"type": "scribble", "weight": 0.6, "start": 0.0, "end": 0.8, "enabled": True}
    assert c["marks"] == {c["node"]: mark}
    assert c["units"] == [["scribble", 0.6, 0.8, [64, 64, 3]]]
    assert c["stroke_white"] and c["background_black"]
