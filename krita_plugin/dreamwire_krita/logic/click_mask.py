"""Select by clicking: SAM 2 click-to-mask from the canvas (the backend's segment job).

The clicks are the shapes of the active vector layer: each shape's centre is one click, a
red shape (red clearly above green and blue, as a "no" marker is drawn) says "not this",
any other colour "this". A vector layer is what Krita already has for marks that stay
editable, can be moved or deleted one by one, and a script can make (addShapesFromSvg), so
the same path runs in a headless Krita test. An existing selection's bounds, if any, are
the box SAM 2 is also given. The whole visible canvas is sent, so clicks and box are
canvas pixels as they are; the mask comes back at the canvas's size and replaces the
selection.

Plain logic: no Krita imports; krita_host reads the shapes, the controller wires it up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from dreamwire.shared.job import Job
from dreamwire.shared.job_mode import JobMode
from dreamwire.shared.segment import Click, Segment

from .geometry import Rect
from .regions import PlanError

# Krita keeps vector shapes in points (1/72 inch); the canvas is in pixels at the
# document's resolution (pixels per inch).
POINTS_PER_INCH = 72.0
_FILL = re.compile(r'fill="(#[0-9a-fA-F]{6})"')


@dataclass(frozen=True)
class Marker:
    """One vector shape as Krita reports it: its bounding box in points and its SVG."""

    x: float
    y: float
    w: float
    h: float
    svg: str


def is_negative(svg: str) -> bool:
    """A red fill marks a "not this" click."""
    m = _FILL.search(svg)
    if not m:
        return False
    r, g, b = (int(m.group(1)[i : i + 2], 16) for i in (1, 3, 5))
    return r >= 128 and r > 2 * g and r > 2 * b


def clicks_from_markers(markers: list[Marker], ppi: float, canvas: Rect) -> list[Click]:
    """The markers' centres in canvas pixels; those off the canvas are dropped."""
    scale = ppi / POINTS_PER_INCH
    clicks = []
    for m in markers:
        x, y = (m.x + m.w / 2) * scale, (m.y + m.h / 2) * scale
        if canvas.x <= x <= canvas.x + canvas.w and canvas.y <= y <= canvas.y + canvas.h:
            clicks.append(Click(x - canvas.x, y - canvas.y, positive=not is_negative(m.svg)))
    return clicks


def box_from_selection(sel: Rect | None, canvas: Rect) -> list[float] | None:
    if sel is None:
        return None
    area = sel.intersect(canvas)
    if area.empty():
        return None
    return [float(area.x), float(area.y), float(area.x + area.w), float(area.y + area.h)]


def segment_job(pixels: np.ndarray, clicks: list[Click], box: list[float] | None) -> Job:
    if not clicks and box is None:
        raise PlanError(
            "Select by clicking: draw small shapes on a vector layer where the object is "
            "(red ones where it is not), make that layer active, then click the button."
        )
    job = Job(
        mode=JobMode.SEGMENT,
        init_image=pixels,
        segment=Segment(clicks=clicks, box=box),
        tag="krita:select",
    )
    return job.validate()


def selection_bytes(mask_image: np.ndarray, size: tuple[int, int]) -> bytes:
    """The result's mask (H x W x 3, 255 inside) as Krita's 8-bit selection pixels."""
    w, h = size
    mask = np.asarray(mask_image)
    mask = mask[..., 0] if mask.ndim == 3 else mask
    if mask.shape != (h, w):
        raise PlanError(f"the mask came back {mask.shape[1]}x{mask.shape[0]}, not {w}x{h}")
    return np.ascontiguousarray(mask, dtype=np.uint8).tobytes()
