"""Image upscalers as A1111 and Krita AI Diffusion use them: plain resizes ("Lanczos",
"Nearest") and upscaler models from the library's upscaler folders (models/ESRGAN,
upscale_models, RealESRGAN), run through spandrel: ESRGAN / Real-ESRGAN in every key
layout, Compact, SwinIR, Swin2SR, HAT, DAT, OmniSR, SPAN, RealPLKSR, ATD and the rest of
its registry, with A1111's tiling, blending, pass loop and BGR input."""

from __future__ import annotations

from dreamwire.backend.upscalers.api import (
    ALIASES,
    PIXEL_UPSCALERS,
    check_name,
    find,
    names,
    upscale,
)

__all__ = ["ALIASES", "PIXEL_UPSCALERS", "check_name", "find", "names", "upscale"]
