"""Select by clicking: SAM 2 click-to-mask from the canvas (the backend's segment job);
and Select subject: the same job with `subject` set, no clicks, a background-removal model
(rembg's U2-Net / IS-Net / BiRefNet files) finding the canvas's subject (subject_job).

The clicks are dots painted on a layer named "clicks" (the plugin's naming convention, as
for "region: ..." layers; without one, the active layer), an empty paint layer: each
blob of opaque pixels is one click at its centre; a red dot (red clearly above green and
blue) says "not this", any other colour "this". A paint layer rather than a vector layer:
dots are what a brush makes in one tap, they stay editable (erase one, add one), and a
headless Krita can make one (kritarunner crashes adding a vector layer to a document that
has no view, which rules vector shapes out of a real-Krita test; and without a view it has
no active layer either, hence the name). The dots layer is hidden while the canvas is read,
so SAM 2 never sees the dots. An existing
selection's bounds, if any, are the box SAM 2 is also given. The whole visible canvas is
sent, so clicks and box are canvas pixels as they are; the mask comes back at the
canvas's size and replaces the selection.

Plain logic: no Krita imports; krita_host reads the pixels, the controller wires it up.
"""

from __future__ import annotations

import numpy as np

from dreamwire.shared.job import Job
from dreamwire.shared.job_mode import JobMode
from dreamwire.shared.segment import MAX_CLICKS, Click, Segment

from .geometry import Rect
from .pixels import flatten_rgb
from .prompt_regions import LayerInfo
from .regions import PlanError

CLICKS_LAYER = "clicks"

ALPHA = 128  # a pixel at least half opaque belongs to a dot
# A blob larger than this share of the canvas is not a dot: the active layer is artwork.
MAX_DOT_SHARE = 0.02


def blobs(opaque: np.ndarray) -> list[np.ndarray]:
    """The 8-connected blobs of a bool image, each as an N x 2 array of (row, col)."""
    seen = np.zeros_like(opaque, dtype=bool)
    h, w = opaque.shape
    out = []
    for start in zip(*np.nonzero(opaque), strict=True):
        if seen[start]:
            continue
        seen[start] = True
        stack, cells = [start], []
        while stack:
            y, x = stack.pop()
            cells.append((y, x))
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    ny, nx = y + dy, x + dx
                    if 0 <= ny < h and 0 <= nx < w and opaque[ny, nx] and not seen[ny, nx]:
                        seen[ny, nx] = True
                        stack.append((ny, nx))
        out.append(np.array(cells))
    return out


def is_negative(rgb) -> bool:
    """A red dot marks a "not this" click."""
    r, g, b = (float(v) for v in rgb)
    return r >= 128 and r > 2 * g and r > 2 * b


def clicks_from_dots(rgba: np.ndarray) -> list[Click]:
    """One click per dot of the layer's pixels (H x W x 4 over the canvas), at the centre
    of its pixels (pixel (c, r) covers c..c+1, r..r+1), positive unless red."""
    opaque = rgba[..., 3] >= ALPHA
    clicks = []
    for cells in blobs(opaque):
        if len(cells) > MAX_DOT_SHARE * opaque.size:
            raise PlanError(
                "Select by clicking reads dots from the layer named 'clicks' (else the "
                "active one): paint a few small dots on an empty layer of that name."
            )
        y, x = cells.mean(axis=0) + 0.5
        colour = rgba[cells[:, 0], cells[:, 1], :3].mean(axis=0)
        clicks.append(Click(float(x), float(y), positive=not is_negative(colour)))
    if len(clicks) > MAX_CLICKS:
        raise PlanError(f"Select by clicking takes at most {MAX_CLICKS} dots.")
    return clicks


def clicks_layer(layers: list[LayerInfo]) -> LayerInfo | None:
    """The topmost layer named "clicks" (any case, spaces trimmed); None: use the active."""
    named = [x for x in layers if x.name.strip().lower() == CLICKS_LAYER]
    return named[-1] if named else None


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
            "Select by clicking: paint small dots where the object is (red ones where it "
            "is not) on an empty layer named 'clicks', then press the button."
        )
    job = Job(
        mode=JobMode.SEGMENT,
        init_image=flatten_rgb(pixels),  # over white, as refine sends the canvas
        segment=Segment(clicks=clicks, box=box),
        tag="krita:select",
    )
    return job.validate()


def subject_job(pixels: np.ndarray) -> Job:
    """The whole visible canvas; the soft mask that comes back becomes the selection."""
    job = Job(
        mode=JobMode.SEGMENT,
        init_image=flatten_rgb(pixels),  # over white, as for clicks
        segment=Segment(subject=True),
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
