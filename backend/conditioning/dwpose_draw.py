"""DWPose's 133 COCO-WholeBody keypoints as OpenPose people, and their drawing: the
`Wholebody.__call__` / `format_result` mapping and `draw_poses` of the DWPose annotators
(A1111's sd-webui-controlnet annotator/openpose, comfyui_controlnet_aux dwpose; the same
code in both).

Mapping: a neck is put after the 17 COCO body points (the mean of the shoulders, visible
only when both shoulders score > 0.3), then the body is reordered to OpenPose's COCO-18;
after it (so one past COCO-WholeBody's own numbers) 24..91 are the face (68; OpenPose's 70
get the body's eyes, 14 and 15, appended), 92..112 the left hand, 113..133 the right. A point is drawn when it scores >= 0.3.

Drawing, per person on black, in the picture's RGB (cv2 on an RGB canvas):
- body: each of the first 17 limbs an ellipse polygon (half the limb long, 4 wide, cv2
  ellipse2Poly at 1 degree) filled in int(colour * 0.6), then every joint a filled circle
  of radius 4 in its full colour (shared/imaging/openpose.py's order and colours);
- hands: 20 bones, 2-pixel lines in HSV hue i / 20 at full saturation and value, then
  each point a filled blue circle of radius 4; a bone or point at pixel 0 in x or y is
  skipped (the annotator's `> eps` test on integer pixels);
- face: each point a filled white circle of radius 3, with the same pixel-0 rule.
Coordinates are pixels; like the annotator, a part whose points all lie within 0..1 is
taken as normalised and scaled by the canvas size.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from dreamwire.shared.imaging.openpose import COLORS, DRAWN_LIMBS, LIMB_SEQUENCE

VISIBLE = 0.3
STICK_WIDTH = 4
JOINT_RADIUS = 4
HAND_RADIUS = 4
FACE_RADIUS = 3
LIMB_DIM = 0.6
EPS = 0.01
# COCO-WholeBody body points (after the neck is inserted at 17) that fill OpenPose slots.
MMPOSE_IDX = (17, 6, 8, 10, 7, 9, 12, 14, 16, 13, 15, 2, 1, 4, 3)
OPENPOSE_IDX = (1, 2, 3, 4, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 17)
FACE = slice(24, 92)
LEFT_HAND = slice(92, 113)
RIGHT_HAND = slice(113, 134)
HAND_EDGES = (
    *((0, 1), (1, 2), (2, 3), (3, 4)),
    *((0, 5), (5, 6), (6, 7), (7, 8)),
    *((0, 9), (9, 10), (10, 11), (11, 12)),
    *((0, 13), (13, 14), (14, 15), (15, 16)),
    *((0, 17), (17, 18), (18, 19), (19, 20)),
)

Point = tuple[float, float] | None


@dataclass(frozen=True)
class WholeBodyPose:
    """One person: 18 OpenPose body points, 21 per hand and 70 face points (None where not
    seen; a hand or face with no point seen is None as a whole)."""

    body: tuple[Point, ...]
    left_hand: tuple[Point, ...] | None
    right_hand: tuple[Point, ...] | None
    face: tuple[Point, ...] | None


def to_openpose(keypoints: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(P, 134, 3) x, y, score: the 133 points with a neck, body in OpenPose order."""
    info = np.concatenate((keypoints, scores[..., None]), axis=-1)
    neck = np.mean(info[:, [5, 6]], axis=1)
    neck[:, 2] = np.logical_and(info[:, 5, 2] > VISIBLE, info[:, 6, 2] > VISIBLE).astype(int)
    out = np.insert(info, 17, neck, axis=1)
    out[:, OPENPOSE_IDX] = out[:, MMPOSE_IDX]
    return out


def _part(rows: np.ndarray) -> list[Point] | None:
    points = [(float(x), float(y)) if s >= VISIBLE else None for x, y, s in rows]
    return None if all(p is None for p in points) else points


def poses(info: np.ndarray) -> list[WholeBodyPose]:
    out = []
    for person in info:
        body = _part(person[:18]) or [None] * 18
        face = _part(person[FACE])
        left, right = _part(person[LEFT_HAND]), _part(person[RIGHT_HAND])
        out.append(
            WholeBodyPose(
                tuple(body),
                left and tuple(left),
                right and tuple(right),
                face and (*face, body[14], body[15]),
            )
        )
    return out


def _scale(canvas: np.ndarray, points: Sequence[Point]) -> tuple[float, float]:
    """(W, H) to multiply by: the canvas size when the points look normalised, else 1."""
    seen = [p for p in points if p is not None]
    if seen and all(abs(x) <= 1 and abs(y) <= 1 for x, y in seen):
        return float(canvas.shape[1]), float(canvas.shape[0])
    return 1.0, 1.0


def draw_body(canvas: np.ndarray, points: Sequence[Point]) -> None:
    W, H = _scale(canvas, points)
    for i in range(DRAWN_LIMBS):
        a, b = (points[j] for j in LIMB_SEQUENCE[i])
        if a is None or b is None:
            continue
        # The annotator's names: Y holds x, X holds y.
        Y = (a[0] * W, b[0] * W)
        X = (a[1] * H, b[1] * H)
        length = ((X[0] - X[1]) ** 2 + (Y[0] - Y[1]) ** 2) ** 0.5
        angle = math.degrees(math.atan2(X[0] - X[1], Y[0] - Y[1]))
        centre = (int(np.mean(Y)), int(np.mean(X)))
        poly = cv2.ellipse2Poly(centre, (int(length / 2), STICK_WIDTH), int(angle), 0, 360, 1)
        cv2.fillConvexPoly(canvas, poly, [int(float(c) * LIMB_DIM) for c in COLORS[i]])
    for point, colour in zip(points, COLORS, strict=False):
        if point is not None:
            centre = (int(point[0] * W), int(point[1] * H))
            cv2.circle(canvas, centre, JOINT_RADIUS, colour, thickness=-1)


def hand_colour(i: int) -> tuple[float, float, float]:
    return tuple(c * 255 for c in colorsys.hsv_to_rgb(i / len(HAND_EDGES), 1.0, 1.0))


def draw_hand(canvas: np.ndarray, points: Sequence[Point] | None) -> None:
    if not points:
        return
    W, H = _scale(canvas, points)
    for i, (e1, e2) in enumerate(HAND_EDGES):
        a, b = points[e1], points[e2]
        if a is None or b is None:
            continue
        x1, y1, x2, y2 = int(a[0] * W), int(a[1] * H), int(b[0] * W), int(b[1] * H)
        if x1 > EPS and y1 > EPS and x2 > EPS and y2 > EPS:
            cv2.line(canvas, (x1, y1), (x2, y2), hand_colour(i), thickness=2)
    _dots(canvas, points, W, H, HAND_RADIUS, (0, 0, 255))


def draw_face(canvas: np.ndarray, points: Sequence[Point] | None) -> None:
    if points:
        _dots(canvas, points, *_scale(canvas, points), FACE_RADIUS, (255, 255, 255))


def _dots(canvas, points, W, H, radius, colour) -> None:
    for point in points:
        if point is None:
            continue
        x, y = int(point[0] * W), int(point[1] * H)
        if x > EPS and y > EPS:
            cv2.circle(canvas, (x, y), radius, colour, thickness=-1)


def draw(
    people: Sequence[WholeBodyPose], height: int, width: int, body=True, hands=True, face=True
) -> np.ndarray:
    """The control image: H x W x 3 uint8, each person's body, then hands, then face."""
    canvas = np.zeros((height, width, 3), np.uint8)
    for person in people:
        if body:
            draw_body(canvas, person.body)
        if hands:
            draw_hand(canvas, person.left_hand)
            draw_hand(canvas, person.right_hand)
        if face:
            draw_face(canvas, person.face)
    return canvas
