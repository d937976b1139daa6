"""Image encoders and style models, identified from their headers.

- ComfyUI's `models/clip_vision` holds image encoders in transformers' key layout
  (`vision_model.embeddings.patch_embedding.weight`, `vision_model.encoder.layers.N...`), as
  comfy/clip_vision.py reads them. SigLIP (`sigclip_vision_patch14_384.safetensors`, which
  Flux Redux reads) has no class token: its position embedding holds exactly the patch grid
  (27 x 27 = 729 at 384 px) and it has no `pre_layrnorm`; CLIP vision models have both.
- ComfyUI's `models/style_models` holds Flux Redux (`flux1-redux-dev.safetensors`:
  `redux_up` SigLIP width -> 3 x T5 width, `redux_down` -> the T5 width).
"""

from __future__ import annotations

from .flux_identify import TINY_MAX_WIDTH
from .safetensors_header import Header

SIGLIP_PREFIX = "vision_model."
_PATCH = "vision_model.embeddings.patch_embedding.weight"
_POSITIONS = "vision_model.embeddings.position_embedding.weight"
_CLASS = "vision_model.embeddings.class_embedding"


def clip_vision_arch(header: Header) -> str | None:
    """ "siglip-384" (SigLIP so400m/14 at 384 px), "siglip-<width>", "tiny-siglip",
    "clip-vision-<width>"; None for anything else."""
    patch = header.shape(_PATCH)
    positions = header.shape(_POSITIONS)
    if patch is None or positions is None or len(patch) != 4:
        return None
    width = int(patch[0])
    if header.shape(_CLASS) is not None:
        return f"clip-vision-{width}"
    if width <= TINY_MAX_WIDTH:
        return "tiny-siglip"
    if width == 1152 and positions[0] == 729:
        return "siglip-384"
    return f"siglip-{width}"


def is_siglip(arch: str | None) -> bool:
    return bool(arch) and arch.removeprefix("tiny-").startswith("siglip")


def style_model_arch(header: Header) -> str | None:
    """ "flux-redux" (T5-XXL wide), "tiny-flux-redux"; None for other style models (the SD
    T2I style adapter)."""
    down = header.shape("redux_down.weight")
    if header.shape("redux_up.weight") is None or down is None:
        return None
    return "tiny-flux-redux" if down[0] <= TINY_MAX_WIDTH else "flux-redux"
