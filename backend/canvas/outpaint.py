"""Outpainting: grow the canvas, fill the new border, and mask it for inpainting.

The new border starts as A1111's "fill" (masks.fill): blurred colours of the picture
spreading outward. That is what A1111's "Poor man's outpainting" script does (the
picture pasted on a larger canvas, "Masked content: fill" by default), and it replaces
the edge stretching used before, which drew streaks of the outermost pixel row. The
sampler then starts from colours that continue the picture instead of black, which
matters at denoising strengths below 1 whatever the job's own masked-content mode.

`Canvas` records that layout (picture size, border) for the job's extensions: ControlNet
units lay their images out on the grown canvas with it (backend/conditioning/on_canvas.py).
"""

from __future__ import annotations

from dataclasses import dataclass

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


def pad(image: np.ndarray, out: Outpaint, value: int | tuple[int, ...] = 0) -> np.ndarray:
    """`image` (H x W or H x W x C) with the border added, filled with `value` (one number,
    or one per channel)."""
    h, w = image.shape[:2]
    grown = np.empty(
        (h + out.top + out.bottom, w + out.left + out.right, *image.shape[2:]), image.dtype
    )
    grown[...] = value
    grown[out.top : out.top + h, out.left : out.left + w] = image
    return grown


@dataclass(frozen=True)
class Canvas:
    """The picture an img2img or inpaint job denoises, as the runner laid it out, so that
    extensions can lay their own images out the same way (ControlNet units made for the
    artist's picture must stay pixel-aligned with it when the canvas grows).

    The runner resizes the init image to `picture` (the job size; the original size for
    "only masked" inpainting), adds `border` (the job's outpaint, zero when not outpainting)
    and fills it (grow); the pass then resizes the canvas to its generation size.
    """

    image: np.ndarray  # H x W x 3 uint8: the picture on its canvas, border filled
    mask: np.ndarray | None  # H x W uint8, 255 = repaint, border included; unblurred
    original: tuple[int, int]  # (width, height) of the job's init image
    picture: tuple[int, int]  # (width, height) the init image was resized to
    border: Outpaint

    @property
    def grown(self) -> bool:
        return self.border.any()

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the grown canvas, before the pass resizes it."""
        return self.image.shape[1], self.image.shape[0]

    def matches_original(self, image: np.ndarray) -> bool:
        """An image the size of the job's init image: made for the artist's picture."""
        return (image.shape[1], image.shape[0]) == self.original

    def matches_canvas(self, image: np.ndarray) -> bool:
        """An image the size of the grown canvas: already laid out on it (a Krita control
        layer is read over the whole region the job covers, border included)."""
        return (image.shape[1], image.shape[0]) == self.size

    def grow_like_picture(self, rgb: np.ndarray) -> np.ndarray:
        """An init-image-sized RGB image through the picture's own steps (resize, grow with
        A1111's fill); the init image itself comes out as `image`."""
        return grow(masks.resize(rgb, *self.picture), None, self.border)[0]
