"""Building a diffusers Flux2KleinPipeline from the single files ComfyUI users have, offline.

- transformer: BFL's layout (fused qkv, `img_in`, shared `*_modulation.lin`, shift-first
  final modulation; bare or under `model.diffusion_model.`) goes through diffusers' own
  converter (Flux2Transformer2DModel.from_single_file: convert_flux2_transformer_checkpoint_
  to_diffusers) with the catalog's config; an fp8 file stays fp8 in memory (layerwise
  casting), as Flux.1's and Z-Image's do;
- Qwen3 text encoder: Z-Image's loader (the same qwen_3_4b.safetensors) with Klein's
  catalog config; Klein reads hidden states only, which Qwen3Model gives as its causal-LM
  wrapper does;
- VAE: diffusers has no single-file loader for AutoencoderKLFlux2. BFL's flux2-vae keeps
  LDM's encoder/decoder names (Flux.1's ae.safetensors' layout) with the quant convolutions
  inside them and the latents' batch-norm statistics as `bn.*`, so diffusers' LDM VAE
  converter maps it once the quant convolutions are renamed, as diffusers' own
  scripts/convert_flux2_to_diffusers.py does.
"""

from __future__ import annotations

import json

from dreamwire import catalog
from dreamwire.backend.library.flux2_parts import Flux2Sources
from dreamwire.backend.library.flux_loading import as_float, converted_transformer, read_tensors
from dreamwire.backend.library.flux_parts import Part
from dreamwire.backend.library.qwen_tokenizer import load_qwen_tokenizer
from dreamwire.backend.library.zimage_loading import load_text_encoder
from dreamwire.shared.errors import DreamwireError, ErrorCode

# BFL's names for the VAE's quant convolutions -> LDM's (diffusers' converter reads these).
_QUANT_CONVS = {
    "encoder.quant_conv.": "quant_conv.",
    "decoder.post_quant_conv.": "post_quant_conv.",
}
_BATCH_NORM = "bn."


def load_transformer(part: Part, arch: str, dtype):
    from diffusers import Flux2Transformer2DModel

    # diffusers' convert_flux2_transformer_checkpoint_to_diffusers renames BFL's keys.
    return converted_transformer(Flux2Transformer2DModel, part, arch, dtype)


def vae_state(tensors: dict, config: dict) -> dict:
    """BFL's flux2-vae names -> AutoencoderKLFlux2's."""
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    ldm = {}
    for key, value in tensors.items():
        for old, new in _QUANT_CONVS.items():
            if key.startswith(old):
                key = new + key.removeprefix(old)
        ldm[key] = value
    state = convert_ldm_vae_checkpoint(ldm, config)
    # The converter keeps only what Flux.1's VAE has: the statistics go across as they are.
    state |= {k: v for k, v in ldm.items() if k.startswith(_BATCH_NORM)}
    return state


def load_vae(part: Part, arch: str, dtype):
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKLFlux2

    config = AutoencoderKLFlux2.load_config(str(catalog.config_dir(arch)), subfolder="vae")
    with init_empty_weights(include_buffers=False):
        vae = AutoencoderKLFlux2.from_config(config)
    state = vae_state(read_tensors(part), config)
    expected = set(vae.state_dict())
    missing = sorted(expected - set(state) - {_BATCH_NORM + "num_batches_tracked"})
    if missing:
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT,
            f"{part.entry.name} ({part.entry.path.name}) is not a whole Flux.2 VAE: it lacks "
            f"{len(missing)} tensors, e.g. {', '.join(missing[:3])}",
        )
    state = {k: v for k, v in as_float(state, dtype).items() if k in expected}
    vae.load_state_dict(state, strict=False, assign=True)
    return vae.to(dtype).eval()


def load_flux2_pipeline(entry, sources: Flux2Sources, torch_dtype=None):
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, Flux2KleinPipeline

    dtype = torch_dtype or torch.float32
    arch = entry.arch
    folder = catalog.config_dir(arch)
    index = json.loads((folder / "model_index.json").read_text())
    return Flux2KleinPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler.from_pretrained(
            str(folder), subfolder="scheduler", local_files_only=True
        ),
        vae=load_vae(sources.vae, arch, dtype),
        text_encoder=load_text_encoder(sources.text_encoder, arch, dtype),
        tokenizer=load_qwen_tokenizer(sources.tokenizer),
        transformer=load_transformer(sources.transformer, arch, dtype),
        # Klein 4B is step-distilled (its model_index.json says so): no CFG by default.
        is_distilled=bool(index.get("is_distilled", False)),
    )
