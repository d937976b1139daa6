"""Scene settings -> dreamwire.shared.job.Job, and what the backend lacks for them.

The bpy side copies its scene properties into `GenerationSettings` (plain data), so
everything that decides the job's content is tested without Blender.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dreamwire.shared.job import ControlUnit, Job
from dreamwire.shared.native_size import two_pass

# The panel's control names and the ControlNet types they feed.
CONTROL_TYPES = {
    "depth": "depth",
    "normals": "normalbae",
    "pose": "openpose",
    "segmentation": "seg",
    "colour": "tile",
}
CONTROL_LABELS = {
    "depth": "Depth",
    "normals": "Normals",
    "pose": "Pose",
    "segmentation": "Segmentation",
    "colour": "Colour",
}


@dataclass
class ControlSetting:
    name: str  # a key of CONTROL_TYPES
    enabled: bool = False
    weight: float = 1.0
    start: float = 0.0
    end: float = 1.0
    model: str = ""  # "" = the backend picks one by type


@dataclass
class GenerationSettings:
    prompt: str = ""
    negative: str = ""
    model: str = ""
    sampler: str = "DPM++ 2M Karras"
    steps: int = 20
    cfg: float = 7.0
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
    # that size and Hires.fix'ed to the full size (shared.native_size); `family` is the
    # model's ("sd1" | "sd2" | "sdxl"), filled in from the backend's welcome.
    two_pass: bool = True
    family: str = "sd1"

    def enabled_controls(self) -> list[ControlSetting]:
        return [c for c in self.controls if c.enabled and c.weight > 0]


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
) -> Job:
    """A validated Job. `control_images` maps panel control names to captured images;
    an enabled control without an image is skipped (the caller decides which it needs)."""
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
    use_seamless = s.seamless if seamless is None else seamless
    hires = None
    # Hires.fix is a txt2img pass pair; img2img and inpainting jobs keep their size.
    if s.two_pass and init_image is None and mask is None:
        w, h, hires = two_pass(w, h, s.family)
    job = Job(
        prompt=s.prompt,
        negative=s.negative,
        model=s.model,
        sampler=s.sampler,
        steps=int(s.steps),
        cfg=float(s.cfg),
        seed=int(s.seed if seed is None else seed),
        width=w,
        height=h,
        init_image=init_image,
        mask=mask,
        # Only a job with a mask has masked content; the others keep the Job's default.
        inpaint_fill=s.inpaint_fill if mask is not None else Job.inpaint_fill,
        strength=float(s.strength if strength is None else strength),
        seamless="both" if use_seamless else "none",
        controls=units,
        hires=hires,
        preview_every=int(s.preview_every),
        priority="interactive",
        tag=tag,
    )
    return job.validate()


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
        stem = al.rsplit(".", 1)[0] if al.endswith((".safetensors", ".ckpt", ".pt")) else al
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
