"""A LoRA file patched by Dreamwire and by diffusers' own load_lora_weights + fuse_lora, on a
family's transformer: the two sides the families' LoRA tests compare."""

from __future__ import annotations

import copy

import diffusers
import torch


def patched_state(parts: dict, path, multiplier: float, model: str, family: str) -> dict:
    """The transformer's weights with the file applied by lora.apply (put back after)."""
    from dreamwire.backend.conditioning import lora

    patch = lora.apply([(lora.read(path), multiplier, multiplier)], parts, model, family)
    try:
        return {k: v.clone() for k, v in parts["transformer"].state_dict().items()}
    finally:
        patch.restore()


def fused_transformer(cls_name: str, parts: dict, path, scale: float) -> torch.nn.Module:
    """A copy of the transformer with the file fused by diffusers' `cls_name` pipeline."""
    pipe = getattr(diffusers, cls_name)(
        transformer=copy.deepcopy(parts["transformer"]),
        vae=parts["vae"],
        text_encoder=parts["text_encoder"],
        tokenizer=None,
        scheduler=None,
    )
    pipe.load_lora_weights(str(path))
    pipe.fuse_lora(components=["transformer"], lora_scale=scale)
    pipe.unload_lora_weights()
    return pipe.transformer
