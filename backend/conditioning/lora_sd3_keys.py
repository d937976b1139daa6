"""SD3 LoRA key names: which layer of a diffusers SD3 transformer each tensor of a file
patches.

SD3.5 LoRAs come named three ways, all for the same layers:

  kohya/sd-scripts  lora_unet_joint_blocks_0_x_block_attn_qkv.lora_down.weight (+ .alpha):
                    Stability's MMDiT names with '.' -> '_'; lora_te1_ CLIP-L, lora_te2_
                    CLIP-G, lora_te3_ T5. ComfyUI writes the MMDiT names dotted under
                    diffusion_model. (and the text encoders under text_encoders.clip_l|
                    clip_g|t5xxl.transformer.).
  diffusers (PEFT)  transformer.transformer_blocks.0.attn.to_q.lora_A.weight, text_encoder.,
                    text_encoder_2., text_encoder_3.; also lora_transformer_<module>.

Stability's fused qkv is diffusers' to_q, to_k and to_v (add_*_proj for the context
stream): the delta is split by rows over them, as for Flux (lora_flux_keys.py). The final
adaLN is (shift, scale) in the MMDiT, (scale, shift) in diffusers: its rows are swapped.
(The last block's context adaLN is one too; sd-scripts does not train adaLN layers by
default, and a file that does is applied unswapped there.)

diffusers-named files are shared in form with Flux's, whose LoRAs train its single blocks
too: a file of diffusers transformer names without any `single_transformer_blocks` is read
as SD3.
"""

from __future__ import annotations

import re

from .lora_flux_keys import Fit, KeyRef, prefixed_ref, split_slot

_QKV = ("attn.to_q", "attn.to_k", "attn.to_v")
_BLOCK_LAYERS = {
    "x_block_attn_qkv": _QKV,
    "x_block_attn_proj": ("attn.to_out.0",),
    "x_block_attn2_qkv": ("attn2.to_q", "attn2.to_k", "attn2.to_v"),
    "x_block_attn2_proj": ("attn2.to_out.0",),
    "x_block_mlp_fc1": ("ff.net.0.proj",),
    "x_block_mlp_fc2": ("ff.net.2",),
    "x_block_adaLN_modulation_1": ("norm1.linear",),
    "context_block_attn_qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"),
    "context_block_attn_proj": ("attn.to_add_out",),
    "context_block_mlp_fc1": ("ff_context.net.0.proj",),
    "context_block_mlp_fc2": ("ff_context.net.2",),
    "context_block_adaLN_modulation_1": ("norm1_context.linear",),
}
_OUTSIDE_BLOCKS = {
    "x_embedder_proj": "pos_embed.proj",
    "context_embedder": "context_embedder",
    "t_embedder_mlp_0": "time_text_embed.timestep_embedder.linear_1",
    "t_embedder_mlp_2": "time_text_embed.timestep_embedder.linear_2",
    "y_embedder_mlp_0": "time_text_embed.text_embedder.linear_1",
    "y_embedder_mlp_2": "time_text_embed.text_embedder.linear_2",
    "final_layer_linear": "proj_out",
    "final_layer_adaLN_modulation_1": "norm_out.linear",
}
_SWAPPED = "final_layer_adaLN_modulation_1"
_BLOCK = re.compile(r"^joint_blocks_(\d+)_(.+)$")
_MMDIT_PREFIXES = ("lora_unet_", "diffusion_model.", "base_model.model.")
# Text encoders (lora.py PARTS): CLIP-L te1, CLIP-G te2, T5 the third encoder.
_TEXT_PREFIXES = {
    "lora_te1_": "te1",
    "lora_te2_": "te2",
    "lora_te3_": "sd3_t5",
    "text_encoders.clip_l.transformer.": "te1",
    "text_encoders.clip_g.transformer.": "te2",
    "text_encoders.t5xxl.transformer.": "sd3_t5",
    "text_encoder.": "pte1",
    "text_encoder_2.": "pte2",
    "text_encoder_3.": "sd3_t5",
}
_SD3_ONLY = ("joint_blocks",)


def _underscored(name: str) -> str:
    return name.replace(".", "_")


def _mmdit_fit(stem: str) -> Fit | None:
    if m := _BLOCK.match(stem):
        names = _BLOCK_LAYERS.get(m[2])
        if names is None:
            return None
        return Fit(tuple(_underscored(f"transformer_blocks.{m[1]}.{n}") for n in names))
    if stem in _OUTSIDE_BLOCKS:
        return Fit((_underscored(_OUTSIDE_BLOCKS[stem]),), swap_halves=stem == _SWAPPED)
    return None


def parse(key: str) -> KeyRef | None:
    """The SD3 layer a key belongs to, or None for a key that names no SD3 layer."""
    split = split_slot(key)
    if split is None:
        return None
    stem, slot = split
    for prefix, part in _TEXT_PREFIXES.items():
        if stem.startswith(prefix):
            name = _underscored(stem.removeprefix(prefix))
            return KeyRef(part, name.removeprefix("text_model_"), slot)
    for prefix in ("transformer.", "lora_transformer_"):
        if stem.startswith(prefix):  # diffusers' own module names
            name = _underscored(stem.removeprefix(prefix))
            return KeyRef("transformer", name, slot, Fit((name,)))
    return prefixed_ref(stem, slot, _MMDIT_PREFIXES, _mmdit_fit)


def is_sd3(keys: list[str]) -> bool:
    """A file is an SD3 LoRA when it names MMDiT layers, or diffusers transformer layers of
    SD3's kind (see the module's docstring)."""
    if any(k.startswith(("lora_unet_joint_blocks", "diffusion_model.joint_blocks")) for k in keys):
        return True
    named = [k for k in keys if k.startswith(("transformer.", "lora_transformer_"))]
    if any("single_transformer_blocks" in k for k in named):
        return False
    return bool(named) or any(s in k for k in keys for s in _SD3_ONLY)
