"""Runs inside a fresh Python with the real `bpy` module (one Blender per process): builds a
test scene, runs every capture, and writes what it saw to OUT/probe.npz + OUT/probe.json
for tests/blender/test_capture.py to judge. Reference values are computed here with
Blender's own API (bpy_extras.object_utils.world_to_camera_view, pose bone matrices),
independently of the add-on's camera and pose code.

usage: python capture_probe.py OUT_DIR
"""

from __future__ import annotations

import json
import math
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import bpy  # noqa: E402
import numpy as np  # noqa: E402
from bpy_extras.object_utils import world_to_camera_view  # noqa: E402
from mathutils import Euler, Vector  # noqa: E402

from blender_addon import capture  # noqa: E402
from blender_addon.core import camera as camera_core  # noqa: E402
from blender_addon.core import pose as pose_core  # noqa: E402
from dreamwire.shared.imaging.openpose import KEYPOINT_INDEX  # noqa: E402

W = H = 512
OUT = Path(sys.argv[1])
results: dict = {}
arrays: dict = {}


def cube(name, location, size=1.0):
    bpy.ops.mesh.primitive_cube_add(size=size, location=location)
    obj = bpy.context.object
    obj.name = name
    return obj


def plane(name, location, size, rotation):
    bpy.ops.mesh.primitive_plane_add(size=size, location=location, rotation=rotation)
    obj = bpy.context.object
    obj.name = name
    return obj


def material(name, obj):
    mat = bpy.data.materials.new(name)
    obj.data.materials.append(mat)
    return mat


def armature(name, bones, location=(0, 0, 0), scale=1.0):
    """bones: [(name, head, tail, parent or None)], in armature space."""
    data = bpy.data.armatures.new(name + "Data")
    obj = bpy.data.objects.new(name, data)
    bpy.context.scene.collection.objects.link(obj)
    obj.location = location
    obj.scale = (scale, scale, scale)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    for bname, head, tail, parent in bones:
        eb = data.edit_bones.new(bname)
        eb.head, eb.tail = head, tail
        if parent:
            eb.parent = data.edit_bones[parent]
            eb.use_connect = (Vector(head) - data.edit_bones[parent].tail).length < 1e-6
    bpy.ops.object.mode_set(mode="OBJECT")
    return obj


def body(prefix, names, s=1.0):
    """A standing figure facing -Y (its left at +X), bone names from `names`."""
    n = names

    def p(x, y, z):
        return (x * s, y * s, z * s)

    return [
        (prefix + n["spine"], p(0, 0, 0.95), p(0, 0, 1.45), None),
        (prefix + n["neck"], p(0, 0, 1.45), p(0, 0, 1.6), prefix + n["spine"]),
        (prefix + n["head"], p(0, 0, 1.6), p(0, 0, 1.85), prefix + n["neck"]),
        (prefix + n["uarm.L"], p(0.2, 0, 1.4), p(0.45, 0, 1.4), prefix + n["spine"]),
        (prefix + n["farm.L"], p(0.45, 0, 1.4), p(0.7, 0, 1.4), prefix + n["uarm.L"]),
        (prefix + n["hand.L"], p(0.7, 0, 1.4), p(0.8, 0, 1.4), prefix + n["farm.L"]),
        (prefix + n["uarm.R"], p(-0.2, 0, 1.4), p(-0.45, 0, 1.4), prefix + n["spine"]),
        (prefix + n["farm.R"], p(-0.45, 0, 1.4), p(-0.7, 0, 1.4), prefix + n["uarm.R"]),
        (prefix + n["hand.R"], p(-0.7, 0, 1.4), p(-0.8, 0, 1.4), prefix + n["farm.R"]),
        (prefix + n["thigh.L"], p(0.1, 0, 0.95), p(0.1, 0, 0.5), prefix + n["spine"]),
        (prefix + n["shin.L"], p(0.1, 0, 0.5), p(0.1, 0, 0.08), prefix + n["thigh.L"]),
        (prefix + n["foot.L"], p(0.1, 0, 0.08), p(0.1, -0.15, 0.0), prefix + n["shin.L"]),
        (prefix + n["thigh.R"], p(-0.1, 0, 0.95), p(-0.1, 0, 0.5), prefix + n["spine"]),
        (prefix + n["shin.R"], p(-0.1, 0, 0.5), p(-0.1, 0, 0.08), prefix + n["thigh.R"]),
        (prefix + n["foot.R"], p(-0.1, 0, 0.08), p(-0.1, -0.15, 0.0), prefix + n["shin.R"]),
    ]


RIGIFY = {
    "spine": "spine",
    "neck": "spine.004",
    "head": "spine.006",
    "uarm.L": "upper_arm.L",
    "farm.L": "forearm.L",
    "hand.L": "hand.L",
    "uarm.R": "upper_arm.R",
    "farm.R": "forearm.R",
    "hand.R": "hand.R",
    "thigh.L": "thigh.L",
    "shin.L": "shin.L",
    "foot.L": "foot.L",
    "thigh.R": "thigh.R",
    "shin.R": "shin.R",
    "foot.R": "foot.R",
}
MIXAMO = {
    "spine": "Spine",
    "neck": "Neck",
    "head": "Head",
    "uarm.L": "LeftArm",
    "farm.L": "LeftForeArm",
    "hand.L": "LeftHand",
    "uarm.R": "RightArm",
    "farm.R": "RightForeArm",
    "hand.R": "RightHand",
    "thigh.L": "LeftUpLeg",
    "shin.L": "LeftLeg",
    "foot.L": "LeftFoot",
    "thigh.R": "RightUpLeg",
    "shin.R": "RightLeg",
    "foot.R": "RightFoot",
}
# keypoint -> (bone key, end) for the independent reference
REF = {
    "neck": ("neck", "head"),
    "right_shoulder": ("uarm.R", "head"),
    "right_elbow": ("farm.R", "head"),
    "right_wrist": ("hand.R", "head"),
    "left_shoulder": ("uarm.L", "head"),
    "left_elbow": ("farm.L", "head"),
    "left_wrist": ("hand.L", "head"),
    "right_hip": ("thigh.R", "head"),
    "right_knee": ("shin.R", "head"),
    "right_ankle": ("foot.R", "head"),
    "left_hip": ("thigh.L", "head"),
    "left_knee": ("shin.L", "head"),
    "left_ankle": ("foot.L", "head"),
}


def reference_pixels(scene, cam, arm, prefix, names):
    out = {}
    for key, (bkey, end) in REF.items():
        pb = arm.pose.bones[prefix + names[bkey]]
        co = arm.matrix_world @ (pb.head if end == "head" else pb.tail)
        v = world_to_camera_view(scene, cam, co)
        out[key] = [v.x * W, (1.0 - v.y) * H, v.z]
    return out


def build_scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = 320, 240  # must be restored
    scene.render.engine = "BLENDER_WORKBENCH"
    bpy.ops.object.camera_add(location=(0, -10, 1), rotation=(math.pi / 2, 0, 0))
    cam = bpy.context.object
    scene.camera = cam
    near = cube("NearBox", (-1.5, -5, 0))
    near["dreamwire_seg_class"] = "person"
    cube("Tree", (1.5, 0, 0))
    wall = plane("Backdrop", (0, 5, 1), 6, (math.pi / 2, 0, 0))  # faces -Y, the camera
    mat = material("Brick", wall)
    mat["dreamwire_seg_class"] = "building"
    # A collection instance: its object lives outside the scene's object list.
    props = bpy.data.collections.new("Props")
    crate = cube("Crate", (0, 0, 0), size=0.5)
    crate["dreamwire_seg_class"] = "box"
    for coll in list(crate.users_collection):
        coll.objects.unlink(crate)
    props.objects.link(crate)
    inst = bpy.data.objects.new("PropsInstance", None)
    inst.instance_type = "COLLECTION"
    inst.instance_collection = props
    inst.location = (0, -3, -1)
    scene.collection.objects.link(inst)
    bpy.ops.object.light_add(type="SUN", location=(0, -5, 5))
    return scene, cam


def record_exr_passes() -> list:
    """Wraps the adapter's EXR reader to note the passes in every file it reads."""
    seen: list = []
    real = capture.api.read_exr

    def spy(path, names=None):
        seen.append(sorted({k.split(".")[-2] for k in real(path)}))
        return real(path, names)

    capture.api.read_exr = spy
    return seen


def main():
    scene, cam = build_scene()
    # The artist's own passes: the capture renders none of them, and leaves them on.
    layer = bpy.context.view_layer
    layer.use_pass_diffuse_color = layer.use_pass_mist = True
    layer.use_pass_cryptomatte_object = layer.cycles.denoising_store_passes = True
    exr_passes = record_exr_passes()
    t0 = time.perf_counter()
    passes = capture.render_passes(scene, cam, W, H)
    results["render_seconds"] = time.perf_counter() - t0
    results["images_after_capture"] = [i.name for i in bpy.data.images]
    arrays["z"] = passes.z
    arrays["depth"] = capture.capture_depth(scene, passes=passes)
    arrays["normals"] = capture.capture_normals(scene, passes=passes)
    seg, labels = capture.capture_segmentation(scene, passes=passes)
    arrays["segmentation"], arrays["labels"] = seg, labels
    results["restored"] = {
        "engine": scene.render.engine,
        "res": [scene.render.resolution_x, scene.render.resolution_y],
        "pass_index": {o.name: o.pass_index for o in scene.objects},
        "use_pass_z": bpy.context.view_layer.use_pass_z,
        "crate_pass_index": bpy.data.objects["Crate"].pass_index,
        "artist_passes": [
            layer.use_pass_diffuse_color,
            layer.use_pass_mist,
            layer.use_pass_cryptomatte_object,
            layer.cycles.denoising_store_passes,
        ],
        # The data render hides the lights; they must come back.
        "lights_hide_render": [o.hide_render for o in bpy.data.objects if o.type == "LIGHT"],
    }
    # Only the passes asked for: depth alone leaves out normals and indices, and its Z is
    # the full render's.
    depth_only = capture.render_passes(scene, cam, W, H, kinds=("depth",))
    results["depth_only"] = {
        "normal": depth_only.normal_world is None,
        "index": depth_only.object_index is None and depth_only.material_index is None,
        "z_equal": bool(np.array_equal(depth_only.z, passes.z)),
    }
    results["exr_passes"] = exr_passes[:2]
    try:
        capture.capture_normals(scene, passes=depth_only)
        results["depth_only"]["normals_error"] = None
    except capture.CaptureError as e:
        results["depth_only"]["normals_error"] = str(e)

    # Reference pixels of known surface points (world_to_camera_view needs the capture size).
    scene.render.resolution_x, scene.render.resolution_y = W, H
    bpy.context.view_layer.update()
    model = capture.camera_model(scene, cam, W, H)
    probes = {
        "near_front": (-1.5, -5.5, 0.0),
        "near_top": (-1.5, -5.0, 0.5),
        "near_right_side": (-1.0, -5.0, 0.0),
        "far_front": (1.5, -0.5, 0.0),
        "wall": (0.0, 5.0, 2.5),
        "instance_front": (0.0, -3.25, -1.0),
    }
    results["probes"] = {}
    for key, co in probes.items():
        v = world_to_camera_view(scene, cam, Vector(co))
        results["probes"][key] = {
            "blender": [v.x * W, (1 - v.y) * H, v.z],
            "model": model.project(np.array([co]))[0][0].tolist(),
        }

    # The artist's own render survives a capture: it stays in the active slot.
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 1
    scene.render.resolution_x, scene.render.resolution_y = 32, 32
    bpy.ops.render.render()
    rr = bpy.data.images["Render Result"]
    rr.render_slots.active_index = 2
    capture.render_passes(scene, cam, 16, 16)
    results["render_slots"] = {
        "active": rr.render_slots.active_index,
        "names": [sl.name for sl in rr.render_slots],
        "images": [i.name for i in bpy.data.images],
    }
    scene.render.resolution_x, scene.render.resolution_y = W, H

    # Colour render, small.
    color = capture.capture_color(scene, cam, 64, 48, samples=2)
    arrays["color"] = color
    img = capture.store_image("Dreamwire Depth", arrays["depth"])
    results["stored"] = [img.name, list(img.size)]
    px = np.empty(W * H * 4, np.float32)
    img.pixels.foreach_get(px)
    arrays["stored_depth_pixels"] = px.reshape(H, W, 4)
    seg_img = capture.store_image("Dreamwire Segmentation", arrays["segmentation"])
    px = np.empty(W * H * 4, np.float32)
    seg_img.pixels.foreach_get(px)
    arrays["stored_segmentation_pixels"] = px.reshape(H, W, 4)

    # Camera model against Blender for many settings (no rendering needed).
    rng = np.random.default_rng(0)
    pts = rng.uniform(-3, 3, (40, 3)) + np.array([0, 0, 1])
    errs = []
    for cam_type in ("PERSP", "ORTHO"):
        for fit in ("AUTO", "HORIZONTAL", "VERTICAL"):
            for (rx, ry), (ax, ay), (sx, sy) in (
                ((640, 360), (1, 1), (0, 0)),
                ((300, 500), (1, 1), (0.2, -0.1)),
                ((400, 400), (2, 1), (-0.3, 0.25)),
                ((500, 300), (1, 3), (0.1, 0.4)),
            ):
                cam.data.type = cam_type
                cam.data.sensor_fit = fit
                cam.data.sensor_height = 18.0
                cam.data.shift_x, cam.data.shift_y = sx, sy
                cam.data.ortho_scale = 9.0
                scene.render.resolution_x, scene.render.resolution_y = rx, ry
                scene.render.resolution_percentage = 100
                scene.render.pixel_aspect_x, scene.render.pixel_aspect_y = ax, ay
                cam.rotation_euler = Euler((1.3, 0.1, 0.2))
                bpy.context.view_layer.update()
                m = capture.camera_model(scene, cam)
                mine = m.to_ndc(pts)
                ref = np.array([list(world_to_camera_view(scene, cam, Vector(p))) for p in pts])
                errs.append(float(np.abs(mine - ref).max()))
    results["camera_model_max_error"] = max(errs)
    cam.data.type = "PERSP"
    cam.data.sensor_fit = "AUTO"
    cam.data.shift_x = cam.data.shift_y = 0.0
    scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1
    scene.render.resolution_x, scene.render.resolution_y = W, H
    cam.rotation_euler = Euler((math.pi / 2, 0, 0))
    bpy.context.view_layer.update()

    # Poses: a Rigify-named rig (DEF- bones) and a Mixamo rig in centimetres.
    rig = armature("Rig", body("DEF-", RIGIFY), location=(0, -2, 0))
    mix = armature(
        "MixRig", body("mixamorig1:", MIXAMO, s=100.0), location=(2.2, -1, 0), scale=0.01
    )
    results["ref_rest"] = reference_pixels(scene, cam, rig, "DEF-", RIGIFY)
    rig.pose.bones["DEF-upper_arm.R"].rotation_mode = "XYZ"
    rig.pose.bones["DEF-upper_arm.R"].rotation_euler = (0.0, 0.0, 1.0)
    rig.pose.bones["DEF-shin.L"].rotation_mode = "XYZ"
    rig.pose.bones["DEF-shin.L"].rotation_euler = (0.8, 0.0, 0.0)
    bpy.context.view_layer.update()
    frame, pose_img = capture.capture_pose(scene, cam, W, H, armatures=[rig, mix])
    arrays["pose"] = pose_img
    arrays["keypoints"] = np.stack([p.keypoints for p in frame.people])
    results["ref_rig"] = reference_pixels(scene, cam, rig, "DEF-", RIGIFY)
    results["ref_mix"] = reference_pixels(scene, cam, mix, "mixamorig1:", MIXAMO)
    results["detected"] = [
        pose_core.detect_skeleton(capture.api._armature_bones(a)) for a in (rig, mix)
    ]

    # A face mesh: a ring facing the camera in the face_oval group, widened by a shape key
    # (the capture reads the evaluated mesh). Reference positions from Blender's own
    # world_to_camera_view on the shape key's coordinates.
    bpy.ops.mesh.primitive_circle_add(vertices=24, radius=1.2, location=(0.5, -3, 1))
    ring = bpy.context.object
    ring.name = "Face"
    ring.rotation_euler = Euler((math.pi / 2, 0, 0))
    ring.vertex_groups.new(name="face_oval").add(list(range(24)), 1.0, "REPLACE")
    ring.shape_key_add(name="Basis")
    wide = ring.shape_key_add(name="Wide")
    for point in wide.data:
        point.co.x *= 1.5
    wide.value = 1.0
    bpy.context.view_layer.update()
    arrays["face"] = capture.capture_face(scene, cam, W, H, objects=[ring])
    mw = ring.matrix_world
    ref = [world_to_camera_view(scene, cam, mw @ p.co) for p in wide.data]
    arrays["face_ref"] = np.array([(v.x, 1.0 - v.y) for v in ref])
    arrays["face_edges"] = np.array([tuple(e.vertices) for e in ring.data.edges])
    ring.hide_set(True)
    ring.hide_render = True

    # Everything from one call, as the add-on uses it.
    allcap = capture.capture_all(scene, cam, 96, 64, kinds=("depth", "segmentation", "pose"))
    results["capture_all"] = {
        k: list(np.asarray(v).shape) for k, v in allcap.items() if k != "pose_json"
    }
    results["pose_json"] = allcap["pose_json"]

    # An orthographic camera: Z is the distance from the camera plane.
    cam.data.type = "ORTHO"
    cam.data.ortho_scale = 8.0
    ortho = capture.render_passes(scene, cam, 64, 64)
    om = capture.camera_model(scene, cam, 64, 64)
    ox, oy = om.project(np.array([[-1.5, -5.5, 0.0]]))[0][0]
    results["ortho_near_z"] = float(ortho.z[int(oy), int(ox)])
    cam.data.type = "PERSP"

    # Turned away from the camera: no nose, no eyes.
    mix.rotation_euler = (0, 0, math.pi)
    bpy.context.view_layer.update()
    frame_away, _ = capture.capture_pose(scene, cam, W, H, armatures=[mix])
    arrays["keypoints_away"] = frame_away.people[0].keypoints

    # Unknown bone names: a clear error, then the same rig mapped by overrides.
    odd = armature(
        "OddRig",
        [("Bone", (0, 0, 1), (0, 0, 2), None), ("Bone.001", (0.5, 0, 1.5), (1, 0, 1.5), None)],
    )
    try:
        capture.capture_pose(scene, cam, W, H, armatures=[odd])
        results["unknown_error"] = None
    except capture.CaptureError as e:
        results["unknown_error"] = str(e)
    f_odd, _ = capture.capture_pose(
        scene,
        cam,
        W,
        H,
        armatures=[odd],
        overrides={"neck": ("Bone", "head"), "left_wrist": "Bone.001"},
    )
    arrays["keypoints_odd"] = f_odd.people[0].keypoints
    v = world_to_camera_view(scene, cam, odd.matrix_world @ odd.pose.bones["Bone"].head)
    results["ref_odd_neck"] = [v.x * W, (1 - v.y) * H]

    # A camera a script has just moved, with no depsgraph update since: the capture must
    # see it where the render does (its matrix_world is stale until something evaluates).
    floor = plane("Floor", (40, 8, -3), 30, (0, 0, 0))
    tilt = bpy.data.objects.new("TiltCam", bpy.data.cameras.new("TiltCam"))
    scene.collection.objects.link(tilt)
    bpy.context.view_layer.update()
    tilt.location = (40, 0, 5)
    tilt.rotation_euler = (Vector((40, 8, -3)) - tilt.location).to_track_quat("-Z", "Y").to_euler()
    arrays["tilted_normals"] = capture.capture_normals(scene, tilt, 32, 32)
    bpy.context.view_layer.update()
    up_in_camera = tilt.matrix_world.to_3x3().transposed() @ Vector((0, 0, 1))
    results["tilted_floor_normal_cam"] = list(up_in_camera)
    bpy.data.objects.remove(tilt)
    bpy.data.objects.remove(floor)

    # No camera: a clear error.
    scene.camera = None
    try:
        capture.render_passes(scene, None, 32, 32)
        results["no_camera_error"] = None
    except capture.CaptureError as e:
        results["no_camera_error"] = str(e)
    results["keypoint_index"] = KEYPOINT_INDEX
    results["camera_core"] = camera_core.__name__


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    try:
        main()
        results["ok"] = True
    except Exception:
        results["ok"] = False
        results["traceback"] = traceback.format_exc()
    np.savez(OUT / "probe.npz", **arrays)
    (OUT / "probe.json").write_text(json.dumps(results, indent=1, default=str))
