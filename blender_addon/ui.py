"""The Dreamwire N-panel, in the 3D viewport and the image editor: one tab whose settings
sit in collapsible sub-panels (SECTIONS), the advanced ones folded, as Blender's own panels
and Dream Textures do. Each editor gets its own panel classes (Blender ties a panel to one
space type), made by `editor_panels` from the same sections."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import bpy

from dreamwire.shared.families import label as family_label
from dreamwire.shared.family_support import edit_refusal, mode_refusal, model_info, refusal

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


def draw_error_lines(layout, text: str) -> None:
    """A several-line error (a log's tail) as labels: a label shows one line."""
    for i, line in enumerate(text.splitlines()):
        layout.label(text=line, icon="ERROR" if i == 0 else "BLANK1")


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
    draw_error_lines(box, connection.local_backend_error())
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


def _draw_prompt(layout, context) -> None:
    props = context.scene.dreamwire
    layout.prop(props, "prompt")
    layout.prop(props, "negative")


def _draw_model(layout, context) -> None:
    props = context.scene.dreamwire
    w = connection.CONN.welcome
    col = layout.column()
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
    for feature, name in (("cfg_rescale", "cfg_rescale"), ("skip_layer_guidance", "slg_scale")):
        if feature in info.supports:
            col.prop(props, name)
    col.prop(props, "seed")
    row = col.row(align=True)
    row.prop(props, "width")
    row.prop(props, "height")
    row = col.row()
    row.active = refusal(info, "seamless") is None
    row.prop(props, "seamless")
    col.prop(props, "two_pass")
    _draw_training(layout, props, info)


def _draw_training(layout, props, info) -> None:
    """Train LoRA from collection: its renders and captions train the panel's model."""
    box = layout.box()
    box.label(text="Train LoRA", icon="OUTLINER_COLLECTION")
    box.prop(props, "train_collection")
    row = box.row(align=True)
    row.prop(props, "train_name")
    row.prop(props, "train_trigger")
    row = box.row(align=True)
    row.prop(props, "train_steps")
    row.prop(props, "train_views")
    row = box.row()
    row.active = refusal(info, "train_lora") is None  # greyed out; it refuses with the reason
    row.operator("dreamwire.train_lora_collection", icon="RENDER_STILL")


def _draw_controls(layout, context) -> None:
    # What the backend can run for the chosen model (its welcome's control_types): the
    # others stay settable but greyed out, and the actions leave them out with a note.
    props = context.scene.dreamwire
    plan = plan_controls(props.to_settings(), connection.CONN.welcome)
    box = layout.column()
    for name, label in CONTROL_LABELS.items():
        c = getattr(props, name)
        row = box.row(align=True)
        row.prop(c, "enabled", text=label)
        sub = row.row(align=True)
        sub.active = c.enabled and name not in plan.skipped
        sub.prop(c, "weight", text="")
    _draw_plan(box, plan)
    if props.colour.enabled:
        box.prop(props, "colour_as_init")
        if props.colour_as_init:
            box.prop(props, "strength")
    if props.face.enabled:
        # What the capture reads (core/face.py): said here, as the rig is for Pose.
        box.label(text="Face: meshes' face_oval, face_lips, face_left_eye ... vertex groups")
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


def _draw_reference(layout, context) -> None:
    props = context.scene.dreamwire
    plan = plan_controls(props.to_settings(), connection.CONN.welcome)
    # Greyed out (still settable) when the backend cannot run the chosen mode's adapter.
    usable = props.reference_image is not None and REFERENCE not in plan.skipped
    layout.prop(props, "reference_image")
    row = layout.row()
    row.active = usable
    row.prop(props, "reference_mode")
    col = layout.column(align=True)
    col.active = usable
    col.prop(props, "reference_weight")
    row = col.row(align=True)
    row.prop(props, "reference_start")
    row.prop(props, "reference_end")


def draw_texturing(layout, context) -> None:
    """The Texturing sub-panel: texture a mesh from its UVs or from cameras. The texturing
    steps' own settings go in sub-panels of it (SECTIONS, parent "texturing")."""
    props = context.scene.dreamwire
    w = connection.CONN.welcome
    layout.operator("dreamwire.generate_texture", icon="TEXTURE")
    # Greyed out (still clickable: it then refuses with the reason) off an edit model.
    edit_refused = edit_refusal(props.model, w)
    row = layout.row()
    row.active = edit_refused is None
    row.operator("dreamwire.edit_texture", icon="BRUSH_DATA")
    if edit_refused and w is not None:
        layout.label(text=f"Edit Texture {edit_refused}", icon="INFO")
    # Split into Layers: greyed out likewise off a layered model (Qwen-Image-Layered).
    row = layout.row()
    row.active = mode_refusal("layers", props.model, w) is None
    row.operator("dreamwire.split_layers", icon="RENDERLAYERS")
    row = layout.row(align=True)
    row.prop(props, "texture_size")
    row.prop(props, "grazing_angle")
    layout.prop(props, "create_uvs")
    obj = getattr(context, "object", None)
    if obj is not None and obj.type == "MESH":  # its own prompt, for scenes of several
        layout.prop(obj, "dreamwire_prompt", text=f"{obj.name} prompt")
    _draw_pbr(layout, props, w)
    row = layout.row(align=True)
    row.prop(props, "fill_distance")
    row.prop(props, "fill_inpaint")
    layout.operator("dreamwire.project", icon="MOD_UVPROJECT")


def draw_texturing_views(layout, context) -> None:
    """Multi-view projection: the cameras, how later views inpaint, grid mode."""
    props = context.scene.dreamwire
    layout.label(text="Cameras (empty: all scene cameras)")
    row = layout.row()
    row.template_list("DREAMWIRE_UL_cameras", "", props, "cameras", props, "camera_index", rows=2)
    sub = row.column(align=True)
    sub.operator("dreamwire.camera_add", text="", icon="ADD")
    sub.operator("dreamwire.camera_remove", text="", icon="REMOVE")
    sub.operator("dreamwire.add_orbit_cameras", text="", icon="CON_CAMERASOLVER")
    sub.operator("dreamwire.add_coverage_cameras", text="", icon="VIEW_CAMERA")
    _draw_auto_cameras(layout, props)
    row = layout.row(align=True)
    row.prop(props, "coverage_threshold")
    row.prop(props, "multiview_strength")
    layout.prop(props, "inpaint_fill")
    _switch_with_choice(layout, props, "colour_match", "colour_match_method")
    row = layout.row(align=True)
    row.prop(props, "facing_exponent")
    row.prop(props, "edge_feather")
    _switch_with_choice(layout, props, "grid_mode", "grid_layout")
    layout.operator("dreamwire.project_multiview", icon="CAMERA_DATA")


def _switch_with_choice(layout, props, switch: str, choice: str) -> None:
    """A switch and, beside it, its setting, greyed while the switch is off."""
    row = layout.row(align=True)
    row.prop(props, switch)
    sub = row.row(align=True)
    sub.active = getattr(props, switch)
    sub.prop(props, choice, text="")


def _draw_animation(layout, context) -> None:
    props = context.scene.dreamwire
    row = layout.row(align=True)
    row.prop(context.scene, "frame_start")
    row.prop(context.scene, "frame_end")
    row.prop(props, "frame_step")
    layout.prop(props, "animation_mode")
    # Every mode's settings stay in view, greyed where the chosen mode does not use them.
    mode = props.animation_mode
    for name, used in (
        ("previous_strength", mode == "previous"),
        ("warp_denoise", mode in ("warp", "keyframes")),
        ("mask_grow", mode in ("warp", "keyframes")),
        ("key_every", mode == "keyframes"),
        ("key_markers", mode == "keyframes"),
        ("motion_module", mode == "animatediff"),
        ("context_length", mode == "animatediff"),
        ("context_stride", mode == "animatediff"),
    ):
        row = layout.row()
        row.active = used
        row.prop(props, name)
    layout.prop(props, "overwrite")
    layout.operator("dreamwire.render_animation", icon="RENDER_ANIMATION")


def _draw_upscale_section(layout, context) -> None:
    props = context.scene.dreamwire
    info = model_info(props.model, connection.CONN.welcome)
    _draw_upscale(layout, props, refusal(info, "refine_upscale"))


def _draw_auto_cameras(box, props) -> None:
    """Cameras by coverage and view-aware prompts (issue 14)."""
    row = box.row(align=True)
    row.prop(props, "auto_cameras")
    row.prop(props, "auto_camera_count")
    box.prop(props, "auto_camera_hemisphere")
    box.prop(props, "view_prompts")
    if props.view_prompts:
        col = box.column(align=True)
        for side in ("front", "side", "back", "top", "bottom"):
            col.prop(props, f"view_{side}")


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


_BOTH = ("VIEW_3D", "IMAGE_EDITOR")


@dataclass(frozen=True)
class Section:
    """One collapsible sub-panel of the Dreamwire tab, in each editor it applies to."""

    key: str  # the panel's id is DREAMWIRE_PT_<editor>_<key>
    label: str
    draw: Callable[[Any, Any], None]  # (layout, context)
    parent: str = ""  # the key of the section it sits in; "" for the tab's own panel
    closed_in: tuple[str, ...] = ()  # editors where it starts folded (DEFAULT_CLOSED)
    spaces: tuple[str, ...] = _BOTH  # the editors it shows in
    locked: bool = True  # greyed out while an action runs


# Parents before their children: Blender registers a sub-panel only under a known parent.
SECTIONS: tuple[Section, ...] = (
    Section("backend", "Backend", _draw_connection, locked=False),
    Section("prompt", "Prompt", _draw_prompt),
    Section("model", "Model and sampling", _draw_model),
    Section("controls", "Controls", _draw_controls),
    Section("reference", "Reference", _draw_reference, closed_in=_BOTH),
    Section("texturing", "Texturing", draw_texturing),
    # The texturing steps' sub-panels (fill, colour, PBR ...) go after this one.
    Section("texturing_views", "Views", draw_texturing_views, parent="texturing"),
    Section("animation", "Animation", _draw_animation, closed_in=_BOTH, spaces=("VIEW_3D",)),
    # The Image Editor is where images are upscaled: open there.
    Section("upscale", "Upscale", _draw_upscale_section, closed_in=("VIEW_3D",)),
)

# Each editor's own id, as the tab's panel names it (DREAMWIRE_PT_view3d).
EDITORS = {"VIEW_3D": "view3d", "IMAGE_EDITOR": "image"}


def _running(context) -> bool:
    return context.window_manager.dreamwire_status.state == "running"


class _SidebarTab:
    """The Dreamwire tab in an editor's sidebar (N panel)."""

    bl_region_type = "UI"
    bl_category = "Dreamwire"


class _TabPanel(_SidebarTab):
    """The tab's own panel: what runs now, and where results go; the sections below it."""

    bl_label = "Dreamwire"

    def draw(self, context):
        layout = self.layout
        if self.bl_space_type == "IMAGE_EDITOR":
            layout.operator("dreamwire.show_preview", icon="IMAGE")
        running = _draw_status(layout, context)
        row = layout.row()
        row.enabled = not running
        row.prop(context.scene.dreamwire, "output_dir")


class _SectionPanel(_SidebarTab):
    """A sub-panel drawing its Section (the same body in every editor)."""

    section: Section

    def draw(self, context):
        layout = self.layout
        if self.section.locked:
            layout.enabled = not _running(context)
        self.section.draw(layout, context)


def panel_id(space: str, key: str = "") -> str:
    return f"DREAMWIRE_PT_{EDITORS[space]}" + (f"_{key}" if key else "")


def editor_panels(space: str) -> list[type]:
    """The tab's panel and its sections for one editor, parents first."""
    root = panel_id(space)
    out = [type(root, (_TabPanel, bpy.types.Panel), {"bl_idname": root, "bl_space_type": space})]
    for sec in SECTIONS:
        if space not in sec.spaces:
            continue
        idname = panel_id(space, sec.key)
        attrs = {
            "bl_idname": idname,
            "bl_label": sec.label,
            "bl_space_type": space,
            "bl_parent_id": panel_id(space, sec.parent),
            "section": sec,
        }
        if space in sec.closed_in:
            attrs["bl_options"] = {"DEFAULT_CLOSED"}
        out.append(type(idname, (_SectionPanel, bpy.types.Panel), attrs))
    return out


_classes = (
    DREAMWIRE_UL_cameras,
    DREAMWIRE_UL_bone_overrides,
    *(cls for space in EDITORS for cls in editor_panels(space)),
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
