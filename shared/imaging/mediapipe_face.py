"""The control image ControlNetMediaPipeFace (CrucibleAI's SD 1.5 / 2.1 face model) was
trained on: MediaPipe Face Mesh landmarks drawn as the ControlNet annotator
(annotator/mediapipe_face/mediapipe_face_common.py, in A1111's extension and ComfyUI's
controlnet_aux alike) draws them.

Its drawing rules, which this module keeps:
- on black, in BGR, flipped to RGB at the end (the annotator draws with OpenCV's
  cv2.line through MediaPipe's drawing_utils.draw_landmarks);
- only the contours, not the tessellation: face oval, each eye, each eyebrow and the lips,
  each a 2-pixel OpenCV line (8-connected) in its feature's colour, features drawn in the
  order oval, left eye, left eyebrow, right eye, right eyebrow, lips; a landmark outside
  0..1 (after the isclose tolerance of MediaPipe's drawing_utils) drops its lines, and
  pixel positions are floor(x * width) clamped to the last column (row likewise);
- the pupils, landmarks 468 (right) and 473 (left) of the refined 478-point mesh, as
  4 x 4 squares [y-2:y+2, x-2:x+2] at int(x * width), in the iris colours, over the lines;
- faces whose landmark box is under 64 pixels on its shorter side are left out.
"Left" and "right" are the person's, as MediaPipe names them.

The lines are OpenCV's pixels without OpenCV (raster.line ports cv2.line's ThickLine), so
Blender, which has no cv2, draws the same image. The landmarks come from the caller
(normalised x, y per point, MediaPipe's 478-point order): the backend's mediapipe_face
preprocessor detects them in a picture (backend/conditioning/mediapipe_face.py), Blender
projects a face mesh's landmark vertices (blender_addon/core/face.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import raster

MIN_FACE_PIXELS = 64
THICKNESS = 2
PUPIL_HALF = 2
RIGHT_PUPIL, LEFT_PUPIL = 468, 473
MESH_POINTS = 478  # Face Mesh with refined (iris) landmarks


@dataclass(frozen=True)
class Feature:
    name: str
    bgr: tuple[int, int, int]
    # Polylines through landmark indices: each consecutive pair is one of MediaPipe's
    # FACEMESH_* connections (the mesh's topology, fixed by the model).
    chains: tuple[tuple[int, ...], ...]


FEATURES = (
    Feature(
        "face_oval",
        (10, 200, 10),
        (
            (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378)
            + (400, 377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21)
            + (54, 103, 67, 109, 10),
        ),
    ),
    Feature(
        "left_eye",
        (180, 200, 10),
        (
            (263, 249, 390, 373, 374, 380, 381, 382, 362),
            (263, 466, 388, 387, 386, 385, 384, 398, 362),
        ),
    ),
    Feature("left_eyebrow", (180, 220, 10), ((276, 283, 282, 295, 285), (300, 293, 334, 296, 336))),
    Feature(
        "right_eye",
        (10, 200, 180),
        ((33, 7, 163, 144, 145, 153, 154, 155, 133), (33, 246, 161, 160, 159, 158, 157, 173, 133)),
    ),
    Feature("right_eyebrow", (10, 220, 180), ((46, 53, 52, 65, 55), (70, 63, 105, 66, 107))),
    Feature(
        "lips",
        (10, 180, 10),
        (
            (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291),
            (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291),
            (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308),
            (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308),
        ),
    ),
)
PUPILS = {RIGHT_PUPIL: (10, 200, 250), LEFT_PUPIL: (250, 200, 10)}  # BGR


def edges(feature: Feature) -> list[tuple[int, int]]:
    return [(a, b) for chain in feature.chains for a, b in zip(chain, chain[1:], strict=False)]


Point = tuple[float, float]


@dataclass(frozen=True)
class FaceLines:
    """One face as the annotator draws it, in normalised image positions (x right, y down,
    0..1): each feature's segments (by feature name), each pupil's position (by landmark
    index, RIGHT_PUPIL / LEFT_PUPIL; absent: not drawn), and every point of the face (its
    extent decides whether it is big enough to draw)."""

    segments: dict[str, list[tuple[Point, Point]]]
    pupils: dict[int, Point]
    extent: np.ndarray  # N x 2


def lines_from_landmarks(points: np.ndarray) -> FaceLines:
    """A Face Mesh result (N x 2 normalised landmarks, MediaPipe's order) as FaceLines."""
    pts = [(float(x), float(y)) for x, y in points]
    segments = {
        f.name: [(pts[a], pts[b]) for a, b in edges(f) if a < len(pts) and b < len(pts)]
        for f in FEATURES
    }
    pupils = {i: pts[i] for i in PUPILS if i < len(pts)}
    return FaceLines(segments, pupils, np.asarray(points, dtype=np.float64).reshape(-1, 2))


def _valid(v: float) -> bool:
    return (v > 0 or math.isclose(0, v)) and (v < 1 or math.isclose(1, v))


def _pixel(x: float, y: float, w: int, h: int) -> tuple[int, int] | None:
    if not (_valid(x) and _valid(y)):
        return None
    return min(math.floor(x * w), w - 1), min(math.floor(y * h), h - 1)


def big_enough(points: np.ndarray, w: int, h: int) -> bool:
    if not len(points):
        return False
    span = points.max(axis=0) - points.min(axis=0)
    return min(span[0] * w, span[1] * h) >= MIN_FACE_PIXELS


def draw_face(bgr: np.ndarray, face: FaceLines) -> None:
    """One face's contours and pupils onto a BGR uint8 image, in place."""
    h, w = bgr.shape[:2]
    for feature in FEATURES:
        for a, b in face.segments.get(feature.name, ()):
            pa, pb = _pixel(*a, w, h), _pixel(*b, w, h)
            if pa is not None and pb is not None:
                raster.line(bgr, pa, pb, feature.bgr, THICKNESS)
    for idx, colour in PUPILS.items():
        if idx not in face.pupils:
            continue
        x, y = face.pupils[idx]
        if not (0 <= x < 1 and 0 <= y < 1):
            continue
        px, py = int(w * x), int(h * y)
        bgr[py - PUPIL_HALF : py + PUPIL_HALF, px - PUPIL_HALF : px + PUPIL_HALF] = colour


def draw(size: tuple[int, int], faces: Sequence[FaceLines]) -> np.ndarray:
    """The control image (H x W x 3 uint8 RGB, `size` H x W) of the faces."""
    h, w = size
    bgr = np.zeros((h, w, 3), np.uint8)
    for face in faces:
        if big_enough(face.extent, w, h):
            draw_face(bgr, face)
    return np.ascontiguousarray(bgr[:, :, ::-1])


def face_map(size: tuple[int, int], faces: Sequence[np.ndarray]) -> np.ndarray:
    """The control image (H x W x 3 uint8 RGB) for faces given as N x 2 arrays of
    normalised landmark positions (x right, y down, 0..1 over the image; `size` H x W)."""
    return draw(size, [lines_from_landmarks(np.asarray(p, np.float64)) for p in faces])
