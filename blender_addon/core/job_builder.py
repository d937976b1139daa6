"""Scene settings -> dreamwire.shared.job.Job, and what the backend lacks for them.

The bpy side copies its scene properties into `GenerationSettings` (plain data), so
everything that decides the job's content is tested without Blender. Which captured
controls (and the reference image) go into the jobs follows the backend's welcome
(`control_types` per model family): ones it cannot serve for the chosen model are left out
with one note naming the file to add, as Krita AI Diffusion greys out such control layers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dreamwire.shared.families import DEFAULT, FamilyInfo
from dreamwire.shared.families import label as family_label
from dreamwire.shared.family_presets import DISTILLED_CFG
from dreamwire.shared.family_support import check_job, family_info, model_info, refusal
from dreamwire.shared.job import ControlUnit, Job, Region
from dreamwire.shared.job_mode import JobMode, implied_mode
from dreamwire.shared.model_names import strip_suffix
from dreamwire.shared.native_size import two_pass
from dreamwire.shared.panel_job import panel_job
from dreamwire.shared.refine_upscaler import welcome_upscalers

# The panel's control names and the ControlNet types they feed. The face is drawn from a
# mesh's face_* vertex groups (core/face.py) as the pose is from an armature: a map ready
# for ControlNetMediaPipeFace, sent with no preprocessor.
CONTROL_TYPES = {
    "depth": "depth",
    "normals": "normalbae",
    "pose": "openpose",
    "face": "mediapipe_face",
    "segmentation": "seg",
    "colour": "tile",
}
CONTROL_LABELS = {
    "depth": "Depth",
    "normals": "Normals",
    "pose": "Pose",
    "face": "Face",
    "segmentation": "Segmentation",
    "colour": "Colour",
}
# The reference image goes as an IP-Adapter unit (A1111 ControlNet extension's type name).
REFERENCE = "reference"
REFERENCE_TYPE = "ip-adapter"
# Its mode, as Krita AI Diffusion's Reference / Style / Composition layers: the whole
# adapter, or IPAdapter_plus's style or composition blocks only (the backend's
# conditioning/ip_adapter_blocks.py). Panel mode -> (label, unit type).
REFERENCE_MODES = {
    "reference": ("Reference", "ip-adapter"),
    "style": ("Style", "ip-adapter-style"),
    "composition": ("Composition", "ip-adapter-composition"),
}
# Krita AI Diffusion's presets per mode (presets/control.json, as krita_plugin
# logic/controls.py DEFAULTS): (weight, start, end). Reference 0.8 over 0.2-0.8: the
# picture's style and content guide without fixing the layout, which the captured
# controls decide; Style to the end; Composition from the start, where the layout forms.
REFERENCE_DEFAULTS = {
    "reference": (0.8, 0.2, 0.8),
    "style": (0.8, 0.2, 1.0),
    "composition": (0.8, 0.0, 0.8),
}
REFERENCE_WEIGHT, REFERENCE_START, REFERENCE_END = REFERENCE_DEFAULTS["reference"]
# The encoder reads 224 px (SDXL's bigG too); a larger picture only costs wire and memory.
REFERENCE_MAX_SIDE = 1024


@dataclass
class ControlSetting:
    name: str  # a key of CONTROL_TYPES
    enabled: bool = False
    weight: float = 1.0
    start: float = 0.0
    end: float = 1.0
    model: str = ""  # "" = the backend picks one by type


@dataclass
class ReferenceSetting:
    """The N-panel's reference image: the image datablock's name ("" = none) and the unit's
    weight and range; `pixels` (H x W x 3 uint8, see reference_rgb) are read by the action,
    not by the panel, which builds settings on every redraw."""

    image_name: str = ""
    weight: float = REFERENCE_WEIGHT
    start: float = REFERENCE_START
    end: float = REFERENCE_END
    pixels: np.ndarray | None = None
    mode: str = "reference"  # a key of REFERENCE_MODES

    @property
    def enabled(self) -> bool:
        return bool(self.image_name) and self.weight > 0

    @property
    def type(self) -> str:
        """The unit type the mode sends (an unknown mode: the plain Reference)."""
        return REFERENCE_MODES.get(self.mode, REFERENCE_MODES["reference"])[1]

    @property
    def label(self) -> str:
        return REFERENCE_MODES.get(self.mode, REFERENCE_MODES["reference"])[0]


@dataclass
class GenerationSettings:
    prompt: str = ""
    negative: str = ""
    model: str = ""
    sampler: str = "DPM++ 2M Karras"
    steps: int = 20
    cfg: float = 7.0
    distilled_cfg: float = DISTILLED_CFG  # sent only for families that take it (Flux dev)
    # A1111's CFG Rescale φ (SD families) and SD3.5's skip-layer guidance scale: sent only
    # where the family supports them (shared.panel_job.guidance_options).
    cfg_rescale: float = 0.0
    slg_scale: float = 0.0
    seed: int = -1
    width: int = 512
    height: int = 512
    seamless: bool = False
    strength: float = 0.75  # img2img / inpaint denoising
    inpaint_fill: str = "original"  # A1111 "Masked content" for inpainted (multi-view) jobs
    colour_as_init: bool = False  # colour goes as img2img init image instead of a ControlNet
    preview_every: int = 1
    controls: list[ControlSetting] = field(default_factory=list)
    # Textures larger than the model composes well at its native size are generated at
    # that size and Hires.fix'ed to the full size (shared.native_size); `info` is the
    # model's family as the backend's welcome describes it (sizes, what it supports),
    # filled in by fit_to_backend.
    two_pass: bool = True
    info: FamilyInfo = field(default_factory=lambda: family_info(DEFAULT.key, None))
    reference: ReferenceSetting = field(default_factory=ReferenceSetting)
    # The backend's upscalers (its welcome's list, filled in by fit_to_backend): the
    # second pass enlarges with an upscale model among them, else Lanczos.
    upscalers: list[str] = field(default_factory=list)
    # Panel control names (and REFERENCE) the backend cannot serve for the model: left out
    # of captures and jobs (fit_to_backend fills it in from the welcome).
    skip: set[str] = field(default_factory=set)

    @property
    def family(self) -> str:
        return self.info.family.key

    def enabled_controls(self) -> list[ControlSetting]:
        return [c for c in self.controls if c.enabled and c.weight > 0 and c.name not in self.skip]

    def wanted(self) -> list[str]:
        """Panel names of the controls the settings ask for (the colour render sent as init
        image is no control), then REFERENCE when a reference image is set."""
        out = [
            c.name
            for c in self.controls
            if c.enabled and c.weight > 0 and not (c.name == "colour" and self.colour_as_init)
        ]
        return out + ([REFERENCE] if self.reference.enabled else [])


def reference_defaults(mode: str) -> tuple[float, float, float]:
    """(weight, start, end) Krita AI Diffusion gives a new layer of this mode."""
    return REFERENCE_DEFAULTS.get(mode, REFERENCE_DEFAULTS["reference"])


def control_type(name: str, reference_mode: str = "reference") -> str:
    """The unit type a panel name (or REFERENCE, in its mode) is sent as."""
    if name == REFERENCE:
        return ReferenceSetting(mode=reference_mode).type
    return CONTROL_TYPES[name]


def control_label(name: str, reference_mode: str = "reference") -> str:
    if name == REFERENCE:
        return ReferenceSetting(mode=reference_mode).label
    return CONTROL_LABELS[name]


def reference_rgb(rgba: np.ndarray) -> np.ndarray:
    """A reference picture as the backend reads it: H x W x 3 uint8 from an image's
    H x W x 3|4 uint8 pixels (top row first), transparent parts laid over white as Krita AI
    Diffusion flattens a Reference layer, and box-averaged down to REFERENCE_MAX_SIDE."""
    if rgba.ndim != 3 or rgba.shape[2] not in (3, 4) or rgba.shape[0] < 1 or rgba.shape[1] < 1:
        raise ValueError("The reference image has no pixels (is its file missing?).")
    rgb = rgba[..., :3].astype(np.float32)
    if rgba.shape[2] == 4:
        a = rgba[..., 3:4].astype(np.float32) / 255.0
        rgb = rgb * a + 255.0 * (1.0 - a)
    h, w = rgb.shape[:2]
    f = -(-max(h, w) // REFERENCE_MAX_SIDE)
    if f > 1:
        hh, ww = h // f * f, w // f * f
        rgb = rgb[:hh, :ww].reshape(hh // f, f, ww // f, f, 3).mean(axis=(1, 3))
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def round_size(v: int) -> int:
    """The nearest multiple of 8 (at least 8): what the models accept."""
    return max(8, int(v / 8.0 + 0.5) * 8)


def build_job(
    s: GenerationSettings,
    control_images: dict[str, np.ndarray] | None = None,
    init_image: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    strength: float | None = None,
    seamless: bool | None = None,
    seed: int | None = None,
    size: tuple[int, int] | None = None,
    tag: str = "",
    regions: list[Region] | None = None,
) -> Job:
    """A validated Job. `control_images` maps panel control names to captured images;
    an enabled control without an image is skipped (the caller decides which it needs).
    The reference image, when set and servable, rides along as an IP-Adapter unit.
    `regions`: regional prompts over the result (texturing's per-object prompts)."""
    images = control_images or {}
    w, h = size if size else (round_size(s.width), round_size(s.height))
    units = []
    for c in s.enabled_controls():
        img = images.get(c.name)
        if img is None:
            continue
        if c.name == "colour" and s.colour_as_init:
            if init_image is None:
                init_image = img
            continue
        units.append(
            ControlUnit(
                type=CONTROL_TYPES[c.name],
                image=img,
                model=c.model,
                weight=float(c.weight),
                start=float(c.start),
                end=float(c.end),
            )
        )
    ref = s.reference
    if ref.enabled and REFERENCE not in s.skip and ref.pixels is not None:
        units.append(
            ControlUnit(
                type=ref.type,
                image=ref.pixels,
                weight=float(ref.weight),
                start=float(min(ref.start, ref.end)),
                end=float(max(ref.start, ref.end)),
            )
        )
    use_seamless = s.seamless if seamless is None else seamless
    hires = None
    # The caller's pictures say what the job is: a capture to redraw, a mask to repaint.
    mode = implied_mode(
        picture=init_image is not None, mask=mask is not None, outpaint=False, upscale=False
    )
    # Hires.fix is a txt2img pass pair; img2img and inpainting jobs keep their size.
    if s.two_pass and mode is JobMode.TXT2IMG:
        w, h, hires = two_pass(w, h, s.info.family, upscalers=s.upscalers)
    job = panel_job(
        s,
        s.info.family,
        s.info.supports,
        mode=mode,
        seed=int(s.seed if seed is None else seed),
        width=w,
        height=h,
        init_image=init_image,
        mask=mask,
        # Only a job with a mask has masked content; the others keep the Job's default.
        inpaint_fill=s.inpaint_fill if mode is JobMode.INPAINT else Job.inpaint_fill,
        strength=float(s.strength if strength is None else strength),
        seamless="both" if use_seamless else "none",
        controls=units,
        hires=hires,
        preview_every=int(s.preview_every),
        tag=tag,
        regions=list(regions or []),
    )
    return check_job(job.validate(), s.info)


def two_pass_note(job: Job) -> str:
    """For the action's message: how a two-pass job reached its size and with which
    upscaler (with a leading space), or "" for a one-pass job."""
    h = job.hires
    if h is None or not h.resizes:
        return ""
    return (
        f" In two passes: {job.width}x{job.height}, then Hires.fix to {h.width}x{h.height} "
        f"with {h.upscaler}."
    )


def _names(items: Iterable[Any]) -> list[str]:
    out = []
    for it in items or ():
        if isinstance(it, str):
            out.append(it)
        elif isinstance(it, dict):
            for key in ("name", "title", "id"):
                if it.get(key):
                    out.append(str(it[key]))
                    break
        else:
            name = getattr(it, "name", None)
            if name:
                out.append(str(name))
    return out


def names(items: Iterable[Any]) -> list[str]:
    """Display names from a Welcome list (entries may be plain names or dicts)."""
    return _names(items)


def _matches(wanted: str, available: list[str]) -> bool:
    w = wanted.lower()
    for a in available:
        al = a.lower()
        stem = strip_suffix(al)
        if w in (al, stem) or al.startswith(w + " ") or stem.endswith("/" + w):
            return True
    return False


def controlnet_types(items: Iterable[Any]) -> set[str]:
    """ControlNet types the backend offers (from its Welcome)."""
    types = set()
    for it in items or ():
        if isinstance(it, dict):
            t = it.get("type") or it.get("control_type")
            if t:
                types.add(str(t))
                continue
            name = str(it.get("name", ""))
        else:
            name = str(it)
        low = name.lower()
        for t in CONTROL_TYPES.values():
            if t in low:
                types.add(t)
    return types


def missing_on_backend(s: GenerationSettings, welcome: Any) -> list[str]:
    """Plain sentences about what these settings need that the backend does not have."""
    if welcome is None:
        return []
    problems = []
    models = _names(getattr(welcome, "models", []))
    if s.model and models and not _matches(s.model, models):
        problems.append(f"The backend has no model named '{s.model}'.")
    if not models:
        problems.append("The backend has no Stable Diffusion models in its model folders.")
    samplers = _names(getattr(welcome, "samplers", []))
    if s.sampler and samplers and s.sampler not in samplers:
        problems.append(f"The backend does not know the sampler '{s.sampler}'.")
    if s.seamless:
        # Greyed out in the panel; the family refuses it with the backend's own words.
        why = refusal(model_info(s.model, welcome), "seamless")
        problems += [why + "; switch Seamless off."] if why else []
    if plan_controls(s, welcome).known:
        return problems  # unservable controls are left out with a note, not refused
    types = controlnet_types(getattr(welcome, "controlnets", []))
    for c in s.enabled_controls():
        if s.colour_as_init and c.name == "colour":
            continue
        t = CONTROL_TYPES[c.name]
        if t not in types:
            problems.append(
                f"{CONTROL_LABELS[c.name]} control needs a '{t}' ControlNet; the backend has none."
            )
    return problems


@dataclass(frozen=True)
class ControlPlan:
    """Which of the wanted controls the backend runs for the model (its welcome's
    `control_types` / `control_missing` for the model's family)."""

    family: str
    used: list[str]  # panel names (and REFERENCE), in panel order
    skipped: dict[str, str]  # panel name -> why not, naming the file to add
    known: bool  # False: the backend does not say (an older one); everything is tried
    reference_mode: str = "reference"  # names the reference by its mode
    # Why the family runs no control units at all, else "".
    refused: str = ""

    def label(self, name: str) -> str:
        return control_label(name, self.reference_mode)

    def note(self) -> str:
        """One sentence for the artist, or "" when nothing is left out."""
        if not self.skipped:
            return ""
        left = ", ".join(self.label(n) for n in self.skipped)
        if self.refused:
            return f"Left out {left}: {self.refused}."
        fam = family_label(self.family)
        parts = "; ".join(f"{self.label(n)}: {why}" for n, why in self.skipped.items())
        return f"Left out {left} (the backend cannot run them for {fam} models; {parts})."


def plan_controls(s: GenerationSettings, welcome: Any) -> ControlPlan:
    """The wanted controls split into used and skipped. A backend that does not list
    `control_types`, or not for this family, leaves everything used: it still refuses a
    job it cannot run, with a clear error."""
    info = model_info(s.model, welcome) if welcome is not None else s.info
    family = info.family.key
    wanted = s.wanted()
    served = welcome.control_types.get(family) if welcome is not None else None
    mode = s.reference.mode
    refused = refusal(info, "controlnet")
    if refused and wanted:
        # The family runs no control units: every capture is left out (Depth is on by
        # default, so refusing the action would stop every Flux projection).
        return ControlPlan(family, [], {n: refused for n in wanted}, True, mode, refused)
    if served is None:
        return ControlPlan(family, wanted, {}, False, mode)
    missing = welcome.control_missing.get(family, {})
    used, skipped = [], {}
    for name in wanted:
        t = control_type(name, mode)
        if t in served:
            used.append(name)
        else:
            skipped[name] = str(missing.get(t) or f"the backend has no {t} model")
    return ControlPlan(family, used, skipped, True, mode)


def fit_to_backend(s: GenerationSettings, welcome: Any) -> str:
    """Set the model's family, the controls to leave out and the upscalers on offer from
    the backend's welcome; returns the note about what was left out ("" when nothing)."""
    if welcome is not None:
        s.info = model_info(s.model, welcome)
        s.upscalers = welcome_upscalers(welcome)
    plan = plan_controls(s, welcome)
    s.skip = set(plan.skipped)
    return plan.note()
