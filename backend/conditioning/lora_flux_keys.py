"""Flux.1 LoRA key names: which layer of a diffusers Flux model each tensor of a file patches.

Flux LoRAs come named three ways, all for the same layers:

  kohya/sd-scripts  lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight (+ .alpha),
                    Black Forest Labs' block names with '.' -> '_'; lora_te1_ CLIP-L,
                    lora_te3_ T5. ComfyUI writes the same names dotted under
                    diffusion_model. / text_encoders.clip_l.transformer. / .t5xxl.transformer.,
                    fal's Kontext trainer under base_model.model. (lora_A / lora_B).
  ai-toolkit / diffusers (PEFT)
                    transformer.single_transformer_blocks.0.attn.to_q.lora_A.weight: diffusers'
                    own module names; also lora_transformer_<module>.lora_down.weight.
  BFL / XLabs       double_blocks.0.processor.qkv_lora1.down.weight (no alpha).

BFL's model fuses layers that diffusers keeps apart: a double block's img_attn.qkv is
diffusers' to_q, to_k and to_v; a single block's linear1 is to_q, to_k, to_v and proj_mlp.
A LoRA on a fused layer has one up matrix whose rows run over the parts in that order, so the
delta up @ down is split by rows over the diffusers modules (what diffusers'
_convert_kohya_flux_lora_to_diffusers does to the up matrix; splitting the product is the
same arithmetic). The row counts come from the loaded model's modules, so any Flux width
works. BFL's final adaLN modulation outputs (shift, scale), diffusers' norm_out (scale,
shift): its rows are swapped (diffusers' swap_scale_shift).

The mapping is diffusers' (lora_conversion_utils.py, 0.42); CLIP-L keys in kohya and PEFT form
are the SD names and are read by lora.py's own parser. The arithmetic is Forge's where
diffusers 0.42 differs: its kohya converter ignores the final layer's alpha and names the
layers outside the blocks (img_in, time_in, final_layer ...) without the `transformer.` its
loader keeps, so diffusers drops them; here they apply, scaled by alpha / rank.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_QKV = ("attn.to_q", "attn.to_k", "attn.to_v")
_ADD_QKV = ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj")

# BFL layer names ('.' -> '_') inside transformer_blocks.N (double) / single_transformer_blocks.N.
_DOUBLE = {
    "img_attn_qkv": _QKV,
    "img_attn_proj": ("attn.to_out.0",),
    "img_mlp_0": ("ff.net.0.proj",),
    "img_mlp_2": ("ff.net.2",),
    "img_mod_lin": ("norm1.linear",),
    "txt_attn_qkv": _ADD_QKV,
    "txt_attn_proj": ("attn.to_add_out",),
    "txt_mlp_0": ("ff_context.net.0.proj",),
    "txt_mlp_2": ("ff_context.net.2",),
    "txt_mod_lin": ("norm1_context.linear",),
    # XLabs' attention processors: 1 = image stream, 2 = text stream
    "processor_qkv_lora1": _QKV,
    "processor_proj_lora1": ("attn.to_out.0",),
    "processor_qkv_lora2": _ADD_QKV,
    "processor_proj_lora2": ("attn.to_add_out",),
}
_SINGLE = {
    "linear1": (*_QKV, "proj_mlp"),
    "linear2": ("proj_out",),
    "modulation_lin": ("norm.linear",),
    "processor_qkv_lora": _QKV,
    "processor_proj_lora": ("proj_out",),
}
_OUTSIDE_BLOCKS = {
    "img_in": "x_embedder",
    "txt_in": "context_embedder",
    "time_in_in_layer": "time_text_embed.timestep_embedder.linear_1",
    "time_in_out_layer": "time_text_embed.timestep_embedder.linear_2",
    "vector_in_in_layer": "time_text_embed.text_embedder.linear_1",
    "vector_in_out_layer": "time_text_embed.text_embedder.linear_2",
    "guidance_in_in_layer": "time_text_embed.guidance_embedder.linear_1",
    "guidance_in_out_layer": "time_text_embed.guidance_embedder.linear_2",
    "final_layer_linear": "proj_out",
    "final_layer_adaLN_modulation_1": "norm_out.linear",
}
_SWAPPED = "final_layer_adaLN_modulation_1"
# img_in's input width is the variant's latent channels (dev/schnell 64, Fill 384, the
# depth/canny Control models 128): a LoRA trained on another variant cannot patch it.
_MODEL_INPUT = "img_in"
_BLOCK = re.compile(r"^(double_blocks|single_blocks)_(\d+)_(.+)$")

_SLOTS = {
    "lora_down.weight": "down",
    "lora_up.weight": "up",
    "lora_A.weight": "down",
    "lora_B.weight": "up",
    "lora_A.default.weight": "down",
    "lora_B.default.weight": "up",
    "down.weight": "down",  # XLabs
    "up.weight": "up",
    "alpha": "alpha",
    "hada_w1_a": "w1a",
    "hada_w1_b": "w1b",
    "hada_w2_a": "w2a",
    "hada_w2_b": "w2b",
}
_SLOT = re.compile(r"^(.+?)\.(" + "|".join(re.escape(s) for s in _SLOTS) + r")$")

# Dotted prefixes before BFL names (ComfyUI, fal, BFL/XLabs); the names are '_'-joined for
# the tables above.
_BFL_PREFIXES = ("diffusion_model.", "base_model.model.", "")
# Text encoders under their kohya and ComfyUI prefixes (CLIP-L's kohya lora_te1_ / lora_te_
# and PEFT text_encoder. keys are SD names: lora.py reads those).
_TEXT_PREFIXES = {
    "lora_te3_": "te3",
    "text_encoders.t5xxl.transformer.": "te3",
    "text_encoders.clip_l.transformer.": "te1",
}


@dataclass(frozen=True)
class Fit:
    """How a file's layer lands on the loaded model's modules."""

    # The modules ('_'-joined diffusers names) the delta's rows go to, in order: several for
    # a fused BFL layer; none where the file's module name is itself the target.
    targets: tuple[str, ...] = ()
    swap_halves: bool = False  # BFL's (shift, scale) rows into diffusers' (scale, shift)
    # The model's input layer (img_in): of another width on another variant of the family,
    # where it is left out, as Forge does ("shape mismatch, weight not merged").
    model_input: bool = False


@dataclass(frozen=True)
class KeyRef:
    """One tensor of a LoRA file: the slot it fills in one LoRA module."""

    part: str  # "transformer", or a text encoder's ("te1" CLIP-L, "te3" T5)
    module: str  # the file's name for the layer, '_'-joined (grouping, messages)
    slot: str  # "down" | "up" | "alpha" | "w1a" | "w1b" | "w2a" | "w2b"
    fit: Fit = Fit()


def _underscored(name: str) -> str:
    return name.replace(".", "_")


def _bfl_fit(stem: str) -> Fit | None:
    """Where a '_'-joined BFL layer name lands in diffusers' Flux transformer."""
    if m := _BLOCK.match(stem):
        kind, index, layer = m[1], m[2], m[3]
        table, block = (
            (_DOUBLE, "transformer_blocks")
            if kind == "double_blocks"
            else (_SINGLE, "single_transformer_blocks")
        )
        names = table.get(layer)
        if names is None:
            return None
        return Fit(tuple(_underscored(f"{block}.{index}.{n}") for n in names))
    if stem in _OUTSIDE_BLOCKS:
        target = (_underscored(_OUTSIDE_BLOCKS[stem]),)
        return Fit(target, swap_halves=stem == _SWAPPED, model_input=stem == _MODEL_INPUT)
    return None


def _diffusers_fit(name: str) -> Fit:
    return Fit((name,), model_input=name == _OUTSIDE_BLOCKS[_MODEL_INPUT])


def _transformer_ref(stem: str, slot: str) -> KeyRef | None:
    if stem.startswith("transformer."):  # diffusers/PEFT: the module's own name
        name = _underscored(stem.removeprefix("transformer."))
        return KeyRef("transformer", name, slot, _diffusers_fit(name))
    if stem.startswith("lora_transformer_"):  # kohya-style names of diffusers modules
        name = stem.removeprefix("lora_transformer_")
        return KeyRef("transformer", name, slot, _diffusers_fit(name))
    if stem.startswith("lora_unet_"):
        candidates = [stem.removeprefix("lora_unet_")]
    else:
        candidates = [
            _underscored(stem.removeprefix(p)) for p in _BFL_PREFIXES if stem.startswith(p)
        ]
    for bfl in candidates:
        # The tables hold whole names, so a stem that is not a Flux layer finds nothing.
        if (fit := _bfl_fit(bfl)) is not None:
            return KeyRef("transformer", bfl, slot, fit)
    return None


def split_slot(key: str) -> tuple[str, str] | None:
    """A LoRA key's layer stem and the slot it fills ("down", "up", "alpha", LoHa's), or
    None for a key that fills none."""
    m = _SLOT.match(key)
    return None if m is None else (m[1], _SLOTS[m[2]])


def prefixed_ref(stem: str, slot: str, prefixes, fit_of) -> KeyRef | None:
    """A transformer KeyRef for a stem under one of `prefixes` whose '_'-joined rest
    `fit_of` places (BFL/MMDiT names: their tables hold whole names), else None."""
    for prefix in prefixes:
        if stem.startswith(prefix):
            name = _underscored(stem.removeprefix(prefix))
            if (fit := fit_of(name)) is not None:
                return KeyRef("transformer", name, slot, fit)
    return None


def parse(key: str) -> KeyRef | None:
    """The Flux layer a key belongs to, or None for a key that names no Flux layer."""
    split = split_slot(key)
    if split is None:
        return None
    stem, slot = split
    for prefix, part in _TEXT_PREFIXES.items():
        if stem.startswith(prefix):
            return KeyRef(part, _underscored(stem.removeprefix(prefix)), slot)
    return _transformer_ref(stem, slot)


def is_flux(keys: list[str]) -> bool:
    """A file is a Flux LoRA when any key names a Flux transformer layer."""
    return any((ref := parse(k)) is not None and ref.part == "transformer" for k in keys)
