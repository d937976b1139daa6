"""Admission by memory: the peak a job would reach on this backend, against what is free.

A job inside the size limits can still be far too large for the machine (8192 x 8192 with a
batch of 16 reached 19.9 GB of RAM on a CPU backend before it was killed). The backend
therefore estimates a job's peak before accepting it and again before starting it, and
refuses what cannot fit with `limit_exceeded`. The estimate needs no model loaded: weights
come from the checkpoint's headers (library/sizes.py) and the activation widths from the
catalog config of the architecture the library identified.

Where the peak is: on the CPU (and MPS, whose memory is the machine's) everything is in RAM
at the engine's dtype (fp32 on the CPU); on a CUDA GPU the passes are in VRAM (fp16, the SDXL
VAE upcast to fp32) and the decoded images in RAM. Parts, per denoising pass of w x h with a
batch of b (cfg doubles the UNet's samples):

  weights   parameters x dtype, unless the model is already loaded; a denoiser stored as
            fp8, GGUF or NF4 at its own bytes per weight (library/weight_formats.py). The
            model is the plan's (an inpaint job's Fill stand-in); a full Flux Control
            model's transformer is a whole second denoiser, not a ControlNet share
  loading   the file's fp16 state dict, held while the model loads (LOAD_STATE_BYTES a
            parameter; a quantized denoiser's at its own size), before any pass runs
  sampling  (w/8)(h/8) x 2b x UNET_ELEMS x the denoiser's activation width x dtype, more
            with ControlNets (b, not 2b, for guidance-distilled families such as Flux)
  decode    b x the pixels decoded at once (the whole image, or one VAE tile) x VAE_ELEMS x
            the decoder's full-resolution width x dtype; a tiled decode also keeps about
            TILED_RESULT_COPIES images of the result (memory_plan.py)
  images    b x w x h x 3 in float32, OUTPUT_COPIES times (the decoder's tensor, diffusers'
            numpy copy, the uint8 results)

Calibration. UNET_ELEMS and VAE_ELEMS are memory_plan.py's GPU measurements divided by the
width they scale with: SD1.5's UNet 32 KiB per latent pixel per sample in fp16 at width 320
is 51 elements per channel; its VAE decode, 2.4 GiB per megapixel in fp16 at width 256, is
4.8 (rounded up to 6 here). On the CPU, bench/bench_admission.py measures the peak RSS a
real job adds over the loaded tiny SD1 model (fp32, one Euler step, one thread): 256x256
+57 MiB (estimate 179 MiB), 512x512 +154 MiB (330 MiB), 512x512 batch 2 +185 MiB
(533 MiB), 1024x1024 +480 MiB (938 MiB). Over-estimating costs a refusal of a job near
the edge; under-estimating costs the machine, so every constant sits above what was measured.
A transformer's activation width is TRANSFORMER_WIDTH_SHARE of its inner width: Flux.1 dev's
56 KiB per latent pixel per sample in bf16 (families/flux.py, calibrated by
bench/bench_lowvram.py) is UNET_ELEMS elements of 551 channels, 0.18 of its 3072.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

from dreamwire.backend.families import spec_for
from dreamwire.backend.library.weight_formats import FULL, WeightFormat
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job
from dreamwire.shared.job_mode import JobMode

GiB = 2**30
LATENT_SCALE = 8  # every SD VAE here downsamples by 8
UNET_ELEMS = 52  # activation elements per latent pixel per sample per UNet channel
VAE_ELEMS = 6.0  # activation elements per decoded pixel per decoder channel
CONTROLNET_ACT = 0.3  # a ControlNet's activations, as a share of the UNet's
CONTROLNET_PARAMS = 0.4  # a ControlNet's weights, as a share of its checkpoint's (SD1 0.34)
TILED_RESULT_COPIES = 4.2  # as memory_plan.TILED_RESULT_COPIES
OUTPUT_COPIES = 3.5  # float32 images alive at once around a decode, plus the uint8 results
LOAD_STATE_BYTES = 2  # the state dict (fp16 in most files) held while a model loads
OFFLOAD_SHARE = 0.85  # low-VRAM offload: the largest model (the UNet) on the GPU at a time
SMALLEST_TILE = 256  # memory_plan.TILE_CHOICES[-1]: the smallest tile the GPU path uses
HEADROOM = 0.9  # as memory_plan.HEADROOM: fragmentation, allocator slack
TRANSFORMER_WIDTH_SHARE = 0.18
# What any job adds to RAM besides its tensors (text encoding, pipeline objects, allocator
# arenas): a 256x256 tiny job measured +54 MiB in all.
RUNTIME_RAM = 128 * 2**20


@dataclass(frozen=True)
class ModelSize:
    """What the estimate knows about a checkpoint without loading it."""

    params: int  # parameters the pipeline loads (denoiser, VAE, text encoders)
    # The denoiser's activation width: a UNet's at full latent resolution
    # (block_out_channels[0]); a transformer's from its inner width (TRANSFORMER_WIDTH_SHARE).
    unet_channels: int
    vae_channels: int  # the decoder's widest full-resolution convolution
    vae_tile_px: int  # the VAE's own tile side (its config's sample_size)
    vae_upcast: bool = False  # the VAE runs in fp32 whatever the engine's dtype (SDXL)
    cfg_batch: bool = True  # CFG doubles the denoiser's batch (not Flux's distilled guidance)
    # The denoiser's share of `params`, as the family's real sizes split the pipeline
    # (Flux.1: 11.9 B of 16.9 B): a second denoiser's size when its header cannot tell.
    denoiser_share: float = 1.0
    # How many of `params` are stored in `weights`' format; the rest load at the engine's
    # dtype.
    stored_params: int = 0
    weights: WeightFormat = FULL
    # The share of the weights the most frugal offload keeps on the GPU at once: the UNet
    # under model offload; one module under sequential offload (families whose figures
    # name their largest module: memory_plan.py).
    offload_share: float = OFFLOAD_SHARE

    def saved_bytes(self, dtype_bytes: int) -> float:
        """What the stored format saves over loading every parameter at `dtype_bytes`."""
        return self.stored_params * (dtype_bytes - self.weights.bytes_per_weight(dtype_bytes))


@dataclass(frozen=True)
class Device:
    """Where the job would run and what is free there now."""

    kind: str  # "cpu" | "cuda" | "mps"
    dtype_bytes: int  # 4 on the CPU (fp32), 2 on a GPU
    ram_free: int | None  # bytes; None: unknown (no check)
    vram_free: int | None = None  # CUDA only
    vae_tile_px: int | None = None  # the engine's tile side (--vae-tile); None: the VAE's own


@dataclass(frozen=True)
class Workplace:
    """A worker as admission sees it: its device with what is free there for the next job,
    its low-VRAM switch (None: decided by the memory free) and the checkpoints it holds.
    Each Ray actor reports one, so the front admits a job per actor (server/ray_pool.py)."""

    device: Device
    low_vram: bool | None = None
    models: tuple[str, ...] = ()


@dataclass(frozen=True)
class Shape:
    """The sizes a job works at: its denoising passes and the images it ends with."""

    passes: tuple[tuple[int, int], ...]  # (w, h) of each pass, tiles of an SD upscale included
    output: tuple[int, int]
    batch: int
    tiled: bool  # the VAE decodes in tiles
    controlnets: int = 0
    loads_model: bool = True  # False: a plain upscale, no checkpoint involved
    # Parameters of the whole denoisers the job loads beside the model's (a full Flux
    # Control model's transformer): loaded and held like the model, not a ControlNet share.
    second_denoiser_params: int = 0


@dataclass(frozen=True)
class Need:
    """Estimated peak bytes of a job, by part, in one memory ("RAM" or "VRAM")."""

    where: str
    weights: int  # held for the whole job (the model, the pipeline's runtime)
    loading: int  # the stages below follow each other: only the largest counts
    sampling: int
    decode: int

    @property
    def total(self) -> int:
        return self.weights + max(self.loading, self.sampling, self.decode)

    def describe(self) -> str:
        loading = f"loading {_gib(self.loading)}, " if self.loading else ""
        return (
            f"about {_gib(self.total)} of {self.where} (model and pipeline {_gib(self.weights)}, "
            f"{loading}sampling {_gib(self.sampling)}, decoding and images {_gib(self.decode)})"
        )


def _gib(n: int) -> str:
    return f"{n / GiB:.1f} GiB"


# -- the model -------------------------------------------------------------------------
@lru_cache(maxsize=32)
def model_size(arch: str | None, params: int | None, weights: WeightFormat = FULL) -> ModelSize:
    """A ModelSize from the catalog config of `arch` (its base architecture for variants
    the catalog has no folder for; SD1 when unknown), the header's parameter count and the
    format the denoiser's file stores its weights in."""
    family, unet, vae = _configs(arch)
    unet_ch = _denoiser_width(unet)
    # The Qwen-Image (Wan) VAE names its widths as a base and multipliers.
    vae_ch = vae.get("block_out_channels") or [vae["base_dim"] * m for m in vae["dim_mult"]]
    # The decoder upsamples to full resolution at the width of its second-to-last block.
    full_res = int(vae_ch[1] if len(vae_ch) > 1 else vae_ch[0])
    tile = vae.get("sample_size", 512)
    tile = int(tile[0] if isinstance(tile, list) else tile)
    if params is None:
        params = _params_from_widths(unet_ch)
    m = spec_for(family).memory
    total_m = m.denoiser_params_m + m.vae_params_m + m.text_params_m
    offload = m.largest_module_params_m / total_m if m.largest_module_params_m else OFFLOAD_SHARE
    stored = 0
    if weights.quantized:
        # The denoiser's share of what the pipeline loads, as the family's real sizes split
        # it; layerwise casting stores only part of the denoiser.
        share = m.denoiser_params_m / total_m
        stored = int(params * share * (m.cast_share if weights.layerwise_cast else 1.0))
    return ModelSize(
        params,
        unet_ch,
        full_res,
        tile,
        bool(vae.get("force_upcast", False)),
        cfg_batch=m.cfg_batch,
        denoiser_share=m.denoiser_params_m / total_m,
        stored_params=stored,
        weights=weights,
        offload_share=offload,
    )


def _configs(arch: str | None) -> tuple[str, dict, dict]:
    from dreamwire import catalog

    known = set(catalog.archs())
    name = arch if arch in known else None
    if name is None and arch:
        base = arch.split("-")[0] if not arch.startswith("tiny-") else "-".join(arch.split("-")[:2])
        name = next((a for a in (base, base + "-base") if a in known), None)
    name = name or "sd1"
    folder = catalog.config_dir(name)
    read = lambda part: json.loads((folder / part / "config.json").read_text())  # noqa: E731
    family = catalog.family_of(name)
    return family, read(spec_for(family).denoiser), read("vae")


def _denoiser_width(config: dict) -> int:
    """The width the activation estimate scales with: a UNet's first block; a share of a
    transformer's inner width (Flux: 551, beside SD's 320)."""
    if "block_out_channels" in config:
        return int(config["block_out_channels"][0])
    if "dim" in config:  # Z-Image's (Lumina 2's) config names its width directly
        inner = int(config["dim"])
    else:
        inner = int(config["num_attention_heads"]) * int(config["attention_head_dim"])
    return round(inner * TRANSFORMER_WIDTH_SHARE)


def _params_from_widths(unet_channels: int) -> int:
    # No readable header (a pickle checkpoint): SD1.5's 1.07 billion, scaled by width^2.
    return int(1.066e9 * (unet_channels / 320) ** 2)


# -- the job ---------------------------------------------------------------------------
def denoiser_params(size: ModelSize, params: int | None) -> int:
    """A second denoiser's parameters: its header's count, else the model's denoiser's."""
    return int(params) if params else int(size.params * size.denoiser_share)


def shape(job: Job, native: int, tiled: bool, second_denoisers: tuple[int, ...] = ()) -> Shape:
    """The passes and output of `job` (validated: its mode is known); `native` is the model
    family's native side (an SD upscale's default tile), `tiled` whether the runner decodes
    in tiles, `second_denoisers` the parameters of each unit's own whole denoiser (a full
    Flux Control model), which is no ControlNet."""
    b = job.batch
    o = job.outpaint
    w, h = job.width, job.height
    cn = len(job.controls) - len(second_denoisers)
    if job.mode is JobMode.UPSCALE:
        ih, iw = job.init_image.shape[:2]
        out = job.upscale.size(iw, ih)
        if not job.upscale.refine:
            return Shape((), out, b, False, loads_model=False)
        side = job.upscale.tile or native
        tile = (min(side, out[0] // 8 * 8), min(side, out[1] // 8 * 8))
        # One tile at a time, plus the tile ControlNet when the job asks for one.
        return Shape((tile,), out, b, tiled, cn + int(job.upscale.tile_control))
    if job.mode is JobMode.INPAINT and not job.inpaint_full_res:
        w, h = w + o.left + o.right, h + o.top + o.bottom
    passes = [(w, h)]
    out = (w, h)
    if job.hires is not None:
        plan = job.hires.plan(job.width, job.height)
        # The upscaled image before its crop is what the second pass starts from.
        passes.append((plan.upscale_width, plan.upscale_height))
        out = plan.size
    if job.mode is JobMode.INPAINT:
        ih, iw = job.init_image.shape[:2]
        # The result is composited onto the (grown) init image.
        out = max(out, (iw + o.left + o.right, ih + o.top + o.bottom), key=lambda s: s[0] * s[1])
    return Shape(tuple(passes), out, b, tiled, cn, second_denoiser_params=sum(second_denoisers))


# -- the estimate ----------------------------------------------------------------------
def need(size: ModelSize, job: Shape, device: Device, resident: bool) -> list[Need]:
    """The job's peak in each memory it uses: RAM (and VRAM on a CUDA GPU)."""
    gpu = device.kind == "cuda"
    dtype = device.dtype_bytes
    params = size.params if job.loads_model else 0
    # ControlNets are counted as not loaded yet: their cache is not the checkpoint's.
    added = params * CONTROLNET_PARAMS * job.controlnets + (0 if resident else params)
    # A full Control model's transformer is loaded and held beside the model's own (at the
    # engine's dtype: an fp8/GGUF copy is over-counted, never under). Offloaded, it stands
    # in for the own one on the GPU, so the VRAM figure below keeps one transformer.
    added += job.second_denoiser_params if job.loads_model else 0
    weights = added * dtype - (0 if resident else size.saved_bytes(dtype))
    loading = added * LOAD_STATE_BYTES - (0 if resident else size.saved_bytes(LOAD_STATE_BYTES))
    sampling = max((_sampling(size, p, job, dtype) for p in job.passes), default=0)
    tile = device.vae_tile_px or size.vae_tile_px
    if gpu:
        tile = min(tile, SMALLEST_TILE)  # the fast path shrinks tiles to the free VRAM
    vae_dtype = 4 if size.vae_upcast else dtype
    decode = max((_decode(size, p, job, vae_dtype, tile) for p in job.passes), default=0)
    images = int(job.batch * job.output[0] * job.output[1] * 3 * 4 * OUTPUT_COPIES)
    if not gpu:
        return [Need("RAM", int(weights + RUNTIME_RAM), int(loading), sampling, decode + images)]
    # Low-VRAM offload keeps one model (or one module) on the GPU at a time: the best the
    # engine can do.
    on_gpu = (params + params * CONTROLNET_PARAMS * job.controlnets) * dtype
    on_gpu = (on_gpu - (size.saved_bytes(dtype) if job.loads_model else 0)) * size.offload_share
    on_gpu = int(on_gpu)
    return [
        Need("VRAM", on_gpu, 0, sampling, decode),
        Need("RAM", RUNTIME_RAM, int(loading), 0, images),
    ]


def _sampling(size: ModelSize, px: tuple[int, int], job: Shape, dtype: int) -> int:
    latent = (px[0] // LATENT_SCALE) * (px[1] // LATENT_SCALE)
    per_sample = latent * UNET_ELEMS * size.unet_channels * dtype
    samples = (2 if size.cfg_batch else 1) * job.batch
    return int(per_sample * samples * (1 + CONTROLNET_ACT * job.controlnets))


def _decode(size: ModelSize, px: tuple[int, int], job: Shape, dtype: int, tile: int) -> int:
    w, h = px
    tiled = job.tiled and max(w, h) > tile
    at_once = min(w, tile) * min(h, tile) if tiled else w * h
    act = at_once * VAE_ELEMS * size.vae_channels * dtype
    kept = w * h * 3 * dtype * TILED_RESULT_COPIES if tiled else 0
    return int(job.batch * (act + kept))


def released(needs: list[Need], where: str) -> int:
    """What a running job's passes hold in `where` and give back when it ends (its model
    stays loaded)."""
    return sum(max(n.sampling, n.decode) for n in needs if n.where == where)


def free_of(device: Device, where: str) -> int | None:
    return device.vram_free if where == "VRAM" else device.ram_free


def refusal(job_id: str, needs: list[Need], device: Device) -> DreamwireError | None:
    """`limit_exceeded` naming the estimate and what is free, for the first memory the job
    does not fit; None when it fits (or nothing is known about what is free)."""
    for n in needs:
        free = free_of(device, n.where)
        if free is None or n.total <= free * HEADROOM:
            continue
        where = "the GPU" if n.where == "VRAM" else "this machine"
        # Tiling only shrinks the decode; sampling grows with the size and batch alone.
        advice = "a smaller size or batch" + (", or tiled VAE" if n.decode > n.sampling else "")
        return DreamwireError(
            ErrorCode.LIMIT_EXCEEDED,
            f"not enough memory: this job needs {n.describe()}, and {where} has "
            f"{_gib(free)} free. Try {advice}",
            job_id,
        )
    return None
