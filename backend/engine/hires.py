"""A1111's Hires.fix: a first pass at the job size, an upscale, then img2img at the
denoising strength over the larger image, so big images keep the composition the model
can only make at its native size.

"Latent" upscales the first pass's latents (bilinear, no antialias: A1111's default
"Latent" mode) and never decodes them; "Lanczos" and "Nearest" decode, resize the pixels
and encode again, like A1111's non-latent upscalers.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from dreamwire.shared.job import HiresFix


def target_size(width: int, height: int, hires: HiresFix, multiple: int = 8) -> tuple[int, int]:
    """Upscaled size, floored to what the VAE accepts (A1111: int(size * scale))."""
    return (
        int(width * hires.scale) // multiple * multiple,
        int(height * hires.scale) // multiple * multiple,
    )


def second_pass_steps(first_steps: int, hires: HiresFix) -> int:
    return hires.steps or first_steps


def upscale_latents(
    latents: torch.Tensor, width: int, height: int, scale_factor: int
) -> torch.Tensor:
    size = (height // scale_factor, width // scale_factor)
    return F.interpolate(latents, size=size, mode="bilinear", antialias=False)


def upscale_pixels(images: np.ndarray, width: int, height: int, upscaler: str) -> list[Image.Image]:
    """B x H x W x 3 floats in 0..1 to resized PIL images."""
    resample = Image.NEAREST if upscaler == "Nearest" else Image.LANCZOS
    out = []
    for img in images:
        pil = Image.fromarray((img * 255).round().astype(np.uint8))
        out.append(pil.resize((width, height), resample))
    return out
