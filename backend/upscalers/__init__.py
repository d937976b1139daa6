"""Image upscalers as A1111 and Krita AI Diffusion use them: plain resizes ("Lanczos",
"Nearest") and ESRGAN-family models from the library's upscaler folders (models/ESRGAN,
upscale_models, RealESRGAN): ESRGAN and Real-ESRGAN RRDBNet (both key layouts, x4/x2/x1)
and Real-ESRGAN Compact (SRVGGNet)."""

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
