"""A vector layer drawn as an OpenPose skeleton, read back as keypoints and redrawn.

The artist (or a pose tool) draws each joint as a circle filled with that joint's COCO-18
colour. Reading the joints from the layer's SVG, rather than using its pixels, gives the
exact drawing ControlNet was trained on (limb ellipses, 0.6 dimming, joint circles) at
whatever size the job needs. Several circles of one colour are several people, in
document order.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

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


def joints_from_svg(svg: str, doc_width: int, doc_height: int) -> list[tuple[int, float, float]]:
    """(joint index, x, y) in document pixels for every joint-coloured circle or ellipse."""
    root = ET.fromstring(svg)
    scale = _svg_scale(root, doc_width, doc_height)
    found: list[tuple[int, float, float]] = []

    def walk(el: ET.Element, m: Matrix) -> None:
        m = _mul(m, parse_transform(el.get("transform")))
        tag = el.tag.rsplit("}", 1)[-1]
        if tag in ("circle", "ellipse"):
            rgb = _colour(el)
            idx = joint_index(rgb) if rgb else None
            if idx is not None:
                cx, cy = float(el.get("cx", 0)), float(el.get("cy", 0))
                x = m[0] * cx + m[2] * cy + m[4]
                y = m[1] * cx + m[3] * cy + m[5]
                found.append((idx, x * scale[0], y * scale[1]))
        for child in el:
            walk(child, m)

    walk(root, IDENTITY)
    return found


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


def pose_image_from_svg(
    svg: str, region: Rect, doc_width: int, doc_height: int
) -> np.ndarray | None:
    """The OpenPose control image over region, or None when the layer holds no joints."""
    joints = joints_from_svg(svg, doc_width, doc_height)
    if not joints:
        return None
    shifted = [(i, x - region.x, y - region.y) for i, x, y in joints]
    return draw_bodypose(PoseFrame(region.w, region.h, people_from_joints(shifted)))
