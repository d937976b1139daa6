"""Which side of an object a camera sees, and the phrase its prompt gets (no Blender)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from blender_addon.core.texturing.view_prompts import (
    BACK,
    BOTTOM,
    FRONT,
    SIDE,
    TOP,
    WORLD_FRAME,
    ViewPhrases,
    ViewThresholds,
    object_frame,
    view_side,
    with_view,
)


def looking_from(position, target=(0, 0, 0)):
    """The viewing direction of a camera at `position` aimed at `target`."""
    return np.asarray(target, float) - np.asarray(position, float)


def rot_z(deg):
    a = math.radians(deg)
    m = np.eye(4)
    m[:2, :2] = [[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]
    return m


@pytest.mark.parametrize(
    ("position", "side"),
    [
        ((0, -5, 0), FRONT),  # Blender's front is -Y
        ((0, 5, 0), BACK),
        ((5, 0, 0), SIDE),
        ((-5, 0, 0), SIDE),
        ((0, 0, 5), TOP),  # straight above
        ((0, 0, -5), BOTTOM),
        ((2, -5, 1.5), FRONT),  # a little off-axis and raised: still the front
        ((-4, 5, 0.5), BACK),
        ((0, -5, 5), FRONT),  # 45 degrees up: not yet a top view
        ((0.1, -2, 5), TOP),
        ((5, -4.5, 0), SIDE),  # beyond 45 degrees round from the front
    ],
)
def test_side_from_the_camera_direction_in_the_world_frame(position, side):
    assert view_side(looking_from(position), WORLD_FRAME) == side


def test_thresholds_move_the_boundaries():
    d = looking_from((0, -5, 4))  # about 39 degrees up
    assert view_side(d) == FRONT
    assert view_side(d, WORLD_FRAME, ViewThresholds(top_deg=30)) == TOP
    d = looking_from((5, -6, 0))  # about 40 degrees round
    assert view_side(d, WORLD_FRAME, ViewThresholds(front_deg=30)) == SIDE


def test_the_objects_own_front_and_up_are_used():
    turned = object_frame(rot_z(180))  # the object faces +Y in the world
    assert view_side(looking_from((0, -5, 0)), turned) == BACK
    assert view_side(looking_from((0, 5, 0)), turned) == FRONT
    quarter = object_frame(rot_z(90))  # local -Y is world +X
    assert np.allclose(quarter.front, [1, 0, 0])
    assert view_side(looking_from((5, 0, 0)), quarter) == FRONT
    lying = np.eye(4)
    lying[:3, :3] = [[1, 0, 0], [0, 0, -1], [0, 1, 0]]  # tipped over: local +Z is world -Y
    frame = object_frame(lying)
    assert np.allclose(frame.up, [0, -1, 0]) and np.allclose(frame.front, [0, 0, -1])
    assert view_side(looking_from((0, -5, 0)), frame) == TOP
    assert view_side(looking_from((0, 0, -5)), frame) == FRONT
    # Scale, shear or none at all: still unit, perpendicular axes (or the world's).
    sheared = np.diag([2.0, 3.0, 0.5, 1.0])
    sheared[0, 1] = 1.0
    f = object_frame(sheared)
    assert np.isclose(np.linalg.norm(f.front), 1) and abs(f.front @ f.up) < 1e-9
    assert object_frame(None) is WORLD_FRAME
    assert object_frame(np.zeros((4, 4))) is WORLD_FRAME


def test_phrases_are_appended_without_touching_the_prompt_syntax():
    phrases = ViewPhrases(front="facing us")
    assert phrases.for_side(FRONT) == "facing us" and phrases.for_side(BACK) == "back view"
    assert with_view("weathered stone", "front view") == "weathered stone, front view"
    assert with_view("(stone:1.2) <lora:moss:0.8>, ", "top view") == (
        "(stone:1.2) <lora:moss:0.8>, top view"
    )
    assert with_view("stone", "  ") == "stone"  # an emptied phrase adds nothing
    assert with_view("", "side view") == "side view"
    with pytest.raises(ValueError):
        phrases.for_side("left")
