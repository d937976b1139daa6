"""OpenPose COCO-18 body poses: the keypoint order, the drawing ControlNet was trained on,
and the JSON the OpenPose editors and the A1111 ControlNet extension exchange.

Drawing follows the ControlNet 1.1 annotator's `draw_bodypose`: each of the first 17 limbs
is an ellipse (half-length x stick width 4, rotated to the limb) filled in the limb colour,
the whole canvas is then scaled by 0.6 (so limbs end up at colour*0.6, truncated), and
every visible joint is a filled circle of radius 4 in its full colour on top. The pixel
maths is OpenCV's (see raster.py), so the images match the annotator's exactly.

Keypoints here are pixel coordinates (x right, y down) with a confidence; confidence <= 0
means the joint is missing (not drawn, exported as 0,0,0).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .raster import ellipse2poly, fill_circle, fill_convex_poly

KEYPOINT_NAMES = (
    "nose",
    "neck",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_eye",
    "left_eye",
    "right_ear",
    "left_ear",
)
NUM_KEYPOINTS = len(KEYPOINT_NAMES)
KEYPOINT_INDEX = {name: i for i, name in enumerate(KEYPOINT_NAMES)}

# Limb pairs as 0-based keypoint indices, in the annotator's order. Only the first 17 are
# drawn; the last two (shoulder-ear) exist in OpenPose's model but the annotator skips them.
LIMB_SEQUENCE = (
    (1, 2),
    (1, 5),
    (2, 3),
    (3, 4),
    (5, 6),
    (6, 7),
    (1, 8),
    (8, 9),
    (9, 10),
    (1, 11),
    (11, 12),
    (12, 13),
    (1, 0),
    (0, 14),
    (14, 16),
    (0, 15),
    (15, 17),
    (2, 16),
    (5, 17),
)
DRAWN_LIMBS = 17

# RGB; limb i and joint i share colour i.
COLORS = (
    (255, 0, 0),
    (255, 85, 0),
    (255, 170, 0),
    (255, 255, 0),
    (170, 255, 0),
    (85, 255, 0),
    (0, 255, 0),
    (0, 255, 85),
    (0, 255, 170),
    (0, 255, 255),
    (0, 170, 255),
    (0, 85, 255),
    (0, 0, 255),
    (85, 0, 255),
    (170, 0, 255),
    (255, 0, 255),
    (255, 0, 170),
    (255, 0, 85),
)
STICK_WIDTH = 4
JOINT_RADIUS = 4
LIMB_ALPHA = 0.6


@dataclass
class PosePerson:
    """One body: an (18, 3) float array of x, y (pixels) and confidence per keypoint."""

    keypoints: np.ndarray = field(default_factory=lambda: np.zeros((NUM_KEYPOINTS, 3)))

    def __post_init__(self) -> None:
        kp = np.asarray(self.keypoints, dtype=np.float64)
        if kp.shape == (NUM_KEYPOINTS, 2):
            kp = np.concatenate([kp, np.ones((NUM_KEYPOINTS, 1))], axis=1)
        if kp.shape != (NUM_KEYPOINTS, 3):
            raise ValueError(f"keypoints must be (18, 3) or (18, 2), got {kp.shape}")
        self.keypoints = kp

    def visible(self) -> np.ndarray:
        return self.keypoints[:, 2] > 0


@dataclass
class PoseFrame:
    """Everybody in one image, with the canvas size the coordinates refer to."""

    width: int
    height: int
    people: list[PosePerson] = field(default_factory=list)


def _normalised(people: Sequence[PosePerson], width: int, height: int):
    """The annotator's (candidate, subset) pair: normalised coordinates and index table."""
    candidate = []
    subset = []
    for person in people:
        row = []
        for x, y, c in person.keypoints:
            if c > 0 and math.isfinite(x) and math.isfinite(y):
                row.append(len(candidate))
                candidate.append((x / width, y / height))
            else:
                row.append(-1)
        subset.append(row)
    return candidate, subset


def draw_bodypose(
    people: Sequence[PosePerson] | PoseFrame,
    width: int | None = None,
    height: int | None = None,
    canvas: np.ndarray | None = None,
) -> np.ndarray:
    """The ControlNet OpenPose control image: H x W x 3 uint8 RGB on black (or on `canvas`)."""
    if isinstance(people, PoseFrame):
        width, height, people = people.width, people.height, people.people
    if width is None or height is None:
        raise ValueError("width and height are required")
    if canvas is None:
        canvas = np.zeros((height, width, 3), dtype=np.uint8)
    else:
        canvas = np.array(canvas, dtype=np.uint8, copy=True)
        height, width = canvas.shape[:2]
    candidate, subset = _normalised(people, width, height)
    W, H = float(width), float(height)

    for i in range(DRAWN_LIMBS):
        a, b = LIMB_SEQUENCE[i]
        for row in subset:
            ia, ib = row[a], row[b]
            if ia < 0 or ib < 0:
                continue
            # Same variable roles as the annotator: Y holds x pixels, X holds y pixels.
            y0, y1 = candidate[ia][0] * W, candidate[ib][0] * W
            x0, x1 = candidate[ia][1] * H, candidate[ib][1] * H
            m_x = (x0 + x1) / 2
            m_y = (y0 + y1) / 2
            length = ((x0 - x1) ** 2 + (y0 - y1) ** 2) ** 0.5
            angle = math.degrees(math.atan2(x0 - x1, y0 - y1))
            poly = ellipse2poly(
                (int(m_y), int(m_x)), (int(length / 2), STICK_WIDTH), int(angle), 0, 360, 1
            )
            fill_convex_poly(canvas, poly, COLORS[i])

    canvas = (canvas * LIMB_ALPHA).astype(np.uint8)

    for i in range(NUM_KEYPOINTS):
        for row in subset:
            idx = row[i]
            if idx < 0:
                continue
            x, y = candidate[idx]
            fill_circle(canvas, (int(x * W), int(y * H)), JOINT_RADIUS, COLORS[i])
    return canvas


# --- OpenPose JSON -------------------------------------------------------------------


def to_openpose_json(frame: PoseFrame) -> dict:
    """The OpenPose/ControlNet JSON dict: pixel coordinates, missing joints as 0, 0, 0."""
    people = []
    for person in frame.people:
        flat: list[float] = []
        for x, y, c in person.keypoints:
            if c > 0 and math.isfinite(x) and math.isfinite(y):
                flat += [float(x), float(y), float(c)]
            else:
                flat += [0.0, 0.0, 0.0]
        people.append({"pose_keypoints_2d": flat})
    return {"people": people, "canvas_width": int(frame.width), "canvas_height": int(frame.height)}


def from_openpose_json(data: dict | str, width: int | None = None, height: int | None = None):
    """Parse OpenPose JSON (a dict or its text) into a PoseFrame.

    Files written by some editors hold normalised coordinates (all within 0..1); those are
    scaled to the canvas. The canvas size comes from the JSON, else from the arguments.
    """
    if isinstance(data, str):
        data = json.loads(data)
    if isinstance(data, list):  # the A1111 extension sometimes wraps frames in a list
        if not data:
            raise ValueError("empty OpenPose JSON list")
        data = data[0]
    w = int(data.get("canvas_width") or width or 0)
    h = int(data.get("canvas_height") or height or 0)
    if w <= 0 or h <= 0:
        raise ValueError("OpenPose JSON has no canvas size; pass width and height")
    people = []
    for p in data.get("people", []):
        flat = p.get("pose_keypoints_2d") or []
        if len(flat) % 3:
            raise ValueError("pose_keypoints_2d length must be a multiple of 3")
        kp = np.zeros((NUM_KEYPOINTS, 3))
        arr = np.asarray(flat, dtype=np.float64).reshape(-1, 3)[:NUM_KEYPOINTS]
        kp[: len(arr)] = arr
        people.append(kp)
    coords = np.concatenate([k[k[:, 2] > 0, :2] for k in people]) if people else np.zeros((0, 2))
    if len(coords) and coords.max() <= 1.0:
        for k in people:
            k[:, 0] *= w
            k[:, 1] *= h
    return PoseFrame(w, h, [PosePerson(k) for k in people])
