"""Pose skeletons as editable SVG and back."""

from __future__ import annotations

import re

import numpy as np

from dreamwire.shared.imaging import openpose as op
from dreamwire.shared.imaging.pose_svg import pose_from_svg, pose_to_svg


def frame_with_two_people():
    rng = np.random.default_rng(5)
    people = []
    for _ in range(2):
        kp = np.zeros((18, 3))
        kp[:, 0] = rng.uniform(0, 300, 18)
        kp[:, 1] = rng.uniform(0, 200, 18)
        kp[:, 2] = (rng.random(18) > 0.2).astype(float)
        people.append(op.PosePerson(kp))
    return op.PoseFrame(300, 200, people)


def test_svg_round_trip_redraws_identically():
    frame = frame_with_two_people()
    svg = pose_to_svg(frame)
    back = pose_from_svg(svg)
    assert (back.width, back.height) == (300, 200) and len(back.people) == 2
    for a, b in zip(frame.people, back.people, strict=True):
        np.testing.assert_allclose(
            a.keypoints[a.visible(), :2], b.keypoints[a.visible(), :2], atol=1e-3
        )
        assert (a.visible() == b.visible()).all()
    # Coordinates round to 1e-3 px in the SVG; the drawing truncates to whole pixels.
    assert (op.draw_bodypose(frame) != op.draw_bodypose(back)).any(axis=2).mean() < 0.001


def test_svg_reader_follows_editor_transforms_and_colours():
    kp = np.zeros((18, 3))
    kp[1] = (100, 50, 1)
    kp[2] = (60, 50, 1)
    svg = pose_to_svg(op.PoseFrame(200, 100, [op.PosePerson(kp)]))
    # An editor moved the neck by (10, 5), and dropped the shoulder's id entirely.
    svg = svg.replace('id="pose0-neck"', 'id="pose0-neck" transform="translate(10, 5)"')
    svg = re.sub(r'id="pose0-right_shoulder" ', "", svg)
    svg = svg.replace('<g id="pose0">', '<g id="pose0" transform="matrix(2 0 0 2 0 0)">')
    back = pose_from_svg(svg, scale=0.5)
    got = back.people[0].keypoints
    np.testing.assert_allclose(got[1], [110, 55, 1])  # (100+10, 50+5) * 2 * 0.5
    np.testing.assert_allclose(got[2], [60, 50, 1])
    assert got[[0, 3, 4], 2].sum() == 0
