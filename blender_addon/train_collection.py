"""Train LoRA from collection: render the collection round a turntable with the scene's
renderer (the colour capture), caption each view and send the renders in one train_lora
job (core.training does the placing, captions and job; this is the bpy side)."""

from __future__ import annotations

import bpy
import numpy as np
from mathutils import Vector

from dreamwire.shared.lora_training import MAX_TRAINING_PICTURES

from . import bpy_data, connection
from .core.job_builder import round_size
from .core.tasks import ActionError
from .core.texturing.camera_placement import narrow_fov_deg
from .core.training import (
    TrainingRequest,
    caption,
    check_request,
    subject,
    training_job,
    turntable,
)

CAMERA = "DW Turntable"
SAMPLE_IMAGE = "Dreamwire LoRA sample"
VIEW_IMAGE = "Dreamwire training view {}"  # each render, shown as the captures are
# What is hidden from the renders outside the collection: things that draw, not the lights
# (or the world) that light the collection.
DRAWN = {"MESH", "CURVE", "SURFACE", "META", "FONT", "CURVES", "POINTCLOUD", "VOLUME"}


def request(scene) -> TrainingRequest:
    """The panel's training settings; the render size is the panel's width."""
    p = scene.dreamwire
    return TrainingRequest(
        name=p.train_name,
        trigger=p.train_trigger,
        steps=p.train_steps,
        views=p.train_views,
        size=round_size(p.width),
        model=p.model,
        seed=p.seed,
        sample_steps=p.steps,
        cfg=p.cfg,
    )


def _meshes(coll) -> list:
    return [o for o in coll.all_objects if o.type == "MESH"]


def _corners(objs) -> np.ndarray:
    return np.array([tuple(o.matrix_world @ Vector(c)) for o in objs for c in o.bound_box])


def render_views(scene, coll, req: TrainingRequest) -> tuple[list[np.ndarray], list[str]]:
    """The turntable's renders of `coll` alone (everything else hidden from the render for
    the while) and their captions."""
    from .capture import CaptureError, capture_color, store_image

    objs = _meshes(coll)
    members = {o.name for o in coll.all_objects}
    data = bpy.data.cameras.new(CAMERA)
    cam = bpy.data.objects.new(CAMERA, data)
    scene.collection.objects.link(cam)
    hidden = [
        o for o in scene.objects if o.type in DRAWN and o.name not in members and not o.hide_render
    ]
    try:
        for o in hidden:
            o.hide_render = True
        fov = narrow_fov_deg(
            req.size, req.size, data.lens, data.sensor_width, data.sensor_height, data.sensor_fit
        )
        what = subject(coll.name, [o.name for o in objs])
        renders, captions = [], []
        for view in turntable(_corners(objs), req.views, fov, req.elevations):
            cam.location = Vector(view.position.tolist())
            direction = Vector((view.target - view.position).tolist())
            cam.rotation_euler = direction.to_track_quat("-Z", "Y").to_euler()
            try:
                renders.append(capture_color(scene, cam, req.size, req.size))
            except CaptureError as exc:
                raise ActionError(str(exc)) from None
            captions.append(caption(req.trigger, what, view.hint))
            # The artist sees what the LoRA learns from (a stray object, a dark side).
            store_image(VIEW_IMAGE.format(len(renders)), renders[-1], non_color=False)
        return renders, captions
    finally:
        for o in hidden:
            o.hide_render = False
        bpy.data.objects.remove(cam)
        bpy.data.cameras.remove(data)


def train_from_collection(context):
    """(action, jobs): render the panel's collection round a turntable, then train."""
    scene = context.scene
    coll = scene.dreamwire.train_collection
    if coll is None:
        raise ActionError("Choose the collection to train on.")
    req = request(scene)
    coll_name = coll.name
    # The backend's own limit once it has welcomed us; before that only what needs none
    # (run() checks again against the welcome, before anything renders).
    welcome = connection.welcome()
    limits = welcome.limits if welcome is not None else {"max_images": MAX_TRAINING_PICTURES}
    check_request(req, [o.name for o in _meshes(coll)], limits)

    def run():
        welcome = connection.welcome()
        coll_now = bpy.data.collections.get(coll_name)
        if coll_now is None:
            raise ActionError(f"The collection '{coll_name}' was deleted.")
        objs = [o.name for o in _meshes(coll_now)]
        check_request(req, objs, getattr(welcome, "limits", None))
        renders, captions = render_views(scene, coll_now, req)
        job = training_job(req, renders, captions, subject(coll_name, objs))
        result = yield job
        if result.images:
            bpy_data.image_from_array(SAMPLE_IMAGE, result.images[0].image[..., :3])
        name = job.train_lora.name
        return (
            f"LoRA '{name}' trained on {len(renders)} views of {coll_name} "
            f"({req.steps} steps): <lora:{name}:1>"
        )

    return run(), 1
