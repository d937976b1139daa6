"""Which upscaler the two-pass rule's second pass (shared.native_size) enlarges with.

Krita AI Diffusion upscales its first pass with an upscale model before the 0.4 refine
(workflow.scale_refine_and_decode): "4x_NMKD-Superscale-SP_178000_G" (UpscalerName.default)
when the sides grow by more than 1.5x (resolution.ScaledExtent.refinement_scaling:
upscale_quality), else "OmniSR_X2_DIV2K" (UpscalerName.fast_2x, upscale_small). Both come
with its installer; a Dreamwire backend has whatever sits in its upscaler folders and lists
it in the welcome (`upscalers`: "Lanczos", "Nearest", then the models). So: Krita AI
Diffusion's model for the step when the backend has it, else its other one, else the first
model the backend lists, else a Lanczos resize.

Stdlib only: this module ships inside the Blender and Krita plugins.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from .events import Welcome
from .model_names import stem

LANCZOS = "Lanczos"
# Resizes every backend has (and A1111's latent modes): not upscale models.
PIXEL_UPSCALERS = ("Lanczos", "Nearest")
KAD_QUALITY = "4x_NMKD-Superscale-SP_178000_G"  # UpscalerName.default
KAD_SMALL = "OmniSR_X2_DIV2K"  # UpscalerName.fast_2x
QUALITY_STEP = 1.5  # side ratio above which Krita AI Diffusion takes its quality model


def welcome_upscalers(welcome: Welcome | None) -> list[str]:
    """The upscaler names a backend's welcome lists (`upscalers`), [] when it says none."""
    return list(welcome.upscalers) if welcome is not None else []


def upscaler_choices(welcome: Welcome | None) -> list[str]:
    """What a host offers in its upscaler list: the backend's upscalers, else (an older
    backend, or none connected) the plain resizes every backend has."""
    return welcome_upscalers(welcome) or list(PIXEL_UPSCALERS)


def upscale_models(upscalers: Iterable[str]) -> list[str]:
    """The model upscalers among names, in the backend's order."""
    return [n for n in upscalers or () if n not in PIXEL_UPSCALERS and not n.startswith("Latent")]


def refine_upscaler(
    upscalers: Iterable[str] | None, first: tuple[int, int], final: tuple[int, int]
) -> str:
    """The upscaler for a second pass from `first` (w, h) to `final` (w, h), chosen from
    the names the backend lists (see the module's note)."""
    models = upscale_models(upscalers or ())
    if not models:
        return LANCZOS
    # Krita AI Diffusion's Extent.ratio: the square root of the pixel counts' ratio.
    ratio = math.sqrt((final[0] * final[1]) / max(1, first[0] * first[1]))
    prefer = (KAD_QUALITY, KAD_SMALL) if ratio > QUALITY_STEP else (KAD_SMALL, KAD_QUALITY)
    by_stem = {}
    for n in models:
        by_stem.setdefault(stem(n), n)
    for want in prefer:
        if want.lower() in by_stem:
            return by_stem[want.lower()]
    return models[0]
