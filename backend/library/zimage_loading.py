"""Building a diffusers ZImagePipeline from the files ComfyUI users have, offline.

- transformer: ComfyUI's layout (fused qkv, `x_embedder`, `final_layer`, q/k_norm) goes
  through diffusers' own converter (ZImageTransformer2DModel.from_single_file with the
  catalog's config); a GGUF file keeps its quantized weights (diffusers' GGUF layers
  dequantize per call); an fp8 file stays fp8 in memory (layerwise casting);
- Qwen3 text encoder: transformers' Qwen3Model on the meta device, the file's
  Qwen3ForCausalLM tensors assigned (`model.` dropped; the LM head is not used); a GGUF
  file's in llama.cpp's names (qwen3_gguf.py), unpacked to full precision (transformers'
  Qwen3 runs no packed weights; the text encoder runs once per prompt);
- VAE: Flux's (flux_loading.load_vae with the arch's catalog VAE config).
"""

from __future__ import annotations

from dreamwire import catalog
from dreamwire.backend.library import qwen3_gguf
from dreamwire.backend.library.entries import Format
from dreamwire.backend.library.flux_loading import (
    as_float,
    assign_state,
    component_config,
    converted_transformer,
    dequantized,
    load_vae,
    read_tensors,
)
from dreamwire.backend.library.flux_parts import Part
from dreamwire.backend.library.qwen_tokenizer import load_qwen_tokenizer
from dreamwire.backend.library.zimage_parts import ZImageSources
from dreamwire.shared.errors import DreamwireError, ErrorCode


def load_transformer(part: Part, arch: str, dtype):
    from diffusers import ZImageTransformer2DModel

    # diffusers' converter (convert_z_image_transformer_checkpoint_to_diffusers) renames
    # ComfyUI's keys and splits the fused qkv.
    return converted_transformer(ZImageTransformer2DModel, part, arch, dtype)


def load_text_encoder(part: Part, arch: str, dtype):
    from accelerate import init_empty_weights
    from transformers import Qwen3Config, Qwen3Model

    packed = part.entry.format == Format.GGUF
    tensors = _gguf_tensors(part) if packed else read_tensors(part)  # refused before building
    with init_empty_weights(include_buffers=False):
        model = Qwen3Model(Qwen3Config(**component_config(arch, "text_encoder")))
    if packed:
        state = qwen3_gguf.from_gguf_names(
            dequantized(tensors), list(model.state_dict()), len(model.layers)
        )
    else:
        state = {
            key.removeprefix("model."): value
            for key, value in tensors.items()
            if not key.startswith("lm_head.")
        }
    return assign_state(model, as_float(state, dtype), part)


def _gguf_tensors(part: Part) -> dict:
    """The file's tensors, still packed; a quantization diffusers' GGUF reader does not
    unpack (the IQ types) is refused naming the file."""
    try:
        return read_tensors(part)
    except ValueError as exc:
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"{part.entry.path.name}: this Qwen3 GGUF's quantization cannot be loaded here "
            f"({str(exc).splitlines()[0]}); use a Q8_0, Q4_K or other K-quant file, or "
            "qwen_3_4b.safetensors",
        ) from None


def load_zimage_pipeline(entry, sources: ZImageSources, torch_dtype=None):
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, ZImagePipeline

    dtype = torch_dtype or torch.float32
    arch = entry.arch
    return ZImagePipeline(
        scheduler=FlowMatchEulerDiscreteScheduler.from_pretrained(
            str(catalog.config_dir(arch)), subfolder="scheduler", local_files_only=True
        ),
        vae=load_vae(sources.vae, arch, dtype),
        text_encoder=load_text_encoder(sources.text_encoder, arch, dtype),
        tokenizer=load_qwen_tokenizer(sources.tokenizer),
        transformer=load_transformer(sources.transformer, arch, dtype),
    )
