"""Running an upscaler over an image in tiles, as A1111 does for ESRGAN models
(modules/upscaler_utils.upscale_with_model with images.split_grid / combine_grid):

- tiles of `tile` px (A1111's "Tile size for ESRGAN upscalers", 192) overlapping by at
  least `overlap` px ("Tile overlap", 8), spread evenly so the last one ends at the edge;
- the upscaled tiles are laid into rows left to right, each one blended over the one
  before across the first overlap*scale px with A1111's linear ramp (0, 1/ov .. as uint8
  alpha), then the rows top to bottom the same way.

Differences, on purpose: an image smaller than a tile runs as one tile of its own size
(A1111 pads the tile with black past the edge), and the blend is done in float, rounded
once at the end (A1111 rounds each tile to 8 bits first)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from dreamwire.shared.errors import DreamwireError, ErrorCode

TILE = 192
OVERLAP = 8


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Where tiles begin along one side (A1111's split_grid)."""
    if size <= tile:
        return [0]
    count = math.ceil((size - overlap) / (tile - overlap))
    step = (size - tile) / (count - 1) if count > 1 else 0
    return [min(int(i * step), size - tile) for i in range(count)]


def ramp(overlap: int) -> np.ndarray:
    """A1111's blend mask across an overlap: i * 255 / overlap as uint8, as alpha."""
    return (np.arange(overlap, dtype=np.float32) * 255 / overlap).astype(np.uint8) / 255.0


def _blend_into(dst: torch.Tensor, src: torch.Tensor, at: int, overlap: int, dim: int) -> None:
    """Lay src into dst at offset `at` along dim (-1: columns, -2: rows); the first
    `overlap` lines fade in over what is there (all of src when at == 0)."""
    length = src.shape[dim]
    if at == 0 or overlap <= 0:
        dst.narrow(dim, at, length).copy_(src)
        return
    ov = min(overlap, length)
    alpha = torch.as_tensor(ramp(overlap)[:ov], dtype=dst.dtype, device=dst.device)
    alpha = alpha.view(-1, 1) if dim == -2 else alpha.view(1, -1)
    old = dst.narrow(dim, at, ov)
    old.add_((src.narrow(dim, 0, ov) - old) * alpha)
    dst.narrow(dim, at + ov, length - ov).copy_(src.narrow(dim, ov, length - ov))


def run_tiled(
    model: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    scale: int,
    tile: int = TILE,
    overlap: int = OVERLAP,
    should_cancel: Callable[[], bool] | None = None,
) -> torch.Tensor:
    """1 x C x H x W (in the model's dtype and device) to 1 x C x H*scale x W*scale float32.
    tile <= 0 runs the whole image at once."""
    _, c, h, w = image.shape
    if tile <= 0 or (h <= tile and w <= tile):
        _check_cancel(should_cancel)
        return model(image).float()
    overlap = max(0, min(overlap, tile - 1))
    th, tw = min(tile, h), min(tile, w)
    out = torch.zeros(1, c, h * scale, w * scale, dtype=torch.float32, device=image.device)
    ys, xs = tile_starts(h, th, overlap), tile_starts(w, tw, overlap)
    for y in ys:
        row = torch.zeros(1, c, th * scale, w * scale, dtype=torch.float32, device=image.device)
        for x in xs:
            _check_cancel(should_cancel)
            piece = model(image[..., y : y + th, x : x + tw]).float()
            if piece.shape[-2:] != (th * scale, tw * scale):
                raise DreamwireError(
                    ErrorCode.INTERNAL,
                    f"upscaler returned {tuple(piece.shape[-2:])} for a {th}x{tw} tile at {scale}x",
                )
            _blend_into(row, piece, x * scale, overlap * scale, -1)
        _blend_into(out, row, y * scale, overlap * scale, -2)
    return out


def _check_cancel(should_cancel) -> None:
    if should_cancel is not None and should_cancel():
        raise DreamwireError(ErrorCode.CANCELLED, "cancelled by request")
