"""Runs inside a fresh Python with the real `bpy` module: a cube on a wall moves along a
scripted path (different steps before and after frame 2, both across and down the
picture); the motion capture of frame 2 and Blender's own projection of the cube's front
face at frames 1, 2 and 3 (bpy_extras.world_to_camera_view, independent of the add-on)
go to OUT/motion.npz + OUT/motion.json for tests/blender/test_motion_vectors.py.

usage: python motion_probe.py OUT_DIR
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import bpy  # noqa: E402
import numpy as np  # noqa: E402
from bpy_extras.object_utils import world_to_camera_view  # noqa: E402
from mathutils import Vector  # noqa: E402

from bench.animation_scenes import linear  # noqa: E402
from blender_addon import capture  # noqa: E402

W, H = 64, 48
OUT = Path(sys.argv[1])
# Cube centre per frame: 1.5 then 0.75 across (x), 0.5 down then still (z).
PATH = {1: (-1.5, 0.0, 0.5), 2: (0.0, 0.0, 0.0), 3: (0.75, 0.0, 0.0)}


def emission_checker(obj, scale):
    mat = bpy.data.materials.new(obj.name + "Mat")
    mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    nodes.clear()
    out = nodes.new("ShaderNodeOutputMaterial")
    emit = nodes.new("ShaderNodeEmission")
    checker = nodes.new("ShaderNodeTexChecker")
    coords = nodes.new("ShaderNodeTexCoord")
    checker.inputs["Scale"].default_value = scale
    links.new(coords.outputs["Object"], checker.inputs["Vector"])
    links.new(checker.outputs["Color"], emit.inputs["Color"])
    links.new(emit.outputs["Emission"], out.inputs["Surface"])
    obj.data.materials.append(mat)


def main():
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    scene = bpy.context.scene
    bpy.ops.mesh.primitive_plane_add(size=30, location=(0, 4, 0), rotation=(1.5707963, 0, 0))
    wall = bpy.context.object
    wall.name = "Wall"
    emission_checker(wall, 3.0)
    bpy.ops.mesh.primitive_cube_add(size=1.0)
    cube = bpy.context.object
    cube.name = "Mover"
    emission_checker(cube, 2.0)
    for f, loc in PATH.items():
        cube.location = loc
        cube.keyframe_insert("location", frame=f)
    linear(cube)
    bpy.ops.object.camera_add(location=(0, -6, 0), rotation=(1.5707963, 0, 0))
    cam = bpy.context.object
    scene.camera = cam
    scene.render.resolution_x, scene.render.resolution_y = W, H
    scene.render.resolution_percentage = 100

    results, arrays = {}, {}
    for f in PATH:
        scene.frame_set(f)
        bpy.context.view_layer.update()
        # The cube's front face centre (y = -0.5 from its centre), in pixel index
        # coordinates: x right, y down, integers at pixel centres.
        v = world_to_camera_view(scene, cam, cube.matrix_world @ Vector((0, -0.5, 0)))
        results[f"front_{f}"] = [v.x * W - 0.5, (1 - v.y) * H - 0.5]
        arrays[f"color_{f}"] = capture.capture_color(scene, samples=4)
    scene.frame_set(2)
    m = capture.capture_motion(scene)
    arrays.update(to_prev=m.to_prev, to_next=m.to_next, depth=m.depth, ids=m.object_index)
    scene.frame_set(1)
    m1 = capture.capture_motion(scene)
    arrays.update(
        to_next_1=m1.to_next, to_prev_1=m1.to_prev, depth_1=m1.depth, ids_1=m1.object_index
    )
    results["frame_after"] = scene.frame_current
    results["vector_pass_left_on"] = scene.view_layers[0].use_pass_vector
    results["ok"] = True
    np.savez(OUT / "motion.npz", **arrays)
    (OUT / "motion.json").write_text(json.dumps(results))


try:
    main()
except Exception:
    (OUT / "motion.json").write_text(json.dumps({"ok": False, "traceback": traceback.format_exc()}))
