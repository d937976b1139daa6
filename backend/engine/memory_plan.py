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

Weights are counted as stored: 16-bit by default, or in the denoiser's file format
(library/weight_formats.py: fp8 storage, GGUF, NF4), with one layer upcast at a time.

Levels, cheapest first:
  full        every module on the GPU; tiled VAE only for large outputs;
  tiled       as full, with the VAE decoding in tiles small enough to fit;
  offload     low-VRAM mode: one model on the GPU at a time (model CPU offload; each text
              encoder is a model of its own), VAE tiled;
  sequential  one *layer* on the GPU at a time (sequential CPU offload): many times slower,
              so only where a model alone does not fit (Flux's 9 GiB T5 on an 8 GiB card),
              and only for families whose figures name their largest module.
"""

from __future__ import annotations

from dataclasses import dataclass

from dreamwire.backend.families import spec_for
from dreamwire.backend.families.spec import MemoryFigures
from dreamwire.backend.library.weight_formats import FULL, WeightFormat

GiB = 2**30

# Per family: parameters, ControlNet share, denoiser activations per latent pixel, VAE
# upcast live in its spec (backend/families, FamilySpec.memory). What holds for every family:
# VAE decode activations per output pixel at fp16 (2.38 GiB per megapixel measured).
VAE_ACT_PER_PX = 2.4 * GiB / 2**20
# diffusers' tiled decode keeps every decoded (overlapping) tile, then the blended rows and
# the result: about 2.7 images in the VAE's dtype; 4.2 covers it calibrated.
TILED_RESULT_COPIES = 4.2
TILE_CHOICES = (1024, 768, 512, 256)  # tile sides (px) to try, largest (fastest) first
HEADROOM = 0.9  # use at most this share of free memory (fragmentation, cuDNN workspaces)


@dataclass(frozen=True)
class MemoryPlan:
    level: str  # "full" | "tiled" | "offload" | "sequential"
    tiled_vae: bool
    vae_tile_px: int | None  # None: the VAE's own tile size (or no tiling)
    estimate: int  # peak allocated bytes expected with this plan

    @property
    def low_vram(self) -> bool:
        return self.level in ("offload", "sequential")

    @property
    def sequential(self) -> bool:
        return self.level == "sequential"


def figures(family: str, variant: str = "") -> MemoryFigures:
    """The family's figures, or its variant's own (the catalog's variant of the checkpoint's
    arch: SD3.5 Medium's MMDiT-X is a third of Large's)."""
    return spec_for(family).memory_for(variant)


def weight_bytes(family: str, part: str, dtype_bytes: int = 2, variant: str = "") -> int:
    return int(figures(family, variant).params_m(part) * 1e6 * dtype_bytes)


def largest_text_bytes(family: str, dtype_bytes: int = 2, variant: str = "") -> int:
    """The largest single text encoder's weights: model offload moves one encoder at a time
    to the GPU (SD3's T5-XXL, not CLIP-L + CLIP-G + T5 together)."""
    return int(figures(family, variant).largest_text_params_m * 1e6 * dtype_bytes)


def denoiser_bytes(
    family: str, weights: WeightFormat = FULL, dtype_bytes: int = 2, variant: str = ""
) -> int:
    """The denoiser's weights as stored in `weights`' format (the rest of it, which no
    format stores quantized, at `dtype_bytes`), plus the copies of its largest layer that
    exist while that layer is upcast to the compute dtype."""
    m = figures(family, variant)
    params = m.denoiser_params_m * 1e6
    if not weights.quantized:
        return int(params * dtype_bytes)
    # Layerwise casting skips the layers the model class names (cast_share counts them);
    # quantizers take every linear layer (all but a few thousand parameters of the
    # denoiser, and the buffers the figures name).
    if weights.layerwise_cast:
        stored = params * m.cast_share
    else:
        stored = params - m.unquantized_params_m * 1e6
    upcast = m.largest_layer_params_m * 1e6 * dtype_bytes * weights.upcast_copies
    rest = (params - stored) * dtype_bytes
    return int(stored * weights.bytes_per_weight(dtype_bytes) + rest + upcast)


def one_module_bytes(
    family: str, weights: WeightFormat = FULL, dtype_bytes: int = 2, variant: str = ""
) -> int:
    """What sequential offload holds on the GPU at once: the largest module, or the
    denoiser's largest layer as stored with its upcast copies."""
    m = figures(family, variant)
    layer = m.largest_layer_params_m * (
        weights.bytes_per_weight(dtype_bytes) + dtype_bytes * weights.upcast_copies
    )
    return int(max(m.largest_module_params_m * dtype_bytes, layer) * 1e6)


def vae_upcast(family: str) -> float:
    return spec_for(family).memory.vae_upcast


def denoiser_activations(
    family: str, width: int, height: int, batch: int, cfg: bool = True, variant: str = ""
) -> int:
    m = figures(family, variant)
    samples = batch * (2 if cfg and m.cfg_batch else 1)
    per_px = m.denoiser_act_per_latent_px
    return int((width // 8) * (height // 8) * samples * per_px)


def decode_bytes(family: str, width: int, height: int, tile_px: int | None) -> int:
    """Peak of a VAE decode of one image: activations of the whole image or of one tile,
    plus the decoded tiles kept until they are blended (tiled) or the result (whole)."""
    upcast = vae_upcast(family)
    side_w = min(width, tile_px) if tile_px else width
    side_h = min(height, tile_px) if tile_px else height
    act = side_w * side_h * VAE_ACT_PER_PX * upcast * spec_for(family).memory.vae_act_scale
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
    sequential: bool = False,
    tile_px: int | None = None,
    controlnets: int = 0,
    weights: WeightFormat = FULL,
    control_models: int = 0,
    variant: str = "",
) -> int:
    """Peak bytes of one pass: every model resident, one model at a time (`offload`), or
    one module at a time (`sequential`); `weights` is how the denoiser is stored;
    `control_models` whole denoisers of the family's architecture loaded beside it (a full
    Flux Control model: FluxControl*Pipeline runs its own 128-input transformer); `variant`
    the checkpoint's, whose own figures count where it has them."""
    f, v = family, variant
    m = figures(f, v)
    cn = m.controlnet_share * controlnets
    # ControlNets at 16 bits, the denoiser as stored (what a format saves is subtracted).
    den_16 = weight_bytes(f, "denoiser", variant=v)
    den_w = den_16 * (1 + cn) + (denoiser_bytes(f, weights, variant=v) - den_16)
    # Resident, the second transformer sits on the GPU beside the model's own (the job
    # swaps it into the pipeline; the own one stays where it is). Offloaded, the pipeline
    # holds only the swapped-in one, so one transformer at a time is all that counts.
    resident_w = den_w + den_16 * control_models
    vae_w = weight_bytes(f, "vae") * vae_upcast(f)
    text_w = weight_bytes(f, "text")
    # The prompt is encoded once per prompt (the batch repeats it), one encoder call at a time.
    text_act = m.text_act_bytes
    den_act = denoiser_activations(f, width, height, batch, variant=v) * (1 + 0.3 * controlnets)
    # Images decode one at a time in the tiled path; diffusers decodes the batch at once.
    dec = decode_bytes(f, width, height, tile_px) * (1 if tile_px else batch)
    if sequential:
        return int(one_module_bytes(f, weights, variant=v) + max(den_act, dec, text_act))
    den_stage = den_w + den_act
    vae_stage = vae_w + dec
    if offload:
        text_stage = largest_text_bytes(f, variant=v) + text_act
        return int(max(text_stage, den_stage, vae_stage))
    return int(text_w + resident_w + vae_w + max(den_act, dec, text_act))


def choose(
    family: str,
    width: int,
    height: int,
    free_bytes: int | None,
    batch: int = 1,
    controlnets: int = 0,
    weights: WeightFormat = FULL,
    control_models: int = 0,
    variant: str = "",
) -> MemoryPlan:
    """The cheapest plan whose estimate fits `free_bytes`; None (CPU, MPS) = no limit."""

    def est(tile: int | None = None, offload: bool = False, sequential: bool = False) -> int:
        return estimate(
            family,
            width,
            height,
            batch,
            offload=offload,
            sequential=sequential,
            tile_px=tile,
            controlnets=controlnets,
            weights=weights,
            control_models=control_models,
            variant=variant,
        )

    if free_bytes is None:
        return MemoryPlan("full", False, None, est())
    budget = free_bytes * HEADROOM
    tiles = [t for t in TILE_CHOICES if t < max(width, height)]
    levels = [
        ("full", [None], {}),
        ("tiled", tiles, {}),
        ("offload", [None, *tiles], {"offload": True}),
    ]
    if figures(family, variant).largest_module_params_m:
        levels.append(("sequential", [None, *tiles], {"sequential": True}))
    for level, level_tiles, how in levels:
        for tile in level_tiles:
            n = est(tile, **how)
            if n <= budget:
                return MemoryPlan(level, tile is not None, tile, n)
    # Nothing fits: the most frugal plan, which may still run (the estimate is an upper bound).
    level, _tiles, how = levels[-1]
    smallest = TILE_CHOICES[-1]
    return MemoryPlan(level, True, smallest, est(smallest, **how))


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
