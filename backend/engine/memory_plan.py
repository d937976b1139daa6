"""How a pass fits in the accelerator's free memory: a pure function of (family, size, free).

The estimates are peak *allocated* bytes (what torch.cuda.max_memory_allocated reports)
for fp16 weights with PyTorch's SDPA attention. They come from bench/bench_lowvram.py, which
runs the real architectures on fake tensors, counts every allocation, and scales the
activations by the worst ratio between that count and plain diffusers' measured peaks on an
H200 (shared/bench: SD1.5 512x512 pipeline 2.4 GiB; VAE decode 2.4 / 4.2 / 11.3 GiB at
512 / 1024 / 2048, about 2.4 GiB per output megapixel over the weights). Each constant
sits a little above those calibrated figures: the plan only needs to be right about which
side of the free memory a pass lands, and tests/engine/test_memory_sim.py checks that every
estimate covers the calibrated measurement without being wasteful.

Three levels, cheapest first:
  full      every module on the GPU; tiled VAE only for large outputs;
  tiled     as full, with the VAE decoding in tiles small enough to fit;
  offload   low-VRAM mode: one module on the GPU at a time (model CPU offload), VAE tiled.
"""

from __future__ import annotations

from dataclasses import dataclass

from dreamwire.backend.families import spec_for

GiB = 2**30

# Per family: parameters, ControlNet share, UNet activations per latent pixel, VAE upcast
# live in its spec (backend/families, FamilySpec.memory). What holds for every family:
# VAE decode activations per output pixel at fp16 (2.38 GiB per megapixel measured).
VAE_ACT_PER_PX = 2.4 * GiB / 2**20
# diffusers' tiled decode keeps every decoded (overlapping) tile, then the blended rows and
# the result: about 2.7 images in the VAE's dtype; 4.2 covers it calibrated.
TILED_RESULT_COPIES = 4.2
TILE_CHOICES = (1024, 768, 512, 256)  # tile sides (px) to try, largest (fastest) first
HEADROOM = 0.9  # use at most this share of free memory (fragmentation, cuDNN workspaces)


@dataclass(frozen=True)
class MemoryPlan:
    level: str  # "full" | "tiled" | "offload"
    tiled_vae: bool
    vae_tile_px: int | None  # None: the VAE's own tile size (or no tiling)
    estimate: int  # peak allocated bytes expected with this plan

    @property
    def low_vram(self) -> bool:
        return self.level == "offload"


def weight_bytes(family: str, part: str, dtype_bytes: int = 2) -> int:
    return int(spec_for(family).memory.params_m(part) * 1e6 * dtype_bytes)


def vae_upcast(family: str) -> float:
    return spec_for(family).memory.vae_upcast


def unet_activations(family: str, width: int, height: int, batch: int, cfg: bool = True) -> int:
    samples = batch * (2 if cfg else 1)
    per_px = spec_for(family).memory.unet_act_per_latent_px
    return int((width // 8) * (height // 8) * samples * per_px)


def decode_bytes(family: str, width: int, height: int, tile_px: int | None) -> int:
    """Peak of a VAE decode of one image: activations of the whole image or of one tile,
    plus the decoded tiles kept until they are blended (tiled) or the result (whole)."""
    upcast = vae_upcast(family)
    side_w = min(width, tile_px) if tile_px else width
    side_h = min(height, tile_px) if tile_px else height
    act = side_w * side_h * VAE_ACT_PER_PX * upcast
    image = width * height * 3 * 2 * upcast
    result = image * (TILED_RESULT_COPIES if tile_px else 1)
    return int(act + result)


def estimate(
    family: str,
    width: int,
    height: int,
    batch: int = 1,
    *,
    offload: bool = False,
    tile_px: int | None = None,
    controlnets: int = 0,
) -> int:
    f = family
    unet_w = weight_bytes(f, "unet") * (1 + spec_for(f).memory.controlnet_share * controlnets)
    vae_w = weight_bytes(f, "vae") * vae_upcast(f)
    text_w = weight_bytes(f, "text")
    unet_stage = unet_w + unet_activations(f, width, height, batch) * (1 + 0.3 * controlnets)
    # Images decode one at a time in the tiled path; diffusers decodes the batch at once.
    dec = decode_bytes(f, width, height, tile_px) * (1 if tile_px else batch)
    vae_stage = vae_w + dec
    if offload:
        return int(max(text_w, unet_stage, vae_stage))
    return int(text_w + max(unet_stage + vae_w, unet_w + vae_stage))


def choose(
    family: str,
    width: int,
    height: int,
    free_bytes: int | None,
    batch: int = 1,
    controlnets: int = 0,
) -> MemoryPlan:
    """The cheapest plan whose estimate fits `free_bytes`; None (CPU, MPS) = no limit."""
    if free_bytes is None:
        return MemoryPlan("full", False, None, estimate(family, width, height, batch))
    budget = free_bytes * HEADROOM

    def fits(n: int) -> bool:
        return n <= budget

    full = estimate(family, width, height, batch, controlnets=controlnets)
    if fits(full):
        return MemoryPlan("full", False, None, full)
    tiles = [t for t in TILE_CHOICES if t < max(width, height)]
    for tile in tiles:
        n = estimate(family, width, height, batch, tile_px=tile, controlnets=controlnets)
        if fits(n):
            return MemoryPlan("tiled", True, tile, n)
    for tile in [None, *tiles]:
        n = estimate(
            family, width, height, batch, offload=True, tile_px=tile, controlnets=controlnets
        )
        if fits(n):
            return MemoryPlan("offload", tile is not None, tile, n)
    smallest = TILE_CHOICES[-1]
    return MemoryPlan(
        "offload",
        True,
        smallest,
        estimate(
            family, width, height, batch, offload=True, tile_px=smallest, controlnets=controlnets
        ),
    )


def decode_tile(family: str, width: int, height: int, free_bytes: int | None) -> int | None:
    """The largest VAE tile side (px) with which decoding one width x height image fits in
    `free_bytes` next to the VAE's weights; None when the whole image fits (or no limit)."""
    if free_bytes is None:
        return None
    f = family
    budget = free_bytes * HEADROOM - weight_bytes(f, "vae") * vae_upcast(f)
    if decode_bytes(f, width, height, None) <= budget:
        return None
    for tile in TILE_CHOICES:
        if tile < max(width, height) and decode_bytes(f, width, height, tile) <= budget:
            return tile
    return TILE_CHOICES[-1]
