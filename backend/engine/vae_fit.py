"""The VAE decode fitted to the free accelerator memory, per pass.

A pass that would run out of memory in the decode, after all its steps, is the worst way to
fail; the memory plan (memory_plan.decode_tile) says which tile side fits what is free now,
and this switches diffusers' tiled decode on (or to smaller tiles) for the pass only.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch

from . import device as dev
from . import memory_plan

log = logging.getLogger("dreamwire.engine")


@contextlib.contextmanager
def decode_fits(pipe, ctx, width: int, height: int) -> Iterator[None]:
    """On a GPU, make the VAE decode in tiles small enough for the free memory (tiling on if
    the whole image would not fit, or smaller tiles than the runner chose); put it back after.
    Seamless jobs and jobs that turned tiling off explicitly are left as they are."""
    vae = getattr(pipe, "vae", None)
    free = dev.free_memory(ctx.device)
    if (
        free is None
        or vae is None
        or not hasattr(vae, "use_tiling")
        # AutoencoderKL's square tiles; the Qwen-Image (Wan) VAE tiles by height and width.
        or not hasattr(vae, "tile_sample_min_size")
        or ctx.plan.seamless != "none"  # the pass's axes (an SD upscale tile's own)
        or ctx.job.tiled_vae is False
    ):
        yield
        return
    # Memory torch's allocator holds but does not use is free for this process too.
    free += torch.cuda.memory_reserved(ctx.device.device)
    free -= torch.cuda.memory_allocated(ctx.device.device)
    tile = memory_plan.decode_tile(ctx.model.family, width, height, free)
    if tile is None or (vae.use_tiling and tile >= vae.tile_sample_min_size):
        yield
        return
    saved = (vae.use_tiling, vae.tile_sample_min_size, vae.tile_latent_min_size)
    scale = 2 ** (len(vae.config.block_out_channels) - 1)
    vae.use_tiling, vae.tile_sample_min_size, vae.tile_latent_min_size = True, tile, tile // scale
    log.info("VAE decodes in %d px tiles to fit %.1f GiB free", tile, free / 2**30)
    try:
        yield
    finally:
        vae.use_tiling, vae.tile_sample_min_size, vae.tile_latent_min_size = saved
