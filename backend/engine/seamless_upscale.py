"""Seamless (tileable) upscales: an upscale of a texture that tiles must tile too.

A1111 has nothing for this (neither Extras nor the "SD upscale" script looks at the Tiling
option), so these rules are ours:

* The model upscale sees the wrap-around neighbourhood: the image is wrap-padded by
  `MARGIN` source pixels on each seamless axis, upscaled, and cropped back to exactly
  `round(side * scale)`. The margin is picked (MARGIN..2*MARGIN) so that it upscales to a
  whole number of pixels where it can, making the crop an exact period of the texture.
* The refine tiles live on a torus along a seamless axis: they are spread evenly around
  the circle (the last tile runs over the edge and continues at the other side), cut with
  wrapped indices and blended back with feathered weights, so the seam is refined inside a
  tile, or in the blend of two, with its true neighbours on both sides.
* The engine's seamless mode (circular padding of every conv) is right for a tile only on
  an axis that tile spans entirely, where its own left edge continues its right edge; for
  a tile that is a window onto a larger image it would wrap the window's edges into each
  other and is wrong. `tile_axes` says which axes qualify.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from PIL import Image

from dreamwire.backend.canvas.masks import wrap_axes

MARGIN = 16  # source pixels of wrap-around the upscaler sees beyond each seamless edge


# (wrap_x, wrap_y) of a Job.seamless value; the inpaint mask's blur wraps by it too.
axes = wrap_axes


def axes_name(wrap_x: bool, wrap_y: bool) -> str:
    return {(True, True): "both", (True, False): "x", (False, True): "y"}.get(
        (wrap_x, wrap_y), "none"
    )


def margin(side: int, out_side: int, want: int = MARGIN) -> tuple[int, int]:
    """(m, M): wrap m source pixels, which become M upscaled ones. An m with m * out_side
    divisible by side keeps the upscaled period exactly out_side pixels."""
    want = min(want, side)
    for m in range(want, min(2 * want, side) + 1):
        if m * out_side % side == 0:
            return m, m * out_side // side
    return want, round(want * out_side / side)


def upscale_wrapped(
    image: np.ndarray,
    wrap_x: bool,
    wrap_y: bool,
    out_w: int,
    out_h: int,
    run: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """`run` (an upscale by the job's factor) on the image wrap-padded along the seamless
    axes, cropped back to out_w x out_h."""
    h, w = image.shape[:2]
    mx, big_mx = margin(w, out_w) if wrap_x else (0, 0)
    my, big_my = margin(h, out_h) if wrap_y else (0, 0)
    padded = np.pad(image, ((my, my), (mx, mx), (0, 0)), mode="wrap")
    big = run(np.ascontiguousarray(padded))
    want_h, want_w = out_h + 2 * big_my, out_w + 2 * big_mx
    if big.shape[:2] != (want_h, want_w):
        # Only when the margin could not upscale to whole pixels: a last 1 px correction.
        big = np.asarray(Image.fromarray(big).resize((want_w, want_h), Image.LANCZOS))
    return np.ascontiguousarray(big[big_my : big_my + out_h, big_mx : big_mx + out_w])


# -- tiles on a torus ----------------------------------------------------------------------
def wrap_starts(size: int, tile: int, overlap: int) -> tuple[int, ...]:
    """Tile starts around a circle of `size`: consecutive tiles (and the last with the
    first, across the edge) overlap by `overlap` pixels at least."""
    if tile >= size:
        return (0,)
    count = math.ceil(size / (tile - overlap))
    # Steps of floor/ceil(size / count) <= tile - overlap.
    return tuple(i * size // count for i in range(count))


def tile_axes(grid) -> str:
    """The seamless axes the engine's circular padding may use for this grid's tiles."""
    full_x = grid.wrap_x and len(grid.xs) == 1 and grid.tile_w == grid.width
    full_y = grid.wrap_y and len(grid.ys) == 1 and grid.tile_h == grid.height
    return axes_name(full_x, full_y)


def _indices(start: int, tile: int, size: int) -> np.ndarray:
    return np.arange(start, start + tile) % size


def crop(image: np.ndarray, grid) -> list[np.ndarray]:
    """Every tile, row by row; tiles past an edge continue at the other side."""
    out = []
    for y in grid.ys:
        rows = _indices(y, grid.tile_h, grid.height)
        for x in grid.xs:
            cols = _indices(x, grid.tile_w, grid.width)
            out.append(np.ascontiguousarray(image[np.ix_(rows, cols)]))
    return out


def _weights(start: int, tile: int, size: int, wrap: bool, overlap: int) -> np.ndarray:
    """A tile's blend weight along one axis: ramps over `overlap` pixels at the ends that
    meet another tile, 1 elsewhere (never 0, so every pixel has a weight)."""
    w = np.ones(tile, np.float64)
    if overlap == 0 or (wrap and tile >= size):
        return w
    ramp = np.arange(1, overlap + 1, dtype=np.float64) / (overlap + 1)
    if wrap or start > 0:
        w[:overlap] = np.minimum(w[:overlap], ramp)
    if wrap or start + tile < size:
        w[-overlap:] = np.minimum(w[-overlap:], ramp[::-1])
    return w


def combine(grid, tiles: list[np.ndarray]) -> np.ndarray:
    """Tiles (row by row) back into one image: a weighted mean where they overlap."""
    acc = np.zeros((grid.height, grid.width, 3), np.float64)
    total = np.zeros((grid.height, grid.width, 1), np.float64)
    it = iter(tiles)
    for y in grid.ys:
        rows = _indices(y, grid.tile_h, grid.height)
        wy = _weights(y, grid.tile_h, grid.height, grid.wrap_y, grid.overlap)
        for x in grid.xs:
            cols = _indices(x, grid.tile_w, grid.width)
            wx = _weights(x, grid.tile_w, grid.width, grid.wrap_x, grid.overlap)
            weight = (wy[:, None] * wx[None, :])[..., None]
            where = np.ix_(rows, cols)
            # A tile never covers a pixel twice (tile <= side), so += is safe here.
            acc[where] += next(it).astype(np.float64) * weight
            total[where] += weight
    return np.clip(np.rint(acc / total), 0, 255).astype(np.uint8)
