"""The one Generate button: generate, refine or inpaint from the document, the selection and
the strength (Krita AI Diffusion's rule), decided without Krita."""

from __future__ import annotations

import pytest
from dreamwire_krita.logic import generate_kind as gk
from dreamwire_krita.logic.generate_kind import Kind
from dreamwire_krita.logic.geometry import Rect
from dreamwire_krita.logic.regions import PlanError

SEL = Rect(10, 10, 40, 30)


class Painted:
    """painted() for decide(): answers `value` and counts the (pixel-reading) calls."""

    def __init__(self, value: bool):
        self.value, self.calls = value, 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.value


@pytest.mark.parametrize(
    ("selection", "strength", "painted", "kind"),
    [
        (None, 1.0, True, Kind.GENERATE),  # 100%, no selection: a new picture
        (None, 1.0, False, Kind.GENERATE),
        (SEL, 1.0, True, Kind.INPAINT),  # 100% into a selection over paint: inpaint
        (SEL, 1.0, False, Kind.GENERATE),  # nothing around it to blend into: generate there
        (None, 0.6, True, Kind.REFINE),  # below 100%: refine the canvas
        (SEL, 0.6, True, Kind.REFINE),  # ... or the selection
        (SEL, 0.99, True, Kind.REFINE),
        (None, 0.05, True, Kind.REFINE),
        # 0.05 steps summed in floating point land just under 1: still 100%.
        (None, sum([0.05] * 20), True, Kind.GENERATE),
    ],
)
def test_the_rule(selection, strength, painted, kind):
    assert gk.decide(True, selection, strength, Painted(painted)).kind is kind


def test_plain_generate_reads_no_pixels():
    painted = Painted(True)
    d = gk.decide(True, None, 1.0, painted)
    assert d.kind is Kind.GENERATE and painted.calls == 0
    assert "100%" in d.why


def test_refine_and_inpaint_look_at_the_canvas_once():
    for sel, strength in ((SEL, 1.0), (None, 0.5), (SEL, 0.5)):
        painted = Painted(True)
        gk.decide(True, sel, strength, painted)
        assert painted.calls == 1, (sel, strength)


def test_refusals_say_what_to_do():
    with pytest.raises(PlanError, match="Open or create a document"):
        gk.decide(False, None, 1.0, Painted(True))
    with pytest.raises(PlanError, match="selection is empty"):
        gk.decide(True, Rect(5, 5, 0, 10), 1.0, Painted(True))
    # Refining an empty canvas would refine nothing: say how to generate instead.
    with pytest.raises(PlanError, match="nothing painted to refine.*100%"):
        gk.decide(True, None, 0.5, Painted(False))
    with pytest.raises(PlanError, match="nothing painted"):
        gk.decide(True, SEL, 0.5, Painted(False))
    with pytest.raises(PlanError, match="0%"):
        gk.decide(True, None, 0.0, Painted(True))


def test_refine_says_the_strength_and_where():
    assert gk.decide(True, SEL, 0.35, Painted(True)).why == "Strength 35%: refine the selection"
    assert gk.decide(True, None, 0.7, Painted(True)).why == "Strength 70%: refine the canvas"


def test_button_label_follows_selection_and_strength_without_reading_pixels():
    assert gk.preview_kind(None, 1.0).label == "Generate"
    assert gk.preview_kind(SEL, 1.0).label == "Inpaint"
    assert gk.preview_kind(Rect(0, 0, 0, 0), 1.0).label == "Generate"
    assert gk.preview_kind(None, 0.5).label == "Refine"
    assert gk.preview_kind(SEL, 0.5).label == "Refine"
    # It says what decide() does for a painted canvas, whatever the case.
    for sel in (None, SEL):
        for strength in (0.2, 0.999, 1.0):
            assert (
                gk.preview_kind(sel, strength) is gk.decide(True, sel, strength, Painted(True)).kind
            )
