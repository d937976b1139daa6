"""diffusers pipeline classes per model family and mode, built over shared components.

A pipeline object is only a thin holder of modules, so each job builds the one it needs
around the cached model's components: the UNet, VAE and text encoders are loaded once
and shared by txt2img, img2img and inpaint (and by the ControlNet variants that the
conditioning package picks through an extension).
"""

from __future__ import annotations

from typing import Any

import diffusers

from dreamwire.shared.errors import DreamwireError, ErrorCode

CLASSES = {
    ("sd", "txt2img"): "StableDiffusionPipeline",
    ("sd", "img2img"): "StableDiffusionImg2ImgPipeline",
    ("sd", "inpaint"): "StableDiffusionInpaintPipeline",
    ("sdxl", "txt2img"): "StableDiffusionXLPipeline",
    ("sdxl", "img2img"): "StableDiffusionXLImg2ImgPipeline",
    ("sdxl", "inpaint"): "StableDiffusionXLInpaintPipeline",
}

SD_COMPONENTS = ("vae", "text_encoder", "tokenizer", "unet", "scheduler")
SDXL_COMPONENTS = SD_COMPONENTS + ("text_encoder_2", "tokenizer_2")


def kind(family: str) -> str:
    """ "sd" for SD1.x/SD2.x (one text encoder), "sdxl" for SDXL."""
    return "sdxl" if family == "sdxl" else "sd"


def pipeline_class(family: str, mode: str) -> type:
    try:
        return getattr(diffusers, CLASSES[(kind(family), mode)])
    except KeyError:
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED, f"no {mode} pipeline for a {family} model"
        ) from None


def build(
    cls: type,
    family: str,
    components: dict[str, Any],
    scheduler,
    extra: dict[str, Any] | None = None,
):
    """Instantiate `cls` around the shared components with this job's scheduler."""
    names = SDXL_COMPONENTS if kind(family) == "sdxl" else SD_COMPONENTS
    parts = {n: components[n] for n in names if n != "scheduler"}
    parts["scheduler"] = scheduler
    parts.update(extra or {})
    if kind(family) == "sd":
        # Artists' checkpoints carry no safety checker; the pipeline must not ask for one.
        parts.setdefault("safety_checker", None)
        parts.setdefault("feature_extractor", None)
        pipe = cls(**parts, requires_safety_checker=False)
    else:
        pipe = cls(**parts)
    pipe.set_progress_bar_config(disable=True)
    return pipe
