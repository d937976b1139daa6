"""Tile grids with overlap, for working on textures larger than one generation.

A grid covers the image with equally sized tiles (the last row/column is pushed back
inside the image rather than cut short, so every tile has the full size) that overlap by
at least `overlap` pixels; `blend_weights` gives each tile a weight map that ramps down
linearly across the overlaps so stitched results show no seams.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tile:
    x: int
    y: int
    width: int
    height: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y, self.y + self.height), slice(self.x, self.x + self.width)


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    if tile >= size:
        return [0]
    stride = tile - overlap
    if stride <= 0:
        raise ValueError("overlap must be smaller than the tile size")
    count = math.ceil((size - tile) / stride) + 1
    # Spread the tiles evenly so that every overlap is at least `overlap`.
    return [round(i * (size - tile) / (count - 1)) for i in range(count)]


def tile_grid(
    width: int, height: int, tile: int | tuple[int, int], overlap: int = 64
) -> list[Tile]:
    tw, th = (tile, tile) if isinstance(tile, int) else tile
    if min(width, height, tw, th) <= 0 or overlap < 0:
        raise ValueError("sizes must be positive and overlap non-negative")
    tw, th = min(tw, width), min(th, height)
    return [
        Tile(x, y, tw, th)
        for y in _starts(height, th, overlap)
        for x in _starts(width, tw, overlap)
    ]


def blend_weights(tile: Tile, width: int, height: int, overlap: int) -> np.ndarray:
    """H x W float32 weights for `tile`: 1 inside, a linear ramp over `overlap` pixels on
    edges that touch another tile, full weight on edges at the image border."""
    wx = np.ones(tile.width, dtype=np.float64)
    wy = np.ones(tile.height, dtype=np.float64)
    if overlap > 0:
        ramp_x = (np.arange(min(overlap, tile.width)) + 0.5) / overlap
        ramp_y = (np.arange(min(overlap, tile.height)) + 0.5) / overlap
        if tile.x > 0:
            wx[: len(ramp_x)] = np.minimum(wx[: len(ramp_x)], ramp_x)
        if tile.x + tile.width < width:
            wx[-len(ramp_x) :] = np.minimum(wx[-len(ramp_x) :], ramp_x[::-1])
        if tile.y > 0:
            wy[: len(ramp_y)] = np.minimum(wy[: len(ramp_y)], ramp_y)
        if tile.y + tile.height < height:
            wy[-len(ramp_y) :] = np.minimum(wy[-len(ramp_y) :], ramp_y[::-1])
    return np.outer(wy, wx).astype(np.float32)


def merge_tiles(
    tiles: list[Tile], images: list[np.ndarray], width: int, height: int, overlap: int
) -> np.ndarray:
    """Weighted average of tile images (H x W x C) into one width x height image (float32)."""
    channels = images[0].shape[2] if images[0].ndim == 3 else None
    shape = (height, width) if channels is None else (height, width, channels)
    acc = np.zeros(shape, dtype=np.float64)
    wsum = np.zeros((height, width), dtype=np.float64)
    for t, img in zip(tiles, images, strict=True):
        w = blend_weights(t, width, height, overlap)
        ys, xs = t.slices
        acc[ys, xs] += img.astype(np.float64) * (w[..., None] if channels else w)
        wsum[ys, xs] += w
    wsum = np.maximum(wsum, 1e-12)
    return (acc / (wsum[..., None] if channels else wsum)).astype(np.float32)
