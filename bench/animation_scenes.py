"""Scripted animated scenes captured in real Blender (the bpy module) as flow files, for
bench/bench_animation.py (run by it in a fresh process: one Blender per process).

    python bench/animation_scenes.py OUT_DIR [--size 128] [--frames 12]

Writes OUT_DIR/<scene>/frame_NNNN.npz (shared/animation/motion.py's flow-file format,
captured by the add-on's capture_motion) for:
  turning   a bevelled box and a cylinder turning on a wall's front (camera still);
  dolly     the camera moving in and sideways past boxes at several depths before a wall;
  walk      an armature (hips, spine, thighs, shins, upper arms) skinning one mesh
            (tubes with weights blended across each joint), walking across the picture:
            one keyframed stride cycle of bone rotations while the hips move sideways.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bpy  # noqa: E402
import numpy as np  # noqa: E402

from blender_addon import capture  # noqa: E402
from dreamwire.shared.animation.motion import flow_path, save_motion  # noqa: E402


def clear():
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)


def linear(obj):
    anim = obj.animation_data.action
    curves = (
        [fc for ly in anim.layers for s in ly.strips for b in s.channelbags for fc in b.fcurves]
        if hasattr(anim, "layers")
        else list(anim.fcurves)
    )
    for fc in curves:
        for k in fc.keyframe_points:
            k.interpolation = "LINEAR"


def wall():
    bpy.ops.mesh.primitive_plane_add(size=40, location=(0, 6, 0), rotation=(math.pi / 2, 0, 0))


def camera(location):
    bpy.ops.object.camera_add(location=location, rotation=(math.pi / 2, 0, 0))
    cam = bpy.context.object
    bpy.context.scene.camera = cam
    return cam


def turning(frames: int):
    clear()
    wall()
    bpy.ops.mesh.primitive_cube_add(size=1.6, location=(-0.9, 0, 0))
    box = bpy.context.object
    box.modifiers.new("Bevel", "BEVEL").width = 0.15
    bpy.ops.mesh.primitive_cylinder_add(radius=0.5, depth=1.8, location=(1.2, 0.5, 0))
    cyl = bpy.context.object
    cyl.rotation_euler = (0.4, 0, 0)
    for obj, turn in ((box, 1.0), (cyl, -0.6)):
        obj.keyframe_insert("rotation_euler", frame=1)
        obj.rotation_euler.z += turn * math.radians(8) * (frames - 1)
        obj.keyframe_insert("rotation_euler", frame=frames)
        linear(obj)
    camera((0, -6, 0))


def dolly(frames: int):
    clear()
    wall()
    for i, (x, y) in enumerate(((-1.5, 0), (0.3, 2.0), (1.6, -0.8), (-0.4, 3.5))):
        bpy.ops.mesh.primitive_cube_add(size=0.9, location=(x, y, -0.3 + 0.25 * i))
    cam = camera((-0.6, -7, 0.2))
    cam.keyframe_insert("location", frame=1)
    cam.location = (0.6, -7 + 0.25 * (frames - 1), 0.2)
    cam.keyframe_insert("location", frame=frames)
    linear(cam)


# The walker's bones: name -> (head, tail, parent), metres, facing -y (the camera).
BONES = {
    "hips": ((0, 0, 0.0), (0, 0, 0.25), None),
    "spine": ((0, 0, 0.25), (0, 0, 1.05), "hips"),
    "thigh.L": ((0.22, 0, 0.0), (0.22, 0, -0.8), "hips"),
    "shin.L": ((0.22, 0, -0.8), (0.22, 0, -1.6), "thigh.L"),
    "thigh.R": ((-0.22, 0, 0.0), (-0.22, 0, -0.8), "hips"),
    "shin.R": ((-0.22, 0, -0.8), (-0.22, 0, -1.6), "thigh.R"),
    "arm.L": ((0.42, 0, 0.95), (0.42, 0, 0.2), "spine"),
    "arm.R": ((-0.42, 0, 0.95), (-0.42, 0, 0.2), "spine"),
}
# Tubes of the skinned mesh: (start, end, radius, bones along it).
TUBES = (
    ((0, 0, -0.05), (0, 0, 1.1), 0.3, ("hips", "spine")),
    ((0.22, 0, 0.05), (0.22, 0, -1.6), 0.12, ("thigh.L", "shin.L")),
    ((-0.22, 0, 0.05), (-0.22, 0, -1.6), 0.12, ("thigh.R", "shin.R")),
    ((0.42, 0, 0.95), (0.42, 0, 0.2), 0.08, ("arm.L",)),
    ((-0.42, 0, 0.95), (-0.42, 0, 0.2), 0.08, ("arm.R",)),
)
# One stride, as (phase 0..1 of the cycle) -> (thigh, shin) swing in degrees about x, for
# the left leg; the right leg runs half a cycle behind, each arm against its leg.
STRIDE = ((0.0, (28, 0)), (0.25, (0, 40)), (0.5, (-28, 5)), (0.75, (0, 15)), (1.0, (28, 0)))


def _segment_weight(p, head, tail):
    """A bone's raw influence on point p: falls off with the distance along the bone past
    its ends, so weights blend over the joints (linear blend skinning, as Blender's
    envelopes)."""
    a, b, q = (np.array(v, dtype=float) for v in (head, tail, p))
    ab = b - a
    t = float(np.dot(q - a, ab) / np.dot(ab, ab))
    outside = max(-t, t - 1.0, 0.0) * np.linalg.norm(ab)
    return float(np.exp(-((outside / 0.12) ** 2)))


def _tube(start, end, radius, rings=12, sides=12):
    a, b = np.array(start, dtype=float), np.array(end, dtype=float)
    axis = (b - a) / np.linalg.norm(b - a)
    u = np.cross(axis, (0, 1.0, 0) if abs(axis[1]) < 0.9 else (1.0, 0, 0))
    u /= np.linalg.norm(u)
    v = np.cross(axis, u)
    verts, faces = [], []
    for i in range(rings):
        c = a + (b - a) * i / (rings - 1)
        for j in range(sides):
            ang = 2 * math.pi * j / sides
            verts.append(tuple(c + radius * (math.cos(ang) * u + math.sin(ang) * v)))
    for i in range(rings - 1):
        for j in range(sides):
            k, n = i * sides + j, i * sides + (j + 1) % sides
            faces.append((k, n, n + sides, k + sides))
    faces += [tuple(range(sides))[::-1], tuple(range((rings - 1) * sides, rings * sides))]
    return verts, faces


def walker():
    """The armature and its skinned mesh (an Armature modifier, weights per vertex)."""
    bpy.ops.object.armature_add(location=(0, 0, 0))
    rig = bpy.context.object
    bpy.ops.object.mode_set(mode="EDIT")
    bones = rig.data.edit_bones
    bones.remove(bones[0])
    for name, (head, tail, parent) in BONES.items():
        b = bones.new(name)
        b.head, b.tail = head, tail
        if parent:
            b.parent = bones[parent]
    bpy.ops.object.mode_set(mode="OBJECT")
    verts, faces, owners = [], [], []
    for start, end, radius, names in TUBES:
        v, f = _tube(start, end, radius)
        faces += [tuple(i + len(verts) for i in face) for face in f]
        verts += v
        owners += [names] * len(v)
    mesh = bpy.data.meshes.new("Walker")
    mesh.from_pydata(verts, [], faces)
    body = bpy.data.objects.new("Walker", mesh)
    bpy.context.collection.objects.link(body)
    groups = {name: body.vertex_groups.new(name=name) for name in BONES}
    for i, (p, names) in enumerate(zip(verts, owners, strict=True)):
        raw = {n: _segment_weight(p, *BONES[n][:2]) for n in names}
        total = sum(raw.values())
        for n, w in raw.items():
            if w / total > 1e-3:
                groups[n].add([i], w / total, "REPLACE")
    body.parent = rig
    body.modifiers.new("Armature", "ARMATURE").object = rig
    return rig


def walk(frames: int):
    clear()
    wall()
    bpy.ops.mesh.primitive_plane_add(size=40, location=(0, 0, -1.62))  # the floor
    rig = walker()
    pose = rig.pose.bones
    for bone in pose:
        bone.rotation_mode = "XYZ"
    # A key every 3 frames through the frame after the last (the stride's end, equal to its
    # start), so every rendered frame lies between two keys.
    for f in range(1, frames + 2, 3):
        phase = ((f - 1) / frames) % 1.0
        for side, lag in (("L", 0.0), ("R", 0.5)):
            thigh, shin = _stride((phase + lag) % 1.0)
            pose[f"thigh.{side}"].rotation_euler.x = math.radians(thigh)
            pose[f"shin.{side}"].rotation_euler.x = math.radians(shin)
            pose[f"arm.{side}"].rotation_euler.x = math.radians(-0.8 * thigh)
            for name in (f"thigh.{side}", f"shin.{side}", f"arm.{side}"):
                pose[name].keyframe_insert("rotation_euler", frame=f)
        pose["spine"].rotation_euler.y = math.radians(4 * math.sin(2 * math.pi * phase * 2))
        pose["spine"].keyframe_insert("rotation_euler", frame=f)
    # The hips travel across the picture (x) at a steady pace.
    rig.rotation_euler.z = math.radians(90)  # walking towards +x, seen from the side
    rig.location = (-1.1, 0, 0)
    rig.keyframe_insert("location", frame=1)
    rig.location = (-1.1 + 0.2 * (frames - 1), 0, 0)
    rig.keyframe_insert("location", frame=frames)
    linear(rig)
    camera((0, -5, -0.3))


def _stride(phase: float) -> tuple[float, float]:
    for (p0, a), (p1, b) in zip(STRIDE, STRIDE[1:], strict=False):
        if p0 <= phase <= p1:
            s = (phase - p0) / (p1 - p0)
            return a[0] + (b[0] - a[0]) * s, a[1] + (b[1] - a[1]) * s
    return STRIDE[0][1]


SCENES = {"turning": turning, "dolly": dolly, "walk": walk}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--scenes", nargs="+", default=list(SCENES))
    a = ap.parse_args()
    for name in a.scenes:
        SCENES[name](a.frames)
        scene = bpy.context.scene
        scene.frame_start, scene.frame_end = 1, a.frames
        folder = a.out / name
        folder.mkdir(parents=True, exist_ok=True)
        for f in range(1, a.frames + 1):
            scene.frame_set(f)
            save_motion(flow_path(folder, f), capture.capture_motion(scene, None, a.size, a.size))
        print(f"{name}: {a.frames} frames -> {folder}", flush=True)


if __name__ == "__main__":
    main()
