"""Outpainting: grow the canvas, fill the new border, and mask it for inpainting.

The new border is filled by stretching the edge pixels outward (A1111's "fill" idea): the
sampler then starts from colours that continue the picture instead of grey, which matters
at denoising strengths below 1.
"""

from __future__ import annotations

import numpy as np

from dreamwire.shared.job import Outpaint


def grow(
    image: np.ndarray, mask: np.ndarray | None, out: Outpaint
) -> tuple[np.ndarray, np.ndarray]:
    """(canvas, mask) with the border added; an existing mask is kept inside."""
    pads = ((out.top, out.bottom), (out.left, out.right))
    canvas = np.pad(image, pads + ((0, 0),), mode="edge")
    inner = mask if mask is not None else np.zeros(image.shape[:2], np.uint8)
    grown = np.pad(inner, pads, mode="constant", constant_values=255)
    return canvas, grown


def generation_size(width: int, height: int, out: Outpaint, multiple: int = 8) -> tuple[int, int]:
    """Job size grown by the border, rounded up to what the VAE accepts."""

    def up(v: int) -> int:
        return -(-v // multiple) * multiple

    return up(width + out.left + out.right), up(height + out.top + out.bottom)
