"""Scene settings (saved with the .blend) and the window manager's run-time status."""

from __future__ import annotations

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from dreamwire.shared.family_presets import DISTILLED_CFG
from dreamwire.shared.imaging.openpose import KEYPOINT_NAMES
from dreamwire.shared.job import INPAINT_FILLS

from .core.job_builder import (
    CONTROL_LABELS,
    REFERENCE_END,
    REFERENCE_MODES,
    REFERENCE_START,
    REFERENCE_WEIGHT,
    ControlSetting,
    GenerationSettings,
    ReferenceSetting,
    reference_defaults,
)
from .core.texturing.view_grid import AUTO
from .core.texturing.view_grid import LAYOUTS as GRID_LAYOUTS
from .core.texturing.view_prompts import ViewPhrases
from .core.upscale import FROM_IMAGE, REFINE_STRENGTH, UpscaleSettings


def _welcome_names(kind: str) -> list[str]:
    from . import connection
    from .core.job_builder import names

    w = connection.welcome()
    return names(getattr(w, kind, [])) if w is not None else []


def _model_changed(self, context) -> None:
    # Another family's model takes that family's steps, CFG, sampler and Distilled CFG, a
    # model with defaults of its own (schnell, Kontext) those where the artist left the
    # last model's (the backend's welcome; the rule is shared.family_presets').
    from dreamwire.shared.family_presets import FamilyPresets, Sampling

    from . import connection

    presets = FamilyPresets.from_json(self.family_presets)
    current = Sampling(self.steps, round(self.cfg, 4), self.sampler, round(self.distilled_cfg, 4))
    new = presets.pick(self.model, connection.welcome(), current)
    self.family_presets = presets.to_json()
    if new is not None:
        self.steps, self.cfg, self.sampler = new.steps, new.cfg, new.sampler
        self.distilled_cfg = new.distilled_cfg


def _search_models(self, context, edit_text):
    return [n for n in _welcome_names("models") if edit_text.lower() in n.lower()]


def _search_samplers(self, context, edit_text):
    return [n for n in _welcome_names("samplers") if edit_text.lower() in n.lower()]


def _search_upscalers(self, context, edit_text):
    from dreamwire.shared.refine_upscaler import upscaler_choices

    from . import connection

    names = upscaler_choices(connection.welcome())
    return [n for n in names if edit_text.lower() in n.lower()]


_ANIMATION_MODES = [
    ("fixed_seed", "Fixed seed", "Every frame generated alone with the same seed"),
    ("previous", "Previous frame", "img2img of the previous frame at the frame strength"),
    (
        "warp",
        "Warp and inpaint",
        "The previous frame moved along Blender's motion vectors; only what it cannot show "
        "is generated, then a light refresh",
    ),
    (
        "keyframes",
        "Keyframes",
        "Generate keyframes; frames between are warped from both and only what neither sees "
        "is generated",
    ),
    (
        "animatediff",
        "AnimateDiff",
        "Every frame in one batch through an AnimateDiff motion module (SD1.5), with the "
        "controls captured per frame",
    ),
]
_SEAMLESS_ITEMS = [
    (FROM_IMAGE, "From image", "Tile as the image was generated (Seamless), else not"),
    ("none", "Off", "The image does not tile"),
    ("both", "Both", "Keep the image tiling both ways"),
    ("x", "X", "Keep the image tiling left to right"),
    ("y", "Y", "Keep the image tiling top to bottom"),
]


class DREAMWIRE_PG_control(bpy.types.PropertyGroup):
    enabled: BoolProperty(name="Use", default=False)
    weight: FloatProperty(name="Weight", default=1.0, min=0.0, max=2.0)
    start: FloatProperty(name="Start", default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    end: FloatProperty(name="End", default=1.0, min=0.0, max=1.0, subtype="FACTOR")


class DREAMWIRE_PG_control_on(DREAMWIRE_PG_control):
    """Depth is on by default: it is what makes projection line up with the geometry."""

    enabled: BoolProperty(name="Use", default=True)


# Static items: Blender keeps no reference to strings returned by an items callback.
_KEYPOINT_ITEMS = [(k, k.replace("_", " ").title(), "") for k in KEYPOINT_NAMES]

# A1111's "Masked content" choices; the identifiers are the Job's names for them.
_FILL_HELP = {
    "fill": "Start from the surrounding colours, blurred into the masked area",
    "original": "Start from what is there (A1111's default)",
    "latent noise": "Start from random noise in latent space",
    "latent nothing": "Start from zeros in latent space",
}
_FILL_ITEMS = [(f, f.capitalize(), _FILL_HELP[f]) for f in INPAINT_FILLS]


_GRID_ITEMS = [(AUTO, "Auto", "2x1 for two views, 2x2 for up to four, 3x2 beyond")] + [
    (name, name, f"{c} columns, {r} rows") for name, (c, r) in GRID_LAYOUTS.items()
]


_REFERENCE_HELP = {
    "reference": "The picture's content and style guide the generation (IP-Adapter)",
    "style": "Only the picture's style: colours, texture, brushwork (IP-Adapter style blocks)",
    "composition": "Only the picture's layout (IP-Adapter composition blocks)",
}
_REFERENCE_ITEMS = [(m, label, _REFERENCE_HELP[m]) for m, (label, _t) in REFERENCE_MODES.items()]


def _reference_mode_changed(self, context) -> None:
    # As Krita AI Diffusion does when a control layer's mode changes: the new mode's preset.
    self.reference_weight, self.reference_start, self.reference_end = reference_defaults(
        self.reference_mode
    )


class DREAMWIRE_PG_bone_override(bpy.types.PropertyGroup):
    """One OpenPose keypoint taken from a named bone (for rigs with other bone names)."""

    keypoint: EnumProperty(name="Keypoint", items=_KEYPOINT_ITEMS)
    bone: StringProperty(name="Bone", description="Bone name; empty drops the keypoint")
    end: EnumProperty(
        name="End", items=[("head", "Head", ""), ("tail", "Tail", "")], default="head"
    )


class DREAMWIRE_PG_camera(bpy.types.PropertyGroup):
    camera: PointerProperty(
        name="Camera", type=bpy.types.Object, poll=lambda self, obj: obj.type == "CAMERA"
    )


CONTROL_NAMES = tuple(CONTROL_LABELS)


class DREAMWIRE_PG_settings(bpy.types.PropertyGroup):
    prompt: StringProperty(name="Prompt", default="")
    negative: StringProperty(name="Negative", default="")
    model: StringProperty(
        name="Model",
        default="",
        search=_search_models,
        update=_model_changed,
        description="Checkpoint on the backend; empty = its default model; a model of "
        "another family switches to that family's steps, CFG and sampler",
    )
    # Which family the panel's sampling values are for, and those last used with others
    # (shared.family_presets.FamilyPresets as JSON).
    family_presets: StringProperty(default="", options={"HIDDEN"})
    sampler: StringProperty(name="Sampler", default="DPM++ 2M Karras", search=_search_samplers)
    steps: IntProperty(name="Steps", default=20, min=1, max=500)
    cfg: FloatProperty(name="CFG", default=7.0, min=0.0, max=30.0)
    distilled_cfg: FloatProperty(
        name="Distilled CFG",
        default=DISTILLED_CFG,
        min=0.0,
        max=30.0,
        description="Forge's Distilled CFG Scale: the guidance a guidance-distilled model "
        "(Flux.1 dev) takes as an input; shown for the families that have it",
    )
    cfg_rescale: FloatProperty(
        name="CFG Rescale",
        default=0.0,
        min=0.0,
        max=1.0,
        description="A1111's CFG Rescale φ: pulls the guided prediction back to the "
        "prompt's own contrast; 0.7 for v-prediction models (NoobAI-XL v-pred); SD models only",
    )
    slg_scale: FloatProperty(
        name="Skip-layer guidance",
        default=0.0,
        min=0.0,
        max=10.0,
        description="SD3.5's skip-layer guidance scale (about 3 for Medium; 0: off): sharper "
        "anatomy; plain txt2img only, left out of two-pass, img2img and inpaint jobs",
    )
    seed: IntProperty(name="Seed", default=-1, min=-1, description="-1: random")
    width: IntProperty(name="Width", default=512, min=64, max=4096, step=8)
    height: IntProperty(name="Height", default=512, min=64, max=4096, step=8)
    seamless: BoolProperty(name="Seamless", default=False, description="Tileable texture")
    two_pass: BoolProperty(
        name="Large images in two passes",
        default=True,
        description="Generate sizes beyond the model's native one (SD1 512, SD2 768, SDXL 1024) "
        "at that size first, then upscale and refine to the full size (Hires.fix), instead of "
        "sampling the full size at once and getting repeated compositions",
    )
    strength: FloatProperty(
        name="Strength",
        default=0.75,
        min=0.0,
        max=1.0,
        description="Denoising strength for img2img and inpainting",
    )
    colour_as_init: BoolProperty(
        name="Colour as init image",
        default=False,
        description="Send the colour render as img2img source instead of a tile ControlNet",
    )
    depth: PointerProperty(type=DREAMWIRE_PG_control_on)
    normals: PointerProperty(type=DREAMWIRE_PG_control)
    pose: PointerProperty(type=DREAMWIRE_PG_control)
    face: PointerProperty(type=DREAMWIRE_PG_control)
    segmentation: PointerProperty(type=DREAMWIRE_PG_control)
    colour: PointerProperty(type=DREAMWIRE_PG_control)
    pose_overrides: CollectionProperty(type=DREAMWIRE_PG_bone_override)
    # Reference image: an IP-Adapter unit in every generation (Krita AI Diffusion's
    # Reference layer); one picture keeps a whole animation's style consistent.
    reference_image: PointerProperty(
        name="Reference",
        type=bpy.types.Image,
        description="A picture whose style and content guide every generation (IP-Adapter); "
        "empty: none",
    )
    reference_mode: EnumProperty(
        name="Mode",
        items=_REFERENCE_ITEMS,
        default="reference",
        update=_reference_mode_changed,
        description="What the reference picture guides; a change sets Krita AI Diffusion's "
        "weight and range for the mode",
    )
    reference_weight: FloatProperty(
        name="Weight", default=REFERENCE_WEIGHT, min=0.0, max=2.0, description="0: not used"
    )
    reference_start: FloatProperty(
        name="Start", default=REFERENCE_START, min=0.0, max=1.0, subtype="FACTOR"
    )
    reference_end: FloatProperty(
        name="End", default=REFERENCE_END, min=0.0, max=1.0, subtype="FACTOR"
    )
    pose_override_index: IntProperty(default=0)
    # Texture and projection
    texture_size: IntProperty(name="Texture size", default=1024, min=64, max=8192)
    create_uvs: BoolProperty(
        name="Create missing UVs",
        default=True,
        description="Smart UV Project meshes that have no UV map",
    )
    grazing_angle: FloatProperty(
        name="Grazing angle",
        default=80.0,
        min=10.0,
        max=89.0,
        description="Faces seen flatter than this get no colour",
    )
    output_dir: StringProperty(name="Output", default="//dreamwire/", subtype="DIR_PATH")
    # Texels no view saw (core.texturing.texel_fill and uv_inpaint)
    fill_distance: IntProperty(
        name="Fill distance",
        default=16,
        min=0,
        max=4096,
        description="Texels no view saw take the colour of their neighbours on the mesh "
        "(across UV seams) up to this many texels from a seen one; 0: none",
    )
    fill_inpaint: BoolProperty(
        name="Inpaint holes",
        default=True,
        description="Inpaint the UV texture itself where the fill did not reach (one more "
        "job per object; only texels inside UV islands are repainted)",
    )
    # PBR maps (the backend's Marigold models) baked beside the projected colour
    pbr_maps: BoolProperty(
        name="PBR maps",
        default=False,
        description="After projecting, bake albedo, roughness and metallic from every view "
        "with the backend's Marigold models and wire them into the material",
    )
    pbr_normal: BoolProperty(
        name="Normal map",
        default=False,
        description="Also bake an object-space normal map from Marigold's normals",
    )
    # Multi-view
    cameras: CollectionProperty(type=DREAMWIRE_PG_camera)
    camera_index: IntProperty(default=0)
    coverage_threshold: FloatProperty(
        name="Covered",
        default=0.6,
        min=0.05,
        max=1.0,
        description="Coverage above which later views keep the texture",
    )
    multiview_strength: FloatProperty(name="Inpaint strength", default=1.0, min=0.0, max=1.0)
    # Colour consistency across views (core/texturing: color_match.py, depth_edges.py).
    # The settings before these existed: Match colours off, exponent 2, feather 0.
    colour_match: BoolProperty(
        name="Match colours",
        default=True,
        description="Before blending a later view, shift what it generated (in CIELAB) to "
        "agree with the texture so far where both see the surface",
    )
    colour_match_method: EnumProperty(
        name="Method",
        items=[
            ("mean_std", "Mean and spread", "Shift and scale each CIELAB channel (robust)"),
            (
                "histogram",
                "Histogram",
                "Match each CIELAB channel's quantiles: also undoes "
                "contrast changes, needs a larger overlap",
            ),
        ],
        default="mean_std",
    )
    facing_exponent: FloatProperty(
        name="Facing exponent",
        default=3.0,  # StableGen's Weight Exponent default (stablegen/core/properties.py)
        min=0.5,
        max=16.0,
        description="Blend weight = facing ratio ^ exponent: higher favours head-on views and "
        "narrows the crossfade between views",
    )
    edge_feather: FloatProperty(
        name="Edge feather",
        default=3.0,
        min=0.0,
        max=32.0,
        subtype="PIXEL",
        description="Pixels over which a view's weight fades out toward depth edges "
        "(silhouettes), so outlines do not bleed onto what lies behind; 0: off",
    )
    # Cameras by coverage (Add Cameras by Coverage; Multi-view with no cameras listed)
    auto_cameras: BoolProperty(
        name="Place cameras by coverage",
        default=False,
        description="With no cameras listed, Multi-view projection places its own where they "
        "cover the selected meshes best (replacing the ones it placed before); listed "
        "cameras are always used as they are",
    )
    auto_camera_count: IntProperty(
        name="Cameras",
        default=6,
        min=1,
        max=16,
        description="The most cameras to place; fewer when more would add almost nothing",
    )
    auto_camera_hemisphere: BoolProperty(
        name="Upper half only",
        default=True,
        description="Only viewpoints at or above the meshes' centre (objects on the ground)",
    )
    # View-aware prompts: each view's prompt ends with the side of the object it sees
    view_prompts: BoolProperty(
        name="View-aware prompts",
        default=True,
        description="Append the side each camera sees (from the object's front, local -Y, "
        "and up, +Z; with several objects the world's) to that view's prompt",
    )
    view_front: StringProperty(name="Front", default="front view")
    view_side: StringProperty(name="Side", default="side view")
    view_back: StringProperty(name="Back", default="back view")
    view_top: StringProperty(name="Top", default="top view")
    view_bottom: StringProperty(name="Bottom", default="bottom view")
    inpaint_fill: EnumProperty(
        name="Masked content",
        items=_FILL_ITEMS,
        default="original",
        description="What later views start from where they inpaint (A1111's Masked content)",
    )
    # Grid mode (core.texturing.view_grid): several views in one generation.
    grid_mode: BoolProperty(
        name="Grid mode",
        default=False,
        description="Generate the views together, tiled into one image (the control images "
        "tiled the same way), so that the model draws them alike; then split and project "
        "each. Off: one generation per view, later views inpainting what earlier ones missed",
    )
    grid_layout: EnumProperty(
        name="Layout",
        items=_GRID_ITEMS,
        default=AUTO,
        description="How the views are tiled; more views than cells take several grids",
    )
    # Upscale
    upscale_upscaler: StringProperty(
        name="Upscaler",
        default="Lanczos",
        search=_search_upscalers,
        description="Lanczos, Nearest or an upscaler model on the backend (ESRGAN, Real-ESRGAN)",
    )
    upscale_factor: FloatProperty(name="Factor", default=2.0, min=1.0, max=8.0, step=50)
    upscale_refine: BoolProperty(
        name="Refine",
        default=False,
        description="Refine the upscaled image tile by tile with the prompt (SD upscale)",
    )
    upscale_strength: FloatProperty(
        name="Refine strength", default=REFINE_STRENGTH, min=0.0, max=1.0, subtype="FACTOR"
    )
    upscale_seamless: EnumProperty(
        name="Seamless",
        items=_SEAMLESS_ITEMS,
        default=FROM_IMAGE,
        description="Keep a tiling texture tiling",
    )
    # Animation
    frame_step: IntProperty(name="Step", default=1, min=1)
    animation_mode: EnumProperty(
        name="Mode",
        items=_ANIMATION_MODES,
        default="fixed_seed",
        description="How frames hold together",
    )
    previous_strength: FloatProperty(name="Frame strength", default=0.6, min=0.0, max=1.0)
    warp_denoise: FloatProperty(
        name="Refresh",
        default=0.15,
        min=0.0,
        max=1.0,
        subtype="FACTOR",
        description="Denoise of the light img2img over each warped frame (restores the detail "
        "that warping softens; 0: none)",
    )
    mask_grow: IntProperty(
        name="Mask growth",
        default=2,
        min=0,
        max=64,
        subtype="PIXEL",
        description="Pixels the regenerated (disoccluded) area grows by, for context to blend in",
    )
    key_every: IntProperty(
        name="Keyframe every",
        default=8,
        min=1,
        description="Generate every Nth frame; propagate the frames between",
    )
    motion_module: StringProperty(
        name="Motion module",
        default="",
        description="AnimateDiff motion module by name (e.g. mm_sd_v15_v2), from the "
        "backend's AnimateDiff folders",
    )
    context_length: IntProperty(
        name="Context",
        default=16,
        min=2,
        max=256,
        description="Frames the motion module sees together (overlapping windows)",
    )
    context_stride: IntProperty(
        name="Context stride", default=4, min=1, max=256, description="Frames between windows"
    )
    key_markers: BoolProperty(
        name="Keyframes at markers",
        default=False,
        description="Also make the frames with timeline markers keyframes",
    )
    overwrite: BoolProperty(
        name="Overwrite", default=False, description="Render every frame again instead of resuming"
    )

    def bone_overrides(self) -> dict:
        """{keypoint: (bone, end) | None} for the pose capture."""
        return {
            o.keypoint: ((o.bone, o.end) if o.bone.strip() else None) for o in self.pose_overrides
        }

    # Train LoRA from collection: renders of the collection round a turntable
    train_collection: PointerProperty(
        name="Collection",
        type=bpy.types.Collection,
        description="The collection whose meshes are rendered all the way round to train on",
    )
    train_name: StringProperty(
        name="LoRA name", default="", description="The LoRA's file name: <lora:name:1>"
    )
    train_trigger: StringProperty(
        name="Trigger word",
        default="",
        description="The word every caption starts with; write it in prompts to call the LoRA",
    )
    train_steps: IntProperty(
        name="Training steps", default=200, min=1, max=100000, description="kohya's max_train_steps"
    )
    train_views: IntProperty(
        name="Views",
        default=8,
        min=2,
        max=64,
        description="Renders round the collection, alternating two heights (at most the "
        "backend's pictures per job, 32 by default)",
    )

    def controls(self):
        return [(name, getattr(self, name)) for name in CONTROL_NAMES]

    def view_phrases(self) -> ViewPhrases | None:
        """The phrases per side, or None when view-aware prompts are off."""
        if not self.view_prompts:
            return None
        return ViewPhrases(
            self.view_front, self.view_side, self.view_back, self.view_top, self.view_bottom
        )

    def to_upscale_settings(self) -> UpscaleSettings:
        return UpscaleSettings(
            upscaler=self.upscale_upscaler,
            factor=self.upscale_factor,
            refine=self.upscale_refine,
            strength=self.upscale_strength,
            seamless=self.upscale_seamless,
        )

    def to_settings(self) -> GenerationSettings:
        return GenerationSettings(
            prompt=self.prompt,
            negative=self.negative,
            model=self.model,
            sampler=self.sampler,
            steps=self.steps,
            cfg=self.cfg,
            # Rounded: Blender keeps floats in single precision (3.5 is exact, 3.3 is not).
            distilled_cfg=round(self.distilled_cfg, 4),
            cfg_rescale=round(self.cfg_rescale, 4),
            slg_scale=round(self.slg_scale, 4),
            seed=self.seed,
            width=self.width,
            height=self.height,
            seamless=self.seamless,
            two_pass=self.two_pass,
            strength=self.strength,
            inpaint_fill=self.inpaint_fill,
            colour_as_init=self.colour_as_init,
            controls=[
                ControlSetting(name, c.enabled, c.weight, min(c.start, c.end), max(c.start, c.end))
                for name, c in self.controls()
            ],
            reference=ReferenceSetting(
                image_name=self.reference_image.name if self.reference_image else "",
                # Rounded: Blender keeps floats in single precision (0.8 -> 0.800000011).
                weight=round(self.reference_weight, 4),
                start=round(min(self.reference_start, self.reference_end), 4),
                end=round(max(self.reference_start, self.reference_end), 4),
                mode=self.reference_mode,
            ),
        )


STATES = [(s, s.title(), "") for s in ("idle", "running", "finished", "failed", "cancelled")]


class DREAMWIRE_PG_status(bpy.types.PropertyGroup):
    """Run-time state shown in the panel; lives on the window manager (not saved)."""

    state: EnumProperty(items=STATES, default="idle")
    text: StringProperty(default="")
    progress: FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    action: StringProperty(default="")


_classes = (
    DREAMWIRE_PG_control,
    DREAMWIRE_PG_control_on,
    DREAMWIRE_PG_bone_override,
    DREAMWIRE_PG_camera,
    DREAMWIRE_PG_settings,
    DREAMWIRE_PG_status,
)


_register_classes, _unregister_classes = bpy.utils.register_classes_factory(_classes)


def register() -> None:
    _register_classes()
    bpy.types.Scene.dreamwire = PointerProperty(type=DREAMWIRE_PG_settings)
    bpy.types.WindowManager.dreamwire_status = PointerProperty(type=DREAMWIRE_PG_status)
    # Saved with the object, so a scene's objects keep their prompts (core/texturing/
    # object_prompts.py: a regional prompt over the object's pixels in each view).
    bpy.types.Object.dreamwire_prompt = StringProperty(
        name="Object prompt",
        default="",
        description="This object's own prompt when a projection textures several objects: "
        "it guides the pixels where each view shows the object (the scene prompt guides "
        "the rest)",
    )


def unregister() -> None:
    del bpy.types.Object.dreamwire_prompt
    del bpy.types.WindowManager.dreamwire_status
    del bpy.types.Scene.dreamwire
    _unregister_classes()
