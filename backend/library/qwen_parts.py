"""Which files make up one Qwen-Image pipeline: the transformer (ComfyUI's
models/diffusion_models), Qwen2.5-VL-7B (models/text_encoders), the Wan-layout VAE
(models/vae/qwen_image_vae.safetensors; Layered's RGBA twin) and Qwen's tokenizer, as
ComfyUI's Qwen-Image templates load them. Everything missing is named in ONE error
(`model_part_missing`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from dreamwire.backend.library.entries import ModelEntry
from dreamwire.backend.library.flux_parts import OneEncoderSources, is_tiny
from dreamwire.backend.library.one_encoder_parts import OneEncoderWants, gather_one_encoder
from dreamwire.backend.library.qwen_tokenizer import find_qwen_tokenizer

_ADVICE = {
    "text_encoder": "the Qwen2.5-VL-7B text encoder: put qwen_2.5_vl_7b.safetensors (or "
    "qwen_2.5_vl_7b_fp8_scaled.safetensors) in models/text_encoders",
    "vae": "the Qwen-Image VAE: put qwen_image_vae.safetensors in models/vae",
    "vae-rgba": "Qwen-Image-Layered's RGBA VAE: put qwen_image_layered_vae.safetensors in "
    "models/vae",
}


QwenSources = OneEncoderSources


def gather(
    entry: ModelEntry, library: Iterable[ModelEntry] = (), places: Iterable[Path] = ()
) -> QwenSources:
    """The files for `entry`'s pipeline from the library, matched in size (tiny with tiny).
    The text encoder must hold the vision tower (the Edit pipelines feed it the picture;
    transformers' Qwen2_5_VLForConditionalGeneration is built whole)."""
    tiny = "tiny-" if is_tiny(entry.arch) else ""
    encoder_arch = "tiny-qwen2.5-vl" if tiny else "qwen2.5-vl-7b"
    rgba = entry.detail.get("variant") == "layered"
    vae_arch = f"{tiny}qwen-image-vae" + ("-rgba" if rgba else "")
    advice = {
        "text_encoder": _ADVICE["text_encoder"],
        "vae": _ADVICE["vae-rgba" if rgba else "vae"],
    }
    wants = OneEncoderWants(
        "Qwen-Image", encoder_arch, vae_arch, advice, "qwen-image", find_qwen_tokenizer
    )
    return gather_one_encoder(entry, library, places, wants)
