"""Telling SD3 files apart from their headers: Large, Large Turbo, Medium, and what else
the file holds.

- An SD3 MMDiT has `joint_blocks.0.x_block.attn.qkv.weight` (bare, or under
  `model.diffusion_model.` as Stability ships it). Large is 38 blocks, 2432 wide (the rows of
  `x_embedder.proj.weight`); Medium is MMDiT-X: 24 blocks, 1536 wide, with a second
  self-attention (`x_block.attn2.`) in its first 13 blocks. SD3.0 Medium (24 blocks, 1536
  wide, no `attn2`, no q/k norms) is named but not in the catalog.
- Large Turbo has Large's exact shapes: a "turbo" in the file name, or in its
  `modelspec.title` / `modelspec.description` / `modelspec.architecture` metadata, tells it.
- The tiny test models are told by width (at most 256).
- Besides the MMDiT a file may hold the VAE (`first_stage_model.`, in Stability's own
  files) and the text encoders (`text_encoders.clip_l|clip_g|t5xxl.transformer.`, the
  "incl_clips" files and ComfyUI's bundles).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dreamwire.backend.library import sd3_layout
from dreamwire.backend.library.safetensors_header import Header

TINY_MAX_WIDTH = 256
_QKV = "joint_blocks.0.x_block.attn.qkv.weight"
_TURBO_METADATA = ("modelspec.title", "modelspec.description", "modelspec.architecture")

SECTIONS = {
    "clip_l": sd3_layout.CLIP_L,
    "clip_g": sd3_layout.CLIP_G,
    "t5": sd3_layout.T5,
    "vae": sd3_layout.VAE,
}


@dataclass(frozen=True)
class Sd3File:
    """What an SD3 checkpoint file holds."""

    arch: str  # "sd3.5-large", "sd3.5-large-turbo", "sd3.5-medium", "sd3-medium", "tiny-sd3"
    variant: str  # "", "turbo", "medium"
    prefix: str  # where the MMDiT's keys start ("" or "model.diffusion_model.")
    sections: tuple[str, ...]  # the SECTIONS in the same file

    def detail(self) -> dict:
        return {
            "family": "sd3",
            "variant": self.variant,
            "sections": list(self.sections),
            "transformer_prefix": self.prefix,
        }


def transformer_prefix(header: Header) -> str | None:
    for prefix in (sd3_layout.TRANSFORMER, ""):
        if prefix + _QKV in header.tensors:
            return prefix
    return None


def _turbo(header: Header, path: Path) -> bool:
    texts = [path.name, *(str(header.metadata.get(k, "")) for k in _TURBO_METADATA)]
    return any("turbo" in t.lower() for t in texts)


def sd3_file(header: Header, path: Path) -> Sd3File | None:
    prefix = transformer_prefix(header)
    if prefix is None:
        return None
    keys = [k[len(prefix) :] for k in header.tensors if k.startswith(prefix)]
    width = (header.shape(prefix + "x_embedder.proj.weight") or (0,))[0]
    dual = any(".x_block.attn2." in k for k in keys)
    qk_norm = any(".attn.ln_q." in k for k in keys)
    turbo = _turbo(header, path)
    if width <= TINY_MAX_WIDTH:
        arch, variant = ("tiny-sd3-turbo", "turbo") if turbo else ("tiny-sd3", "")
    elif dual:
        arch, variant = "sd3.5-medium", "medium"
    elif not qk_norm:
        arch, variant = "sd3-medium", "medium"  # SD3.0 Medium: not in the catalog
    else:
        arch, variant = ("sd3.5-large-turbo", "turbo") if turbo else ("sd3.5-large", "")
    sections = tuple(name for name, where in SECTIONS.items() if header.has_prefix(where))
    return Sd3File(arch=arch, variant=variant, prefix=prefix, sections=sections)


def is_sd3_transformer_config(config: dict) -> bool:
    return config.get("_class_name") == "SD3Transformer2DModel"


def folder_arch(config: dict, name: str) -> str:
    """A diffusers SD3 folder's arch from its transformer config (and folder name: Turbo)."""
    turbo = "turbo" in name.lower()
    if int(config.get("joint_attention_dim", 4096)) <= TINY_MAX_WIDTH:
        return "tiny-sd3-turbo" if turbo else "tiny-sd3"
    if config.get("dual_attention_layers"):
        return "sd3.5-medium"
    if not config.get("qk_norm"):
        return "sd3-medium"
    return "sd3.5-large-turbo" if turbo else "sd3.5-large"
