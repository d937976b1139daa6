"""The numpy pose drawing against real OpenCV running the annotator's drawing steps."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dreamwire.shared.imaging import openpose as op
from dreamwire.shared.imaging.raster import ellipse2poly, fill_circle, fill_convex_poly

cv2 = pytest.importorskip("cv2")


def annotator_draw_bodypose(canvas, candidate, subset):
    """ControlNet 1.1's draw_bodypose, step for step, on real cv2 (the reference)."""
    H, W, _ = canvas.shape
    candidate = np.array(candidate)
    subset = np.array(subset)
    for i in range(17):
        for n in range(len(subset)):
            index = subset[n][np.array(op.LIMB_SEQUENCE[i])]
            if -1 in index:
                continue
            Y = candidate[index.astype(int), 0] * float(W)
            X = candidate[index.astype(int), 1] * float(H)
            mX, mY = np.mean(X), np.mean(Y)
            length = ((X[0] - X[1]) ** 2 + (Y[0] - Y[1]) ** 2) ** 0.5
            angle = math.degrees(math.atan2(X[0] - X[1], Y[0] - Y[1]))
            polygon = cv2.ellipse2Poly(
                (int(mY), int(mX)), (int(length / 2), 4), int(angle), 0, 360, 1
            )
            cv2.fillConvexPoly(canvas, polygon, op.COLORS[i])
    canvas = (canvas * 0.6).astype(np.uint8)
    for i in range(18):
        for n in range(len(subset)):
            index = int(subset[n][i])
            if index == -1:
                continue
            x, y = candidate[index][0:2]
            cv2.circle(canvas, (int(x * W), int(y * H)), 4, op.COLORS[i], thickness=-1)
    return canvas


def random_people(rng, n, w, h, missing=0.15, margin=0.1):
    people = []
    for _ in range(n):
        kp = np.zeros((18, 3))
        kp[:, 0] = rng.uniform(-margin * w, (1 + margin) * w, 18)
        kp[:, 1] = rng.uniform(-margin * h, (1 + margin) * h, 18)
        kp[:, 2] = (rng.random(18) > missing).astype(float)
        people.append(op.PosePerson(kp))
    return people


def test_ellipse2poly_matches_cv2_for_every_angle():
    rng = np.random.default_rng(0)
    for angle in range(-360, 721, 7):
        for _ in range(3):
            center = tuple(int(v) for v in rng.integers(-50, 600, 2))
            axes = (int(rng.integers(0, 300)), int(rng.integers(0, 12)))
            ref = cv2.ellipse2Poly(center, axes, angle, 0, 360, 1).tolist()
            assert [list(p) for p in ellipse2poly(center, axes, angle, 0, 360, 1)] == ref


def test_fill_convex_poly_matches_cv2_exactly():
    rng = np.random.default_rng(1)
    mismatched = 0
    for _ in range(300):
        center = tuple(int(v) for v in rng.integers(-20, 100, 2))
        axes = (int(rng.integers(0, 80)), 4)
        poly = cv2.ellipse2Poly(center, axes, int(rng.integers(0, 360)), 0, 360, 1)
        ref = np.zeros((80, 96, 3), np.uint8)
        cv2.fillConvexPoly(ref, poly, (255, 170, 0))
        mine = fill_convex_poly(np.zeros((80, 96, 3), np.uint8), poly.tolist(), (255, 170, 0))
        mismatched += int((ref != mine).any(axis=2).sum())
    assert mismatched == 0


def test_fill_circle_matches_cv2_including_clipping():
    for cx in range(-6, 30, 3):
        for cy in range(-6, 30, 5):
            for r in (0, 1, 4, 7):
                ref = np.zeros((24, 24, 3), np.uint8)
                cv2.circle(ref, (cx, cy), r, (0, 85, 255), thickness=-1)
                mine = fill_circle(np.zeros((24, 24, 3), np.uint8), (cx, cy), r, (0, 85, 255))
                np.testing.assert_array_equal(mine, ref)


@pytest.mark.parametrize("seed,n,size", [(0, 1, (512, 512)), (1, 3, (640, 384)), (2, 2, (97, 131))])
def test_draw_bodypose_matches_annotator_pixels(seed, n, size):
    w, h = size
    rng = np.random.default_rng(seed)
    people = random_people(rng, n, w, h)
    candidate, subset = op._normalised(people, w, h)
    ref = annotator_draw_bodypose(np.zeros((h, w, 3), np.uint8), candidate, subset)
    mine = op.draw_bodypose(people, w, h)
    assert mine.shape == (h, w, 3) and mine.dtype == np.uint8
    agreement = 1.0 - (ref != mine).any(axis=2).mean()
    assert agreement == 1.0, f"pixel agreement {agreement:.6f}"
    assert (mine > 0).any()


def test_draw_bodypose_colours_and_sizes():
    w = h = 200
    kp = np.zeros((18, 3))
    kp[1] = (100, 50, 1)  # neck
    kp[2] = (60, 50, 1)  # right shoulder
    img = op.draw_bodypose([op.PosePerson(kp)], w, h)
    # Joints in their full colour, limb between them at colour*0.6 (truncated).
    assert tuple(img[50, 100]) == op.COLORS[1]
    assert tuple(img[50, 60]) == op.COLORS[2]
    assert tuple(img[50, 80]) == tuple(int(c * 0.6) for c in op.COLORS[0])
    # Stick half-width 4, circle radius 4: nothing beyond 4 px from the limb axis.
    assert img[50 - 5, 70:90].sum() == 0 and img[50 + 5, 70:90].sum() == 0
    assert img[50 - 4, 80].any()
    # Missing joints draw nothing: only two joints and one limb are on the canvas.
    assert set(map(tuple, img.reshape(-1, 3))) == {
        (0, 0, 0),
        op.COLORS[1],
        op.COLORS[2],
        tuple(int(c * 0.6) for c in op.COLORS[0]),
    }


def test_openpose_json_roundtrip_and_format():
    rng = np.random.default_rng(3)
    frame = op.PoseFrame(320, 240, random_people(rng, 2, 320, 240, margin=0))
    data = op.to_openpose_json(frame)
    text = json.dumps(data)
    assert data["canvas_width"] == 320 and data["canvas_height"] == 240
    assert len(data["people"]) == 2 and len(data["people"][0]["pose_keypoints_2d"]) == 54
    missing = np.flatnonzero(frame.people[0].keypoints[:, 2] == 0)
    for i in missing:
        assert data["people"][0]["pose_keypoints_2d"][3 * i : 3 * i + 3] == [0, 0, 0]
    back = op.from_openpose_json(text)
    assert (back.width, back.height) == (320, 240)
    for a, b in zip(frame.people, back.people, strict=True):
        vis = a.visible()
        np.testing.assert_allclose(a.keypoints[vis], b.keypoints[vis])
        assert not b.visible()[~vis].any()
    np.testing.assert_array_equal(op.draw_bodypose(frame), op.draw_bodypose(back))


def test_openpose_json_normalised_coordinates_are_scaled():
    flat = [0.0] * 54
    flat[3:6] = [0.5, 0.25, 1.0]
    frame = op.from_openpose_json({"people": [{"pose_keypoints_2d": flat}]}, 400, 200)
    np.testing.assert_allclose(frame.people[0].keypoints[1], [200, 50, 1])
    with pytest.raises(ValueError):
        op.from_openpose_json({"people": []})
