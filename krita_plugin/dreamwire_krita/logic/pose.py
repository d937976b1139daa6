"""A vector layer drawn as an OpenPose skeleton, read back as keypoints and redrawn.

The artist draws each joint as a circle filled with that joint's COCO-18 colour, or drags
the joints of the pose template ("Add pose", logic/pose_template.py), whose shapes carry
ids naming person and joint. Reading the joints from the layer's SVG, rather than using its pixels, gives the
exact drawing ControlNet was trained on (limb ellipses, 0.6 dimming, joint circles) at
whatever size the job needs; the limbs on the layer are only there to see. Several
hand-drawn circles of one colour are several people, in document order.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import numpy as np

from dreamwire.shared.imaging.openpose import (
    COLORS,
    NUM_KEYPOINTS,
    PoseFrame,
    PosePerson,
    draw_bodypose,
)

from .geometry import Rect

# A joint colour may be off by this much per channel (colour pickers, 8-bit rounding).
COLOUR_TOLERANCE = 12
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_UNITS_PER_INCH = {"pt": 72.0, "px": 96.0, "in": 1.0, "mm": 25.4, "cm": 2.54, "": 96.0}

Matrix = tuple[float, float, float, float, float, float]  # SVG's a b c d e f
IDENTITY: Matrix = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)


def _mul(m: Matrix, n: Matrix) -> Matrix:
    a, b, c, d, e, f = m
    a2, b2, c2, d2, e2, f2 = n
    return (
        a * a2 + c * b2,
        b * a2 + d * b2,
        a * c2 + c * d2,
        b * c2 + d * d2,
        a * e2 + c * f2 + e,
        b * e2 + d * f2 + f,
    )


def parse_transform(text: str | None) -> Matrix:
    m = IDENTITY
    for name, args in re.findall(r"(\w+)\s*\(([^)]*)\)", text or ""):
        v = [float(x) for x in re.findall(_NUM, args)]
        if name == "matrix" and len(v) == 6:
            t = tuple(v)
        elif name == "translate" and v:
            t = (1.0, 0.0, 0.0, 1.0, v[0], v[1] if len(v) > 1 else 0.0)
        elif name == "scale" and v:
            t = (v[0], 0.0, 0.0, v[1] if len(v) > 1 else v[0], 0.0, 0.0)
        elif name == "rotate" and v:
            r = math.radians(v[0])
            t = (math.cos(r), math.sin(r), -math.sin(r), math.cos(r), 0.0, 0.0)
            if len(v) == 3:
                t = _mul(_mul((1, 0, 0, 1, v[1], v[2]), t), (1, 0, 0, 1, -v[1], -v[2]))
        else:
            continue
        m = _mul(m, t)
    return m


def _length(text: str | None) -> tuple[float, str] | None:
    m = re.fullmatch(rf"\s*({_NUM})\s*([a-z]*)\s*", text or "")
    return (float(m.group(1)), m.group(2)) if m else None


def _colour(el: ET.Element) -> tuple[int, int, int] | None:
    fill = el.get("fill")
    style = el.get("style") or ""
    m = re.search(r"fill\s*:\s*([^;]+)", style)
    if m:
        fill = m.group(1).strip()
    if not fill or not fill.startswith("#"):
        return None
    h = fill[1:]
    if len(h) == 3:
        h = "".join(ch * 2 for ch in h)
    if len(h) != 6:
        return None
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def joint_index(rgb: tuple[int, int, int]) -> int | None:
    best, dist = None, COLOUR_TOLERANCE + 1
    for i, c in enumerate(COLORS[:NUM_KEYPOINTS]):
        d = max(abs(a - b) for a, b in zip(rgb, c, strict=True))
        if d < dist:
            best, dist = i, d
    return best


# Shape ids of the pose template (logic/pose_template.py), Krita AI Diffusion's scheme:
# P<person>_J<joint> for a joint circle, P<person>_B<bone> for a limb. Krita keeps an SVG
# id as the shape's name and writes it back, so a dragged joint still says who it is.
_ID = re.compile(r"P(\d{2})_([JB])(\d{2})")


@dataclass(frozen=True)
class ShapeId:
    person: int
    kind: str  # "J" joint, "B" bone
    index: int

    def text(self) -> str:
        return f"P{self.person:02d}_{self.kind}{self.index:02d}"


def parse_id(text: str | None) -> ShapeId | None:
    m = _ID.fullmatch(text or "")
    return ShapeId(int(m.group(1)), m.group(2), int(m.group(3))) if m else None


@dataclass(frozen=True)
class SvgShape:
    """A circle or ellipse of the layer: its id, fill and its place in document pixels."""

    id: ShapeId | None
    rgb: tuple[int, int, int] | None
    opaque: bool  # fill-opacity 1: a joint; limbs are drawn at the annotator's 0.6
    cx: float
    cy: float
    rx: float
    ry: float
    matrix: Matrix  # local SVG units -> document pixels

    def point(self, x: float, y: float) -> tuple[float, float]:
        m = self.matrix
        return m[0] * x + m[2] * y + m[4], m[1] * x + m[3] * y + m[5]


def svg_shapes(svg: str, doc_width: int, doc_height: int) -> list[SvgShape]:
    """Every circle and ellipse of the layer's SVG, in document order."""
    root = ET.fromstring(svg)
    sx, sy = _svg_scale(root, doc_width, doc_height)
    found: list[SvgShape] = []

    def walk(el: ET.Element, m: Matrix) -> None:
        m = _mul(m, parse_transform(el.get("transform")))
        tag = el.tag.rsplit("}", 1)[-1]
        if tag in ("circle", "ellipse"):
            r = float(el.get("r", 0))
            found.append(
                SvgShape(
                    parse_id(el.get("id")),
                    _colour(el),
                    _fill_opacity(el) >= 0.95,
                    float(el.get("cx", 0)),
                    float(el.get("cy", 0)),
                    float(el.get("rx", r)),
                    float(el.get("ry", r)),
                    _mul((sx, 0.0, 0.0, sy, 0.0, 0.0), m),
                )
            )
        for child in el:
            walk(child, m)

    walk(root, IDENTITY)
    return found


def _fill_opacity(el: ET.Element) -> float:
    text = el.get("fill-opacity")
    m = re.search(r"fill-opacity\s*:\s*([^;]+)", el.get("style") or "")
    if m:
        text = m.group(1)
    try:
        return float(text) if text is not None else 1.0
    except ValueError:
        return 1.0


@dataclass(frozen=True)
class Joint:
    person: int | None  # from the shape's id; None: a circle drawn by hand
    index: int
    x: float
    y: float


def pose_joints(svg: str, doc_width: int, doc_height: int) -> list[Joint]:
    """Every joint of the layer: the template's by id, hand-drawn circles by colour.
    Limbs (a bone id, or a translucent fill) are left out: they follow the joints."""
    out = []
    for s in svg_shapes(svg, doc_width, doc_height):
        if s.id is not None and s.id.kind == "B":
            continue
        if s.id is not None and s.id.index < NUM_KEYPOINTS:
            out.append(Joint(s.id.person, s.id.index, *s.point(s.cx, s.cy)))
            continue
        idx = joint_index(s.rgb) if s.rgb and s.opaque else None
        if idx is not None:
            out.append(Joint(None, idx, *s.point(s.cx, s.cy)))
    return out


def joints_from_svg(svg: str, doc_width: int, doc_height: int) -> list[tuple[int, float, float]]:
    """(joint index, x, y) in document pixels for every joint of the layer."""
    return [(j.index, j.x, j.y) for j in pose_joints(svg, doc_width, doc_height)]


def _svg_scale(root: ET.Element, doc_width: int, doc_height: int) -> tuple[float, float]:
    """Document pixels per SVG user unit, from the viewBox (or width/height) of the root."""
    vb = [float(x) for x in re.findall(_NUM, root.get("viewBox", ""))]
    if len(vb) == 4 and vb[2] > 0 and vb[3] > 0:
        return doc_width / vb[2], doc_height / vb[3]
    w, h = _length(root.get("width")), _length(root.get("height"))
    if w and h and w[0] > 0 and h[0] > 0:
        return doc_width / w[0], doc_height / h[0]
    return 1.0, 1.0


def people_from_joints(joints: list[tuple[int, float, float]]) -> list[PosePerson]:
    """Hand-drawn joints: a repeated colour starts the next person, in document order."""
    people: list[np.ndarray] = []
    for idx, x, y in joints:
        for kp in people:
            if kp[idx, 2] == 0:
                break
        else:
            kp = np.zeros((NUM_KEYPOINTS, 3))
            people.append(kp)
        kp[idx] = (x, y, 1.0)
    return [PosePerson(kp) for kp in people]


def people_of(joints: list[Joint]) -> list[PosePerson]:
    """The template's people by their ids (ascending), then the hand-drawn ones."""
    by_id: dict[int, np.ndarray] = {}
    for j in joints:
        if j.person is not None:
            by_id.setdefault(j.person, np.zeros((NUM_KEYPOINTS, 3)))[j.index] = (j.x, j.y, 1.0)
    drawn = people_from_joints([(j.index, j.x, j.y) for j in joints if j.person is None])
    return [PosePerson(by_id[p]) for p in sorted(by_id)] + drawn


def pose_image_from_svg(
    svg: str, region: Rect, doc_width: int, doc_height: int
) -> np.ndarray | None:
    """The OpenPose control image over region, or None when the layer holds no joints."""
    joints = pose_joints(svg, doc_width, doc_height)
    if not joints:
        return None
    shifted = [Joint(j.person, j.index, j.x - region.x, j.y - region.y) for j in joints]
    return draw_bodypose(PoseFrame(region.w, region.h, people_of(shifted)))
