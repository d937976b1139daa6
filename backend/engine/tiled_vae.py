"""Tiled VAE decode/encode so large textures (4096 x 4096) fit in a small GPU.

The VAE's memory grows with the image area while the UNet works on an 8x smaller latent,
so at texture sizes the VAE is what runs out. diffusers' AutoencoderKL already decodes
and encodes in overlapping, blended tiles; this module decides when to use it and with
which tile size, and turns it back off after the job (the model is cached and shared).

A cancel must not wait for a whole decode: a tiled decode of a large image is hundreds of
tiles, minutes on a CPU, inside one diffusers call. `cancellable` asks before every tile
(and, untiled, before every block of the decoder or encoder) and stops the job there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

# Above this many output pixels tiling is on by default (about 1536 x 1536).
AUTO_TILE_PIXELS = 1536 * 1536


def should_tile(
    requested: bool | None, width: int, height: int, low_vram: bool, seamless: str
) -> bool:
    if requested is not None:
        return requested
    if seamless != "none":
        # Circular padding would wrap inside each tile instead of around the image.
        return False
    return low_vram or width * height > AUTO_TILE_PIXELS


@contextlib.contextmanager
def tiled(vae, enabled: bool, tile_px: int | None = None) -> Iterator[bool]:
    """Tile `vae` inside the block; `tile_px` is the tile side in image pixels."""
    if not enabled or vae is None:
        yield False
        return
    if not hasattr(vae, "tile_sample_min_size"):
        # The Qwen-Image (Wan) VAE tiles by height and width at its own tile sizes.
        saved_flag = vae.use_tiling
        vae.use_tiling = True
        try:
            yield True
        finally:
            vae.use_tiling = saved_flag
        return
    saved = (vae.use_tiling, vae.tile_sample_min_size, vae.tile_latent_min_size)
    if tile_px:
        scale = 2 ** (len(vae.config.block_out_channels) - 1)
        vae.tile_sample_min_size = int(tile_px)
        vae.tile_latent_min_size = int(tile_px) // scale
    vae.use_tiling = True
    try:
        yield True
    finally:
        vae.use_tiling, vae.tile_sample_min_size, vae.tile_latent_min_size = saved


@contextlib.contextmanager
def cancellable(vae, check: Callable[[], None]) -> Iterator[None]:
    """Call `check` (which raises to cancel) before each forward of `vae`'s encoder and
    decoder and of their blocks: diffusers runs every tile of a tiled decode or encode
    through the whole decoder or encoder, so this is once per tile at least."""
    if vae is None:
        yield
        return
    parts = []
    for name, blocks in (("encoder", "down_blocks"), ("decoder", "up_blocks")):
        coder = getattr(vae, name, None)
        if coder is not None:
            parts += [coder, *getattr(coder, blocks, ())]
    handles = [m.register_forward_pre_hook(lambda _module, _args: check()) for m in parts]
    try:
        yield
    finally:
        for h in handles:
            h.remove()
