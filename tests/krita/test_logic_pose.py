"""Pose skeletons drawn on vector layers: joints read from SVG, redrawn as COCO-18."""

from __future__ import annotations

import numpy as np
from dreamwire_krita.logic.geometry import Rect
from dreamwire_krita.logic.pose import (
    joint_index,
    joints_from_svg,
    parse_transform,
    people_from_joints,
    pose_image_from_svg,
)

from dreamwire.shared.imaging.openpose import COLORS, PoseFrame, PosePerson, draw_bodypose


def _hex(rgb):
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _svg(joints, body="", root='width="200pt" height="100pt" viewBox="0 0 200 100"'):
    circles = "".join(
        f'<circle cx="{x}" cy="{y}" r="3" fill="{_hex(COLORS[i])}"/>' for i, x, y in joints
    )
    return f'<svg xmlns="http://www.w3.org/2000/svg" {root}>{circles}{body}</svg>'


def test_transforms_compose_like_svg():
    m = parse_transform("translate(10, 5) scale(2)")
    assert m == (2.0, 0.0, 0.0, 2.0, 10.0, 5.0)
    a, b, c, d, e, f = parse_transform("rotate(90)")
    assert round(a, 6) == 0 and round(b, 6) == 1 and round(c, 6) == -1


def test_joint_colours_are_matched_with_tolerance_and_others_ignored():
    assert joint_index(COLORS[1]) == 1
    assert joint_index((250, 90, 5)) == 1
    assert joint_index((128, 128, 128)) is None


def test_joints_scale_from_svg_units_to_document_pixels():
    svg = _svg([(0, 50, 20), (1, 60, 40)])
    joints = joints_from_svg(svg, 400, 200)  # the document has 2 px per SVG unit
    assert joints == [(0, 100.0, 40.0), (1, 120.0, 80.0)]


def test_group_transforms_and_style_fills_are_honoured():
    body = (
        '<g transform="translate(100,0)"><ellipse cx="5" cy="6" rx="2" ry="2" '
        f'style="stroke:none;fill:{_hex(COLORS[2])}"/></g>'
    )
    joints = joints_from_svg(_svg([], body), 200, 100)
    assert joints == [(2, 105.0, 6.0)]


def test_repeated_colours_make_more_people():
    people = people_from_joints([(0, 1, 1), (1, 2, 2), (0, 10, 10)])
    assert len(people) == 2
    assert people[1].keypoints[0].tolist() == [10, 10, 1] and people[1].keypoints[1, 2] == 0


def test_pose_image_is_the_annotator_drawing_in_region_coordinates():
    pts = [(0, 60, 30), (1, 60, 50), (2, 45, 50), (5, 75, 50), (8, 50, 80), (11, 70, 80)]
    region = Rect(20, 10, 96, 96)
    image = pose_image_from_svg(_svg(pts), region, 200, 100)
    kp = np.zeros((18, 3))
    for i, x, y in pts:
        kp[i] = (x - 20, y - 10, 1)
    want = draw_bodypose(PoseFrame(96, 96, [PosePerson(kp)]))
    assert image.shape == (96, 96, 3) and np.array_equal(image, want)
    assert tuple(image[20, 40]) == COLORS[0]  # the nose joint, full colour


def test_a_layer_without_joints_gives_none():
    body = '<rect x="0" y="0" width="10" height="10" fill="#ff0000"/>'
    assert pose_image_from_svg(_svg([], body), Rect(0, 0, 64, 64), 200, 100) is None
