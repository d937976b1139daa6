"""Flux.2 (Klein) LoRA key names: what tells a Flux.2 LoRA from a Flux.1 one, and which layer
of a diffusers Flux2Transformer2DModel each tensor of a file patches.

Klein LoRAs come named as Flux.1's do (lora_flux_keys.py), for Flux.2's layers:

  ai-toolkit / ComfyUI  diffusion_model.double_blocks.0.img_attn.qkv.lora_A.weight (ComfyUI
                        also .lora_down/.lora_up with .alpha; base_model.model. for PEFT
                        exports): BFL's block names.
  kohya/musubi          lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight + .alpha.
  diffusers (PEFT)      transformer.single_transformer_blocks.0.attn.to_qkv_mlp_proj.lora_A.
                        weight (also diffusion_model.-prefixed, as diffusers accepts, and
                        lora_transformer_<module>): diffusers' own module names.

The mapping is diffusers' (lora_conversion_utils.py, 0.42: _convert_non_diffusers_flux2_
lora_to_diffusers and _convert_kohya_flux2_lora_to_diffusers): a double block's fused qkv
is split by rows over to_q/to_k/to_v (add_*_proj for the text stream), the MLPs are
ff.linear_in/linear_out, a single block's linear1/linear2 stay fused as to_qkv_mlp_proj/
to_out, and the shared modulations (double_stream_modulation_img/_txt,
single_stream_modulation) are outside the blocks. One difference, as for Flux.1: BFL's final
adaLN modulation outputs (shift, scale), diffusers' norm_out (scale, shift); diffusers' own
model converter swaps its rows, its LoRA converter does not. Here the rows are swapped, so a
LoRA on that layer patches what Forge and ComfyUI patch in BFL's layout.

Flux.2's BFL names are Flux.1's, less the per-block modulations. A file tells its lineage
by a module only Flux.2 has (the shared modulations, diffusers' Flux.2 names) or, where it
names only layers both have, by its MLP widths: Flux.2's MLP is a SwiGLU of ratio 3
(linear1 9x its input wide, linear2 taking 4x its output, img_mlp.0 6x, img_mlp.2 3x),
Flux.1's a GELU of ratio 4 (7x, 5x, 4x, 4x). A file of attention layers only has neither
and stays Flux.1's (as before Flux.2 existed).
"""

from __future__ import annotations

import re

import torch

from .lora_flux_keys import Fit, KeyRef, prefixed_ref, split_slot

_QKV = ("attn.to_q", "attn.to_k", "attn.to_v")
_ADD_QKV = ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj")
# BFL layer names ('.' -> '_') inside transformer_blocks.N (double) / single_transformer_blocks.N.
_DOUBLE = {
    "img_attn_qkv": _QKV,
    "img_attn_proj": ("attn.to_out.0",),
    "img_mlp_0": ("ff.linear_in",),
    "img_mlp_2": ("ff.linear_out",),
    "txt_attn_qkv": _ADD_QKV,
    "txt_attn_proj": ("attn.to_add_out",),
    "txt_mlp_0": ("ff_context.linear_in",),
    "txt_mlp_2": ("ff_context.linear_out",),
}
_SINGLE = {"linear1": ("attn.to_qkv_mlp_proj",), "linear2": ("attn.to_out",)}
_OUTSIDE_BLOCKS = {
    "img_in": "x_embedder",
    "txt_in": "context_embedder",
    "time_in_in_layer": "time_guidance_embed.timestep_embedder.linear_1",
    "time_in_out_layer": "time_guidance_embed.timestep_embedder.linear_2",
    "guidance_in_in_layer": "time_guidance_embed.guidance_embedder.linear_1",
    "guidance_in_out_layer": "time_guidance_embed.guidance_embedder.linear_2",
    "final_layer_linear": "proj_out",
    "final_layer_adaLN_modulation_1": "norm_out.linear",
    "single_stream_modulation_lin": "single_stream_modulation.linear",
    "double_stream_modulation_img_lin": "double_stream_modulation_img.linear",
    "double_stream_modulation_txt_lin": "double_stream_modulation_txt.linear",
}
_SWAPPED = "final_layer_adaLN_modulation_1"
_MODEL_INPUT = "img_in"
_BLOCK = re.compile(r"^(double_blocks|single_blocks)_(\d+)_(.+)$")
# Prefixes before BFL names; diffusion_model. also before diffusers' expanded block names.
_BFL_PREFIXES = ("lora_unet_", "diffusion_model.", "base_model.model.")
_DIFFUSERS_PREFIXES = ("transformer.", "lora_transformer_", "diffusion_model.")
_DIFFUSERS_STARTS = ("transformer_blocks_", "single_transformer_blocks_", "sformer_blocks_")
# Names only Flux.2 has, '_'-joined: the shared modulations and diffusers' Flux.2 modules.
_FLUX2_ONLY = re.compile(
    r"stream_modulation|to_qkv_mlp_proj|ff_linear_(in|out)|ff_context_linear_(in|out)"
    r"|time_guidance_embed"
)
# Flux.2's width ratio per layer: up rows / down's input for the widening layers ("out"),
# down's input / up rows for the narrowing ones ("in"); Flux.1's differ (module docstring).
_RATIOS = {
    "linear1": (9, "out"),
    "linear2": (4, "in"),
    "img_mlp_0": (6, "out"),
    "txt_mlp_0": (6, "out"),
    "img_mlp_2": (3, "in"),
    "txt_mlp_2": (3, "in"),
}


def _underscored(name: str) -> str:
    return name.replace(".", "_")


def _bfl_fit(stem: str) -> Fit | None:
    if m := _BLOCK.match(stem):
        double = m[1] == "double_blocks"
        names = (_DOUBLE if double else _SINGLE).get(m[3])
        if names is None:
            return None
        block = "transformer_blocks" if double else "single_transformer_blocks"
        return Fit(tuple(_underscored(f"{block}.{m[2]}.{n}") for n in names))
    if stem in _OUTSIDE_BLOCKS:
        target = (_underscored(_OUTSIDE_BLOCKS[stem]),)
        return Fit(target, swap_halves=stem == _SWAPPED, model_input=stem == _MODEL_INPUT)
    return None


def _diffusers_name(stem: str) -> str | None:
    prefix = next((p for p in _DIFFUSERS_PREFIXES if stem.startswith(p)), None)
    name = None if prefix is None else _underscored(stem.removeprefix(prefix))
    if name is None or (prefix == "diffusion_model." and not name.startswith(_DIFFUSERS_STARTS)):
        return None
    # diffusers renames some exports' `sformer_blocks` to transformer_blocks.
    return re.sub(r"^sformer_blocks_", "transformer_blocks_", name)


def parse(key: str) -> KeyRef | None:
    """The Flux.2 transformer layer a key belongs to, or None for a key that names none."""
    if (split := split_slot(key)) is None:
        return None
    if (name := _diffusers_name(split[0])) is not None:
        fit = Fit((name,), model_input=name == "x_embedder")
        return KeyRef("transformer", name, split[1], fit)
    return prefixed_ref(*split, _BFL_PREFIXES, _bfl_fit)


def is_flux2(data: dict[str, torch.Tensor]) -> bool:
    """A file is a Flux.2 LoRA when it names a module only Flux.2 has, or its MLP layers
    have Flux.2's widths (the module docstring)."""
    return is_flux2_shapes({key: tuple(tensor.shape) for key, tensor in data.items()})


def is_flux2_shapes(shapes: dict[str, tuple[int, ...]]) -> bool:
    """is_flux2 from the tensors' shapes alone (a safetensors header: the welcome's LoRA
    families, lora_family.py)."""
    widths: dict[str, dict[str, int]] = {}
    for key, shape in shapes.items():
        ref = parse(key)
        if ref is None:
            continue
        if _FLUX2_ONLY.search(ref.module):
            return True
        m = _BLOCK.match(ref.module)
        if m and m[3] in _RATIOS and len(shape) == 2 and ref.slot in ("down", "up", "w1a", "w1b"):
            side = "in" if ref.slot in ("down", "w1b") else "out"
            widths.setdefault(ref.module, {})[side] = int(shape[1] if side == "in" else shape[0])
    for module, sides in widths.items():
        if {"in", "out"} <= set(sides):
            flux2, wide = _RATIOS[_BLOCK.match(module)[3]]
            big, small = (
                (sides["out"], sides["in"]) if wide == "out" else (sides["in"], sides["out"])
            )
            return big == flux2 * small
    return False
