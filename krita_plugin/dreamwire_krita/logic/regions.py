"""Where a job reads from and where its result lands, decided from document state.

Everything here is in document pixels. The host reads the pixels a plan asks for, hands
them to `inpaint_inputs` (or straight to the job builder) and places the result at
`plan.target`, cropping it out of the generated image at `plan.crop_offset`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .geometry import SIZE_STEP, Rect, job_side, snap_region
from .pixels import content_bounds, flatten_rgb

# Context around an inpainted selection, so the model sees what it has to blend into.
INPAINT_PADDING = 32


class PlanError(ValueError):
    """The document state does not allow the action; the message is for the artist."""


@dataclass(frozen=True)
class Plan:
    action: str  # "generate" | "refine" | "inpaint" | "edit"
    region: Rect  # the generated image covers this; job width/height = region size
    target: Rect  # the result layer's pixels, inside region
    masked: bool  # the result layer gets a transparency mask from the selection

    @property
    def crop_offset(self) -> tuple[int, int]:
        return self.target.offset_in(self.region)


def _check_selection(sel: Rect | None, needed: bool) -> None:
    if sel is None:
        if needed:
            raise PlanError("Select the area to inpaint first.")
        return
    if sel.empty():
        raise PlanError("The selection is empty: select some pixels, or deselect all.")


def plan_generate(canvas: Rect, sel: Rect | None) -> Plan:
    """txt2img at the document size, or at the selection's bounds."""
    _check_selection(sel, needed=False)
    target = sel if sel is not None else canvas
    region = Rect(target.x, target.y, job_side(target.w), job_side(target.h))
    return Plan("generate", region, target, masked=False)


def plan_refine(canvas: Rect, sel: Rect | None) -> Plan:
    """img2img of the visible canvas, or of the selection (masked to it)."""
    _check_selection(sel, needed=False)
    if sel is None:
        region = snap_region(canvas, canvas)
        return Plan("refine", region, canvas, masked=False)
    area = sel.intersect(canvas)
    if area.empty():
        raise PlanError("The selection lies outside the canvas.")
    return Plan("refine", snap_region(area, canvas), area, masked=True)


def plan_edit(canvas: Rect, sel: Rect | None) -> Plan:
    """An edit reads what refine reads (the canvas, or the selection's bounds masked to it)
    and its result lands there as a new layer."""
    return replace(plan_refine(canvas, sel), action="edit")


def plan_layers(canvas: Rect, sel: Rect | None) -> Plan:
    """Layers read what an edit reads; the stack lands there as a group of layers."""
    return replace(plan_refine(canvas, sel), action="layers")


def plan_inpaint(canvas: Rect, sel: Rect | None, padding: int = INPAINT_PADDING) -> Plan:
    """Inpaint the selection with some context around it.

    The selection may reach past the canvas (and past the painted content); the region
    then reaches there too and `inpaint_inputs` turns the empty part into outpainting.
    """
    _check_selection(sel, needed=True)
    assert sel is not None
    bounds = _union(canvas, sel)
    region = snap_region(sel.grow(padding).intersect(bounds), bounds)
    return Plan("inpaint", region, sel, masked=True)


@dataclass
class InpaintInputs:
    init_image: np.ndarray  # H x W x 3 uint8: the painted part of the region
    mask: np.ndarray | None  # over init_image; None when the selection only covers empty area
    grow: tuple[int, int, int, int]  # outpaint growth (left, right, top, bottom) to the region

    @property
    def outpaint(self) -> bool:
        return any(self.grow)


def inpaint_inputs(region_rgba: np.ndarray, region_mask: np.ndarray) -> InpaintInputs:
    """Split a region into painted content (inpainted) and empty margin (outpainted).

    The content is the bounding box of the non-transparent pixels. The margins are
    rounded up to the size step so the init image stays job-legal; the few content
    pixels that falls into a margin are repainted, which the transparency mask hides
    unless they are selected anyway.
    """
    h, w = region_mask.shape
    if region_rgba.shape[:2] != (h, w):
        raise ValueError("region pixels and mask differ in size")
    box = content_bounds(region_rgba[:, :, 3])
    if box is None:
        raise PlanError(
            "There is nothing painted around the selection to inpaint from; use Generate."
        )
    bx, by, bw, bh = box
    left, top = _up(bx), _up(by)
    right, bottom = _up(w - bx - bw), _up(h - by - bh)
    if w - left - right < SIZE_STEP or h - top - bottom < SIZE_STEP:
        raise PlanError(
            "Too little is painted around the selection to outpaint from; use Generate."
        )
    inner = region_rgba[top : h - bottom, left : w - right]
    mask = region_mask[top : h - bottom, left : w - right]
    return InpaintInputs(
        init_image=flatten_rgb(inner),
        mask=mask.copy() if mask.any() else None,
        grow=(left, right, top, bottom),
    )


def selection_is_empty(mask: np.ndarray) -> bool:
    return not bool(np.any(mask))


def _up(n: int) -> int:
    return -(-n // SIZE_STEP) * SIZE_STEP


def _union(a: Rect, b: Rect) -> Rect:
    x0, y0 = min(a.x, b.x), min(a.y, b.y)
    return Rect(x0, y0, max(a.right, b.right) - x0, max(a.bottom, b.bottom) - y0)
