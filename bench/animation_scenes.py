"""Scripted animated scenes captured in real Blender (the bpy module) as flow files, for
bench/bench_animation.py (run by it in a fresh process: one Blender per process).

    python bench/animation_scenes.py OUT_DIR [--size 128] [--frames 12]

Writes OUT_DIR/<scene>/frame_NNNN.npz (shared/animation/motion.py's flow-file format,
captured by the add-on's capture_motion) for:
  turning   a bevelled box and a cylinder turning on a wall's front (camera still);
  dolly     the camera moving in and sideways past boxes at several depths before a wall.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bpy  # noqa: E402

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


SCENES = {"turning": turning, "dolly": dolly}


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
