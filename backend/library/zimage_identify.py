"""Telling Z-Image files apart from their headers: the transformer and Qwen3 text encoders.

- A Z-Image transformer in ComfyUI's layout (z_image_turbo_bf16.safetensors, GGUF copies)
  has Lumina 2's NextDiT keys: `cap_embedder.1.weight` and
  `noise_refiner.0.attention.k_norm.weight` (ComfyUI's model_detection), bare or under
  `model.diffusion_model.`. Its width tells Z-Image (3840) from Lumina Image 2.0 (2304),
  which Dreamwire does not run; the tiny test models are narrower.
- A Qwen3 text encoder (ComfyUI's qwen_3_4b.safetensors: transformers' Qwen3ForCausalLM
  names, `model.layers.N...`) has per-head q/k norms, which Qwen2.5 has not; its width
  names the size (2560: Qwen3-4B, 4096: Qwen3-8B); a GGUF one (llama.cpp's names,
  qwen3_gguf.py) is told by its `blk.0.attn_q_norm` and sized by `token_embd`.
"""

from __future__ import annotations

from dataclasses import dataclass

from dreamwire.backend.library import qwen3_gguf
from dreamwire.backend.library.safetensors_header import Header

COMFY_PREFIX = "model.diffusion_model."
_CAPTION = "cap_embedder.1.weight"
_REFINER = "noise_refiner.0.attention.k_norm.weight"
LUMINA2_WIDTH = 2304
TINY_MAX_WIDTH = 256


@dataclass(frozen=True)
class ZImageFile:
    arch: str  # "zimage-turbo" or "tiny-zimage"
    prefix: str  # where the transformer's keys start

    def detail(self) -> dict:
        return {"family": "zimage", "transformer_prefix": self.prefix}


def zimage_file(header: Header) -> ZImageFile | None:
    for prefix in ("", COMFY_PREFIX):
        if prefix + _REFINER not in header.tensors:
            continue
        shape = header.shape(prefix + _CAPTION)
        if shape is None or shape[0] == LUMINA2_WIDTH:
            return None
        arch = "tiny-zimage" if shape[0] <= TINY_MAX_WIDTH else "zimage-turbo"
        return ZImageFile(arch=arch, prefix=prefix)
    return None


_QWEN3_MARKER = "layers.0.self_attn.q_norm.weight"
_QWEN3_SIZES = {2560: "qwen3-4b", 4096: "qwen3-8b"}


def _gguf_width(header: Header) -> int | None:
    """A GGUF Qwen3's width (llama.cpp's names, qwen3_gguf.py), None for other files."""
    if not qwen3_gguf.is_qwen3_gguf(header.tensors):
        return None
    shape = header.shape(qwen3_gguf.EMBEDDING)
    return shape[-1] if shape else 0


def qwen3_prefix(header: Header) -> str | None:
    for prefix in ("model.", ""):
        if prefix + _QWEN3_MARKER in header.tensors:
            return prefix
    return None


def qwen3_arch(header: Header) -> str | None:
    """ "qwen3-4b", "qwen3-8b", "tiny-qwen3" (or "qwen3-<width>"); None for other files."""
    prefix = qwen3_prefix(header)
    width = _gguf_width(header)
    if prefix is None and width is None:
        return None
    if width is None:
        shape = header.shape(prefix + "embed_tokens.weight")
        width = shape[-1] if shape else 0
    if width <= TINY_MAX_WIDTH:
        return "tiny-qwen3"
    return _QWEN3_SIZES.get(width, f"qwen3-{width}")
