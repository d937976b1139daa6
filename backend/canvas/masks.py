"""Inpainting masks the A1111 way: blur, "only masked" crop with padding, paste-back.

Masks are H x W uint8 with 255 = repaint. The blurred mask is also the alpha used to
paste the generated pixels over the original, so untouched areas stay bit-exact.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter, ImageOps


def to_rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if image.shape[1] == width and image.shape[0] == height:
        return image
    return np.asarray(Image.fromarray(image).resize((width, height), Image.LANCZOS))


Wrap = tuple[bool, bool]  # (x, y): the axes a seamless picture continues round
NO_WRAP: Wrap = (False, False)


def wrap_axes(seamless: str) -> Wrap:
    """(wrap_x, wrap_y) of a Job.seamless value."""
    return seamless in ("both", "x"), seamless in ("both", "y")


def _wrapped(fn, image: np.ndarray, wrap: Wrap, pad: int) -> np.ndarray:
    """fn over `image` as a tile: padded with its own opposite side along the wrapped
    axes (by `pad` pixels, repeating as often as that takes), so a filter reaching past
    one edge reads what continues it, then cropped back."""
    px, py = (pad if wrap[0] else 0), (pad if wrap[1] else 0)
    if not (px or py):
        return fn(image)
    h, w = image.shape[:2]
    spec = ((py, py), (px, px)) + ((0, 0),) * (image.ndim - 2)
    return np.ascontiguousarray(fn(np.pad(image, spec, mode="wrap"))[py : py + h, px : px + w])


def blur(mask: np.ndarray, radius: int, wrap: Wrap = NO_WRAP) -> np.ndarray:
    """A Gaussian blur; along `wrap`'s axes the blur runs round the edges (a seamless
    inpaint's mask over one edge softens into the opposite one as the tile continues)."""
    if radius <= 0:
        return mask

    def run(m: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(m).filter(ImageFilter.GaussianBlur(radius)))

    return _wrapped(run, mask, wrap, 3 * radius)


# A1111's fill: Gaussian blurs from wide to narrow, each composited over the last, so a
# masked pixel takes the colours of the nearest unmasked ones and far from any edge the
# average colour of the whole picture. (radius, times composited)
_FILL_LAYERS = ((256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1))


def fill(image: np.ndarray, mask: np.ndarray, wrap: Wrap = NO_WRAP) -> np.ndarray:
    """A1111's "fill" masked content: the masked area (255) painted with blurred colours
    of its surroundings, the unmasked area (0) unchanged; a soft mask mixes the two.
    Along `wrap`'s axes the surroundings continue round the edges (a seamless tile).

    Premultiplied alpha keeps masked pixels out of the blur: they carry no colour, only
    their unmasked neighbours spread into them.
    """
    if wrap != NO_WRAP:
        both = np.dstack([to_rgb(image), mask])
        # One tile's worth each side: the widest blur only spreads the tile's average colour
        # that far out, and a larger pad would cost seconds on a large tile.
        pad = min(3 * _FILL_LAYERS[0][0], max(mask.shape))
        out = _wrapped(lambda a: fill(a[..., :3], a[..., 3]), both, wrap, pad)
        return out
    h, w = mask.shape
    keep = ImageOps.invert(Image.fromarray(mask, "L"))
    visible = Image.new("RGBa", (w, h))
    visible.paste(Image.fromarray(to_rgb(image)).convert("RGBA").convert("RGBa"), mask=keep)
    out = Image.new("RGBA", (w, h))
    for radius, times in _FILL_LAYERS:
        layer = visible.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        for _ in range(times):
            out.alpha_composite(layer)
    return np.asarray(out.convert("RGB"))


def crop_region(
    mask: np.ndarray, pad: int, width: int, height: int
) -> tuple[int, int, int, int] | None:
    """Box (x1, y1, x2, y2) around the masked pixels, padded by `pad`, grown to the
    width:height aspect of the generation so the crop is not distorted when resized.
    None when nothing is masked.
    """
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    h, w = mask.shape
    x1, y1 = max(int(xs.min()) - pad, 0), max(int(ys.min()) - pad, 0)
    x2, y2 = min(int(xs.max()) + 1 + pad, w), min(int(ys.max()) + 1 + pad, h)
    target = width / height
    cw, ch = x2 - x1, y2 - y1
    if cw / ch < target:  # too tall: widen
        grow = round(ch * target) - cw
        x1, x2 = _expand(x1, x2, grow, w)
    elif cw / ch > target:  # too wide: heighten
        grow = round(cw / target) - ch
        y1, y2 = _expand(y1, y2, grow, h)
    return x1, y1, x2, y2


def _expand(a: int, b: int, grow: int, limit: int) -> tuple[int, int]:
    a -= grow // 2
    b += grow - grow // 2
    if a < 0:
        b -= a
        a = 0
    if b > limit:
        a -= b - limit
        b = limit
    return max(a, 0), b


def composite(original: np.ndarray, generated: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Generated pixels where the (soft) mask is set, the original elsewhere."""
    alpha = (mask.astype(np.float32) / 255.0)[:, :, None]
    out = original.astype(np.float32) * (1.0 - alpha) + generated.astype(np.float32) * alpha
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def paste(canvas: np.ndarray, patch: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x1, y1, x2, y2 = box
    out = canvas.copy()
    out[y1:y2, x1:x2] = resize(patch, x2 - x1, y2 - y1)
    return out
