"""The pose template: a standing OpenPose body as vector shapes an artist drags.

"Add pose" puts one body (18 COCO keypoints) on a vector layer: each joint a circle in its
OpenPose colour, each limb an ellipse in its colour at the annotator's 0.6 opacity, drawn
as controlnet_aux's `draw_bodypose` draws them (an ellipse of half-length |ab|/2 and
half-width 4 between the joints, joints of radius 4, both scaled up on large canvases).
Joints are dragged with Krita's shape tool; the limbs then follow (`stale_bones`): each
limb is the unit circle under a matrix, so following is a new matrix for the same shape,
which Krita does without an undo step (a deleted and re-added limb would be two).

The job never reads the limbs: its control image is drawn again from the joints
(logic/pose.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dreamwire.shared.imaging.openpose import (
    COLORS,
    DRAWN_LIMBS,
    JOINT_RADIUS,
    LIMB_ALPHA,
    LIMB_SEQUENCE,
    STICK_WIDTH,
)

from .geometry import Rect
from .pose import Matrix, ShapeId, pose_joints, svg_shapes

# A standing body facing the viewer, in body heights: x from the body's centre line (the
# person's right is the picture's left), y from the top of the head. COCO-18 order.
STANDING = (
    (0.0, 0.09),  # nose
    (0.0, 0.19),  # neck
    (-0.10, 0.19),  # right shoulder
    (-0.13, 0.33),  # right elbow
    (-0.15, 0.46),  # right wrist
    (0.10, 0.19),  # left shoulder
    (0.13, 0.33),  # left elbow
    (0.15, 0.46),  # left wrist
    (-0.06, 0.50),  # right hip
    (-0.065, 0.73),  # right knee
    (-0.065, 0.95),  # right ankle
    (0.06, 0.50),  # left hip
    (0.065, 0.73),  # left knee
    (0.065, 0.95),  # left ankle
    (-0.025, 0.075),  # right eye
    (0.025, 0.075),  # left eye
    (-0.05, 0.085),  # right ear
    (0.05, 0.085),  # left ear
)
BODY_WIDTH = 0.34  # of its height, arms included, with a little air
MARGIN = 0.9  # the body fills at most this much of its box
# Joints further apart than this (document pixels) from their limb's end: redraw the limb.
FOLLOW_TOLERANCE = 0.5

Point = tuple[float, float]


@dataclass(frozen=True)
class Sizes:
    """Joint radius and limb half-width in document pixels."""

    radius: float
    stick: float


def sizes(canvas: Rect) -> Sizes:
    """The annotator's 4 px at 512 px and below; in proportion above, so a joint stays
    big enough to grab on a large canvas."""
    s = max(1.0, min(canvas.w, canvas.h) / 512)
    return Sizes(JOINT_RADIUS * s, STICK_WIDTH * s)


def standing_body(box: Rect, slot: int = 0) -> list[Point]:
    """The standing body's 18 joints fitted into `box` (the selection, else the canvas).
    `slot` > 0 steps a further person sideways (right, left, further right...) so people
    added without a selection do not land on top of each other."""
    height = min(box.h, box.w / BODY_WIDTH) * MARGIN
    top = box.y + (box.h - height) / 2
    step = BODY_WIDTH * height * ((slot + 1) // 2) * (1 if slot % 2 else -1)
    centre = box.x + box.w / 2 + step
    half = BODY_WIDTH * height / 2
    centre = min(max(centre, box.x + half), box.x + box.w - half)
    return [(centre + x * height, top + y * height) for x, y in STANDING]


def bone_matrix(a: Point, b: Point, stick: float) -> Matrix:
    """The unit circle onto the limb from `a` to `b`: centred between them, its long
    half-axis |ab|/2 along ab, its short one `stick` (the annotator's ellipse)."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    half = max(math.hypot(dx, dy) / 2, 0.5)
    angle = math.atan2(dy, dx)
    c, s = math.cos(angle), math.sin(angle)
    return (c * half, s * half, -s * stick, c * stick, (a[0] + b[0]) / 2, (a[1] + b[1]) / 2)


def krita_bone_transform(a: Point, b: Point, stick: float, pt_per_px: float) -> Matrix:
    """The limb's matrix as Krita's Shape.setTransformation takes it: Krita keeps a loaded
    unit circle as the circle of radius 1 centred on (1, 1), in points, not pixels."""
    m = bone_matrix(a, b, stick)
    e = m[4] - m[0] - m[2]
    f = m[5] - m[1] - m[3]
    return tuple(v * pt_per_px for v in (m[0], m[1], m[2], m[3], e, f))  # type: ignore[return-value]


def _hex(i: int) -> str:
    return "#{:02x}{:02x}{:02x}".format(*COLORS[i])


def _num(v: float) -> str:
    return f"{v:.3f}".rstrip("0").rstrip(".")


def bone_element(person: int, bone: int, a: Point, b: Point, stick: float) -> str:
    m = " ".join(_num(v) for v in bone_matrix(a, b, stick))
    return (
        f'<ellipse id="{ShapeId(person, "B", bone).text()}" cx="0" cy="0" rx="1" ry="1" '
        f'fill="{_hex(bone)}" fill-opacity="{LIMB_ALPHA}" transform="matrix({m})"/>'
    )


def joint_element(person: int, joint: int, p: Point, radius: float) -> str:
    return (
        f'<circle id="{ShapeId(person, "J", joint).text()}" cx="{_num(p[0])}" '
        f'cy="{_num(p[1])}" r="{_num(radius)}" fill="{_hex(joint)}"/>'
    )


def svg_document(body: str, width: int, height: int, xres: float) -> str:
    """An SVG whose user unit is one document pixel, sized in points as Krita reads it."""
    w_pt, h_pt = width * 72 / xres, height * 72 / xres
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_num(w_pt)}pt" '
        f'height="{_num(h_pt)}pt" viewBox="0 0 {width} {height}">{body}</svg>'
    )


def person_svg(
    person: int, joints: list[Point], canvas: Rect, xres: float, with_joints: bool = True
) -> str:
    """One person's limbs (under) and joints (over), for Krita's addShapesFromSvg."""
    size = sizes(canvas)
    parts = [
        bone_element(person, i, joints[a], joints[b], size.stick)
        for i, (a, b) in enumerate(LIMB_SEQUENCE[:DRAWN_LIMBS])
    ]
    if with_joints:
        parts += [joint_element(person, i, p, size.radius) for i, p in enumerate(joints)]
    return svg_document("".join(parts), canvas.w, canvas.h, xres)


def people_in(svg: str, doc_width: int, doc_height: int) -> list[int]:
    """The template people the layer holds (their ids), ascending."""
    return sorted(
        {j.person for j in pose_joints(svg, doc_width, doc_height) if j.person is not None}
    )


def next_person(svg: str | None, doc_width: int, doc_height: int) -> int:
    people = people_in(svg, doc_width, doc_height) if svg else []
    return people[-1] + 1 if people else 0


@dataclass(frozen=True)
class Follow:
    """A limb to move onto its joints again: the shape's name and its new ends."""

    name: str
    a: Point
    b: Point
    stick: float  # the limb's own half-width, kept (it grew with the canvas, if it did)


def stale_bones(svg: str, doc_width: int, doc_height: int) -> list[Follow]:
    """The template limbs whose ends no longer sit on their joints (a joint was dragged,
    or an undo put one back). A limb whose joint is gone is left as it is."""
    joints = {
        (j.person, j.index): (j.x, j.y)
        for j in pose_joints(svg, doc_width, doc_height)
        if j.person is not None
    }
    out = []
    for s in svg_shapes(svg, doc_width, doc_height):
        if s.id is None or s.id.kind != "B" or s.id.index >= DRAWN_LIMBS:
            continue
        ja, jb = LIMB_SEQUENCE[s.id.index]
        a, b = joints.get((s.id.person, ja)), joints.get((s.id.person, jb))
        if a is None or b is None:
            continue
        # The circle's ends on its local x axis are the limb's ends.
        ea = s.point(s.cx - s.rx, s.cy)
        eb = s.point(s.cx + s.rx, s.cy)
        if max(_dist(ea, a), _dist(eb, b)) > FOLLOW_TOLERANCE:
            stick = _dist(s.point(s.cx, s.cy), s.point(s.cx, s.cy + s.ry))
            out.append(Follow(s.id.text(), a, b, stick))
    return out


def _dist(p: Point, q: Point) -> float:
    return math.hypot(p[0] - q[0], p[1] - q[1])


def slot_count(svg: str | None, doc_width: int, doc_height: int) -> int:
    """How many people the layer holds: where the next one added without a selection goes."""
    return len(people_in(svg, doc_width, doc_height)) if svg else 0
