"""Click-to-mask and select subject: the settings of a `segment` job (JobMode.SEGMENT).

The backend runs SAM 2 (transformers' Sam2Model) on the job's init image with the artist's
clicks and optional box, and returns one mask: H x W x 3 uint8 at the init image's size,
255 inside the object, 0 outside (all three channels equal, so it stores and travels like
any result image). With `subject` set it takes no clicks or box and runs a background-
removal model instead (rembg's ONNX files: U2-Net, IS-Net, BiRefNet), whose mask is soft:
0..255, as rembg makes it.

Coordinates are pixels of the init image: x to the right, y down, (0, 0) the top-left
corner of the top-left pixel, as Krita's canvas and SAM 2's own predictor count them.

Stdlib only: this module ships inside the Blender and Krita plugins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import DreamwireError, ErrorCode
from .job_fields import FieldCheck

MAX_CLICKS = 64  # SAM 2's predictor takes any number; a host sends a handful


@dataclass
class Click:
    x: float
    y: float
    positive: bool = True  # False: "not this" (SAM's label 0)


@dataclass
class Segment:
    clicks: list[Click] = field(default_factory=list)
    # [x0, y0, x1, y1], x0 < x1 and y0 < y1, or None; at least a click or a box.
    box: list[float] | None = None
    # A SAM 2 folder or file name to prefer (with `subject`: a background-removal model's
    # file name or rembg's name for it); "": the first one found.
    model: str = ""
    subject: bool = False  # the picture's subject, by a background-removal model


def check_segment(s: object, job_id: str, size: tuple[int, int] | None) -> None:
    """Types, ranges and that every click and the box lie on the image (`size` W x H,
    None when the job has no init image: the mode check refuses it)."""
    f = FieldCheck(job_id)
    f.kind("segment", s, Segment)
    fs = f.nested("segment.")
    fs.listed("clicks", s.clicks)
    fs.text("model", s.model)
    fs.flag("subject", s.subject)
    if len(s.clicks) > MAX_CLICKS:
        raise fs.fail(
            "clicks", f"at most {MAX_CLICKS} clicks", len(s.clicks), ErrorCode.INVALID_JOB
        )
    w, h = size or (float("inf"), float("inf"))
    for i, c in enumerate(s.clicks):
        fs.kind(f"clicks[{i}]", c, Click)
        fs.number(f"clicks[{i}].x", c.x, 0, w)
        fs.number(f"clicks[{i}].y", c.y, 0, h)
        fs.flag(f"clicks[{i}].positive", c.positive)
    if s.box is not None:
        fs.listed("box", s.box)
        if len(s.box) != 4:
            raise fs.fail("box", "[x0, y0, x1, y1]", s.box, ErrorCode.INVALID_JOB)
        for i, v in enumerate(s.box):
            fs.number(f"box[{i}]", v, 0, w if i % 2 == 0 else h)
        if not (s.box[0] < s.box[2] and s.box[1] < s.box[3]):
            raise fs.fail("box", "x0 < x1 and y0 < y1", s.box, ErrorCode.INVALID_JOB)
    if s.subject and (s.clicks or s.box is not None):
        # A background-removal model takes the whole picture and no prompt.
        raise DreamwireError(
            ErrorCode.INVALID_JOB, "segment.subject takes no clicks and no box", job_id
        )
    if not s.subject and not s.clicks and s.box is None:
        raise DreamwireError(
            ErrorCode.INVALID_JOB, "segment needs a click or a box (or subject)", job_id
        )


def segment_from_wire(data: Any) -> Segment:
    """A Segment from its JSON object; unknown fields are refused, not dropped."""

    def fields(obj: Any, kind: type, where: str) -> dict:
        if not isinstance(obj, dict):
            raise DreamwireError(ErrorCode.INVALID_JOB, f"{where} must be an object")
        extra = set(obj) - set(kind.__dataclass_fields__)
        if extra:
            raise DreamwireError(
                ErrorCode.INVALID_JOB, f"unknown {kind.__name__} fields: {sorted(extra)}"
            )
        return dict(obj)

    out = fields(data, Segment, "segment")
    clicks = out.get("clicks", [])
    if isinstance(clicks, list):  # anything else is left for check_segment to name
        out["clicks"] = [
            Click(**fields(c, Click, f"segment.clicks[{i}]")) for i, c in enumerate(clicks)
        ]
    return Segment(**out)
