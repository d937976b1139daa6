"""A1111's inpaint "Masked content" modes on diffusers' inpaint pipelines.

- original: the masked area starts from the init image (diffusers' own behaviour).
- fill: the masked pixels are painted with blurred surrounding colours (masks.fill)
  before the VAE encodes them.
- latent noise / latent nothing: as fill, then the masked part of the encoded init
  latents is replaced by unit Gaussian noise / zeros. A1111 fills the pixels first in
  these modes too (it fills for every mode but "original"), which is what an inpainting
  checkpoint's masked-image conditioning then sees.

A1111 draws the latent noise from each image's seed (create_random_tensors(all_seeds)),
a fresh draw independent of the sampler's own noise; so does this module. The masked
latents are the ones the pipeline blends by at every step (its mask binarised at 0.5 and
scaled to the latents' size), so the replaced area and the area the pipeline keeps from
the init image partition the latents exactly, as A1111's one rounded mask does for it.

diffusers starts from pure noise at strength 1 and only uses the init latents outside
the mask, so at strength 1 the four modes give the same image with a 4-channel UNet;
below 1 the noised init latents are where sampling starts.
"""

from __future__ import annotations

import inspect
import types

import numpy as np
import torch
import torch.nn.functional as F

from dreamwire.backend.canvas import masks

from . import noise

ORIGINAL = "original"
LATENT_MODES = ("latent noise", "latent nothing")


def prepare_pixels(
    mode: str, image: np.ndarray, mask: np.ndarray, wrap: masks.Wrap = masks.NO_WRAP
) -> np.ndarray:
    """The init image the VAE encodes: filled under the mask unless mode is original
    (round the edges along `wrap`'s axes: a seamless tile's)."""
    return image if mode == ORIGINAL else masks.fill(image, mask, wrap)


def latent_mask(pipe, mask_image, height: int, width: int) -> torch.Tensor:
    """1 x 1 x h x w mask of the latents the pipeline repaints (its own blend mask)."""
    m = pipe.mask_processor.preprocess(mask_image, height=height, width=width)
    size = (height // pipe.vae_scale_factor, width // pipe.vae_scale_factor)
    return F.interpolate(m, size=size)


def replace_latents(
    latents: torch.Tensor, mode: str, mask: torch.Tensor, seeds: list[int]
) -> torch.Tensor:
    """Masked latents replaced as the mode says; one row of `latents` per seed."""
    mask = mask.to(latents.device, latents.dtype)
    kept = latents * (1.0 - mask)
    if mode == "latent nothing":
        return kept
    fresh = noise.initial_noise(seeds, tuple(latents.shape[1:]))
    return kept + fresh.to(latents.device, latents.dtype) * mask


def apply(pipe, mode: str, mask_image, seeds: list[int]) -> None:
    """Make this pass's pipeline start from (and blend by) replaced init latents.

    The pipeline is built per pass, so its prepare_latents is wrapped on the instance:
    the wrapper encodes the image itself where the pipeline would (same generator, same
    order, so the sampler's noise is unchanged), edits the latents, and hands them on as
    the image, which diffusers' inpaint pipelines take as ready-made latents.
    """
    if mode not in LATENT_MODES:
        return
    original = pipe.prepare_latents
    signature = inspect.signature(original)

    def prepare_latents(self, *args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        a = bound.arguments
        image = a.get("image")
        encodes = a["return_image_latents"] or (a["latents"] is None and not a["is_strength_max"])
        channels = pipe.vae.config.latent_channels
        if image is not None and encodes and image.shape[1] != channels:
            image = image.to(device=a["device"], dtype=a["dtype"])
            lat = self._encode_vae_image(image=image, generator=a["generator"])
            lat = lat.repeat(a["batch_size"] // lat.shape[0], 1, 1, 1)
            mask = latent_mask(self, mask_image, int(a["height"]), int(a["width"]))
            a["image"] = replace_latents(lat, mode, mask, seeds)
        return original(*bound.args, **bound.kwargs)

    pipe.prepare_latents = types.MethodType(prepare_latents, pipe)
