"""One tiny Flux picture straight from a diffusers pipeline (64x64, two steps, a fixed seed),
for the tests that compare a file format's picture with the fp32 original's."""

from __future__ import annotations

import numpy as np
import torch


def flux_picture(pipe, prompt: str = "a cat on a red chair", seed: int = 5) -> np.ndarray:
    """The picture as floats in 0..1 (height, width, 3)."""
    return pipe(
        prompt,
        height=64,
        width=64,
        num_inference_steps=2,
        max_sequence_length=16,
        generator=torch.Generator().manual_seed(seed),
        output_type="np",
    ).images[0]


def flux_picture_255(pipe) -> np.ndarray:
    """The picture in 0..255, rounded as an 8-bit image would be."""
    return np.rint(flux_picture(pipe) * 255)
