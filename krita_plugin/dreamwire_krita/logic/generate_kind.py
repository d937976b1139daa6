"""What the one Generate button does, from the document, the selection and the strength.

Krita AI Diffusion's rule: strength 100% generates new content, below 100% refines what is
there; a selection limits either to that area (generating into a selection over painted
content is an inpaint, which keeps what is around it). So the artist never picks among
Generate / Refine / Inpaint buttons: the canvas and one slider say it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from .geometry import Rect
from .regions import PlanError

NO_DOCUMENT = "Open or create a document first."
EMPTY_SELECTION = "The selection is empty: select some pixels, or deselect all."
NOTHING_TO_REFINE = (
    "There is nothing painted to refine: paint something, or set Strength to 100% to generate."
)
ZERO_STRENGTH = "Strength 0% would change nothing: raise it (100% generates new content)."

# A strength this close to 1 is 100%: the spin box's 0.05 steps add up in floating point.
FULL = 1.0 - 1e-6


class Kind(Enum):
    GENERATE = "generate"  # txt2img over the canvas or the selection's bounds
    REFINE = "refine"  # img2img of the canvas, or of the selection (masked to it)
    INPAINT = "inpaint"  # new content in the selection, blended into what is around it

    @property
    def label(self) -> str:
        """The button's text for this kind, so the artist sees what a press will do."""
        return self.value.capitalize()


@dataclass(frozen=True)
class Decision:
    kind: Kind
    why: str  # one line for the button's tooltip


def full_strength(strength: float) -> bool:
    return strength >= FULL


def decide(
    has_document: bool,
    selection: Rect | None,
    strength: float,
    painted: Callable[[], bool],
) -> Decision:
    """The job the Generate button sends.

    `selection`: the selection's bounds (None: nothing selected). `painted()`: whether any
    visible pixel is painted where the job would read (around the selection when there is
    one, else the canvas); it is only called when the answer matters, as it reads pixels.
    Raises PlanError with the artist's words when the button cannot do anything sensible.
    """
    if not has_document:
        raise PlanError(NO_DOCUMENT)
    if selection is not None and selection.empty():
        raise PlanError(EMPTY_SELECTION)
    if strength <= 0:
        raise PlanError(ZERO_STRENGTH)
    where = "the selection" if selection is not None else "the canvas"
    if full_strength(strength):
        if selection is None:
            return Decision(Kind.GENERATE, "Strength 100%, no selection: a new picture")
        if painted():
            return Decision(Kind.INPAINT, "Strength 100% and a selection: new content there")
        # Nothing around the selection to blend into: an inpaint would have no context.
        return Decision(Kind.GENERATE, "A selection over an empty canvas: a new picture there")
    if not painted():
        raise PlanError(NOTHING_TO_REFINE)
    pct = round(strength * 100)
    return Decision(Kind.REFINE, f"Strength {pct}%: refine {where}")


def preview_kind(selection: Rect | None, strength: float) -> Kind:
    """The button's label before it is pressed, without reading pixels: what `decide`
    answers for a painted canvas (the usual case; an empty one is said on the press)."""
    if not full_strength(strength):
        return Kind.REFINE
    return Kind.GENERATE if selection is None or selection.empty() else Kind.INPAINT
