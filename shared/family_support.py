"""What a model's family can do, as a host checks it before submitting: the backend's
description of the family (its welcome's `families`) and why a feature it does not list
is refused, in the words the backend itself refuses it with.

The backend's family spec has one `Support` flag per feature below and refuses a job
using a feature it lacks with `reason(label, feature)` (MODEL_UNSUPPORTED); the hosts grey
the feature out and refuse it with the same sentence before anything goes on the wire.

Stdlib only: this module ships inside the Blender and Krita plugins.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TypeVar

from .errors import DreamwireError, ErrorCode
from .events import Welcome
from .families import FamilyInfo, ModelFamily
from .families import family as shared_family
from .job import Job
from .job_mode import JobMode
from .model_names import same_model
from .native_size import model_family

# Feature (the welcome's `supports` names) -> why a family may refuse it, shown after the
# family's label ("Flux.1 models: ...").
FEATURE_REASONS = {
    "hires_latent": "Hires.fix with a Latent upscaler needs unpacked 4-channel latents; "
    "pick a pixel upscaler",
    "seamless": "seamless tiling pads the denoiser's convolutions, and this model's "
    "transformer has none",
    "regions": "regional prompts need per-region attention masks, not built for its joint "
    "attention yet",
    "composable": "AND prompts need one denoiser pass per subprompt, not built for it yet",
    "prompt_schedules": "prompt editing and alternation ([a:b:n], [a|b]) are not built for "
    "its text encoders yet",
    "variation_seed": "variation seeds blend unpacked noise, not built for its packed latents yet",
    "controlnet": "control units for it are not built yet",
    # Known once a unit's file is found (a depth unit may pick a T2I-Adapter): the backend's.
    "t2i_adapter": "T2I-Adapters hook a UNet's down blocks, and this model has no UNet; use a "
    "ControlNet of the type",
    "ip_adapter": "reference units for it are not built yet",
    "refine_upscale": "tiled upscale-and-refine is not built for it yet",
    "skip_layer_guidance": "skip-layer guidance skips layers of an SD3 MMDiT, which this model "
    "does not have",
    "latent_fill": "the latent noise / latent nothing masked contents are built for SD's "
    "inpaint pipelines only; pick fill or original",
    "attention_maps": "attention heat maps (DAAM) read a UNet's cross-attention to the "
    "prompt's tokens, and this model's joint attention has none",
    "cfg_rescale": "CFG rescale acts on an eps or v-prediction UNet's guided output, and this "
    "model predicts a flow",
    "train_lora": "LoRA training is built for SD1.x and SDXL models only so far; pick an "
    "SD1.x or SDXL checkpoint to train on",
}
FEATURES = tuple(FEATURE_REASONS)
T = TypeVar("T")


def reason(label: str, feature: str) -> str:
    """The sentence a family refuses `feature` with: "Flux.1 models: seamless tiling ..."."""
    return f"{label} models: {FEATURE_REASONS[feature]}"


def family_info(key: str, welcome: Welcome | None) -> FamilyInfo:
    """Family `key` as this backend describes it (label, sizes, defaults, supports), else
    the shared table's entry with every feature allowed: an older backend that does not
    describe its families still refuses what it cannot run, with its own message."""
    described = welcome.families.get(key) if welcome is not None else None
    if described is not None:
        return described
    return FamilyInfo(shared_family(key), supports=FEATURES)


def model_info(model: str, welcome: Welcome | None) -> FamilyInfo:
    """The family of `model` ("" = the backend's default) as family_info describes it,
    with the model's own defaults where the welcome names some (`model_defaults`: Flux
    schnell's 4 steps, Kontext's Distilled CFG): what a host switches to and sends."""
    info = family_info(model_family(model, welcome), welcome)
    own = per_model(welcome.model_defaults, model, welcome) if welcome is not None else None
    if own is None:
        return info
    return replace(info, family=replace(info.family, defaults=own))


def per_model(table: dict[str, T], model: str, welcome: Welcome) -> T | None:
    """`model`'s entry in one of the welcome's per-checkpoint tables ("" = the backend's
    default); the artist may have typed a file name or a path's stem, as model_family
    allows."""
    name = model or welcome.default_model
    if name in table:
        return table[name]
    return next((v for known, v in table.items() if same_model(name, known)), None)


def described(family: str | ModelFamily | FamilyInfo) -> FamilyInfo:
    """A job builder's `family` as a FamilyInfo: the backend's description as given, or a
    bare family (a key of the shared table) with every feature allowed (the backend
    refuses what it cannot run, in its own words)."""
    if isinstance(family, FamilyInfo):
        return family
    return FamilyInfo(shared_family(family) if isinstance(family, str) else family, FEATURES)


def refusal(info: FamilyInfo, feature: str) -> str | None:
    """Why the family cannot run `feature`, or None when it can."""
    if feature in info.supports:
        return None
    return reason(info.family.label, feature)


def job_features(job: Job) -> list[str]:
    """The features a host's job uses that a host can see (prompt syntax, AND and
    schedules, is the backend's to parse and refuse). A plain upscale runs no model: none."""
    if job.upscale is not None and not job.upscale.refine:
        return []
    if job.mode == JobMode.TRAIN_LORA:  # a str enum: a host's unvalidated "train_lora" too
        # The sample pictures are plain txt2img (the job's other fields are refused).
        return ["train_lora"]
    used = []
    if job.hires is not None and job.hires.upscaler == "Latent":
        used.append("hires_latent")
    if job.seamless != "none":
        used.append("seamless")
    if job.regions:
        used.append("regions")
    if job.subseed_strength > 0:
        used.append("variation_seed")
    # Reference units (the "ip-adapter" types) run the family's reference kind (IP-Adapter
    # on SD, Flux Redux on Flux); every other unit a ControlNet-like one.
    reference = [u for u in job.controls if u.type.startswith("ip-adapter")]
    if reference:
        used.append("ip_adapter")
    if len(reference) < len(job.controls):
        used.append("controlnet")
    if job.upscale is not None and job.upscale.refine:
        used.append("refine_upscale")
    if job.slg_scale > 0:
        used.append("skip_layer_guidance")
    if job.mask is not None and job.inpaint_fill in ("latent noise", "latent nothing"):
        used.append("latent_fill")
    if job.attention_maps:
        used.append("attention_maps")
    if job.cfg_rescale > 0:
        used.append("cfg_rescale")
    return used


def skip_layer_guidance_refusal(job: Job) -> str:
    """Why a family that has skip-layer guidance cannot run it in `job` ("" when it can):
    diffusers has it in SD3's txt2img pipeline only, acting on the guided (CFG above 1)
    prediction. Hosts send it only where it runs; the backend refuses the rest."""
    if job.slg_scale <= 0:
        return ""
    if job.init_image is not None or job.hires is not None:
        return (
            "only txt2img without Hires.fix runs it (diffusers' SD3 img2img and inpaint have none)"
        )
    if job.cfg <= 1.0:
        return "it acts on classifier-free guidance: set CFG scale above 1"
    return ""


def check_job(job: Job, info: FamilyInfo) -> Job:
    """`job` when its family runs everything it uses; else the backend's own refusal
    (MODEL_UNSUPPORTED with the family's reason), raised before it is sent."""
    for feature in job_features(job):
        why = refusal(info, feature)
        if why is not None:
            raise DreamwireError(ErrorCode.MODEL_UNSUPPORTED, why)
    return job


# Why a host greys out its edit action: Kontext is the one edit model the backend runs.
EDIT_REASON = "needs an edit model (Flux Kontext)"


# Why a host greys out its layers action (a picture split into RGBA layers).
LAYERS_REASON = "needs a layered model (Qwen-Image-Layered)"
_MODE_REASONS = {"edit": EDIT_REASON, "layers": LAYERS_REASON}


def mode_refusal(mode: str, model: str, welcome: Welcome | None) -> str | None:
    """Why `model` ("" = the backend's default) cannot run a job of `mode` ("edit",
    "layers": modes only special models run), or None when it can: its family must list
    the mode and the model itself run it (the welcome's `model_modes`; a backend that does
    not say offers neither)."""
    why = _MODE_REASONS[mode]
    if welcome is None or mode not in model_info(model, welcome).modes:
        return why
    if mode not in (per_model(welcome.model_modes, model, welcome) or ()):
        return why
    return None


def edit_refusal(model: str, welcome: Welcome | None) -> str | None:
    return mode_refusal("edit", model, welcome)


def check_mode(mode: str, model: str, welcome: Welcome | None) -> None:
    """Refuse an edit or layers job on a model that cannot run it before it is sent, as
    the backend would (MODEL_UNSUPPORTED)."""
    why = mode_refusal(mode, model, welcome)
    if why is not None:
        raise DreamwireError(ErrorCode.MODEL_UNSUPPORTED, f"{model or 'The model'} {why}")


def check_edit(model: str, welcome: Welcome | None) -> None:
    check_mode("edit", model, welcome)
