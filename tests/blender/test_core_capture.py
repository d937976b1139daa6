"""The bpy-free capture logic: camera model, bone maps, segmentation classes, EXR reading."""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np
import pytest

from blender_addon.core import exr
from blender_addon.core import pose as pose_core
from blender_addon.core import segmentation as seg
from blender_addon.core.camera import CameraModel
from blender_addon.core.exr import ExrError, layer_pass, read_exr
from blender_addon.core.normals import normal_image
from dreamwire.shared.imaging import ade20k, normals
from dreamwire.shared.imaging.openpose import KEYPOINT_INDEX

# --- camera ---------------------------------------------------------------------------


def look_down_y(position=(0.0, -10.0, 0.0)) -> np.ndarray:
    """A camera at `position` looking along +Y with +Z up (rotation X = 90 degrees)."""
    m = np.eye(4)
    m[:3, :3] = [[1, 0, 0], [0, 0, -1], [0, 1, 0]]
    m[:3, 3] = position
    return m


def test_perspective_projection_from_field_of_view():
    cam = CameraModel(look_down_y(), width=400, height=200, lens=50, sensor_width=36)
    # AUTO fit on a wide frame: the 36 mm sensor spans the width; half-width at distance d
    # is d * 18 / 50.
    d = 10.0
    edge = np.array([[d * 18 / 50, -10 + d, 0.0], [0, -10 + d, d * 18 / 50 * 200 / 400]])
    px, depth = cam.project(edge)
    assert px[0] == pytest.approx([400, 100]) and depth[0] == pytest.approx(d)
    assert px[1] == pytest.approx([200, 0])
    centre, _ = cam.project(np.array([[0.0, 5.0, 0.0]]))
    assert centre[0] == pytest.approx([200, 100])


def test_sensor_fit_shift_aspect_and_ortho():
    tall = CameraModel(look_down_y(), width=200, height=400, lens=50, sensor_width=36)
    # AUTO on a tall frame: the sensor width now spans the height.
    px, _ = tall.project(np.array([[0, 0, 10 * 18 / 50]]))
    assert px[0] == pytest.approx([100, 0])
    vert = CameraModel(
        look_down_y(), width=400, height=200, lens=50, sensor_height=24, sensor_fit="VERTICAL"
    )
    px, _ = vert.project(np.array([[0, 0, 10 * 12 / 50]]))
    assert px[0] == pytest.approx([200, 0])
    # Shift moves the frame: +shift_x by half the frame puts the axis on the left edge.
    shifted = CameraModel(look_down_y(), width=400, height=200, shift_x=0.5)
    px, _ = shifted.project(np.array([[0.0, 0.0, 0.0]]))
    assert px[0] == pytest.approx([0, 100])
    # Pixel aspect 2:1 (x pixels twice as wide) squeezes the x extent.
    wide_px = CameraModel(look_down_y(), width=400, height=400, pixel_aspect_x=2.0)
    px, _ = wide_px.project(np.array([[10 * 18 / 50, 0, 0]]))
    assert px[0] == pytest.approx([400, 200])
    ortho = CameraModel(look_down_y(), width=300, height=300, ortho=True, ortho_scale=6.0)
    px_near, _ = ortho.project(np.array([[3.0, -5.0, 0.0]]))
    px_far, d = ortho.project(np.array([[3.0, 50.0, 0.0]]))
    assert px_near[0] == pytest.approx([300, 150]) == px_far[0] and d[0] == pytest.approx(60)


def test_pixel_rays_pass_through_their_pixels():
    cam = CameraModel(look_down_y(), width=64, height=48, shift_y=0.1, pixel_aspect_y=1.5)
    origins, dirs = cam.pixel_rays()
    cam_pts = origins + dirs * 7.0
    px, depth = cam.camera_to_pixels(cam_pts.reshape(-1, 3))
    ys, xs = np.mgrid[0:48, 0:64]
    np.testing.assert_allclose(px[:, 0], xs.ravel() + 0.5, atol=1e-9)
    np.testing.assert_allclose(px[:, 1], ys.ravel() + 0.5, atol=1e-9)
    assert np.all(depth > 0)


def test_points_behind_the_camera_are_not_in_frame():
    cam = CameraModel(look_down_y(), width=100, height=100)
    px, depth = cam.project(np.array([[0.0, -20.0, 0.0], [0.0, 0.0, 0.0]]))
    assert list(cam.in_frame(px, depth)) == [False, True]


# --- pose -----------------------------------------------------------------------------

FIGURE = {  # metarig names, a figure facing -Y at the origin
    "spine": ((0, 0, 0.95), (0, 0, 1.45)),
    "spine.004": ((0, 0, 1.45), (0, 0, 1.6)),
    "spine.006": ((0, 0, 1.6), (0, 0, 1.85)),
    "upper_arm.L": ((0.2, 0, 1.4), (0.45, 0, 1.4)),
    "forearm.L": ((0.45, 0, 1.4), (0.7, 0, 1.4)),
    "hand.L": ((0.7, 0, 1.4), (0.8, 0, 1.4)),
    "upper_arm.R": ((-0.2, 0, 1.4), (-0.45, 0, 1.4)),
    "forearm.R": ((-0.45, 0, 1.4), (-0.7, 0, 1.4)),
    "hand.R": ((-0.7, 0, 1.4), (-0.8, 0, 1.4)),
    "thigh.L": ((0.1, 0, 0.95), (0.1, 0, 0.5)),
    "shin.L": ((0.1, 0, 0.5), (0.1, 0, 0.08)),
    "foot.L": ((0.1, 0, 0.08), (0.1, -0.15, 0)),
    "thigh.R": ((-0.1, 0, 0.95), (-0.1, 0, 0.5)),
    "shin.R": ((-0.1, 0, 0.5), (-0.1, 0, 0.08)),
    "foot.R": ((-0.1, 0, 0.08), (-0.1, -0.15, 0)),
}
MIXAMO_NAMES = {
    "spine": "Spine",
    "spine.004": "Neck",
    "spine.006": "Head",
    "upper_arm.L": "LeftArm",
    "forearm.L": "LeftForeArm",
    "hand.L": "LeftHand",
    "upper_arm.R": "RightArm",
    "forearm.R": "RightForeArm",
    "hand.R": "RightHand",
    "thigh.L": "LeftUpLeg",
    "shin.L": "LeftLeg",
    "foot.L": "LeftFoot",
    "thigh.R": "RightUpLeg",
    "shin.R": "RightLeg",
    "foot.R": "RightFoot",
}

UNREAL_NAMES = {
    "spine": "spine_01",
    "spine.004": "neck_01",
    "spine.006": "head",
    "upper_arm.L": "upperarm_l",
    "forearm.L": "lowerarm_l",
    "hand.L": "hand_l",
    "upper_arm.R": "upperarm_r",
    "forearm.R": "lowerarm_r",
    "hand.R": "hand_r",
    "thigh.L": "thigh_l",
    "shin.L": "calf_l",
    "foot.L": "foot_l",
    "thigh.R": "thigh_r",
    "shin.R": "calf_r",
    "foot.R": "foot_r",
}


def bones(prefix="", names=None):
    names = names or {k: k for k in FIGURE}
    return {
        prefix + names[k]: (np.array(h, float), np.array(t, float)) for k, (h, t) in FIGURE.items()
    }


@pytest.mark.parametrize(
    "rig,expected",
    [
        (bones(), "metarig"),
        (bones("DEF-"), "rigify"),
        (bones("ORG-"), "rigify"),
        (bones("mixamorig:", MIXAMO_NAMES), "mixamo"),
        (bones("mixamorig12:", MIXAMO_NAMES), "mixamo"),
        (bones("", MIXAMO_NAMES), "mixamo"),
        (bones("", UNREAL_NAMES), "unreal"),
    ],
)
def test_skeletons_are_detected_and_mapped(rig, expected):
    assert pose_core.detect_skeleton(rig) == expected
    res = pose_core.world_keypoints(rig)
    P = res.points
    np.testing.assert_allclose(P[KEYPOINT_INDEX["neck"]], [0, 0, 1.45])
    np.testing.assert_allclose(P[KEYPOINT_INDEX["right_elbow"]], [-0.45, 0, 1.4])
    np.testing.assert_allclose(P[KEYPOINT_INDEX["left_wrist"]], [0.7, 0, 1.4])
    np.testing.assert_allclose(P[KEYPOINT_INDEX["left_knee"]], [0.1, 0, 0.5])
    np.testing.assert_allclose(P[KEYPOINT_INDEX["right_ankle"]], [-0.1, 0, 0.08])
    # Face estimated from the head bone: in front (-Y), eyes at their sides.
    nose, reye, leye = (P[KEYPOINT_INDEX[k]] for k in ("nose", "right_eye", "left_eye"))
    rear, lear = P[KEYPOINT_INDEX["right_ear"]], P[KEYPOINT_INDEX["left_ear"]]
    assert nose[1] < -0.05 and 1.6 < nose[2] < 1.85
    assert reye[0] < 0 < leye[0] and rear[0] < reye[0] and leye[0] < lear[0]
    assert res.source[KEYPOINT_INDEX["nose"]] == "estimated"


def test_face_bones_win_over_estimates_and_overrides_apply():
    rig = bones("DEF-")
    rig["ORG-eye.L"] = (np.array([0.05, -0.1, 1.72]), np.array([0.05, -0.12, 1.72]))
    res = pose_core.world_keypoints(
        rig, overrides={"left_wrist": ("DEF-hand.L", "tail"), "right_knee": None}
    )
    np.testing.assert_allclose(res.points[KEYPOINT_INDEX["left_eye"]], [0.05, -0.1, 1.72])
    np.testing.assert_allclose(res.points[KEYPOINT_INDEX["left_wrist"]], [0.8, 0, 1.4])
    assert np.isnan(res.points[KEYPOINT_INDEX["right_knee"]]).all()
    with pytest.raises(ValueError, match="unknown OpenPose keypoint"):
        pose_core.world_keypoints(rig, overrides={"left_hand": "DEF-hand.L"})


def test_unknown_rig_is_not_detected():
    odd = {"Bone": (np.zeros(3), np.ones(3)), "Bone.001": (np.ones(3), np.ones(3) * 2)}
    assert pose_core.detect_skeleton(odd) is None
    assert "override" in pose_core.unknown_skeleton_message(list(odd), "Odd")


def test_projection_visibility_and_facing():
    cam = CameraModel(look_down_y((0, -6, 1.2)), width=512, height=512)
    person = pose_core.armature_pose(bones(), cam)
    kp = person.keypoints
    assert kp[:, 2].all()  # a frontal figure: all 18 keypoints, both ears included
    assert kp[KEYPOINT_INDEX["right_wrist"], 0] < 256 < kp[KEYPOINT_INDEX["left_wrist"], 0]
    # Same figure turned to face away (+Y): nose and eyes are gone, ears stay.
    turned = {k: (h * [-1, -1, 1], t * [-1, -1, 1]) for k, (h, t) in bones().items()}
    back = pose_core.armature_pose(turned, cam).keypoints
    for k in ("nose", "right_eye", "left_eye"):
        assert back[KEYPOINT_INDEX[k], 2] == 0
    assert back[KEYPOINT_INDEX["right_ear"], 2] == back[KEYPOINT_INDEX["left_ear"], 2] == 1
    # Moved out of the frame: nothing visible, coordinates zeroed.
    far_left = {k: (h + [-50, 0, 0], t + [-50, 0, 0]) for k, (h, t) in bones().items()}
    gone = pose_core.armature_pose(far_left, cam).keypoints
    assert not gone[:, 2].any() and not gone[:, :2].any()


# --- segmentation ---------------------------------------------------------------------


def test_class_names_from_properties_and_names():
    assert seg.resolve("Sky") == 2 and seg.resolve(4) == 4 and seg.resolve("") is None
    assert seg.guess_from_name("Floor.001") == ade20k.class_id("floor")
    assert seg.guess_from_name("big_tree_02") == ade20k.class_id("tree")
    assert seg.guess_from_name("Coffee Table") == ade20k.class_id("coffee table")
    assert seg.guess_from_name("Cube.003") is None
    assert seg.class_for("car", "Tree") == ade20k.class_id("car")
    assert seg.class_for(None, "Tree", guess_names=False) is None


def test_label_map_material_class_wins():
    oi = np.array([[0, 1, 1], [2, 2, 3]])
    mi = np.array([[0, 1, 0], [2, 0, 0]])
    labels = seg.label_map(oi, mi, {1: 4, 2: None, 3: 12}, {1: 2}, default=None)
    assert labels.tolist() == [[-1, 2, 4], [-1, -1, 12]]
    with_default = seg.label_map(oi, mi, {1: 4, 2: None, 3: 12}, {}, default=0)
    assert with_default.tolist() == [[-1, 4, 4], [0, 0, 12]]


def _labels_per_pixel(oi, mi, obj_classes, mat_explicit, mat_guess, default):
    """The capture's precedence applied pixel by pixel with label_map, as the capture
    did before it used a per-(object, material) table."""
    explicit = {k: v for k, v in mat_explicit.items() if v is not None}
    labels = seg.label_map(oi, mi, obj_classes, explicit)
    if mat_guess:
        guessed = seg.label_map(oi, mi, {}, mat_guess)
        labels = np.where((labels < 0) & (guessed >= 0), guessed, labels)
    if default is not None:
        labels = np.where((labels < 0) & (oi > 0), default, labels)
    return labels


def test_label_table_precedence():
    # Objects 1 (class 4), 2 (none), 3 (class 12); materials 1 (explicit 2), 2 (guessed
    # 7), 3 (nothing).
    table = seg.label_table(3, 3, {1: 4, 2: None, 3: 12}, {1: 2}, {2: 7, 3: None}, None)
    assert table.dtype == np.int32 and table.shape == (4, 4)
    assert table[0].tolist() == [-1, -1, -1, -1]  # background, whatever the material
    assert table[:, 1].tolist() == [-1, 2, 2, 2]  # explicit material class wins
    assert table[1].tolist() == [4, 2, 4, 4]  # then the object's class
    assert table[2].tolist() == [-1, 2, 7, -1]  # then the material's guessed class
    with_default = seg.label_table(3, 3, {1: 4, 2: None, 3: 12}, {1: 2}, {2: 7}, 0)
    assert with_default[2].tolist() == [0, 2, 7, 0] and with_default[0].tolist() == [-1] * 4


@pytest.mark.parametrize("seed", range(4))
def test_label_table_lookup_matches_per_pixel_label_maps(seed):
    rng = np.random.default_rng(seed)
    oi = rng.integers(-1, 9, (40, 50)).astype(np.int32)
    mi = rng.integers(-1, 6, (40, 50)).astype(np.int32)
    classes = [None, *range(0, 150, 7)]

    def pick(keys):
        return {int(k): classes[rng.integers(len(classes))] for k in keys}

    obj = pick(rng.choice(np.arange(1, 9), 6, replace=False))
    explicit = pick(rng.choice(np.arange(1, 6), 2, replace=False))
    guess = pick(k for k in range(1, 6) if k not in explicit)
    default = [None, 0, 5][seed % 3]
    want = _labels_per_pixel(oi, mi, obj, explicit, guess, default)
    n_obj = max(max(obj), int(oi.max()))
    n_mat = max(max(explicit), max(guess), int(mi.max()))
    table = seg.label_table(n_obj, n_mat, obj, explicit, guess, default)
    labels = seg.lookup(table, oi, mi)
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(labels, want)
    colours = seg.lookup(ade20k.colorize(table), oi, mi)
    np.testing.assert_array_equal(colours, seg.segmentation_image(want))


# --- normals --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "background, dtype",
    [(normals.FACING, np.float32), ((0, 0, 0), np.float32), (None, np.float64)],
)
def test_normal_image_is_the_shared_convention_exactly(background, dtype):
    """The blocked conversion gives the bytes world_to_camera_normals + normals_to_image
    give, including unnormalised, zero and NaN normals and a scaled camera."""
    rng = np.random.default_rng(1)
    h, w = 300, 301  # more pixels than one block, not a multiple of it
    n = rng.normal(size=(h, w, 3)).astype(np.float32) * rng.uniform(0.5, 2, (h, w, 1))
    n = n.astype(dtype)
    n[0, :5] = 0.0
    n[1, :5] = np.nan
    n[2, :6] = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [-1, 0, 0], [0, -1, 0], [0, 0, -1]]
    cam = np.eye(4)
    a, b = 1.1, -0.4
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    rz = np.array([[np.cos(b), -np.sin(b), 0], [np.sin(b), np.cos(b), 0], [0, 0, 1]])
    cam[:3, :3] = rz @ rx * 3.0
    cam[:3, 3] = (1, -7, 2)
    mask = rng.uniform(size=(h, w)) > 0.3
    want = normals.normals_to_image(
        normals.world_to_camera_normals(n, cam), mask=mask, background=background
    )
    got = normal_image(n, cam, mask=mask, background=background)
    assert got.dtype == np.uint8 and got.shape == (h, w, 3)
    np.testing.assert_array_equal(got, want)
    # Axis-aligned camera: a normal towards the camera is (127, 127, 255).
    facing = normal_image(np.array([[[0.0, -1.0, 0.0]]], np.float32), look_down_y())
    assert facing[0, 0].tolist() == [127, 127, 255]


# --- EXR ------------------------------------------------------------------------------


def _attr(name, typ, data):
    return name.encode() + b"\0" + typ.encode() + b"\0" + struct.pack("<i", len(data)) + data


def _zip(raw: bytes) -> bytes:
    a = np.frombuffer(raw, np.uint8)
    t = np.concatenate([a[0::2], a[1::2]]).astype(np.int64)
    d = t.copy()
    d[1:] = (t[1:] - t[:-1] + 128) & 0xFF
    return zlib.compress(d.astype(np.uint8).tobytes())


_EXR_TYPES = {np.dtype("<f4"): 2, np.dtype("<f2"): 1, np.dtype("<u4"): 0}


def _exr_header(channels: dict[str, np.ndarray], compression: int, extra: bytes = b"") -> bytes:
    names = sorted(channels)
    h, w = channels[names[0]].shape
    chl = b"".join(
        n.encode() + b"\0" + struct.pack("<iB3xii", _EXR_TYPES[channels[n].dtype], 0, 1, 1)
        for n in names
    )
    return (
        _attr("channels", "chlist", chl + b"\0")
        + _attr("compression", "compression", bytes([compression]))
        + _attr("dataWindow", "box2i", struct.pack("<iiii", 0, 0, w - 1, h - 1))
        + _attr("displayWindow", "box2i", struct.pack("<iiii", 0, 0, w - 1, h - 1))
        + _attr("lineOrder", "lineOrder", b"\0")
        + _attr("pixelAspectRatio", "float", struct.pack("<f", 1))
        + _attr("screenWindowCenter", "v2f", struct.pack("<ff", 0, 0))
        + _attr("screenWindowWidth", "float", struct.pack("<f", 1))
        + extra
        + b"\0"
    )


def _exr_blocks(channels: dict[str, np.ndarray], compression: int, prefix: bytes = b""):
    names = sorted(channels)
    h = channels[names[0]].shape[0]
    lpb = 16 if compression == 3 else 1
    blocks = []
    for y0 in range(0, h, lpb):
        raw = b"".join(channels[n][y].tobytes() for y in range(y0, min(h, y0 + lpb)) for n in names)
        data = _zip(raw) if compression in (2, 3) else raw
        if len(data) >= len(raw):
            data = raw
        blocks.append(prefix + struct.pack("<ii", y0, len(data)) + data)
    return blocks


def write_exr(path, channels: dict[str, np.ndarray], compression: int):
    """A minimal single-part scanline EXR writer for the reader test (channels keep their
    dtype: float32, float16 or uint32)."""
    header = _exr_header(channels, compression)
    blocks = _exr_blocks(channels, compression)
    start = 8 + len(header) + 8 * len(blocks)
    offsets, pos = [], start
    for b in blocks:
        offsets.append(pos)
        pos += len(b)
    body = b"\x76\x2f\x31\x01" + struct.pack("<I", 2) + header
    body += struct.pack(f"<{len(offsets)}Q", *offsets) + b"".join(blocks)
    path.write_bytes(body)


def write_multipart_exr(path, parts: dict[str, dict[str, np.ndarray]], compression: int):
    """A multi-part scanline EXR as Blender writes multilayer files: one part per pass,
    named 'Layer.Pass', each block led by its part number."""
    headers, tables = [], []
    for index, (name, chans) in enumerate(parts.items()):
        blocks = _exr_blocks(chans, compression, struct.pack("<i", index))
        extra = (
            _attr("name", "string", name.encode())
            + _attr("type", "string", b"scanlineimage")
            + _attr("chunkCount", "int", struct.pack("<i", len(blocks)))
        )
        headers.append(_exr_header(chans, compression, extra))
        tables.append(blocks)
    pos = 8 + sum(map(len, headers)) + 1 + 8 * sum(map(len, tables))
    offsets = []
    for blocks in tables:
        for b in blocks:
            offsets.append(pos)
            pos += len(b)
    body = b"\x76\x2f\x31\x01" + struct.pack("<I", 2 | 0x1000) + b"".join(headers) + b"\0"
    body += struct.pack(f"<{len(offsets)}Q", *offsets)
    body += b"".join(b for blocks in tables for b in blocks)
    path.write_bytes(body)


@pytest.mark.parametrize("compression", [0, 2, 3])
def test_exr_reader_round_trip(tmp_path, compression):
    rng = np.random.default_rng(compression)
    h, w = 37, 23
    chans = {
        "Layer.Depth.Z": rng.uniform(0, 100, (h, w)).astype(np.float32),
        "Layer.Normal.X": rng.normal(size=(h, w)).astype(np.float32),
        "Layer.Normal.Y": np.zeros((h, w), np.float32),  # compresses well: the ZIP path
        "Layer.Normal.Z": np.ones((h, w), np.float32),
    }
    p = tmp_path / "t.exr"
    write_exr(p, chans, compression)
    back = read_exr(p)
    for k, v in chans.items():
        np.testing.assert_array_equal(back[k], v)
    n = layer_pass(back, "Normal")
    assert n.shape == (h, w, 3) and (n[..., 2] == 1).all()
    assert layer_pass(back, "Missing") is None
    z = layer_pass(back, "Depth")
    assert z.shape == (h, w, 1) and (z[..., 0] == chans["Layer.Depth.Z"]).all()


@pytest.fixture
def fast_path(monkeypatch):
    """Records, per part read, whether the vectorised path took it."""
    taken: list[bool] = []
    read_uncompressed = exr._Part.read_uncompressed

    def spy(self, *args):
        taken.append(read_uncompressed(self, *args))
        return taken[-1]

    monkeypatch.setattr(exr._Part, "read_uncompressed", spy)
    return taken


@pytest.mark.parametrize("compression", [0, 3])
def test_exr_reader_multipart_and_channel_choice(tmp_path, compression, fast_path):
    """Blender's multilayer layout (one part per pass); uncompressed files take the
    vectorised path, which must agree with the scanline loop, for every pixel type."""
    rng = np.random.default_rng(7)
    h, w = 29, 17
    parts = {
        "View.Layer.Combined": {
            f"View.Layer.Combined.{c}": rng.uniform(size=(h, w)).astype(np.float32) for c in "RGBA"
        },
        "View.Layer.Depth": {"Z": rng.uniform(1, 50, (h, w)).astype(np.float32)},
        "View.Layer.Normal": {
            f"View.Layer.Normal.{c}": rng.normal(size=(h, w)).astype(np.float16) for c in "XYZ"
        },
        "View.Layer.Object Index": {
            "View.Layer.Object Index.X": rng.integers(0, 9, (h, w)).astype(np.uint32)
        },
    }
    p = tmp_path / "m.exr"
    write_multipart_exr(p, parts, compression)
    back = read_exr(p)
    expected = {
        (name if name.startswith(part + ".") else f"{part}.{name}"): arr
        for part, chans in parts.items()
        for name, arr in chans.items()
    }
    assert set(back) == set(expected)
    for k, v in expected.items():
        assert back[k].dtype == np.float32 and back[k].flags.c_contiguous
        np.testing.assert_array_equal(back[k], v.astype(np.float32))
    assert layer_pass(back, "Depth", "View.Layer").shape == (h, w, 1)
    assert layer_pass(back, "Normal", "View.Layer").shape == (h, w, 3)
    assert fast_path == [compression == 0] * len(parts)
    some = read_exr(p, lambda name: ".Combined." not in name)
    assert set(some) == set(expected) - {f"View.Layer.Combined.{c}" for c in "RGBA"}
    for k, v in some.items():
        np.testing.assert_array_equal(v, expected[k].astype(np.float32))


def test_exr_reader_falls_back_when_blocks_are_out_of_order(tmp_path, fast_path):
    """An uncompressed file whose blocks are not back to back in line order is read by
    the scanline loop, with the same result."""
    rng = np.random.default_rng(3)
    chans = {"L.Depth.Z": rng.uniform(size=(6, 5)).astype(np.float32)}
    p = tmp_path / "t.exr"
    write_exr(p, chans, 0)
    raw = bytearray(p.read_bytes())
    header_end = len(raw) - 6 * (8 + 20) - 8 * 6
    offsets = list(struct.unpack_from("<6Q", raw, header_end))
    blocks = [bytes(raw[o : o + 28]) for o in offsets]
    order = [5, 4, 3, 2, 1, 0]  # blocks stored bottom line first
    pos = header_end + 8 * 6
    for i in order:
        raw[pos : pos + 28] = blocks[i]
        offsets[i] = pos
        pos += 28
    struct.pack_into("<6Q", raw, header_end, *offsets)
    p.write_bytes(bytes(raw))
    np.testing.assert_array_equal(read_exr(p)["L.Depth.Z"], chans["L.Depth.Z"])
    assert fast_path == [False]


def test_exr_reader_rejects_other_files(tmp_path):
    p = tmp_path / "x.exr"
    p.write_bytes(b"PNG not exr")
    with pytest.raises(ExrError):
        read_exr(p)


def test_camera_angle_sanity():
    # 50 mm on a 36 mm sensor: the well-known 39.6 degree horizontal field of view.
    cam = CameraModel(look_down_y((0, 0, 0)), width=1000, height=500)
    px, _ = cam.project(np.array([[math.tan(math.radians(39.5978 / 2)), 1.0, 0.0]]))
    assert px[0, 0] == pytest.approx(1000, abs=0.01)
