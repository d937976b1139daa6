"""The MediaPipe face control image, drawn from given landmarks by the ControlNet
annotator's rules (mediapipe_face_common.py): contours as 2-pixel OpenCV lines in BGR
flipped to RGB, 4 x 4 pupils over them, out-of-range landmarks dropped, small faces left
out; without OpenCV (raster.line), pixel for pixel what cv2 draws."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dreamwire.shared.imaging import mediapipe_face as mf
from dreamwire.shared.imaging import raster

cv2 = pytest.importorskip("cv2")

H = W = 128


def _points() -> np.ndarray:
    """Every landmark off the image (dropped), the face box still large (the annotator's
    size check spans every landmark)."""
    return np.full((mf.MESH_POINTS, 2), -1.0)


def _rgb(bgr) -> tuple[int, int, int]:
    return tuple(reversed(bgr))


def test_edge_table_is_mediapipe_contours():
    counts = {f.name: len(mf.edges(f)) for f in mf.FEATURES}
    # FACEMESH_FACE_OVAL, _LEFT_EYE, _LEFT_EYEBROW, _RIGHT_EYE, _RIGHT_EYEBROW, _LIPS.
    assert counts == {
        "face_oval": 36,
        "left_eye": 16,
        "left_eyebrow": 8,
        "right_eye": 16,
        "right_eyebrow": 8,
        "lips": 40,
    }
    used = [{i for e in mf.edges(f) for i in e} for f in mf.FEATURES]
    assert sum(map(len, used)) == len(set().union(*used))  # features share no landmark
    assert all(i < 468 for s in used for i in s)  # contours use the base mesh, not the iris


def test_one_edge_is_a_two_pixel_opencv_line_in_its_colour_flipped_to_rgb():
    pts = _points()
    pts[10], pts[338] = (0.25, 0.5), (0.75, 0.3)  # one face-oval edge
    got = mf.face_map((H, W), [pts])
    want = np.zeros((H, W, 3), np.uint8)
    cv2.line(want, (32, 64), (96, 38), (10, 200, 10), 2)
    np.testing.assert_array_equal(got, want[:, :, ::-1])
    assert tuple(got[64, 32]) == _rgb((10, 200, 10))


def test_pupils_are_squares_over_the_lines_in_iris_colours():
    pts = _points()
    pts[mf.RIGHT_PUPIL] = (0.5, 0.25)
    pts[mf.LEFT_PUPIL] = (0.25, 0.75)
    pts[33], pts[7] = (0.4, 0.25), (0.6, 0.25)  # a right-eye line through the right pupil
    got = mf.face_map((H, W), [pts])
    assert (got[30:34, 62:66] == _rgb(mf.PUPILS[mf.RIGHT_PUPIL])).all()
    assert (got[94:98, 30:34] == _rgb(mf.PUPILS[mf.LEFT_PUPIL])).all()
    assert tuple(got[32, 55]) == _rgb((10, 200, 180))  # the eye line beside it


def test_later_features_draw_over_earlier_and_range_rules():
    pts = _points()
    pts[10], pts[338] = (0.1, 0.5), (0.9, 0.5)  # oval, horizontal
    pts[61], pts[146] = (0.5, 0.1), (0.5, 0.9)  # lips, vertical, drawn after the oval
    pts[263], pts[249] = (0.2, 0.2), (1.2, 0.2)  # an eye edge leaving the image: dropped
    pts[276], pts[283] = (0.2, 0.8), (1.0, 0.8)  # exactly 1.0 clamps to the last column
    got = mf.face_map((H, W), [pts])
    assert tuple(got[64, 64]) == _rgb((10, 180, 10))
    assert tuple(got[64, 20]) == _rgb((10, 200, 10))
    assert not (got[20:30, :60] != 0).any()  # the lips line is at x 64
    assert tuple(got[102, W - 1]) == _rgb((180, 220, 10))


def test_small_faces_are_left_out_and_the_map_is_black_without_faces():
    pts = np.random.default_rng(1).uniform(0.4, 0.45, (mf.MESH_POINTS, 2))  # ~6 px wide
    assert not mf.face_map((H, W), [pts]).any()
    assert not mf.face_map((H, W), []).any()
    big = np.random.default_rng(1).uniform(0.1, 0.9, (mf.MESH_POINTS, 2))
    drawn = mf.face_map((H, W), [pts, big])
    colours = {tuple(c) for c in drawn.reshape(-1, 3)} - {(0, 0, 0)}
    allowed = {_rgb(f.bgr) for f in mf.FEATURES} | {_rgb(c) for c in mf.PUPILS.values()}
    assert colours <= allowed and len(colours) == len(allowed)


def test_thick_lines_are_opencvs_pixels():
    """raster.line against cv2.line: thickness 1-4, ends inside, outside and equal."""
    rng = np.random.default_rng(0)
    for t in range(400):
        h, w = (int(v) for v in rng.integers(5, 48, 2))
        thickness = int(rng.integers(1, 5))
        p1 = tuple(int(v) for v in rng.integers(-8, 56, 2))
        p2 = p1 if t % 9 == 0 else tuple(int(v) for v in rng.integers(-8, 56, 2))
        want = np.zeros((h, w, 3), np.uint8)
        cv2.line(want, p1, p2, (10, 200, 30), thickness)
        got = raster.line(np.zeros((h, w, 3), np.uint8), p1, p2, (10, 200, 30), thickness)
        np.testing.assert_array_equal(got, want, err_msg=f"{p1} {p2} {thickness}")


def _annotator(size, faces) -> np.ndarray:
    """mediapipe_face_common.generate_annotation's drawing with OpenCV, as MediaPipe's
    draw_landmarks and the annotator's draw_pupils do it (the reference)."""
    h, w = size
    image = np.zeros((h, w, 3), np.uint8)

    def valid(v):
        return (v > 0 or math.isclose(0, v)) and (v < 1 or math.isclose(1, v))

    for pts in faces:
        span = pts.max(0) - pts.min(0)
        if min(span[0] * w, span[1] * h) < 64:
            continue
        at = {}
        for i, (x, y) in enumerate(pts):
            if valid(x) and valid(y):
                at[i] = (min(math.floor(x * w), w - 1), min(math.floor(y * h), h - 1))
        for feature in mf.FEATURES:
            for a, b in mf.edges(feature):
                if a in at and b in at:
                    cv2.line(image, at[a], at[b], feature.bgr, 2)
        for idx, colour in mf.PUPILS.items():
            x, y = pts[idx]
            if x >= 1.0 or x < 0 or y >= 1.0 or y < 0:
                continue
            px, py = int(w * x), int(h * y)
            image[py - 2 : py + 2, px - 2 : px + 2, :] = colour
    return image[:, :, ::-1]


def test_whole_faces_match_the_annotator_drawn_with_opencv():
    rng = np.random.default_rng(4)
    for size in ((96, 128), (160, 112)):
        faces = [rng.uniform(-0.05, 1.05, (mf.MESH_POINTS, 2)) for _ in range(2)]
        faces.append(rng.uniform(0.3, 0.35, (mf.MESH_POINTS, 2)))  # too small: left out
        np.testing.assert_array_equal(mf.face_map(size, faces), _annotator(size, faces))
