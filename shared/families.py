"""Model families as data: what a host needs to know about a checkpoint's architecture.

One `ModelFamily` per architecture, keyed by the name that travels on the wire ("sd1",
"sd2", "sdxl": the backend's `model_families` in its welcome, the catalog's "family" of each
architecture). Hosts read labels and sizes here instead of keeping tables of their own; the
backend's per-family engine spec (pipelines, text encoders, latent factors) builds on the
same keys. A new family is one entry here plus the backend's.

Stdlib only: this module ships inside the Blender and Krita plugins.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class NativeResolution:
    """The sizes a checkpoint family samples well at (Krita AI Diffusion's
    CheckpointResolution: min/max side and the largest pixel count)."""

    native: int  # the training resolution's side
    max_side: int
    max_pixels: int


@dataclass(frozen=True)
class GenerationDefaults:
    """The settings a host switches to when the artist picks a model of this family, so
    that a Flux model does not inherit SD's 7.0 CFG and DPM++ sampler."""

    steps: int = 20
    cfg: float = 7.0
    sampler: str = "DPM++ 2M Karras"
    # Forge's "Distilled CFG Scale" (the guidance a guidance-distilled model was trained
    # with); None where the family has no such input.
    distilled_cfg: float | None = None

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, body: Any) -> GenerationDefaults:
        """Missing keys take this class's defaults; raises KeyError/TypeError/ValueError/
        AttributeError for a body of the wrong shape (the caller drops the entry)."""
        body = body or {}
        distilled = body.get("distilled_cfg")
        return cls(
            steps=int(body.get("steps", 20)),
            cfg=float(body.get("cfg", 7.0)),
            sampler=str(body.get("sampler", "DPM++ 2M Karras")),
            distilled_cfg=None if distilled is None else float(distilled),
        )


@dataclass(frozen=True)
class ModelFamily:
    key: str  # the wire name
    label: str  # what an artist reads: "SD1.x"
    resolution: NativeResolution
    # Lower-case fragments of checkpoint names that mark the family, for a backend that does
    # not report families (a guess; the backend's word wins).
    name_hints: tuple[str, ...] = ()
    defaults: GenerationDefaults = GenerationDefaults()


SD1 = ModelFamily(
    "sd1",
    "SD1.x",
    # Krita AI Diffusion's figures for SD1.5.
    NativeResolution(512, 768, 512 * 768),
)
SD2 = ModelFamily(
    "sd2",
    "SD2.x",
    # Krita AI Diffusion has no SD2; SD2-768 is trained at 768x768, given SD1's side range
    # (+50%) and SDXL's pixel cap (the training size's area).
    NativeResolution(768, 1152, 768 * 768),
    name_hints=("v2-", "v2.", "sd2", "sd_2", "768-v", "v2_"),
)
SDXL = ModelFamily(
    "sdxl",
    "SDXL",
    # Krita AI Diffusion's figures for SDXL.
    NativeResolution(1024, 1280, 1024 * 1024),
    name_hints=("xl", "pony"),
)
FLUX = ModelFamily(
    "flux",
    "Flux.1",
    # Krita AI Diffusion's figures for Flux (max side and pixels 2048, 2048**2).
    NativeResolution(1024, 2048, 2048 * 2048),
    name_hints=("flux",),
    # Forge's Flux preset: Euler (flow matching, the "Simple" schedule), real CFG 1 (no
    # negative prompt pass), Distilled CFG 3.5; schnell is distilled to 4 steps (its
    # model's own default, see the backend's family spec).
    defaults=GenerationDefaults(steps=20, cfg=1.0, sampler="Euler", distilled_cfg=3.5),
)
SD3 = ModelFamily(
    "sd3",
    "SD3.5",
    # Stability's SD3.5 cards: 1 MP at 1024 px for Large, Medium trained up to 1440 px.
    NativeResolution(1024, 1440, 1440 * 1440),
    name_hints=("sd3", "sd_3", "stable-diffusion-3", "stable_diffusion_3"),
    # Stability's SD3.5 Large card (diffusers example): 28 steps, guidance 3.5, Euler over
    # the shifted flow-matching schedule; Large Turbo and Medium have their own (the
    # backend's family spec variants: 4 steps CFG 1, 40 steps CFG 4.5).
    defaults=GenerationDefaults(steps=28, cfg=3.5, sampler="Euler"),
)

ZIMAGE = ModelFamily(
    "zimage",
    "Z-Image",
    # Tongyi-MAI's model card samples at 1024 px and up to 2048 px sides (as Flux).
    NativeResolution(1024, 2048, 2048 * 2048),
    name_hints=("z-image", "z_image", "zimage"),
    # Z-Image Turbo's model card and ComfyUI's template: 8 function evaluations, no CFG
    # (diffusers' guidance_scale 0, ComfyUI's CFG 1), flow-matching Euler over the model's
    # shifted schedule (shift 3, ComfyUI's ModelSamplingAuraFlow / "simple").
    defaults=GenerationDefaults(steps=8, cfg=1.0, sampler="Euler"),
)

FLUX2 = ModelFamily(
    "flux2",
    "Flux.2 Klein",
    NativeResolution(1024, 2048, 2048 * 2048),
    name_hints=("flux-2", "flux2", "flux.2", "klein"),
    # BFL's Klein 4B/9B model cards: distilled to 4 steps, guidance 1 (no CFG).
    defaults=GenerationDefaults(steps=4, cfg=1.0, sampler="Euler"),
)

QWEN_IMAGE = ModelFamily(
    "qwen-image",
    "Qwen-Image",
    # The Qwen-Image model card's sizes: 1328x1328 for 1:1, up to 1664x928 for 16:9 (the
    # pipeline's 1024x1024-pixel default is below its training size).
    NativeResolution(1328, 1664, 1328 * 1328),
    name_hints=("qwen",),
    # ComfyUI's Qwen-Image template: 20 steps, CFG 2.5 (real CFG over an empty negative
    # prompt; diffusers' model card runs 50 steps at true_cfg_scale 4), Euler over the
    # model's shifted flow-matching schedule.
    defaults=GenerationDefaults(steps=20, cfg=2.5, sampler="Euler"),
)


@dataclass(frozen=True)
class FamilyInfo:
    """A family as a backend describes it in its welcome (`families`): the shared entry
    plus what that backend can run with it, so that a host older than the backend still
    gets a new family's label, sizes and defaults, and greys out what it cannot do."""

    family: ModelFamily
    modes: tuple[str, ...] = ()  # job kinds: "txt2img", "img2img", "inpaint", "edit"
    # Features beyond plain generation (the backend's Support flags: "hires_latent",
    # "seamless", "regions", "composable", "prompt_schedules", "variation_seed",
    # "controlnet", "t2i_adapter", "ip_adapter", "refine_upscale", "latent_fill").
    supports: tuple[str, ...] = field(default_factory=tuple)

    def to_wire(self) -> dict[str, Any]:
        f = self.family
        return {
            "label": f.label,
            "resolution": asdict(f.resolution),
            "defaults": f.defaults.to_wire(),
            "modes": list(self.modes),
            "supports": list(self.supports),
        }

    @classmethod
    def from_wire(cls, key: str, body: Any) -> FamilyInfo | None:
        """None for a body of the wrong shape (an older or a hostile backend)."""
        try:
            res = body["resolution"]
            family = ModelFamily(
                str(key),
                str(body["label"]),
                NativeResolution(int(res["native"]), int(res["max_side"]), int(res["max_pixels"])),
                defaults=GenerationDefaults.from_wire(body.get("defaults")),
            )
            modes = tuple(str(m) for m in body.get("modes") or ())
            supports = tuple(str(m) for m in body.get("supports") or ())
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        return cls(family, modes, supports)


FAMILIES: dict[str, ModelFamily] = {
    f.key: f for f in (SD1, SD2, SDXL, FLUX, SD3, QWEN_IMAGE, ZIMAGE, FLUX2)
}
DEFAULT = SD1  # what an unknown key is treated as (the most common family)
# Name hints are tried in this order: Flux.2's before "flux" (a "flux-2-klein" is not
# Flux.1), then "flux" (a "flux-xl-style" LoRA merge is Flux), "qwen" before "xl" (no Qwen
# name has "xl", "qwen-image-2512-xl-lora" is Qwen), "sd3" before SDXL's "xl", "xl" before
# SD2's "v2-" (an "sdxl-v2-..." is SDXL).
_GUESS_ORDER = (FLUX2, FLUX, QWEN_IMAGE, SD3, ZIMAGE, SDXL, SD2)


def family(key: str | ModelFamily | None) -> ModelFamily:
    """The family a wire key names; DEFAULT for a key this side does not know. A family
    itself (a backend's description of it, FamilyInfo.family) is taken as it is."""
    if isinstance(key, ModelFamily):
        return key
    return FAMILIES.get(key or "", DEFAULT)


def label(key: str) -> str:
    """ "SD1.x" for "sd1"; a key this side does not know is shown as it is."""
    known = FAMILIES.get(key)
    return known.label if known is not None else key


def guess_from_name(name: str) -> str:
    """A family key guessed from a checkpoint's name, for a backend that does not report
    families."""
    low = (name or "").lower()
    for fam in _GUESS_ORDER:
        if any(hint in low for hint in fam.name_hints):
            return fam.key
    return DEFAULT.key
