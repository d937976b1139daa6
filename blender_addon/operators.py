"""Operators. Actions run without freezing Blender: `invoke` (from the UI) drives the
action from a modal timer, `execute` (scripts, background mode) drives it in a loop.
Either way errors reach the artist as one report line, never a traceback."""

from __future__ import annotations

import contextlib

import bpy
from bpy.props import FloatProperty, IntProperty, StringProperty

from dreamwire.shared.errors import DreamwireError

from . import actions, bpy_data, connection, prefs
from .core import tasks
from .core.job_builder import missing_on_backend

PREVIEW_IMAGE = "Dreamwire Preview"


def _status(context):
    return context.window_manager.dreamwire_status


def _set_preview(array) -> None:
    img = bpy_data.image_from_array(PREVIEW_IMAGE, array)
    # The panel shows the image's preview icon; it is (re)made here, not while drawing,
    # where Blender forbids changing data.
    with contextlib.suppress(AttributeError, RuntimeError):
        img.preview_ensure()
        img.preview.reload()


def _redraw(context) -> None:
    for win in getattr(context.window_manager, "windows", []):
        for area in win.screen.areas:
            if area.type in ("VIEW_3D", "IMAGE_EDITOR"):
                area.tag_redraw()


class _ActionOperator:
    """Shared run machinery; subclasses implement `make_action(context)`."""

    bl_options = {"REGISTER"}
    _driver: tasks.Driver | None = None
    _timer = None

    @classmethod
    def poll(cls, context):
        return connection.ACTIVE["driver"] is None and context.scene is not None

    def make_action(self, context):  # -> (generator, number of jobs)
        raise NotImplementedError

    def missing(self, context):
        """welcome -> sentences about what the backend lacks for this action."""
        settings = context.scene.dreamwire.to_settings()
        return lambda welcome: missing_on_backend(settings, welcome)

    def _start(self, context) -> bool:
        prefs_ = prefs.get(context)
        try:
            action, n_jobs = self.make_action(context)
            client = connection.CONN.ensure(context)
        except (tasks.ActionError, DreamwireError, ValueError) as exc:
            self.report({"ERROR"}, exc.message if isinstance(exc, DreamwireError) else str(exc))
            return False
        precheck = self.missing(context)
        timeout = prefs_.timeout if prefs_ else 10
        self._driver = tasks.Driver(
            connection.CONN,
            action,
            jobs_expected=n_jobs,
            connect_timeout=timeout,
            lost_timeout=max(5.0, client.heartbeat_timeout * 3),
            on_preview=_set_preview,
            precheck=precheck,
        )
        connection.ACTIVE["driver"] = self._driver
        st = _status(context)
        st.state, st.text, st.progress, st.action = "running", "Starting", 0.0, self.bl_label
        return True

    def _update(self, context) -> None:
        st = _status(context)
        d = self._driver
        st.text = d.status.text
        st.progress = d.status.fraction
        if context.workspace is not None and not bpy.app.background:
            context.workspace.status_text_set(
                f"Dreamwire: {self.bl_label}: {d.status.text} (Esc cancels)"
            )
        _redraw(context)

    def _finish(self, context) -> set[str]:
        d = self._driver
        connection.ACTIVE["driver"] = None
        st = _status(context)
        st.state = d.status.state
        st.text = d.status.message
        st.progress = d.status.fraction
        if context.workspace is not None and not bpy.app.background:
            context.workspace.status_text_set(None)
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        _redraw(context)
        if d.status.state == tasks.FINISHED:
            self.report({"INFO"}, d.status.message)
            return {"FINISHED"}
        if d.status.state == tasks.CANCELLED:
            self.report({"WARNING"}, d.status.message or "Cancelled")
            return {"CANCELLED"}
        self.report({"ERROR"}, d.status.message)
        return {"CANCELLED"}

    def execute(self, context):
        if not self._start(context):
            return {"CANCELLED"}
        while not self._driver.done:
            self._driver.tick()
            self._update(context)
            if not self._driver.done:
                import time

                time.sleep(0.02)
        return self._finish(context)

    def invoke(self, context, event):
        if bpy.app.background or context.window is None:
            return self.execute(context)
        if not self._start(context):
            return {"CANCELLED"}
        self._driver.tick()  # a backend that is already there starts the action at once
        if self._driver.done:
            return self._finish(context)
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        d = self._driver
        if event.type == "ESC" or connection.ACTIVE.get("cancel"):
            connection.ACTIVE["cancel"] = False
            d.cancel()
        elif event.type == "TIMER":
            d.tick()
            self._update(context)
        if d.done:
            return self._finish(context)
        return {"PASS_THROUGH"}


class DREAMWIRE_OT_generate_texture(_ActionOperator, bpy.types.Operator):
    """Generate an image from the prompt and use it as the active object's texture"""

    bl_idname = "dreamwire.generate_texture"
    bl_label = "Generate Texture"

    def make_action(self, context):
        return actions.generate_texture(context)


class DREAMWIRE_OT_project(_ActionOperator, bpy.types.Operator):
    """Generate from the scene camera (depth-controlled) and bake it into the selected meshes' UV textures"""

    bl_idname = "dreamwire.project"
    bl_label = "Project"

    def make_action(self, context):
        return actions.project(context)


class DREAMWIRE_OT_project_multiview(_ActionOperator, bpy.types.Operator):
    """Project from several cameras; each view inpaints what earlier views did not cover"""

    bl_idname = "dreamwire.project_multiview"
    bl_label = "Multi-view Projection"

    def make_action(self, context):
        return actions.project(context, actions.multiview_cameras(context))


class DREAMWIRE_OT_render_animation(_ActionOperator, bpy.types.Operator):
    """Generate every frame of the scene's range into the output folder (resumes a stopped render)"""

    bl_idname = "dreamwire.render_animation"
    bl_label = "Render Animation"

    def make_action(self, context):
        return actions.render_animation(context)


class DREAMWIRE_OT_upscale_image(_ActionOperator, bpy.types.Operator):
    """Upscale the Image Editor's image (or the active object's Dreamwire texture) into a new image "<name> (Upscaled)", optionally refined with the prompt"""

    bl_idname = "dreamwire.upscale_image"
    bl_label = "Upscale Image"

    image: StringProperty(name="Image", default="", description="Empty: the editor's image")

    def make_action(self, context):
        return actions.upscale_image(context, self.image)

    def missing(self, context):
        from .core.upscale import missing_for_upscale

        props = context.scene.dreamwire
        u, model = props.to_upscale_settings(), props.model
        return lambda welcome: missing_for_upscale(u, welcome, model)


class DREAMWIRE_OT_edit_texture(_ActionOperator, bpy.types.Operator):
    """Change the active material's image texture as the prompt instructs, into a new image "<name> (Edited)" (needs an edit model: Flux Kontext)"""

    bl_idname = "dreamwire.edit_texture"
    bl_label = "Edit Texture"

    def make_action(self, context):
        return actions.edit_texture(context)

    def missing(self, context):
        from .core.edit import missing_for_edit

        model = context.scene.dreamwire.model
        return lambda welcome: missing_for_edit(welcome, model)


class DREAMWIRE_OT_split_layers(_ActionOperator, bpy.types.Operator):
    """Split the active material's image texture into RGBA layers, images "<name> layer i/N" with alpha, 1 the bottom (needs a layered model: Qwen-Image-Layered)"""

    bl_idname = "dreamwire.split_layers"
    bl_label = "Split into Layers"

    count: IntProperty(name="Layers", default=4, min=1, max=10)

    def make_action(self, context):
        return actions.split_layers(context, self.count)

    def missing(self, context):
        from .core.layers import missing_for_layers

        model = context.scene.dreamwire.model
        return lambda welcome: missing_for_layers(welcome, model)


class DREAMWIRE_OT_train_lora_collection(_ActionOperator, bpy.types.Operator):
    """Render the chosen collection all the way round and train a LoRA on the renders (captions: trigger word, names, side seen); the LoRA goes into the backend's LoRA folder"""

    bl_idname = "dreamwire.train_lora_collection"
    bl_label = "Train LoRA from Collection"

    def make_action(self, context):
        from . import train_collection

        return train_collection.train_from_collection(context)

    def missing(self, context):
        from dreamwire.shared.family_support import model_info, refusal

        model = context.scene.dreamwire.model

        def refused(welcome):  # before anything renders: SD1.x and SDXL train
            why = refusal(model_info(model, welcome), "train_lora")
            return [why] if why else []

        return refused


class DREAMWIRE_OT_cancel(bpy.types.Operator):
    """Cancel the running Dreamwire action"""

    bl_idname = "dreamwire.cancel"
    bl_label = "Cancel"

    def execute(self, context):
        d = connection.ACTIVE["driver"]
        if d is None:
            return {"CANCELLED"}
        # The modal operator notices on its next timer tick and finishes cleanly.
        connection.ACTIVE["cancel"] = True
        return {"FINISHED"}


class DREAMWIRE_OT_connect(bpy.types.Operator):
    """Connect to the backend at the address in the preferences"""

    bl_idname = "dreamwire.connect"
    bl_label = "Connect"

    def execute(self, context):
        try:
            connection.CONN.ensure(context)
        except DreamwireError as exc:
            self.report({"ERROR"}, exc.message)
            return {"CANCELLED"}
        return {"FINISHED"}


class DREAMWIRE_OT_start_backend(bpy.types.Operator):
    """Start a local backend with the command and model folders from the preferences"""

    bl_idname = "dreamwire.start_backend"
    bl_label = "Start Local Backend"

    def execute(self, context):
        try:
            failure = connection.start_local_backend(context)
            if failure is not None:  # it stays in the panels too
                self.report({"ERROR"}, failure)
                return {"CANCELLED"}
            connection.CONN.ensure(context)
        except (ValueError, DreamwireError) as exc:
            self.report({"ERROR"}, exc.message if isinstance(exc, DreamwireError) else str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Backend starting; log: {connection.LOCAL.log_path}")
        return {"FINISHED"}


class DREAMWIRE_OT_stop_backend(bpy.types.Operator):
    """Stop the local backend started from Blender"""

    bl_idname = "dreamwire.stop_backend"
    bl_label = "Stop Local Backend"

    def execute(self, context):
        connection.LOCAL.stop()
        return {"FINISHED"}


class DREAMWIRE_OT_show_backend_log(bpy.types.Operator):
    """Load the local backend's log into a text block (open it in the Text Editor)"""

    bl_idname = "dreamwire.show_backend_log"
    bl_label = "Backend Log"

    def execute(self, context):
        text = bpy.data.texts.get("Dreamwire backend log") or bpy.data.texts.new(
            "Dreamwire backend log"
        )
        text.clear()
        text.write(
            connection.LOCAL.log_tail(2000) or "(the local backend has not written anything yet)"
        )
        for area in getattr(context.screen, "areas", []):
            if area.type == "TEXT_EDITOR":
                area.spaces.active.text = text
                break
        else:
            self.report({"INFO"}, "Log loaded into the text block 'Dreamwire backend log'")
        return {"FINISHED"}


class DREAMWIRE_OT_camera_add(bpy.types.Operator):
    """Add the selected cameras (or the scene camera) to the multi-view list"""

    bl_idname = "dreamwire.camera_add"
    bl_label = "Add Cameras"

    def execute(self, context):
        props = context.scene.dreamwire
        have = {item.camera for item in props.cameras}
        cams = [o for o in context.selected_objects if o.type == "CAMERA"] or (
            [context.scene.camera] if context.scene.camera else []
        )
        for cam in cams:
            if cam not in have:
                props.cameras.add().camera = cam
        return {"FINISHED"}


class DREAMWIRE_OT_add_orbit_cameras(bpy.types.Operator):
    """Add cameras in a circle around the selected objects and put them in the multi-view list"""

    bl_idname = "dreamwire.add_orbit_cameras"
    bl_label = "Add Orbit Cameras"
    bl_options = {"REGISTER", "UNDO"}

    count: IntProperty(name="Cameras", default=4, min=1, max=16)
    elevation: FloatProperty(name="Elevation", default=20.0, min=-89.0, max=89.0)
    distance: FloatProperty(
        name="Distance factor",
        default=2.5,
        min=0.5,
        max=20.0,
        description="Distance as a multiple of the selection's radius",
    )

    def execute(self, context):
        import numpy as np
        from mathutils import Vector

        from .core.texturing.multiview import orbit_positions

        objs = [o for o in context.selected_objects if o.type == "MESH"]
        if not objs:
            self.report({"ERROR"}, "Select the mesh objects to put cameras around.")
            return {"CANCELLED"}
        corners = np.array([o.matrix_world @ Vector(c) for o in objs for c in o.bound_box])
        center = (corners.min(axis=0) + corners.max(axis=0)) / 2
        radius = max(float(np.linalg.norm(corners - center, axis=1).max()), 1e-3)
        props = context.scene.dreamwire
        coll = bpy.data.collections.get("Dreamwire Cameras")
        if coll is None:
            coll = bpy.data.collections.new("Dreamwire Cameras")
            context.scene.collection.children.link(coll)
        for i, pos in enumerate(
            orbit_positions(center, radius * self.distance, self.count, self.elevation)
        ):
            cam = bpy.data.objects.new(
                f"DW Orbit {i + 1}", bpy.data.cameras.new(f"DW Orbit {i + 1}")
            )
            cam.location = Vector(pos)
            cam.rotation_euler = (Vector(center) - cam.location).to_track_quat("-Z", "Y").to_euler()
            coll.objects.link(cam)
            props.cameras.add().camera = cam
        return {"FINISHED"}


class DREAMWIRE_OT_add_coverage_cameras(bpy.types.Operator):
    """Add cameras where they see the most of the selected meshes head-on (the panel's count; upper half only for objects on the ground) and put them in the multi-view list"""

    bl_idname = "dreamwire.add_coverage_cameras"
    bl_label = "Add Cameras by Coverage"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        from .coverage_cameras import place

        targets = [o.name for o in context.selected_objects if o.type == "MESH"]
        if not targets:
            self.report({"ERROR"}, "Select the mesh objects to put cameras around.")
            return {"CANCELLED"}
        try:
            made = place(context, targets, "DW Coverage")
        except tasks.ActionError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        props = context.scene.dreamwire
        for cam in made:
            props.cameras.add().camera = cam
        self.report({"INFO"}, f"Added {len(made)} cameras by coverage")
        return {"FINISHED"}


def _remove_highlighted(props, items: str, index: str) -> None:
    """Remove the highlighted row of a UI list and highlight the row above it."""
    at = getattr(props, index)
    rows = getattr(props, items)
    if 0 <= at < len(rows):
        rows.remove(at)
        setattr(props, index, max(0, at - 1))


class DREAMWIRE_OT_camera_remove(bpy.types.Operator):
    """Remove the highlighted camera from the multi-view list"""

    bl_idname = "dreamwire.camera_remove"
    bl_label = "Remove Camera"

    def execute(self, context):
        _remove_highlighted(context.scene.dreamwire, "cameras", "camera_index")
        return {"FINISHED"}


class DREAMWIRE_OT_bone_override_add(bpy.types.Operator):
    """Take an OpenPose keypoint from a bone of your choice"""

    bl_idname = "dreamwire.bone_override_add"
    bl_label = "Add Bone Override"

    def execute(self, context):
        props = context.scene.dreamwire
        props.pose_overrides.add()
        props.pose_override_index = len(props.pose_overrides) - 1
        return {"FINISHED"}


class DREAMWIRE_OT_bone_override_remove(bpy.types.Operator):
    """Remove the highlighted bone override"""

    bl_idname = "dreamwire.bone_override_remove"
    bl_label = "Remove Bone Override"

    def execute(self, context):
        _remove_highlighted(context.scene.dreamwire, "pose_overrides", "pose_override_index")
        return {"FINISHED"}


class DREAMWIRE_OT_show_preview(bpy.types.Operator):
    """Show the live preview image in this image editor"""

    bl_idname = "dreamwire.show_preview"
    bl_label = "Show Preview"
    name: StringProperty(default=PREVIEW_IMAGE)

    def execute(self, context):
        img = bpy.data.images.get(self.name)
        if img is None or context.space_data is None or context.space_data.type != "IMAGE_EDITOR":
            return {"CANCELLED"}
        context.space_data.image = img
        return {"FINISHED"}


_classes = (
    DREAMWIRE_OT_generate_texture,
    DREAMWIRE_OT_project,
    DREAMWIRE_OT_project_multiview,
    DREAMWIRE_OT_render_animation,
    DREAMWIRE_OT_upscale_image,
    DREAMWIRE_OT_edit_texture,
    DREAMWIRE_OT_split_layers,
    DREAMWIRE_OT_train_lora_collection,
    DREAMWIRE_OT_cancel,
    DREAMWIRE_OT_connect,
    DREAMWIRE_OT_start_backend,
    DREAMWIRE_OT_stop_backend,
    DREAMWIRE_OT_show_backend_log,
    DREAMWIRE_OT_camera_add,
    DREAMWIRE_OT_camera_remove,
    DREAMWIRE_OT_add_orbit_cameras,
    DREAMWIRE_OT_add_coverage_cameras,
    DREAMWIRE_OT_bone_override_add,
    DREAMWIRE_OT_bone_override_remove,
    DREAMWIRE_OT_show_preview,
)

register, unregister = bpy.utils.register_classes_factory(_classes)
