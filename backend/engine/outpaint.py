"""Outpainting: grow the canvas, fill the new border, and mask it for inpainting.

The new border starts as A1111's "fill" (masks.fill): blurred colours of the picture
spreading outward. That is what A1111's "Poor man's outpainting" script does (the
picture pasted on a larger canvas, "Masked content: fill" by default), and it replaces
the edge stretching used before, which drew streaks of the outermost pixel row. The
sampler then starts from colours that continue the picture instead of black, which
matters at denoising strengths below 1 whatever the job's own masked-content mode.
"""

from __future__ import annotations

import numpy as np

from dreamwire.shared.job import Outpaint

from . import masks


def grow(
    image: np.ndarray, mask: np.ndarray | None, out: Outpaint
) -> tuple[np.ndarray, np.ndarray]:
    """(canvas, mask) with the border added; an existing mask is kept inside."""
    pads = ((out.top, out.bottom), (out.left, out.right))
    canvas = np.pad(image, pads + ((0, 0),), mode="constant")
    border = np.pad(np.zeros(image.shape[:2], np.uint8), pads, constant_values=255)
    canvas = masks.fill(canvas, border)
    inner = mask if mask is not None else np.zeros(image.shape[:2], np.uint8)
    grown = np.pad(inner, pads, mode="constant", constant_values=255)
    return canvas, grown


def generation_size(width: int, height: int, out: Outpaint, multiple: int = 8) -> tuple[int, int]:
    """Job size grown by the border, rounded up to what the VAE accepts."""

    def up(v: int) -> int:
        return -(-v // multiple) * multiple

    return up(width + out.left + out.right), up(height + out.top + out.bottom)
