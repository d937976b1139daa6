"""The draggable pose template: a standing body as shapes, limbs that follow the joints."""

from __future__ import annotations

import numpy as np
from dreamwire_krita.logic.geometry import Rect
from dreamwire_krita.logic.pose import parse_id, pose_image_from_svg, pose_joints, svg_shapes
from dreamwire_krita.logic.pose_template import (
    bone_matrix,
    krita_bone_transform,
    next_person,
    person_svg,
    stale_bones,
    standing_body,
)

from dreamwire.shared.imaging.openpose import (
    COLORS,
    LIMB_ALPHA,
    LIMB_SEQUENCE,
    PoseFrame,
    PosePerson,
    draw_bodypose,
)


def _apply(m, x, y):
    return m[0] * x + m[2] * y + m[4], m[1] * x + m[3] * y + m[5]


def test_the_standing_body_fits_its_box_and_further_people_step_aside():
    box = Rect(40, 10, 200, 120)
    body = standing_body(box)
    xs, ys = [p[0] for p in body], [p[1] for p in body]
    assert len(body) == 18 and min(ys) >= box.y and max(ys) <= box.bottom
    assert min(xs) >= box.x and max(xs) <= box.right
    assert body[2][0] < body[5][0]  # the person's right shoulder is on the picture's left
    assert body[1][1] < body[8][1] < body[9][1] < body[10][1]  # neck, hip, knee, ankle
    right, left = standing_body(box, 1), standing_body(box, 2)
    assert right[1][0] > body[1][0] > left[1][0]
    # A narrow box (a selection around one figure) still holds the whole body.
    thin = standing_body(Rect(0, 0, 30, 200))
    assert min(p[0] for p in thin) >= 0 and max(p[0] for p in thin) <= 30


def test_a_limb_is_the_unit_circle_stretched_between_its_joints():
    a, b = (10.0, 20.0), (40.0, 60.0)
    m = bone_matrix(a, b, 4.0)
    assert np.allclose(_apply(m, -1, 0), a) and np.allclose(_apply(m, 1, 0), b)
    mid = _apply(m, 0, 1)
    assert np.isclose(np.hypot(mid[0] - 25, mid[1] - 40), 4.0)  # half-width across the limb


def test_the_template_reads_back_as_its_joints_and_draws_the_annotator_image():
    canvas = Rect(0, 0, 200, 160)
    body = standing_body(canvas)
    svg = person_svg(3, body, canvas, 144.0)  # 144 dpi: the SVG's size is in points
    joints = pose_joints(svg, canvas.w, canvas.h)
    assert [(j.person, j.index) for j in joints] == [(3, i) for i in range(18)]
    assert np.allclose([(j.x, j.y) for j in joints], body)
    # Limbs carry the joint colours but are never read as joints; they are drawn at the
    # annotator's colour and 0.6 opacity, as ellipses between their joints.
    limbs = [s for s in svg_shapes(svg, canvas.w, canvas.h) if s.id and s.id.kind == "B"]
    assert len(limbs) == 17
    for s in limbs:
        a, b = LIMB_SEQUENCE[s.id.index]
        assert s.rgb == COLORS[s.id.index] and not s.opaque
        assert np.allclose(s.point(-1, 0), body[a], atol=1e-2)
        assert np.allclose(s.point(1, 0), body[b], atol=1e-2)
    assert f'fill-opacity="{LIMB_ALPHA}"' in svg
    region = Rect(20, 10, 128, 128)
    kp = np.array([(x - 20, y - 10, 1.0) for x, y in body])
    want = draw_bodypose(PoseFrame(128, 128, [PosePerson(kp)]))
    assert np.array_equal(pose_image_from_svg(svg, region, canvas.w, canvas.h), want)


def _krita_export(body, canvas, xres, moved=None):
    """The layer as Krita's toSvg writes it: points, and shapes normalised to a box at 0."""
    k = 72 / xres
    parts = []
    for i, (a, b) in enumerate(LIMB_SEQUENCE[:17]):
        m = " ".join(str(v) for v in krita_bone_transform(body[a], body[b], 4.0, k))
        parts.append(
            f'<circle id="P00_B{i:02d}" transform="matrix({m})" r="1" cx="1" cy="1" '
            f'fill="#{COLORS[i][0]:02x}{COLORS[i][1]:02x}{COLORS[i][2]:02x}" fill-opacity="0.6"/>'
        )
    for i, (x, y) in enumerate(body):
        if moved and i in moved:
            x, y = moved[i]
        parts.append(
            f'<circle id="P00_J{i:02d}" transform="translate({(x - 4) * k}, {(y - 4) * k})" '
            f'r="{4 * k}" cx="{4 * k}" cy="{4 * k}" fill="#ff0000"/>'
        )
    w, h = canvas.w * k, canvas.h * k
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}pt" height="{h}pt" '
        f'viewBox="0 0 {w} {h}">{"".join(parts)}</svg>'
    )


def test_limbs_follow_a_dragged_joint_and_only_its_limbs():
    canvas = Rect(0, 0, 300, 200)
    body = standing_body(canvas)
    assert stale_bones(_krita_export(body, canvas, 300.0), canvas.w, canvas.h) == []
    elbow = (body[3][0] - 30, body[3][1] - 25)
    svg = _krita_export(body, canvas, 300.0, moved={3: elbow})
    follow = stale_bones(svg, canvas.w, canvas.h)
    # The right elbow ends limbs 2 (shoulder-elbow) and 3 (elbow-wrist).
    assert sorted(f.name for f in follow) == ["P00_B02", "P00_B03"]
    for f in follow:
        bone = parse_id(f.name).index
        a, b = LIMB_SEQUENCE[bone]
        want_a = elbow if a == 3 else body[a]
        want_b = elbow if b == 3 else body[b]
        assert np.allclose(f.a, want_a, atol=1e-6) and np.allclose(f.b, want_b, atol=1e-6)
        assert np.isclose(f.stick, 4.0)  # the limb keeps its width
    # Once Krita has the new matrices, nothing is stale any more.
    body2 = list(body)
    body2[3] = elbow
    assert stale_bones(_krita_export(body2, canvas, 300.0), canvas.w, canvas.h) == []


def test_add_person_numbers_the_next_body():
    canvas = Rect(0, 0, 100, 100)
    assert next_person(None, 100, 100) == 0
    svg = person_svg(0, standing_body(canvas), canvas, 72.0)
    assert next_person(svg, 100, 100) == 1
    other = person_svg(4, standing_body(canvas, 1), canvas, 72.0)
    two = svg.replace("</svg>", other[other.index(">") + 1 :])
    assert next_person(two, 100, 100) == 5
    # Each template person is one body in the control image, whatever the colours say.
    joints = pose_joints(two, 100, 100)
    assert sorted({j.person for j in joints}) == [0, 4] and len(joints) == 36
