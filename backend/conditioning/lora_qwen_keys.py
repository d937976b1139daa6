"""Qwen-Image LoRA key names: what tells a Qwen-Image LoRA from a Flux one, and the
Qwen layer each key names.

Qwen-Image LoRAs are published in diffusers'/PEFT names (`transformer.transformer_blocks.
0.attn.to_q.lora_A.weight`: diffusers' own training scripts, ai-toolkit), their kohya form
(`lora_transformer_transformer_blocks_0_attn_to_q.lora_down.weight`) and ComfyUI's
(`diffusion_model.transformer_blocks.0...`: ComfyUI's Qwen model uses diffusers' module
names). Flux's diffusers LoRAs share the `transformer.transformer_blocks.N.attn.*` part of
those names, so the layers only Qwen-Image has (its image/text MLPs and modulations) tell
them apart. Every form names diffusers modules, parsed as lora_flux_keys parses diffusers
names.
"""

from __future__ import annotations

import re

from . import lora_flux_keys
from .lora_flux_keys import KeyRef

# Modules of Qwen-Image's `transformer_blocks` that Flux's diffusers blocks have not (BFL's
# Flux names have img_mlp/img_mod too, but in `double_blocks`).
_QWEN_ONLY = re.compile(r"transformer_blocks[._]\d+[._](img_mlp|txt_mlp|img_mod|txt_mod)")
_COMFY = "diffusion_model."


def is_qwen(keys: list[str]) -> bool:
    return any(_QWEN_ONLY.search(key) for key in keys)


def parse(key: str) -> KeyRef | None:
    """The Qwen transformer module a key belongs to, or None."""
    if key.startswith(_COMFY):
        key = "transformer." + key.removeprefix(_COMFY)
    ref = lora_flux_keys.parse(key)
    return ref if ref is not None and ref.part == "transformer" else None
