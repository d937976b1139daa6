"""Z-Image LoRA key names: which layer of a diffusers ZImageTransformer2DModel each tensor of
a file patches.

Z-Image Turbo LoRAs come named four ways, all for the same layers:

  diffusers/ai-toolkit  diffusion_model.layers.0.attention.to_q.lora_A.weight (ai-toolkit;
                        also `transformer.`-prefixed as diffusers saves, PEFT `default.`
                        adapter names, optional `.alpha`): diffusers' own module names.
  kohya/musubi          lora_unet_layers_0_attention_to_q.lora_down.weight + .alpha: the same
                        names '_'-joined.
  ComfyUI/original      diffusion_model.layers.0.attention.qkv.lora_down.weight: Tongyi's
                        module names (ComfyUI's Lumina2/Z-Image model), a fused qkv and
                        `attention.out`; `x_embedder` and `final_layer` outside the blocks.
  Anime-Z style         ...attention.to.q.lora.down.weight: dots for underscores.

Tongyi's fused qkv is diffusers' to_q, to_k and to_v (diffusers' converter chunks it in
three): the delta is split by rows over them, as for Flux and SD3 (lora_flux_keys.py).

Z-Image's blocks are `layers`, `noise_refiner` and `context_refiner`, each with `attention`,
`feed_forward` (w1, w2, w3) and `adaLN_modulation`: no other family here names those.
"""

from __future__ import annotations

import re

from .lora_flux_keys import Fit, KeyRef, split_slot

_PREFIXES = ("diffusion_model.", "transformer.", "lora_unet_", "base_model.model.", "")
_BLOCK = re.compile(r"^(layers|noise_refiner|context_refiner)_(\d+)_(.+)$")
# The block's layers, '_'-joined, in diffusers' names (what every form is brought to).
_LAYERS = {
    "attention_to_q",
    "attention_to_k",
    "attention_to_v",
    "attention_to_out_0",
    "feed_forward_w1",
    "feed_forward_w2",
    "feed_forward_w3",
    "adaLN_modulation_0",
}
# Tongyi's names (and the dot-joined forms once '_'-joined) for the same layers.
_ALIASES = {
    "attention_out": ("attention_to_out_0",),
    "attention_to_out": ("attention_to_out_0",),
    "attention_qkv": ("attention_to_q", "attention_to_k", "attention_to_v"),
}
_OUTSIDE = {
    "x_embedder": "all_x_embedder_2-1",
    "all_x_embedder_2-1": "all_x_embedder_2-1",
    "final_layer_linear": "all_final_layer_2-1_linear",
    "final_layer_adaLN_modulation_1": "all_final_layer_2-1_adaLN_modulation_1",
    "all_final_layer_2-1_linear": "all_final_layer_2-1_linear",
    "all_final_layer_2-1_adaLN_modulation_1": "all_final_layer_2-1_adaLN_modulation_1",
    "cap_embedder_1": "cap_embedder_1",
    "t_embedder_mlp_0": "t_embedder_mlp_0",
    "t_embedder_mlp_2": "t_embedder_mlp_2",
}


def _stem_name(stem: str) -> str | None:
    """The file's layer name '_'-joined without its prefix and PEFT/dot-format leftovers,
    or None for a key outside the transformer."""
    for prefix in _PREFIXES:
        if stem.startswith(prefix):
            name = stem.removeprefix(prefix).replace(".default", "").removesuffix(".lora")
            return name.replace(".", "_")
    return None


def _fit(name: str) -> Fit | None:
    if m := _BLOCK.match(name):
        block, layer = f"{m[1]}_{m[2]}", m[3]
        if layer in _LAYERS:
            return Fit((f"{block}_{layer}",))
        if layer in _ALIASES:
            return Fit(tuple(f"{block}_{n}" for n in _ALIASES[layer]))
        return None
    if name in _OUTSIDE:
        return Fit((_OUTSIDE[name],))
    return None


def parse(key: str) -> KeyRef | None:
    """The Z-Image layer a key belongs to, or None for a key that names none."""
    split = split_slot(key)
    name = _stem_name(split[0]) if split else None
    fit = _fit(name) if name else None
    return None if fit is None else KeyRef("transformer", name, split[1], fit)


def is_zimage(keys: list[str]) -> bool:
    """A file is a Z-Image LoRA when its keys name Z-Image's blocks and layers."""
    return any((ref := parse(k)) is not None and _BLOCK.match(ref.module) for k in keys)
