"""Building a diffusers Qwen-Image pipeline from the files ComfyUI users have, offline.

- transformer: diffusers' own key names (with or without `model.diffusion_model.`, which
  the Part's prefix drops) through QwenImageTransformer2DModel.from_single_file with the
  catalog's config; an fp8 file stays fp8 in memory (layerwise casting), city96's GGUF
  (qwen-image-Q4_0.gguf ..., the same names) stays quantized (diffusers' GGUF layers);
  ComfyUI's Edit-2511 marker (`__index_timestep_zero__`) becomes diffusers' `zero_cond_t`;
- text encoder: Qwen2.5-VL in Hugging Face's original names (`model.layers.*`, `visual.*`)
  renamed to transformers 5's Qwen2_5_VLForConditionalGeneration (`model.language_model.*`,
  `model.visual.*`), built on the meta device; scaled fp8 multiplied out (read_tensors);
- VAE: Wan's names (wan_vae_layout) or diffusers' own, into AutoencoderKLQwenImage;
- the Edit/Layered pipelines' processor: transformers' Qwen2-VL image defaults (Qwen2.5-VL's
  own values) with the tokenizer.
"""

from __future__ import annotations

import inspect

from dreamwire import catalog
from dreamwire.backend.library.entries import Format
from dreamwire.backend.library.flux_loading import (
    as_float,
    assign_state,
    component_config,
    fp8_storage,
    read_tensors,
    single_file_transformer,
)
from dreamwire.backend.library.flux_parts import Part
from dreamwire.backend.library.qwen_parts import QwenSources
from dreamwire.backend.library.qwen_tokenizer import load_qwen_tokenizer
from dreamwire.backend.library.wan_vae_layout import wan_to_diffusers

_ZERO_COND = "__index_timestep_zero__"
# One tiny Edit serves Edit and Edit-2509: the variant's pipeline, not the tiny arch's.
_VARIANT_PIPELINES = {"edit-2509": "QwenImageEditPlusPipeline"}


def load_transformer(part: Part, arch: str, dtype):
    from diffusers import QwenImageTransformer2DModel

    tensors = read_tensors(part)
    overrides = {"zero_cond_t": True} if tensors.pop(_ZERO_COND, None) is not None else {}
    # city96's qwen-image-*.gguf: ComfyUI's (diffusers') names, kept quantized in memory.
    quantized = part.entry.format == Format.GGUF
    fp8 = fp8_storage(tensors)
    state = tensors if quantized else as_float(tensors, dtype)
    return single_file_transformer(
        QwenImageTransformer2DModel, state, arch, dtype, quantized, fp8, **overrides
    )


def transformers_names(state: dict) -> dict:
    """Qwen2.5-VL's original names as transformers 5 spells them (new names kept)."""
    renamed = {}
    for key, value in state.items():
        if key.startswith("visual."):
            key = "model." + key
        elif key.startswith("model.") and not key.startswith(
            ("model.language_model.", "model.visual.")
        ):
            key = "model.language_model." + key.removeprefix("model.")
        renamed[key] = value
    # ComfyUI's files may leave the LM head out: the pipelines read the hidden states, never
    # the logits, so the embedding stands in (one tensor, no memory).
    embed = renamed.get("model.language_model.embed_tokens.weight")
    if "lm_head.weight" not in renamed and embed is not None:
        renamed["lm_head.weight"] = embed
    return renamed


def load_text_encoder(part: Part, arch: str, dtype):
    from accelerate import init_empty_weights
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    with init_empty_weights(include_buffers=False):
        model = Qwen2_5_VLForConditionalGeneration(
            Qwen2_5_VLConfig(**component_config(arch, "text_encoder"))
        )
    state = transformers_names(read_tensors(part))
    return assign_state(model, as_float(state, dtype), part)


def load_vae(part: Part, arch: str, dtype):
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKLQwenImage

    with init_empty_weights(include_buffers=False):
        vae = AutoencoderKLQwenImage.from_config(component_config(arch, "vae"))
    state = as_float(wan_to_diffusers(read_tensors(part)), dtype)
    vae.load_state_dict(state, strict=True, assign=True)
    return vae.eval()


def pipeline_class(entry):
    import diffusers

    name = _VARIANT_PIPELINES.get(entry.detail.get("variant", ""))
    return getattr(diffusers, name or catalog.arch_info(entry.arch)["pipeline"])


def load_qwen_pipeline(entry, sources: QwenSources, torch_dtype=None):
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler

    from dreamwire.backend.library.qwen_processor import ImageOnlyQwenProcessor, image_processor

    dtype = torch_dtype or torch.float32
    arch = entry.arch
    cls = pipeline_class(entry)
    tokenizer = load_qwen_tokenizer(sources.tokenizer)
    extra = {}
    if "processor" in inspect.signature(cls.__init__).parameters:
        extra["processor"] = ImageOnlyQwenProcessor(image_processor(), tokenizer)
    return cls(
        scheduler=FlowMatchEulerDiscreteScheduler.from_pretrained(
            str(catalog.config_dir(arch)), subfolder="scheduler", local_files_only=True
        ),
        vae=load_vae(sources.vae, arch, dtype),
        text_encoder=load_text_encoder(sources.text_encoder, arch, dtype),
        tokenizer=tokenizer,
        transformer=load_transformer(sources.transformer, arch, dtype),
        **extra,
    )
