"""Image upscalers as A1111 and Krita AI Diffusion use them: plain resizes ("Lanczos",
"Nearest") and ESRGAN-family models from the library's upscaler folders (models/ESRGAN,
upscale_models, RealESRGAN)."""

from __future__ import annotations

from dreamwire.backend.upscalers.api import PIXEL_UPSCALERS, names, upscale

__all__ = ["PIXEL_UPSCALERS", "names", "upscale"]
