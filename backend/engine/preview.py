"""Cheap previews: latents to RGB by a fixed linear map, no VAE and no extra weights.

The 4 x 3 factors are the well-known per-family approximations (A1111's "Approx cheap",
also used by ComfyUI): good enough to see composition and colour while a job runs, at a
cost of one small matmul per preview.
"""

from __future__ import annotations

import numpy as np
import torch

LATENT_RGB = {
    "sd1": [
        [0.3512, 0.2297, 0.3227],
        [0.3250, 0.4974, 0.2350],
        [-0.2829, 0.1762, 0.2721],
        [-0.2120, -0.2616, -0.7177],
    ],
    "sdxl": [
        [0.3920, 0.4054, 0.4549],
        [-0.2634, -0.0196, 0.0653],
        [0.0568, 0.1687, -0.0755],
        [-0.3112, -0.2359, -0.2076],
    ],
}


def latents_to_rgb(latents: torch.Tensor, family: str = "sd1", max_side: int = 256) -> np.ndarray:
    """First image of a B x 4 x h x w latent batch as a small h x w x 3 uint8 array."""
    lat = latents[0].detach().float().cpu()
    factors = torch.tensor(LATENT_RGB.get(family, LATENT_RGB["sd1"]))
    rgb = torch.einsum("chw,ck->hwk", lat[: factors.shape[0]], factors)
    img = ((rgb + 1.0) * 127.5).clamp(0, 255).to(torch.uint8).numpy()
    step = max(1, -(-max(img.shape[:2]) // max_side))
    return np.ascontiguousarray(img[::step, ::step])
