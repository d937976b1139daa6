"""OpenPose skeletons as editable SVG (for vector layers, e.g. Krita's) and back.

Each person is a group of limb lines (colour * 0.6, the annotator's limb colour) and joint
circles (the joint colour, radius 4). A joint circle is identified by its id
("pose<person>-<keypoint name>") or, when an editor dropped the ids, by its fill colour,
which is unique per keypoint. Editors move shapes by adding transforms; the reader
applies `translate`, `scale` and `matrix` transforms of the element and its parents, so
a moved joint is read where it now is. The pose image itself is always redrawn with
draw_bodypose, so it stays exactly the annotator's drawing.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np

from .openpose import (
    COLORS,
    DRAWN_LIMBS,
    JOINT_RADIUS,
    KEYPOINT_INDEX,
    KEYPOINT_NAMES,
    LIMB_ALPHA,
    LIMB_SEQUENCE,
    STICK_WIDTH,
    PoseFrame,
    PosePerson,
)

SVG_NS = "http://www.w3.org/2000/svg"
_ID = re.compile(r"pose(\d+)-([a-z_]+)$")
_COLOR_TO_INDEX = {c: i for i, c in enumerate(COLORS)}


def _hex(c) -> str:
    return "#{:02x}{:02x}{:02x}".format(*c)


def pose_to_svg(frame: PoseFrame) -> str:
    """SVG text of the frame, in pixel units (viewBox = canvas)."""
    w, h = frame.width, frame.height
    out = [
        f'<svg xmlns="{SVG_NS}" width="{w}" height="{h}" viewBox="0 0 {w} {h}">',
        f'<rect id="pose-background" x="0" y="0" width="{w}" height="{h}" fill="#000000"/>',
    ]
    for n, person in enumerate(frame.people):
        kp = person.keypoints
        out.append(f'<g id="pose{n}">')
        for i in range(DRAWN_LIMBS):
            a, b = LIMB_SEQUENCE[i]
            if kp[a, 2] > 0 and kp[b, 2] > 0:
                col = tuple(int(v * LIMB_ALPHA) for v in COLORS[i])
                out.append(
                    f'<line id="pose{n}-limb{i}" x1="{kp[a, 0]:.3f}" y1="{kp[a, 1]:.3f}" '
                    f'x2="{kp[b, 0]:.3f}" y2="{kp[b, 1]:.3f}" stroke="{_hex(col)}" '
                    f'stroke-width="{2 * STICK_WIDTH}" stroke-linecap="round"/>'
                )
        for i, name in enumerate(KEYPOINT_NAMES):
            if kp[i, 2] > 0:
                out.append(
                    f'<circle id="pose{n}-{name}" cx="{kp[i, 0]:.3f}" cy="{kp[i, 1]:.3f}" '
                    f'r="{JOINT_RADIUS}" fill="{_hex(COLORS[i])}"/>'
                )
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)


def _parse_transform(text: str | None) -> np.ndarray:
    m = np.eye(3)
    if not text:
        return m
    for kind, args in re.findall(r"(\w+)\s*\(([^)]*)\)", text):
        v = [float(x) for x in re.split(r"[\s,]+", args.strip()) if x]
        t = np.eye(3)
        if kind == "matrix" and len(v) == 6:
            t[:2] = [[v[0], v[2], v[4]], [v[1], v[3], v[5]]]
        elif kind == "translate":
            t[0, 2] = v[0]
            t[1, 2] = v[1] if len(v) > 1 else 0.0
        elif kind == "scale":
            t[0, 0] = v[0]
            t[1, 1] = v[1] if len(v) > 1 else v[0]
        elif kind == "rotate":
            a = np.radians(v[0])
            r = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
            if len(v) == 3:
                pre, post = np.eye(3), np.eye(3)
                pre[:2, 2] = v[1:]
                post[:2, 2] = [-v[1], -v[2]]
                r = pre @ r @ post
            t = r
        m = m @ t
    return m


def _color(el: ET.Element) -> tuple[int, int, int] | None:
    fill = el.get("fill")
    style = el.get("style") or ""
    ms = re.search(r"fill\s*:\s*(#[0-9a-fA-F]{6})", style)
    if ms:
        fill = ms.group(1)
    if fill and re.fullmatch(r"#[0-9a-fA-F]{6}", fill):
        return tuple(int(fill[i : i + 2], 16) for i in (1, 3, 5))
    return None


def _num(el: ET.Element, name: str) -> float:
    v = el.get(name) or "0"
    return float(re.match(r"[-+0-9.eE]+", v).group(0))


def pose_from_svg(
    text: str, width: int | None = None, height: int | None = None, scale: float = 1.0
) -> PoseFrame:
    """Read joint circles back from SVG. `scale` converts SVG units to pixels (e.g. for an
    editor that writes points); the canvas size defaults to the SVG's viewBox."""
    root = ET.fromstring(text)
    if width is None or height is None:
        vb = root.get("viewBox")
        if vb:
            _, _, vw, vh = (float(x) for x in re.split(r"[\s,]+", vb.strip()))
        else:
            vw, vh = _num(root, "width"), _num(root, "height")
        width = width or int(round(vw * scale))
        height = height or int(round(vh * scale))
    people: dict[int, np.ndarray] = {}

    def walk(el: ET.Element, m: np.ndarray, person: int) -> None:
        m = m @ _parse_transform(el.get("transform"))
        gid = _ID.match(el.get("id") or "") or re.fullmatch(r"pose(\d+)", el.get("id") or "")
        tag = el.tag.rsplit("}", 1)[-1]
        if tag == "g" and gid:
            person = int(gid.group(1))
        if tag in ("circle", "ellipse"):
            idx = None
            m_id = _ID.match(el.get("id") or "")
            if m_id and m_id.group(2) in KEYPOINT_INDEX:
                person, idx = int(m_id.group(1)), KEYPOINT_INDEX[m_id.group(2)]
            else:
                idx = _COLOR_TO_INDEX.get(_color(el))
            if idx is not None:
                p = m @ np.array([_num(el, "cx"), _num(el, "cy"), 1.0])
                kp = people.setdefault(person, np.zeros((len(KEYPOINT_NAMES), 3)))
                kp[idx] = (p[0] * scale, p[1] * scale, 1.0)
        for child in el:
            walk(child, m, person)

    walk(root, np.eye(3), 0)
    return PoseFrame(int(width), int(height), [PosePerson(people[k]) for k in sorted(people)])
