"""The Dreamwire N-panel, in the 3D viewport and the image editor."""

from __future__ import annotations

import bpy

from dreamwire.shared.families import label as family_label
from dreamwire.shared.family_support import edit_refusal, model_info, refusal

from . import connection
from .core.job_builder import (
    CONTROL_LABELS,
    REFERENCE,
    missing_on_backend,
    names,
    plan_controls,
)


class DREAMWIRE_UL_cameras(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0):
        layout.prop(item, "camera", text="", emboss=False, icon="CAMERA_DATA")


class DREAMWIRE_UL_bone_overrides(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0):
        row = layout.row(align=True)
        row.prop(item, "keypoint", text="")
        row.prop(item, "bone", text="", icon="BONE_DATA")
        row.prop(item, "end", text="")


def _draw_connection(layout, context) -> None:
    box = layout.box()
    conn = connection.CONN
    state = conn.state
    icon = {"connected": "CHECKMARK", "connecting": "SORTTIME", "lost": "ERROR"}.get(
        state, "UNLINKED"
    )
    row = box.row()
    row.label(text=f"Backend: {state}", icon=icon)
    row.operator("dreamwire.connect", text="", icon="FILE_REFRESH")
    if conn.address:
        box.label(text=conn.address)
    if conn.error:
        box.label(text=conn.error, icon="ERROR")
    w = conn.welcome
    if w is not None:
        if w.device:
            box.label(text=f"Device: {w.device}")
        problems = missing_on_backend(context.scene.dreamwire.to_settings(), w)
        for p in problems:
            box.label(text=p, icon="ERROR")
    if connection.local_backend_alive():
        box.operator("dreamwire.stop_backend", icon="CANCEL")
    elif state != "connected":
        box.operator("dreamwire.start_backend", icon="PLAY")


def _draw_status(layout, context) -> bool:
    st = context.window_manager.dreamwire_status
    if st.state == "idle":
        return False
    box = layout.box()
    if st.state == "running":
        box.label(text=f"{st.action}: {st.text}", icon="RENDER_STILL")
        if hasattr(box, "progress"):
            box.progress(factor=st.progress, type="BAR", text=f"{int(st.progress * 100)}%")
        else:
            box.prop(st, "progress", text="Progress", slider=True)
        box.operator("dreamwire.cancel", icon="CANCEL")
        img = bpy.data.images.get("Dreamwire Preview")
        if img is not None and img.preview is not None:
            box.template_icon(icon_value=img.preview.icon_id, scale=6.0)
    else:
        icon = {"finished": "CHECKMARK", "failed": "ERROR", "cancelled": "CANCEL"}.get(
            st.state, "INFO"
        )
        box.label(text=st.text, icon=icon)
    return st.state == "running"


def draw_panel(layout, context) -> None:
    props = context.scene.dreamwire
    _draw_connection(layout, context)
    running = _draw_status(layout, context)
    col = layout.column()
    col.enabled = not running
    col.prop(props, "prompt")
    col.prop(props, "negative")
    w = connection.CONN.welcome
    col.prop(props, "model")
    if w is not None and not names(w.models):
        col.label(text="The backend found no models", icon="ERROR")
    col.prop(props, "sampler")
    # The model's family as the backend describes it: which settings it takes, what it
    # cannot run (greyed out, still settable; the actions refuse it with the reason).
    info = model_info(props.model, w)
    row = col.row(align=True)
    row.prop(props, "steps")
    row.prop(props, "cfg")
    if info.family.defaults.distilled_cfg is not None:
        col.prop(props, "distilled_cfg")
    col.prop(props, "seed")
    row = col.row(align=True)
    row.prop(props, "width")
    row.prop(props, "height")
    row = col.row()
    row.active = refusal(info, "seamless") is None
    row.prop(props, "seamless")
    col.prop(props, "two_pass")

    # What the backend can run for the chosen model (its welcome's control_types): the
    # others stay settable but greyed out, and the actions leave them out with a note.
    plan = plan_controls(props.to_settings(), w)
    box = col.box()
    box.label(text="Controls")
    for name, label in CONTROL_LABELS.items():
        c = getattr(props, name)
        row = box.row(align=True)
        row.prop(c, "enabled", text=label)
        sub = row.row(align=True)
        sub.active = c.enabled and name not in plan.skipped
        sub.prop(c, "weight", text="")
    row = box.row(align=True)
    row.prop(props, "reference_image")
    sub = row.row(align=True)
    # Greyed out (still settable) when the backend cannot run the chosen mode's adapter.
    sub.active = props.reference_image is not None and REFERENCE not in plan.skipped
    sub.prop(props, "reference_mode", text="")
    sub = box.row(align=True)
    sub.active = props.reference_image is not None and REFERENCE not in plan.skipped
    sub.prop(props, "reference_weight")
    sub.prop(props, "reference_start")
    sub.prop(props, "reference_end")
    _draw_plan(box, plan)
    if props.colour.enabled:
        box.prop(props, "colour_as_init")
    if props.pose.enabled:
        box.label(text="Pose bone overrides (for other rigs)")
        row = box.row()
        row.template_list(
            "DREAMWIRE_UL_bone_overrides",
            "",
            props,
            "pose_overrides",
            props,
            "pose_override_index",
            rows=2,
        )
        sub = row.column(align=True)
        sub.operator("dreamwire.bone_override_add", text="", icon="ADD")
        sub.operator("dreamwire.bone_override_remove", text="", icon="REMOVE")

    box = col.box()
    box.label(text="Actions")
    box.operator("dreamwire.generate_texture", icon="TEXTURE")
    _draw_upscale(box.box(), props, refusal(info, "refine_upscale"))
    # Greyed out (still clickable: it then refuses with the reason) off an edit model.
    edit_refused = edit_refusal(props.model, w)
    row = box.row()
    row.active = edit_refused is None
    row.operator("dreamwire.edit_texture", icon="BRUSH_DATA")
    if edit_refused and w is not None:
        box.label(text=f"Edit Texture {edit_refused}", icon="INFO")
    row = box.row(align=True)
    row.prop(props, "texture_size")
    row.prop(props, "grazing_angle")
    box.prop(props, "create_uvs")
    _draw_pbr(box, props, w)
    box.operator("dreamwire.project", icon="MOD_UVPROJECT")
    box.label(text="Multi-view cameras (empty: all scene cameras)")
    row = box.row()
    row.template_list("DREAMWIRE_UL_cameras", "", props, "cameras", props, "camera_index", rows=2)
    sub = row.column(align=True)
    sub.operator("dreamwire.camera_add", text="", icon="ADD")
    sub.operator("dreamwire.camera_remove", text="", icon="REMOVE")
    sub.operator("dreamwire.add_orbit_cameras", text="", icon="CON_CAMERASOLVER")
    row = box.row(align=True)
    row.prop(props, "coverage_threshold")
    row.prop(props, "multiview_strength")
    box.prop(props, "inpaint_fill")
    box.operator("dreamwire.project_multiview", icon="CAMERA_DATA")
    box.separator()
    row = box.row(align=True)
    row.prop(context.scene, "frame_start")
    row.prop(context.scene, "frame_end")
    row.prop(props, "frame_step")
    box.prop(props, "from_previous")
    if props.from_previous:
        box.prop(props, "previous_strength")
    box.prop(props, "overwrite")
    box.operator("dreamwire.render_animation", icon="RENDER_ANIMATION")
    col.prop(props, "output_dir")


def _draw_plan(box, plan) -> None:
    """Which captured controls (and the reference) the generations will use."""
    used = ", ".join(plan.label(n) for n in plan.used) or "none"
    box.label(text=f"Uses: {used}")
    if plan.refused:  # the family runs no control units: one reason for them all
        box.label(text=f"Controls: not available for {family_label(plan.family)}", icon="INFO")
        box.label(text=plan.refused)
        return
    fam = family_label(plan.family)
    for name, why in plan.skipped.items():
        box.label(text=f"{plan.label(name)}: not available for {fam} models", icon="INFO")
        box.label(text=why)


def _draw_upscale(box, props, refine_refused: str | None) -> None:
    """Upscale the Image Editor's image, or the texture Generate Texture made; Refine greyed
    out where the model's family cannot refine tiles (`refine_refused`: why)."""
    box.label(text="Upscale image or texture")
    box.prop(props, "upscale_upscaler")
    row = box.row(align=True)
    row.prop(props, "upscale_factor")
    row.prop(props, "upscale_seamless", text="")
    row = box.row(align=True)
    row.active = refine_refused is None
    row.prop(props, "upscale_refine")
    sub = row.row(align=True)
    sub.active = props.upscale_refine
    sub.prop(props, "upscale_strength")
    if refine_refused and props.upscale_refine:
        box.label(text=refine_refused, icon="INFO")
    box.operator("dreamwire.upscale_image", icon="FULLSCREEN_ENTER")


def _image_menu(self, context) -> None:
    self.layout.separator()
    self.layout.operator("dreamwire.upscale_image", text="Upscale (Dreamwire)")


class _SidebarTab:
    """The Dreamwire tab in an editor's sidebar (N panel)."""

    bl_label = "Dreamwire"
    bl_region_type = "UI"
    bl_category = "Dreamwire"


class DREAMWIRE_PT_view3d(_SidebarTab, bpy.types.Panel):
    bl_idname = "DREAMWIRE_PT_view3d"
    bl_space_type = "VIEW_3D"

    def draw(self, context):
        draw_panel(self.layout, context)


class DREAMWIRE_PT_image(_SidebarTab, bpy.types.Panel):
    bl_idname = "DREAMWIRE_PT_image"
    bl_space_type = "IMAGE_EDITOR"

    def draw(self, context):
        self.layout.operator("dreamwire.show_preview", icon="IMAGE")
        draw_panel(self.layout, context)


_classes = (
    DREAMWIRE_UL_cameras,
    DREAMWIRE_UL_bone_overrides,
    DREAMWIRE_PT_view3d,
    DREAMWIRE_PT_image,
)

_register_classes, _unregister_classes = bpy.utils.register_classes_factory(_classes)


def register() -> None:
    _register_classes()
    # Dream Textures offers Upscale from the Image Editor; so does its Image menu here.
    bpy.types.IMAGE_MT_image.append(_image_menu)


def unregister() -> None:
    bpy.types.IMAGE_MT_image.remove(_image_menu)
    _unregister_classes()


def _draw_pbr(box, props, w) -> None:
    """PBR maps after projection; a note when the backend lists no Marigold model."""
    row = box.row(align=True)
    row.prop(props, "pbr_maps")
    sub = row.row(align=True)
    sub.active = props.pbr_maps
    sub.prop(props, "pbr_normal")
    if props.pbr_maps and w is not None and not w.materials:
        box.label(text="PBR maps need Marigold models in the backend's folders", icon="INFO")
