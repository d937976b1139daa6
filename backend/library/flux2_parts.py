"""Which files make up one Flux.2 Klein pipeline from single files, as ComfyUI's Klein
template loads them: the transformer (models/diffusion_models/flux-2-klein-4b*.safetensors),
the Qwen3-4B text encoder Z-Image uses too (models/text_encoders/qwen_3_4b.safetensors),
Flux.2's 32-channel VAE (models/vae/flux2-vae.safetensors) and Qwen's tokenizer. Everything
missing is named in ONE error (`model_part_missing`).
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

Flux2Sources = OneEncoderSources


def _wants(encoder_arch: str, vae_arch: str) -> OneEncoderWants:
    advice = {
        "text_encoder": "the Qwen3-4B text encoder: put qwen_3_4b.safetensors in "
        "models/text_encoders (ComfyUI: models/text_encoders or models/clip)",
        "vae": "Flux.2's 32-channel VAE: put flux2-vae.safetensors in models/vae",
    }
    return OneEncoderWants(
        "Flux.2 Klein", encoder_arch, vae_arch, advice, "flux2", find_qwen_tokenizer
    )


# Klein 4B's parts; the tiny test model's (tiny with tiny).
_KLEIN_4B = _wants("qwen3-4b", "flux2-vae")
_TINY = _wants("tiny-qwen3", "tiny-flux2-vae")


def is_flux2_file(entry: ModelEntry) -> bool:
    return is_transformer_file(entry, "flux2")


def gather(
    entry: ModelEntry, library: Iterable[ModelEntry] = (), places: Iterable[Path] = ()
) -> Flux2Sources:
    """The files for `entry`'s pipeline from the library."""
    wants = _TINY if is_tiny(entry.arch) else _KLEIN_4B
    return gather_one_encoder(entry, library, places, wants)
