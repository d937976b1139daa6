"""DWPose for the OpenPose control: each step of the annotators' pre/post-processing
(YOLOX letterbox, decoding and NMS; RTMPose's affine crop and SimCC decoding; the 133 ->
OpenPose-18 mapping; the drawing) against values worked out by hand, then the whole
preprocessor on tiny random ONNX files (the onnx package's helper API, the released files'
names, inputs and outputs) run by onnxruntime from an A1111 and a ComfyUI folder."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dreamwire.backend.conditioning import (
    detect_resolution,
    dwpose,
    dwpose_draw,
    dwpose_rtmpose,
    dwpose_yolox,
    preprocess,
    unit_infotext,
)
from dreamwire.backend.conditioning.controlnet_files import ControlNetInfo
from dreamwire.backend.library import annotator_files
from dreamwire.backend.tiny import dwpose as tiny
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.infotext_controlnet import parse_entry
from dreamwire.shared.job import ControlUnit

pytest.importorskip("onnxruntime")

# --- the detector ------------------------------------------------------------------------


def test_letterbox_resizes_into_the_top_left_of_grey_114():
    img = np.zeros((32, 64, 3), np.uint8)
    img[:, :, 0] = 200
    chw, r = dwpose_yolox.letterbox(img)
    assert r == 10.0 and chw.shape == (3, 640, 640) and chw.dtype == np.float32
    assert (chw[0, :320, :640] == 200).all() and (chw[1:, :320, :640] == 0).all()
    assert (chw[:, 320:, :] == 114).all()


def test_decode_puts_rows_on_the_stride_grids():
    out = np.zeros((tiny.ANCHORS, 85), np.float32)
    out[8400 - 1, :4] = (0.5, 0.25, math.log(2), 0)  # last 32-px cell: (19, 19)
    out[80 + 3, :2] = (1, 0)  # 8-px grid, row 1, column 3
    rows = dwpose_yolox.decode(out)
    np.testing.assert_allclose(rows[8399, :4], [19.5 * 32, 19.25 * 32, 64, 32], rtol=1e-6)
    np.testing.assert_allclose(rows[83, :4], [4 * 8, 1 * 8, 8, 8])
    np.testing.assert_allclose(rows[6400, :2], [0, 0])  # first 16-px cell
    assert rows[6400, 2] == 16


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 9, 9], [1, 0, 10, 9], [20, 20, 29, 29], [0, 0, 9, 4]], float)
    scores = np.array([0.5, 0.9, 0.4, 0.8])
    # Box 0 overlaps 1 by 9*10 / (100 + 100 - 90) = 0.82 and goes; box 3 overlaps 1 by
    # 9*5 / (100 + 50 - 45) = 0.43 <= 0.45 and stays.
    assert dwpose_yolox.nms(boxes, scores) == [1, 3, 2]


def test_person_boxes_threshold_and_scale_back():
    out = np.zeros((tiny.ANCHORS, 85), np.float32)
    out[:, 4] = 0.05
    out[8150, :6] = (0, 0.5, math.log(10), 0, 0.9, 0.9)  # 32-px cell (10, 7): 320 x 32 box
    out[100, :6] = (0, 0, 0, 0, 0.5, 0.5)  # 0.25: past NMS's 0.1, under the 0.3 kept
    out[101, 4:6] = (1, 0.0)
    out[101, 6] = 1.0  # another class only
    boxes = dwpose_yolox.person_boxes(out, ratio=10.0)
    np.testing.assert_allclose(boxes, [[16, 22.4, 48, 25.6]], rtol=1e-5)
    out[8150, 4] = 0.3  # 0.27: nobody
    assert dwpose_yolox.person_boxes(out, ratio=10.0).shape == (0, 4)


# --- the keypoint network ----------------------------------------------------------------


def test_center_scale_and_aspect():
    center, scale = dwpose_rtmpose.center_scale(np.array([16, 6, 48, 42]))
    np.testing.assert_allclose(center, [32, 24])
    np.testing.assert_allclose(scale, [40, 45])
    np.testing.assert_allclose(dwpose_rtmpose.fix_aspect(scale, 0.75), [40, 160 / 3])
    np.testing.assert_allclose(dwpose_rtmpose.fix_aspect(np.array([30, 80]), 0.75), [60, 80])


def test_crop_is_a_shift_when_the_box_scale_is_the_input_size():
    """A box 288/1.25 x 384/1.25 maps one picture pixel to one input pixel: the crop is the
    picture moved by centre - (144, 192), normalised by ImageNet's 0..255 mean and std."""
    rng = np.random.default_rng(1)
    img = rng.integers(0, 255, (500, 400, 3), dtype=np.uint8)
    box = np.array([165 - 144 / 1.25, 184 - 192 / 1.25, 165 + 144 / 1.25, 184 + 192 / 1.25])
    crop, center, scale = dwpose_rtmpose.crop(img, box, (288, 384))
    np.testing.assert_allclose(scale, [288, 384], rtol=1e-6)
    x0, y0 = (center - [144, 192]).round().astype(int)
    assert (x0, y0) == (21, -8)
    want = (img[0 : 384 + y0, x0 : x0 + 288] - dwpose_rtmpose.MEAN) / dwpose_rtmpose.STD
    np.testing.assert_allclose(crop[-y0:], want, atol=1e-4)
    np.testing.assert_allclose(
        crop[:-y0], np.broadcast_to(-dwpose_rtmpose.MEAN / dwpose_rtmpose.STD, crop[:-y0].shape)
    )


def test_simcc_decode_argmax_halved_and_smaller_maximum():
    sx = np.zeros((1, 3, 10), np.float32)
    sy = np.zeros((1, 3, 12), np.float32)
    sx[0, 0, 7], sy[0, 0, 3] = 0.9, 0.6
    sx[0, 1, 2], sy[0, 1, 11] = 0.4, 0.8
    sx[0, 2] -= 1  # nothing above 0: located at -1
    locs, vals = dwpose_rtmpose.simcc_decode(sx, sy)
    np.testing.assert_allclose(locs[0], [[3.5, 1.5], [1.0, 5.5], [-0.5, -0.5]])
    np.testing.assert_allclose(vals[0], [0.6, 0.4, -1.0], atol=1e-7)


# --- mapping and drawing -----------------------------------------------------------------


def test_133_points_map_to_openpose_18_with_a_neck():
    kp = np.arange(133 * 2, dtype=float).reshape(1, 133, 2)
    scores = np.full((1, 133), 0.9)
    scores[0, 6] = 0.2  # one shoulder unseen: no neck
    info = dwpose_draw.to_openpose(kp, scores)
    assert info.shape == (1, 134, 3)
    # OpenPose slot <- COCO-WholeBody point, worked out from both orders.
    coco_of = {0: 0, 2: 6, 3: 8, 4: 10, 5: 5, 6: 7, 7: 9, 8: 12, 9: 14, 10: 16}
    coco_of |= {11: 11, 12: 13, 13: 15, 14: 2, 15: 1, 16: 4, 17: 3}
    for slot, coco in coco_of.items():
        np.testing.assert_array_equal(info[0, slot, :2], kp[0, coco])
    np.testing.assert_array_equal(info[0, 1], [(10 + 12) / 2, (11 + 13) / 2, 0])
    np.testing.assert_array_equal(info[0, 18:, :2], kp[0, 17:])  # feet, face, hands after
    pose = dwpose_draw.poses(info)[0]
    assert pose.body[1] is None and pose.body[2] is None and pose.body[0] == (0.0, 1.0)
    assert pose.left_hand[0] == tuple(kp[0, 91]) and pose.right_hand[20] == tuple(kp[0, 132])
    assert len(pose.face) == 70 and pose.face[0] == tuple(kp[0, 23])
    assert pose.face[68:] == (pose.body[14], pose.body[15])


def test_drawing_body_hand_face_pixels():
    body = [None] * 18
    body[1], body[2] = (20.0, 20.0), (40.0, 20.0)  # neck -> right shoulder: limb 0, red
    hand = [None] * 21
    hand[0], hand[1] = (10.0, 50.0), (30.0, 50.0)  # bone 0: hue 0 (red)
    face = [None] * 70
    face[3] = (60.0, 10.0)
    face[4] = (0.0, 30.0)  # on pixel column 0: skipped
    pose = dwpose_draw.WholeBodyPose(tuple(body), tuple(hand), None, tuple(face))
    img = dwpose_draw.draw([pose], 64, 80)
    assert tuple(img[20, 30]) == (153, 0, 0)  # limb at int(255 * 0.6)
    assert tuple(img[23, 30]) == (153, 0, 0) and tuple(img[25, 30]) == (0, 0, 0)  # 4 wide
    assert tuple(img[20, 20]) == (255, 85, 0) and tuple(img[20, 40]) == (255, 170, 0)  # joints
    assert tuple(img[50, 20]) == (255, 0, 0) and tuple(img[53, 20]) == (0, 0, 0)  # 2-px bone
    assert tuple(img[50, 10]) == (0, 0, 255) and tuple(img[50, 34]) == (0, 0, 255)  # r 4
    assert tuple(img[10, 63]) == (255, 255, 255) and tuple(img[10, 64]) == (0, 0, 0)  # r 3
    assert not img[:, :2].any()
    only_face = dwpose_draw.draw([pose], 64, 80, body=False, hands=False)
    assert only_face[20, 30].sum() == 0 and tuple(only_face[10, 60]) == (255, 255, 255)
    assert dwpose_draw.hand_colour(5) == pytest.approx(
        (127.5, 255, 0)
    )  # hue 0.25: (1 - f, 1, 0), f = 0.5


# --- the whole preprocessor on tiny ONNX files -------------------------------------------

H, W = 48, 64
# The planted person: box 16..48 x 6..42 in the picture (x 10 on the 640 input), whose
# aspect-fixed scale is 40 x 160/3 about (32, 24): a SimCC bin b lands at b/2 * 5/36 + 12
# across and b/2 * 5/36 - 8/3 down.
BOX_ANCHOR = 6400 + 1600 + 7 * 20 + 10
BOXES = (
    (BOX_ANCHOR, 0, 0.5, math.log(10), math.log(11.25), 0.9, 0.9),
    (6400 + 15 * 40 + 20, 0, 0, math.log(300 / 16), math.log(340 / 16), 0.9, 0.7),  # dup
    (100, 0, 0, math.log(4), math.log(4), 0.5, 0.5),  # scores 0.25: dropped
)
BODY = {0: (252, 120), 1: (270, 100), 2: (234, 100), 5: (324, 192), 6: (180, 192)}
BODY |= {7: (396, 264), 8: (108, 264), 9: (468, 336), 10: (36, 336), 11: (306, 408)}
BODY |= {12: (198, 408), 13: (306, 552), 14: (198, 552)}
FACE = {23: (200, 60), 39: (300, 60)}  # COCO-WholeBody's face is 23..90
LEFT_HAND = {91: (468, 336), 95: (500, 400), 96: (520, 360), 99: (540, 380)}  # 91..111
PEAKS = {**BODY, **FACE, **LEFT_HAND}


def _at(bins):
    bx, by = bins
    return bx / 2 * 5 / 36 + 12, by / 2 * 5 / 36 - 8 / 3


@pytest.fixture(scope="module")
def installs(tmp_path_factory):
    base = tmp_path_factory.mktemp("dwpose")
    planted = tiny.Planted(BOXES, tuple((k, bx, by, 0.9) for k, (bx, by) in PEAKS.items()))
    a1111 = base / "a1111"
    tiny.save(a1111 / annotator_files.A1111_DOWNLOADS / "openpose", planted)
    comfy = base / "comfy"
    tiny.save(comfy / annotator_files.COMFY_CKPTS / "yzd-v" / "DWPose", planted)
    (base / "empty").mkdir()
    return a1111, comfy, base / "empty"


@pytest.fixture
def no_own_folder(installs, monkeypatch):
    monkeypatch.setenv("DREAMWIRE_ANNOTATORS", str(installs[2]))


def _picture() -> np.ndarray:
    y, x = np.mgrid[0:H, 0:W]
    return (np.stack([x * 4, y * 5, (x * y) % 200], axis=2) % 256).astype(np.uint8)


def test_tiny_files_have_the_released_signatures(installs):
    import onnxruntime as ort

    det, pose = dwpose.find_files([installs[0]])
    d = ort.InferenceSession(str(det))
    assert [(i.name, i.shape) for i in d.get_inputs()] == [("images", [1, 3, 640, 640])]
    assert [(o.name, o.shape) for o in d.get_outputs()] == [("output", [1, 8400, 85])]
    p = ort.InferenceSession(str(pose))
    assert [(i.name, i.shape) for i in p.get_inputs()] == [("input", ["batch", 3, 384, 288])]
    assert [(o.name, o.shape) for o in p.get_outputs()] == [
        ("simcc_x", ["batch", 133, 576]),
        ("simcc_y", ["batch", 133, 768]),
    ]


def test_dwpose_finds_the_planted_person(installs, no_own_folder):
    files = dwpose.find_files([installs[0]])
    rgb = _picture()
    det = dwpose.cached_session(files[0])
    boxes = dwpose_yolox.detect(det, rgb)
    np.testing.assert_allclose(boxes, [[16, 6, 48, 42]], atol=1e-3)
    # float32 values in float64, as the reference's NMS hands them on (the crop's centre and
    # so every keypoint's last bits, which int() pixel positions depend on, follow).
    assert boxes.dtype == np.float64 and (boxes.astype(np.float32) == boxes).all()
    people = dwpose.estimate(rgb, files)
    assert len(people) == 1
    person = people[0]
    slot_of = {0: 0, 1: 15, 2: 14, 5: 5, 6: 2, 7: 6, 8: 3, 9: 7, 10: 4, 11: 11, 12: 8, 13: 12}
    slot_of[14] = 9
    for coco, slot in slot_of.items():
        assert person.body[slot] == pytest.approx(_at(BODY[coco]), abs=1e-3), slot
    neck = np.mean([_at(BODY[5]), _at(BODY[6])], axis=0)
    assert person.body[1] == pytest.approx(tuple(neck), abs=1e-3)
    assert [i for i, p in enumerate(person.body) if p is None] == [10, 13, 16, 17]
    assert person.right_hand is None
    seen = [i for i, p in enumerate(person.left_hand) if p is not None]
    assert seen == [0, 4, 5, 8]
    assert person.left_hand[4] == pytest.approx(_at(LEFT_HAND[95]), abs=1e-3)
    assert [i for i, p in enumerate(person.face[:68]) if p] == [0, 16]
    assert person.face[69] == person.body[15]

    # The preprocessor on the picture as given (preprocess.run first resizes it to the
    # detect resolution: test_detect_resolution.py).
    full = preprocess.PREPROCESSORS["dw_openpose_full"](rgb, roots=[installs[0]])
    assert full.shape == (H, W, 3) and full.dtype == np.uint8
    np.testing.assert_array_equal(full, dwpose_draw.draw(people, H, W))
    x, y = (int(v) for v in person.face[0])
    assert tuple(full[y, x]) == (255, 255, 255)
    x, y = (int(v) for v in person.left_hand[8])
    assert tuple(full[y, x]) == (0, 0, 255)
    body_only = preprocess.PREPROCESSORS["openpose"](rgb, roots=[installs[1]])  # DWPose
    np.testing.assert_array_equal(
        body_only, dwpose_draw.draw(people, H, W, hands=False, face=False)
    )
    assert not (body_only == (255, 255, 255)).all(axis=2).any()
    # Run as the extension runs it: on the picture resized to the detect resolution and
    # edge-padded to 64s, the pad cut off the map.
    padded, (h, w) = detect_resolution.resize_with_pad(rgb, 64)
    assert (h, w, padded.shape[:2]) == (64, 85, (64, 128))
    at_64 = preprocess.run("dw_openpose_full", rgb, roots=[installs[0]], processor_res=64)
    want = preprocess.PREPROCESSORS["dw_openpose_full"](padded, roots=[installs[0]])[:h, :w]
    np.testing.assert_array_equal(at_64, want)
    assert at_64.any()


def test_openpose_records_the_dwpose_preprocessor_that_ran(installs, no_own_folder, tmp_path):
    """The infotext's Module is what ran: openpose* becomes the dw_* preprocessor (the
    extension's dw_openpose_full) when DWPose's files are in the library's folders."""
    weights = tmp_path / "control_v11p_sd15_openpose.safetensors"
    weights.write_bytes(b"\0" * 64)
    info = ControlNetInfo("control_v11p_sd15_openpose", weights, "openpose", layout="original")
    for module, with_dw in [
        ("openpose_full", "dw_openpose_full"),
        ("openpose", "dw_openpose"),
        ("openpose_hand", "dw_openpose_hand"),
        ("openpose_face", "dw_openpose_face"),
        ("openpose_faceonly", "dw_openpose_faceonly"),
        ("dw_openpose_full", "dw_openpose_full"),
        ("canny", "canny"),
    ]:
        unit = ControlUnit(type="openpose", image=None, preprocessor=module)
        assert unit_infotext.entry(unit, info, [installs[0]]).module == with_dw
        assert unit_infotext.entry(unit, info, [installs[2]]).module == module
        assert with_dw in preprocess.names()
    # Read back, the recorded module runs the same preprocessor.
    text = unit_infotext.entry(
        ControlUnit(type="openpose", image=None, preprocessor="openpose_full"), info, [installs[1]]
    ).to_text()
    assert text.startswith("Module: dw_openpose_full, Model: control_v11p_sd15_openpose")
    assert parse_entry(text).control_unit().preprocessor == "dw_openpose_full"


def test_missing_files_are_named_with_where_they_go(installs, no_own_folder, tmp_path):
    with pytest.raises(DreamwireError) as err:
        preprocess.run("dw_openpose_full", _picture(), roots=[tmp_path])
    msg = str(err.value)
    assert err.value.code is ErrorCode.PREPROCESSOR_UNAVAILABLE
    assert "yolox_l.onnx" in msg and "dw-ll_ucoco_384.onnx" in msg
    assert "annotator/downloads/openpose" in msg and "ckpts/yzd-v/DWPose" in msg
    # openpose falls back to the original networks, and says what either needs.
    with pytest.raises(DreamwireError) as err:
        preprocess.run("openpose_full", _picture(), roots=[tmp_path])
    assert "dw-ll_ucoco_384.onnx" in str(err.value) and "body_pose_model.pth" in str(err.value)
    # Only one of the two files: still missing.
    half = tmp_path / "half" / annotator_files.A1111_DOWNLOADS / "openpose"
    half.mkdir(parents=True)
    (half / "yolox_l.onnx").symlink_to(dwpose.find_files([installs[0]])[0])
    assert dwpose.find_files([tmp_path / "half"]) is None


def test_a_file_that_is_not_onnx_is_model_corrupt(installs, no_own_folder, tmp_path):
    folder = tmp_path / annotator_files.A1111_DOWNLOADS / "openpose"
    folder.mkdir(parents=True)
    (folder / "yolox_l.onnx").write_bytes(b"not a model")
    (folder / "dw-ll_ucoco_384.onnx").symlink_to(dwpose.find_files([installs[0]])[1])
    with pytest.raises(DreamwireError) as err:
        preprocess.run("dw_openpose", _picture(), roots=[tmp_path])
    assert err.value.code is ErrorCode.MODEL_CORRUPT and "yolox_l.onnx" in str(err.value)


def test_names_artists_know_are_listed():
    assert {"dw_openpose_full", "dw_openpose", "dw_openpose_hand", "openpose_full"} <= set(
        preprocess.names()
    )
