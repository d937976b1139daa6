"""Cameras placed by coverage (core.texturing.camera_placement), made real in the scene.

Both "Add Cameras by Coverage" and Multi-view projection with automatic cameras come
here: the selected meshes are the targets, every other visible mesh may hide them, and
the chosen cameras go into the "Dreamwire Cameras" collection so the artist sees where
the views were taken from (and can keep, move or delete them).
"""

from __future__ import annotations

import bpy
import numpy as np
from mathutils import Matrix

from . import bpy_data
from .core.job_builder import round_size
from .core.tasks import ActionError
from .core.texturing.camera_placement import PlacementSettings, narrow_fov_deg, place_cameras

COLLECTION = "Dreamwire Cameras"
# Marks the cameras Multi-view projection placed itself, replaced on its next run; the
# ones "Add Cameras by Coverage" makes are the artist's to keep.
AUTO_FLAG = "dreamwire_auto_camera"


def camera_collection(scene):
    coll = bpy.data.collections.get(COLLECTION)
    if coll is None:
        coll = bpy.data.collections.new(COLLECTION)
    if coll.name not in {c.name for c in scene.collection.children_recursive}:
        scene.collection.children.link(coll)  # shown in this scene, wherever it was made
    return coll


def place(context, targets: list[str], prefix: str, auto: bool = False) -> list:
    """New camera objects named `prefix` 1, 2, ... looking at the targets from the
    viewpoints that cover them best (scene settings: count, upper half only)."""
    scene = context.scene
    props = scene.dreamwire
    depsgraph = context.evaluated_depsgraph_get()
    world, normals = [], []
    for name in targets:
        m = bpy_data.mesh_triangles(bpy.data.objects[name], depsgraph, with_uv=False)
        world.append(m.world)
        normals.append(m.normals)
    tris = np.concatenate(world) if world else np.zeros((0, 3, 3))
    if len(tris) == 0:
        raise ActionError(f"{', '.join(targets)}: no faces to place cameras around.")
    occluders = bpy_data.scene_triangles(scene, depsgraph, exclude=set(targets))
    data = bpy.data.cameras.new(f"{prefix} 1")  # its lens and sensor set the framing
    width, height = round_size(props.width), round_size(props.height)
    fov = narrow_fov_deg(
        width, height, data.lens, data.sensor_width, data.sensor_height, data.sensor_fit
    )
    settings = PlacementSettings(
        count=props.auto_camera_count, hemisphere=props.auto_camera_hemisphere, fov_deg=fov
    )
    placement = place_cameras(tris, occluders, np.concatenate(normals), settings)
    if not placement.poses:
        bpy.data.cameras.remove(data)
        raise ActionError("No viewpoint sees the selected meshes (are they hidden inside?).")
    coll = camera_collection(scene)
    made = []
    for i, pose in enumerate(placement.poses):
        name = f"{prefix} {i + 1}"
        cam_data = data if i == 0 else bpy.data.cameras.new(name)
        obj = bpy.data.objects.new(name, cam_data)
        obj.matrix_world = Matrix(pose.cam_to_world().tolist())
        obj["dreamwire_coverage_gain"] = round(pose.gain, 4)
        if auto:
            obj[AUTO_FLAG] = True
        coll.objects.link(obj)
        made.append(obj)
    print(
        f"Dreamwire: {len(made)} cameras by coverage ({placement.rasterised} of "
        f"{placement.candidates} candidates rasterised) cover {placement.coverage:.0%} of "
        f"{', '.join(targets)} (facing-weighted)"
    )
    return made


def auto_cameras(context, targets: list[str]) -> list:
    """Multi-view projection's own cameras: the ones it placed last time are replaced."""
    for obj in [o for o in bpy.data.objects if o.get(AUTO_FLAG)]:
        data = obj.data
        bpy.data.objects.remove(obj)
        if data is not None and data.users == 0:
            bpy.data.cameras.remove(data)
    return place(context, targets, "DW Auto", auto=True)
