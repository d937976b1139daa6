"""Scene capture in real Blender (the bpy module), judged numerically.

The scene and the captures run in a subprocess (capture_probe.py): bpy loads one Blender
per process, and a fresh process keeps this test independent of any other bpy user in
the pytest session. The probe writes arrays and Blender-computed reference values; the
checks are here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from dreamwire.shared.imaging import ade20k, normals
from dreamwire.shared.imaging.openpose import KEYPOINT_INDEX
from tests.support.bpy_probe import run_probe

pytestmark = [
    pytest.mark.blender,
    pytest.mark.skipif(importlib.util.find_spec("bpy") is None, reason="bpy not installed"),
]

PROBE = Path(__file__).with_name("capture_probe.py")


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    return run_probe(PROBE, tmp_path_factory.mktemp("capture"), "probe")


def _px(results, key):
    x, y, _ = results["probes"][key]["blender"]
    return int(y), int(x)


def test_camera_model_matches_blender(probe):
    results, _ = probe
    # Perspective and ortho, every sensor fit, shifts and pixel aspects, vs world_to_camera_view.
    assert results["camera_model_max_error"] < 1e-5
    for key, p in results["probes"].items():
        assert p["model"] == pytest.approx(p["blender"][:2], abs=1e-3), key


def test_depth_orders_known_objects(probe):
    results, a = probe
    z, d = a["z"], a["depth"]
    assert d.shape == (512, 512, 3) and d.dtype == np.uint8
    near, far, wall = (_px(results, k) for k in ("near_front", "far_front", "wall"))
    # Cycles' Z is planar view depth: the faces sit at 4.5, 9.5 and 15 from the camera.
    assert z[near] == pytest.approx(4.5, abs=1e-3)
    assert z[far] == pytest.approx(9.5, abs=1e-3)
    assert z[wall] == pytest.approx(15.0, abs=1e-3)
    assert d[near][0] == 255  # the nearest visible surface
    assert d[near][0] > d[far][0] > d[wall][0]
    assert d[0, 0].tolist() == [0, 0, 0] and np.isinf(z[0, 0])  # background
    assert (d[..., 0] == d[..., 1]).all() and (d[..., 1] == d[..., 2]).all()


def test_normal_colours_of_known_faces(probe):
    results, a = probe
    n = a["normals"]
    assert n.shape == (512, 512, 3) and n.dtype == np.uint8
    assert n[_px(results, "near_front")].tolist() == [127, 127, 255]  # faces the camera
    assert n[_px(results, "wall")].tolist() == [127, 127, 255]
    # The box left of centre shows its +X side: facing the image's right, so no red.
    assert n[_px(results, "near_right_side")].tolist() == [0, 127, 127]
    # Its top faces up: full green.
    assert n[_px(results, "near_top")].tolist() == [127, 255, 127]


def test_segmentation_colours_of_objects(probe):
    results, a = probe
    seg, labels = a["segmentation"], a["labels"]
    # NearBox: object property "person"; Tree: guessed from its name; Backdrop: the
    # class property of its material "Brick" ("building").
    assert tuple(seg[_px(results, "near_front")]) == ade20k.color_of("person")
    assert tuple(seg[_px(results, "far_front")]) == ade20k.color_of("tree")
    assert tuple(seg[_px(results, "wall")]) == ade20k.color_of("building")
    assert labels[_px(results, "wall")] == ade20k.class_id("building")
    # An object seen only through a collection instance keeps its class.
    assert tuple(seg[_px(results, "instance_front")]) == ade20k.color_of("box")
    assert tuple(seg[0, 0]) == (0, 0, 0) and labels[0, 0] == -1
    colours = {tuple(c) for c in seg.reshape(-1, 3)}
    assert colours == {
        (0, 0, 0),
        ade20k.color_of("person"),
        ade20k.color_of("tree"),
        ade20k.color_of("building"),
        ade20k.color_of("box"),
    }


def test_capture_leaves_scene_settings_alone(probe):
    results, _ = probe
    r = results["restored"]
    assert r["engine"] == "BLENDER_WORKBENCH" and r["res"] == [320, 240]
    assert set(r["pass_index"].values()) == {0} and r["use_pass_z"] is False
    assert "Crate" not in r["pass_index"] and r["crate_pass_index"] == 0
    assert results["stored"] == ["Dreamwire Depth", [512, 512]]
    assert r["lights_hide_render"] == [False]
    assert r["artist_passes"] == [True] * 4
    assert results["images_after_capture"] == []  # no Render Result left behind
    slots = results["render_slots"]  # an existing render keeps its slot
    assert slots["active"] == 2 and slots["names"].count("Dreamwire capture") == 1
    assert slots["images"] == ["Render Result"]


def test_render_only_the_passes_asked_for(probe):
    results, _ = probe
    d = results["depth_only"]
    assert d["normal"] and d["index"] and d["z_equal"]
    # Nothing else is rendered or written: not the artist's own passes either. (Combined
    # is always in a render result.)
    older = {"IndexOB": "Object Index", "IndexMA": "Material Index"}  # before Blender 5.0
    everything, depth = ([older.get(p, p) for p in f] for f in results["exr_passes"])
    assert sorted(everything) == ["Combined", "Depth", "Material Index", "Normal", "Object Index"]
    assert depth == ["Combined", "Depth"]
    assert "without normals" in d["normals_error"]


def test_stored_images_hold_the_captures(probe):
    """store_image: bottom row first as Blender keeps pixels, bytes / 255, opaque."""
    _, a = probe
    for kind in ("depth", "segmentation"):
        px = a[f"stored_{kind}_pixels"]
        np.testing.assert_allclose(px[::-1, :, :3] * 255.0, a[kind], atol=1e-3)
        assert (px[..., 3] == 1.0).all()


def test_color_render(probe):
    _, a = probe
    c = a["color"]
    assert c.shape == (48, 64, 3) and c.dtype == np.uint8
    # Sun from above: lit tops are bright, the rest dark; the render is not empty.
    assert c.max() > 100 and (c > 100).sum() > 20


def test_pose_keypoints_match_independent_projection(probe):
    results, a = probe
    kp = a["keypoints"]
    assert kp.shape == (2, 18, 3)
    assert results["detected"] == ["rigify", "mixamo"]
    for person, ref in ((0, results["ref_rig"]), (1, results["ref_mix"])):
        for name, (x, y, _) in ref.items():
            i = KEYPOINT_INDEX[name]
            assert kp[person, i, 2] == 1.0, name
            assert kp[person, i, :2] == pytest.approx([x, y], abs=1e-2), (person, name)
    # The posed right arm and left shin moved away from the rest pose.
    rest = results["ref_rest"]
    for name in ("right_elbow", "right_wrist", "left_ankle"):
        moved = np.hypot(*(np.array(rest[name][:2]) - kp[0, KEYPOINT_INDEX[name], :2]))
        assert moved > 5, name
    # Face points estimated from the head: nose above the neck, eyes either side of it,
    # the character's right eye on the image's left (it faces the camera).
    nose, neck = kp[0, KEYPOINT_INDEX["nose"]], kp[0, KEYPOINT_INDEX["neck"]]
    reye, leye = kp[0, KEYPOINT_INDEX["right_eye"]], kp[0, KEYPOINT_INDEX["left_eye"]]
    assert nose[2] == reye[2] == leye[2] == 1.0
    assert nose[1] < neck[1] and reye[0] < nose[0] < leye[0] and reye[1] < nose[1]
    assert kp[0, KEYPOINT_INDEX["right_ear"], 2] == kp[0, KEYPOINT_INDEX["left_ear"], 2] == 1


def test_pose_image_is_drawn(probe):
    results, a = probe
    img = a["pose"]
    assert img.shape == (512, 512, 3)
    x, y, _ = results["ref_rig"]["neck"]
    assert tuple(img[int(y), int(x)]) == (255, 85, 0)  # the neck joint's colour


def test_pose_turned_away_hides_the_face(probe):
    _, a = probe
    kp = a["keypoints_away"]
    for name in ("nose", "right_eye", "left_eye"):
        assert kp[KEYPOINT_INDEX[name], 2] == 0.0, name
    assert kp[KEYPOINT_INDEX["neck"], 2] == 1.0


def test_unknown_bones_give_a_clear_error_and_overrides_work(probe):
    results, a = probe
    assert "not recognised" in results["unknown_error"] and "override" in results["unknown_error"]
    kp = a["keypoints_odd"]
    assert kp[KEYPOINT_INDEX["neck"], :2] == pytest.approx(results["ref_odd_neck"], abs=1e-2)
    assert kp[KEYPOINT_INDEX["left_wrist"], 2] == 1.0
    assert kp[KEYPOINT_INDEX["nose"], 2] == 0.0


def test_no_camera_gives_a_clear_error(probe):
    results, _ = probe
    assert "no camera" in results["no_camera_error"]


def test_capture_all_and_pose_json(probe):
    results, _ = probe
    shapes = results["capture_all"]
    assert shapes["depth"] == shapes["segmentation"] == shapes["pose"] == [64, 96, 3]
    assert shapes["labels"] == [64, 96]
    js = results["pose_json"]
    assert js["canvas_width"] == 96 and js["canvas_height"] == 64
    assert len(js["people"]) == 2 and len(js["people"][0]["pose_keypoints_2d"]) == 54


def test_orthographic_depth_is_distance_from_the_camera_plane(probe):
    results, _ = probe
    assert results["ortho_near_z"] == pytest.approx(4.5, abs=1e-3)


def test_normals_follow_a_camera_moved_without_a_depsgraph_update(probe):
    results, a = probe
    n = np.array(results["tilted_floor_normal_cam"])
    # The floor seen from above at a slant: green (up) dominates, blue (toward the camera)
    # is partial; world-space normals would read flat (127,127,255) instead.
    assert n[1] > 0.5 and 0.2 < n[2] < 0.9
    expected = normals.normals_to_image(n.reshape(1, 1, 3))[0, 0].astype(int)
    centre = a["tilted_normals"][16, 16].astype(int)
    assert np.abs(centre - expected).max() <= 2, (centre, expected)


def test_face_mesh_groups_draw_the_mediapipe_face_of_the_posed_mesh(probe):
    """The face_oval ring, widened by a shape key, drawn where Blender projects it."""
    from dreamwire.shared.imaging import mediapipe_face as mp_face

    _, arrays = probe
    got, ref, edges = arrays["face"], arrays["face_ref"], arrays["face_edges"]
    segments = {"face_oval": [(tuple(ref[a]), tuple(ref[b])) for a, b in edges]}
    want = mp_face.draw(got.shape[:2], [mp_face.FaceLines(segments, {}, ref)])
    oval = np.all(got == (10, 200, 10), axis=2)  # head_draw's BGR (10, 200, 10) as RGB
    assert oval.sum() > 100 and oval.sum() == got.any(axis=2).sum()
    # Blender's projection and the add-on's may round a line end to the next pixel.
    assert np.count_nonzero(np.any(got != want, axis=2)) <= 0.05 * oval.sum()
    cols, rows = np.nonzero(oval.any(axis=0))[0], np.nonzero(oval.any(axis=1))[0]
    width, height = cols.max() - cols.min(), rows.max() - rows.min()
    assert 1.35 < width / height < 1.65  # the shape key's 1.5 x width, not the basis ring
