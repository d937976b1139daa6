"""The UV inpaint pass: the texture itself, inpainted where filling left holes.

Holes are texels inside UV islands that no view covered and that spreading from covered
neighbours did not reach (texel_fill.py). The backend gets the texture as the init image
and a mask of exactly those texels: no texel outside the islands is in it, so the model
repaints only inside islands, and only hole texels are taken back from its result. What
lies between the islands is context the model sees but does not paint: the nearest
island colours, not the empty texture's black.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .texel_fill import TexelFill, TexelState, push_pull


@dataclass
class UVInpaint:
    init_image: np.ndarray  # H x W x 3 uint8, the texture at the job's size
    mask: np.ndarray  # H x W uint8, 255 on hole texels (inside islands only)


def resize_nearest(image: np.ndarray, width: int, height: int) -> np.ndarray:
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    ys = (np.arange(height) * h) // height
    xs = (np.arange(width) * w) // width
    return image[ys][:, xs]


def hole_image(mask: np.ndarray, fill: TexelFill) -> np.ndarray:
    """H x W bool: the hole texels (always inside the islands of `mask`)."""
    out = np.zeros(mask.shape, bool)
    out[mask] = fill.holes
    return out


def uv_inpaint_request(
    texture: np.ndarray, mask: np.ndarray, fill: TexelFill, size: tuple[int, int]
) -> UVInpaint:
    """The init image and mask of the inpaint job for `texture` (H x W x 3|4 uint8, as
    texel_fill.texture_image made it) at the job `size` (width, height)."""
    holes = hole_image(mask, fill)
    w, h = size
    # Between the islands the texture is empty (black); the model sees that as context at
    # island borders, so it gets the nearest island colours there instead.
    rgb = np.asarray(texture[..., :3])
    known = mask | (texture[..., 3] > 0) if texture.shape[2] > 3 else mask
    rgb = push_pull(rgb.astype(np.float32), known)
    rgb = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    init = resize_nearest(rgb, w, h)
    m = resize_nearest(np.where(holes, 255, 0).astype(np.uint8), w, h)
    return UVInpaint(init_image=np.ascontiguousarray(init), mask=np.ascontiguousarray(m))


def apply_uv_inpaint(mask: np.ndarray, fill: TexelFill, result: np.ndarray) -> TexelFill:
    """`fill` with its holes taking the inpainted `result`'s colours (any size; read at
    each texel), marked INPAINTED; every other texel unchanged."""
    h, w = mask.shape
    img = resize_nearest(np.asarray(result)[..., :3], w, h).astype(np.float32)
    colors = fill.colors.copy()
    state = fill.state.copy()
    holes = fill.holes
    c = min(colors.shape[1], img.shape[2])
    colors[holes, :c] = img[mask][holes, :c]
    state[holes] = TexelState.INPAINTED
    return TexelFill(colors, state)
