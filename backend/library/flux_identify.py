"""Telling Flux files apart from their headers: transformer, all-in-one, text encoders, VAE.

- A Flux transformer has BFL's `double_blocks.0.img_attn.qkv.weight` (bare, or under
  `model.diffusion_model.` in ComfyUI's checkpoints). Dev has the distilled-guidance
  embedder `guidance_in`, schnell has none; Fill takes 384 input channels (64 latent + 320
  mask/image), the Depth/Canny "Control" models 128. Kontext has dev's exact shapes, so only
  a "kontext" in the file name tells it.
- The tiny test models are told by width (the real hidden size is 3072).
- Text encoders: CLIP-L (`text_model.encoder.layers...`, width 768) and T5-XXL
  (`encoder.block.0.layer.0.SelfAttention.q.weight`, width 4096; in llama.cpp's GGUF naming
  `enc.blk.0.attn_q.weight`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dreamwire import catalog
from dreamwire.backend.library import flux_layout
from dreamwire.backend.library.nf4 import FP4_MARKER, NF4_MARKER, unpacked_shapes
from dreamwire.backend.library.safetensors_header import Header

REAL_HIDDEN = 3072
TINY_MAX_WIDTH = 256
TINY_CLIP_G_WIDTH = 48
_QKV = "double_blocks.0.img_attn.qkv.weight"
_INPUT_VARIANTS = {64: "", 384: "fill", 128: "control"}


# The other components a ComfyUI/Forge checkpoint may carry beside the transformer.
SECTIONS = {
    "clip_l": flux_layout.COMFY_CLIP_L,
    "t5": flux_layout.COMFY_T5,
    "vae": flux_layout.COMFY_VAE,
}


@dataclass(frozen=True)
class FluxFile:
    """What a Flux checkpoint file holds."""

    arch: str  # "flux-dev", "flux-schnell", "flux-fill", "flux-kontext", "tiny-flux" ...
    variant: str  # "dev", "schnell", "fill", "control", "kontext"
    prefix: str  # where the transformer's keys start ("" or "model.diffusion_model.")
    sections: tuple[str, ...]  # the SECTIONS in the same file ("clip_l", "t5", "vae")
    nf4: bool  # bitsandbytes NF4 weights (expanded on load)
    fp4: bool  # bitsandbytes FP4 weights (refused)

    @property
    def all_in_one(self) -> bool:
        return len(self.sections) == len(SECTIONS)

    def detail(self) -> dict:
        return {
            "family": "flux",
            "variant": self.variant,
            "all_in_one": self.all_in_one,
            "sections": list(self.sections),
            "transformer_prefix": self.prefix,
            "nf4": self.nf4,
            "fp4": self.fp4,
        }


def transformer_prefix(header: Header) -> str | None:
    for prefix in ("", flux_layout.COMFY_TRANSFORMER):
        if prefix + _QKV in header.tensors:
            return prefix
    return None


def flux_file(header: Header, path: Path) -> FluxFile | None:
    prefix = transformer_prefix(header)
    if prefix is None:
        return None
    shapes = {
        k[len(prefix) :]: tuple(v["shape"])
        for k, v in header.tensors.items()
        if k.startswith(prefix)
    }
    nf4 = any(k.endswith(NF4_MARKER) for k in header.tensors)
    if nf4:
        shapes = unpacked_shapes(shapes)
    shape = flux_layout.bfl_shape(shapes)
    if shape is None:
        return None
    variant = _INPUT_VARIANTS.get(shape.in_channels, f"in{shape.in_channels}")
    if not variant:
        if "kontext" in path.name.lower():
            variant = "kontext"
        else:
            variant = "dev" if shape.guidance else "schnell"
    arch = f"flux-{variant}"
    if shape.hidden <= TINY_MAX_WIDTH:
        # The tiny test models: "tiny-flux-fill" where the catalog has it, else tiny-flux.
        arch = "tiny-" + arch if "tiny-" + arch in catalog.archs() else "tiny-flux"
    sections = tuple(name for name, where in SECTIONS.items() if header.has_prefix(where))
    fp4 = any(k.endswith(FP4_MARKER) for k in header.tensors)
    return FluxFile(arch=arch, variant=variant, prefix=prefix, sections=sections, nf4=nf4, fp4=fp4)


# Text encoders: (marker key, tensor whose last dimension is the width, name by width).
_CLIP_MARKER = "text_model.encoder.layers.0.self_attn.q_proj.weight"
_T5_MARKERS = (
    ("encoder.block.0.layer.0.SelfAttention.q.weight", "shared.weight"),
    ("enc.blk.0.attn_q.weight", "token_embd.weight"),  # llama.cpp's names (GGUF T5)
)


def text_encoder_arch(header: Header) -> str | None:
    """ "clip-l", "clip-g", "t5-xxl" or "tiny-clip"/"tiny-t5"; None for anything else."""
    for prefix in ("", "text_encoders.clip_l.transformer.", "transformer."):
        shape = header.shape(prefix + _CLIP_MARKER)
        if shape is not None:
            width = shape[-1]
            if width <= TINY_MAX_WIDTH:
                # The tiny SD3's CLIP-G is 48 wide, beside the tiny CLIP-L's 32.
                return "tiny-clip-g" if width == TINY_CLIP_G_WIDTH else "tiny-clip"
            return {768: "clip-l", 1280: "clip-g"}.get(width, f"clip-{width}")
    for marker, embedding in _T5_MARKERS:
        shape = header.shape(marker) or header.shape(embedding)
        if shape is not None:
            width = shape[-1]
            if width <= TINY_MAX_WIDTH:
                return "tiny-t5"
            return "t5-xxl" if width == 4096 else f"t5-{width}"
    return None


def is_t5(arch: str | None) -> bool:
    return bool(arch) and arch.removeprefix("tiny-").startswith("t5")


def is_clip_l(arch: str | None) -> bool:
    return arch in ("clip-l", "tiny-clip")


def is_clip_g(arch: str | None) -> bool:
    return arch in ("clip-g", "tiny-clip-g")


def vae_latent_channels(header: Header, prefix: str = "") -> int | None:
    """The VAE's latent channels: its encoder outputs mean and log-variance (2 x channels)."""
    shape = header.shape(prefix + "encoder.conv_out.weight")
    return shape[0] // 2 if shape else None
