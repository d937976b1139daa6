"""A1111's Hires.fix: a first pass at the job size, an upscale, then img2img at the
denoising strength over the larger image, so big images keep the composition the model
can only make at its native size.

"Latent" upscales the first pass's latents (bilinear, no antialias: A1111's default
"Latent" mode) and never decodes them; "Lanczos" and "Nearest" decode, resize the pixels
and encode again, like A1111's non-latent upscalers; any other name is an upscaler model
from the library (ESRGAN / Real-ESRGAN, "4x-UltraSharp", "R-ESRGAN 4x+" ...), run on the
decoded pixels the same way (dreamwire.backend.upscalers).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from dreamwire.backend import upscalers
from dreamwire.shared.job import HiresFix, HiresPlan, Job


def target_size(width: int, height: int, hires: HiresFix) -> tuple[int, int]:
    """The result's size: the upscale (A1111: int(size * scale), or "Resize width/height
    to"), floored to what the VAE accepts, less what a resize to both sides crops."""
    return hires.plan(width, height).size


def crop_latents(latents: torch.Tensor, plan: HiresPlan, scale_factor: int) -> torch.Tensor:
    """A1111's crop of the upscaled latents to the requested box (sample_hr_pass):
    truncate // 2 cells off the left/top, (truncate + 1) // 2 off the right/bottom."""
    if not (plan.truncate_x or plan.truncate_y):
        return latents
    left, top, right, bottom = (v // scale_factor for v in plan.crop_box)
    return latents[:, :, top:bottom, left:right]


def crop_pixels(images: list[Image.Image], plan: HiresPlan) -> list[Image.Image]:
    """The same crop on the upscaled pixels, on the latent cells' 8-pixel grid.

    A1111 resizes the pixels to exactly hr_upscale_to_x/y, and the VAE encoder's latents
    cover the top-left whole cells of that; then it crops the latents. Cropping the pixels
    to those cells before encoding keeps the same cells (only the encoder's view past the
    cut edge differs), and lets the img2img pipeline encode as it does for every job."""
    box = plan.crop_box
    if all(img.size == (box[2] - box[0], box[3] - box[1]) for img in images):
        return images
    return [img.crop(box) for img in images]


def second_pass_steps(first_steps: int, hires: HiresFix) -> int:
    return hires.steps or first_steps


def upscale_latents(
    latents: torch.Tensor, width: int, height: int, scale_factor: int
) -> torch.Tensor:
    size = (height // scale_factor, width // scale_factor)
    return F.interpolate(latents, size=size, mode="bilinear", antialias=False)


def check_upscaler(job: Job, library) -> None:
    """Refuse a Hires.fix upscaler the library does not have before anything runs
    (MODEL_NOT_FOUND, naming the upscalers on offer)."""
    if job.hires is not None and job.hires.upscaler != "Latent":
        upscalers.check_name(job.hires.upscaler, library)


def pixel_upscaler(ctx, reporter):
    """upscale_pixels bound to the job's library, device and cancel button."""

    def run(images: np.ndarray, width: int, height: int, upscaler: str) -> list[Image.Image]:
        if upscaler not in upscalers.PIXEL_UPSCALERS:
            reporter.state("generating", f"Hires.fix: upscaling with {upscaler}")
        return upscale_pixels(
            images,
            width,
            height,
            upscaler,
            library=ctx.library,
            device=ctx.device.device,
            dtype=ctx.device.dtype,
            should_cancel=reporter.should_cancel,
        )

    return run


def upscale_pixels(
    images: np.ndarray,
    width: int,
    height: int,
    upscaler: str,
    *,
    library=None,
    device=None,
    dtype=None,
    should_cancel=None,
) -> list[Image.Image]:
    """B x H x W x 3 floats in 0..1 to resized PIL images.

    A model upscaler goes as A1111's images.resize_image does: Upscaler.upscale by
    max(width / w, height / h) to that size floored to 8 px (its passes, then Lanczos),
    then Lanczos to width x height if that differs."""
    if upscaler not in upscalers.PIXEL_UPSCALERS:
        return _model_upscale(
            images, width, height, upscaler, library, device, dtype, should_cancel
        )
    resample = Image.NEAREST if upscaler == "Nearest" else Image.LANCZOS
    out = []
    for img in images:
        pil = Image.fromarray((img * 255).round().astype(np.uint8))
        out.append(pil.resize((width, height), resample))
    return out


def _model_upscale(images, width, height, name, library, device, dtype, should_cancel):
    from dreamwire.backend.upscalers import run

    entry = upscalers.find(library, name)
    out = []
    for img in images:
        pixels = (img * 255).round().astype(np.uint8)
        h, w = pixels.shape[:2]
        scale = max(width / w, height / h)
        if scale > 1.0:
            size = (int(h * scale) // 8 * 8, int(w * scale) // 8 * 8)
            pixels = run.upscale_with_entry(
                pixels, entry, size, device=device, dtype=dtype, should_cancel=should_cancel
            )
        pil = Image.fromarray(pixels)
        out.append(
            pil if pil.size == (width, height) else pil.resize((width, height), Image.LANCZOS)
        )
    return out
