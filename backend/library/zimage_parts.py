"""Which files make up one Z-Image pipeline: the transformer (ComfyUI's
models/diffusion_models), the Qwen3-4B text encoder (models/text_encoders), Flux's 16-channel
VAE (models/vae/ae.safetensors) and Qwen's tokenizer, as ComfyUI's Z-Image template loads
them. Everything missing is named in ONE error (`model_part_missing`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from dreamwire.backend.library.entries import ModelEntry
from dreamwire.backend.library.flux_parts import OneEncoderSources, is_tiny
from dreamwire.backend.library.one_encoder_parts import (
    OneEncoderWants,
    gather_one_encoder,
    is_transformer_file,
)
from dreamwire.backend.library.qwen_tokenizer import find_qwen_tokenizer

_ADVICE = {
    "text_encoder": "the Qwen3-4B text encoder: put qwen_3_4b.safetensors in "
    "models/text_encoders (ComfyUI: models/text_encoders or models/clip)",
    "vae": "the 16-channel Flux VAE: put ae.safetensors in models/vae",
}


ZImageSources = OneEncoderSources


def is_zimage_file(entry: ModelEntry) -> bool:
    return is_transformer_file(entry, "zimage")


def gather(
    entry: ModelEntry, library: Iterable[ModelEntry] = (), places: Iterable[Path] = ()
) -> ZImageSources:
    """The files for `entry`'s pipeline from the library, matched in size (tiny with tiny)."""
    tiny = is_tiny(entry.arch)
    encoder_arch, vae_arch = ("tiny-qwen3", "tiny-flux-vae") if tiny else ("qwen3-4b", "flux-vae")
    wants = OneEncoderWants(
        "Z-Image", encoder_arch, vae_arch, _ADVICE, "zimage", find_qwen_tokenizer
    )
    return gather_one_encoder(entry, library, places, wants)
