"""Armature joints -> OpenPose COCO-18 keypoints.

An armature is given as posed bone positions in world space, {bone name: (head, tail)}.
A skeleton map says which bone end stands for which keypoint; maps are built in for
Rigify (generated rigs: DEF-/ORG- bones), Blender's human metarig, Mixamo skeletons
(`mixamorig:` with any numbered prefix, or none) and the Unreal mannequin, and a per-bone
override dict can add or replace entries. Eyes, ears and nose are estimated from the head bone when the rig has no face
bones. Keypoints are then projected through a CameraModel; a keypoint is visible when
it is in front of the camera and inside the frame, and face points are also dropped
when they are on the far side of the head (as OpenPose would not see them).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from dreamwire.shared.imaging.openpose import KEYPOINT_INDEX, KEYPOINT_NAMES, PosePerson

from .camera import CameraModel

# A joint reference: (bone name, "head" | "tail"). Several candidates: the first present wins.
JointRef = tuple[str, str]

_LIMBS_METARIG: dict[str, list[JointRef]] = {
    "neck": [("spine.004", "head")],
    "right_shoulder": [("upper_arm.R", "head")],
    "right_elbow": [("forearm.R", "head"), ("upper_arm.R", "tail")],
    "right_wrist": [("hand.R", "head"), ("forearm.R", "tail")],
    "left_shoulder": [("upper_arm.L", "head")],
    "left_elbow": [("forearm.L", "head"), ("upper_arm.L", "tail")],
    "left_wrist": [("hand.L", "head"), ("forearm.L", "tail")],
    "right_hip": [("thigh.R", "head")],
    "right_knee": [("shin.R", "head"), ("thigh.R", "tail")],
    "right_ankle": [("foot.R", "head"), ("shin.R", "tail")],
    "left_hip": [("thigh.L", "head")],
    "left_knee": [("shin.L", "head"), ("thigh.L", "tail")],
    "left_ankle": [("foot.L", "head"), ("shin.L", "tail")],
    "right_eye": [("eye.R", "head")],
    "left_eye": [("eye.L", "head")],
    "right_ear": [("ear.R", "head")],
    "left_ear": [("ear.L", "head")],
    "nose": [("nose.002", "head"), ("nose", "tail")],
}
_HEAD_METARIG = ["spine.006", "head"]

_MIXAMO: dict[str, list[JointRef]] = {
    "neck": [("Neck", "head")],
    "right_shoulder": [("RightArm", "head")],
    "right_elbow": [("RightForeArm", "head")],
    "right_wrist": [("RightHand", "head")],
    "left_shoulder": [("LeftArm", "head")],
    "left_elbow": [("LeftForeArm", "head")],
    "left_wrist": [("LeftHand", "head")],
    "right_hip": [("RightUpLeg", "head")],
    "right_knee": [("RightLeg", "head")],
    "right_ankle": [("RightFoot", "head")],
    "left_hip": [("LeftUpLeg", "head")],
    "left_knee": [("LeftLeg", "head")],
    "left_ankle": [("LeftFoot", "head")],
    "right_eye": [("RightEye", "head")],
    "left_eye": [("LeftEye", "head")],
}


# Unreal Engine mannequin (UE4/UE5) names, common in game rigs imported into Blender.
_UNREAL: dict[str, list[JointRef]] = {
    "neck": [("neck_01", "head")],
    "right_shoulder": [("upperarm_r", "head")],
    "right_elbow": [("lowerarm_r", "head")],
    "right_wrist": [("hand_r", "head")],
    "left_shoulder": [("upperarm_l", "head")],
    "left_elbow": [("lowerarm_l", "head")],
    "left_wrist": [("hand_l", "head")],
    "right_hip": [("thigh_r", "head")],
    "right_knee": [("calf_r", "head")],
    "right_ankle": [("foot_r", "head")],
    "left_hip": [("thigh_l", "head")],
    "left_knee": [("calf_l", "head")],
    "left_ankle": [("foot_l", "head")],
}


def _prefixed(base: dict[str, list[JointRef]], prefixes: list[str]) -> dict[str, list[JointRef]]:
    return {k: [(p + b, end) for p in prefixes for b, end in refs] for k, refs in base.items()}


@dataclass
class SkeletonMap:
    name: str
    joints: dict[str, list[JointRef]]
    head: list[str]  # candidate head bones (head joint = top of neck, tail = top of head)


SKELETON_MAPS: dict[str, SkeletonMap] = {
    # Generated Rigify rigs deform with DEF- bones and keep the metarig layout in ORG- bones.
    "rigify": SkeletonMap(
        "rigify",
        _prefixed(_LIMBS_METARIG, ["DEF-", "ORG-"]),
        [p + b for p in ("DEF-", "ORG-") for b in _HEAD_METARIG],
    ),
    "metarig": SkeletonMap("metarig", _prefixed(_LIMBS_METARIG, [""]), list(_HEAD_METARIG)),
    # Mixamo rigs keep the "mixamorig:" prefix unless an importer stripped it.
    "mixamo": SkeletonMap(
        "mixamo", _prefixed(_MIXAMO, ["mixamorig:", ""]), ["mixamorig:Head", "Head"]
    ),
    "unreal": SkeletonMap("unreal", _prefixed(_UNREAL, [""]), ["head"]),
}

_MIXAMO_PREFIX = re.compile(r"^mixamorig\d*:")

Bones = Mapping[str, tuple[np.ndarray, np.ndarray]]


def normalize_bone_names(bones: Bones) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Mixamo exports use 'mixamorig:', 'mixamorig1:', ...; fold them to 'mixamorig:'."""
    out = {}
    for name, (h, t) in bones.items():
        out[_MIXAMO_PREFIX.sub("mixamorig:", name)] = (np.asarray(h, float), np.asarray(t, float))
    return out


def detect_skeleton(bones: Bones) -> str | None:
    """The built-in map that finds the most body joints in these bones (None: none fits)."""
    names = set(normalize_bone_names(bones))
    best, best_hits = None, 0
    for key, sk in SKELETON_MAPS.items():
        hits = sum(any(b in names for b, _ in refs) for refs in sk.joints.values())
        if hits > best_hits:
            best, best_hits = key, hits
    return best if best_hits >= 4 else None


def _ref(value) -> list[JointRef]:
    if value is None:
        return []
    if isinstance(value, str):
        return [(value, "head")]
    if isinstance(value, tuple) and len(value) == 2 and value[1] in ("head", "tail"):
        return [value]
    return [r if isinstance(r, tuple) else (r, "head") for r in value]


@dataclass
class JointResult:
    """World-space keypoints (18 x 3, NaN where unknown) and where each one came from."""

    points: np.ndarray = field(default_factory=lambda: np.full((18, 3), np.nan))
    source: list[str] = field(default_factory=lambda: [""] * 18)
    head_center: np.ndarray | None = None
    skeleton: str | None = None


def world_keypoints(
    bones: Bones,
    skeleton: str | None = None,
    overrides: Mapping[str, object] | None = None,
    estimate_face: bool = True,
    forward_hint: np.ndarray | None = None,
) -> JointResult:
    """Map posed bones (world space) to the 18 COCO keypoints.

    overrides: {keypoint name: bone name | (bone, "head"|"tail") | [candidates] | None};
    None removes the keypoint. Unknown keypoint names raise ValueError.
    """
    bones = normalize_bone_names(bones)
    skeleton = skeleton or detect_skeleton(bones)
    sk = SKELETON_MAPS.get(skeleton) if skeleton else None
    joints: dict[str, list[JointRef]] = {k: list(v) for k, v in (sk.joints if sk else {}).items()}
    for key, value in (overrides or {}).items():
        if key not in KEYPOINT_INDEX:
            raise ValueError(f"unknown OpenPose keypoint {key!r}; expected one of {KEYPOINT_NAMES}")
        joints[key] = _ref(value)

    res = JointResult(skeleton=skeleton)
    for key, refs in joints.items():
        for bone, end in refs:
            if bone in bones:
                res.points[KEYPOINT_INDEX[key]] = bones[bone][0 if end == "head" else 1]
                res.source[KEYPOINT_INDEX[key]] = f"{bone}.{end}"
                break

    head_bone = next((b for b in (sk.head if sk else []) if b in bones), None)
    if head_bone is not None and estimate_face:
        _estimate_face(res, *bones[head_bone], forward_hint)
    return res


def _unit(v: np.ndarray) -> np.ndarray | None:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-9 else None


def _estimate_face(res: JointResult, head: np.ndarray, tail: np.ndarray, forward_hint) -> None:
    """Fill missing nose/eyes/ears from the head bone's proportions.

    The head bone runs from the top of the neck to the top of the skull; its length L is
    about the head's height. The face's "right" comes from the shoulders (or hips), its
    "forward" is right x up; the offsets below are average adult head proportions.
    """
    P = res.points
    up = _unit(tail - head)
    if up is None:
        return
    L = float(np.linalg.norm(tail - head))
    side = None
    for rk, lk in (("right_shoulder", "left_shoulder"), ("right_hip", "left_hip")):
        a, b = P[KEYPOINT_INDEX[rk]], P[KEYPOINT_INDEX[lk]]
        if np.isfinite(a).all() and np.isfinite(b).all():
            side = _unit(b - a)  # toward the character's left
            if side is not None:
                break
    if side is None and forward_hint is not None:
        side = _unit(np.cross(up, np.asarray(forward_hint, float)))
    if side is None:
        return
    side = _unit(side - up * float(side @ up))
    if side is None:
        return
    forward = np.cross(side, up)  # left x up = forward for a right-handed frame
    center = head + up * 0.45 * L
    res.head_center = center
    est = {
        "nose": center + forward * 0.45 * L - up * 0.08 * L,
        "right_eye": center + forward * 0.38 * L - side * 0.16 * L + up * 0.05 * L,
        "left_eye": center + forward * 0.38 * L + side * 0.16 * L + up * 0.05 * L,
        "right_ear": center - side * 0.40 * L,
        "left_ear": center + side * 0.40 * L,
    }
    for key, p in est.items():
        i = KEYPOINT_INDEX[key]
        if not np.isfinite(P[i]).all():
            P[i] = p
            res.source[i] = "estimated"


FACE_KEYS = ("nose", "right_eye", "left_eye", "right_ear", "left_ear")
# A face point is hidden when it points away from the camera by more than ~100 degrees:
# both ears stay visible from the front (they sit sideways), the far ear and eyes go in
# profile, nose and eyes go from behind.
FACE_CULL_COS = -0.2


def project_keypoints(
    joints: JointResult,
    camera: CameraModel,
    margin: float = 0.0,
    cull_face: bool = True,
) -> PosePerson:
    """World keypoints -> a PosePerson in pixels, confidence 1 where visible, else 0."""
    pts = joints.points
    known = np.isfinite(pts).all(-1)
    px, depth = camera.project(np.where(known[:, None], pts, 0.0))
    conf = (known & camera.in_frame(px, depth, margin)).astype(np.float64)
    if cull_face and joints.head_center is not None:
        if camera.ortho:
            view = np.broadcast_to(-camera.forward, pts.shape)
        else:
            view = camera.position[None] - pts
        for key in FACE_KEYS:
            i = KEYPOINT_INDEX[key]
            off = pts[i] - joints.head_center
            cos = float(off @ view[i]) / max(
                float(np.linalg.norm(off) * np.linalg.norm(view[i])), 1e-12
            )
            if conf[i] and cos < FACE_CULL_COS:
                conf[i] = 0.0
    kp = np.zeros((18, 3))
    kp[:, :2] = np.where(conf[:, None] > 0, px, 0.0)
    kp[:, 2] = conf
    return PosePerson(kp)


def armature_pose(
    bones: Bones,
    camera: CameraModel,
    skeleton: str | None = None,
    overrides: Mapping[str, object] | None = None,
) -> PosePerson:
    """One armature's keypoints as the camera sees them."""
    return project_keypoints(world_keypoints(bones, skeleton, overrides), camera)


def unknown_skeleton_message(bone_names: list[str], armature: str = "armature") -> str:
    sample = ", ".join(sorted(bone_names)[:8])
    return (
        f"{armature}: bone names not recognised as Rigify, Blender's human metarig, Mixamo "
        "or the Unreal mannequin "
        f"(found e.g. {sample}); map the bones to OpenPose keypoints with a per-bone override"
    )
