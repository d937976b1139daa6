"""Black Forest Labs' Flux transformer key layout <-> diffusers' FluxTransformer2DModel.

The released single files (flux1-dev.safetensors, the fp8 copies, city96's GGUF files and
ComfyUI's all-in-one checkpoints under `model.diffusion_model.`) use BFL's module names with
fused projections: a double block's `img_attn.qkv` holds q, k and v; a single block's
`linear1` holds q, k, v and the MLP input. diffusers' own converter
(single_file_utils.convert_flux_transformer_checkpoint_to_diffusers) assumes the real width
(3072), so the tiny test models could not go through it; this module is the same mapping with
the widths read from the tensors, used both ways: the tiny builders write with
`diffusers_to_bfl`, the loader reads with `bfl_to_diffusers`. Only row operations (split and
concatenate along dim 0) are used, so it works on GGUF-quantized tensors as well, whose rows
stay rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where tensors are touched: scanning needs no torch
    import torch

# ComfyUI's all-in-one checkpoints (comfy/supported_models.py, Flux: vae_key_prefix "vae.",
# text_encoder_key_prefix "text_encoders.", and the diffusion model's usual prefix).
COMFY_TRANSFORMER = "model.diffusion_model."
COMFY_VAE = "vae."
COMFY_CLIP_L = "text_encoders.clip_l.transformer."
COMFY_T5 = "text_encoders.t5xxl.transformer."

# (diffusers module, BFL module) pairs that are plain renames (weight and bias).
_TOP = {
    "time_text_embed.timestep_embedder.linear_1": "time_in.in_layer",
    "time_text_embed.timestep_embedder.linear_2": "time_in.out_layer",
    "time_text_embed.text_embedder.linear_1": "vector_in.in_layer",
    "time_text_embed.text_embedder.linear_2": "vector_in.out_layer",
    "time_text_embed.guidance_embedder.linear_1": "guidance_in.in_layer",
    "time_text_embed.guidance_embedder.linear_2": "guidance_in.out_layer",
    "context_embedder": "txt_in",
    "x_embedder": "img_in",
    "proj_out": "final_layer.linear",
}
_DOUBLE = {
    "norm1.linear": "img_mod.lin",
    "norm1_context.linear": "txt_mod.lin",
    "ff.net.0.proj": "img_mlp.0",
    "ff.net.2": "img_mlp.2",
    "ff_context.net.0.proj": "txt_mlp.0",
    "ff_context.net.2": "txt_mlp.2",
    "attn.to_out.0": "img_attn.proj",
    "attn.to_add_out": "txt_attn.proj",
}
_DOUBLE_NORMS = {
    "attn.norm_q.weight": "img_attn.norm.query_norm.scale",
    "attn.norm_k.weight": "img_attn.norm.key_norm.scale",
    "attn.norm_added_q.weight": "txt_attn.norm.query_norm.scale",
    "attn.norm_added_k.weight": "txt_attn.norm.key_norm.scale",
}
_DOUBLE_FUSED = {
    "img_attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
    "txt_attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"),
}
_SINGLE = {"norm.linear": "modulation.lin", "proj_out": "linear2"}
_SINGLE_NORMS = {
    "attn.norm_q.weight": "norm.query_norm.scale",
    "attn.norm_k.weight": "norm.key_norm.scale",
}
_SINGLE_FUSED = ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp")
_FINAL_MOD = ("norm_out.linear", "final_layer.adaLN_modulation.1")


def bfl_norm_target(key: str) -> str | None:
    """The FluxTransformer2DModel parameter a BFL-layout RMSNorm scale sets
    (`double_blocks.3.img_attn.norm.query_norm.scale` -> `transformer_blocks.3.attn.norm_q.weight`),
    None for any other key. BFL's Control LoRAs carry these beside their LoRA pairs."""
    for block, dst, table in (
        ("double_blocks", "transformer_blocks", _DOUBLE_NORMS),
        ("single_blocks", "single_transformer_blocks", _SINGLE_NORMS),
    ):
        m = re.match(rf"{block}\.(\d+)\.(.+)$", key)
        if m is None:
            continue
        for d, b in table.items():
            if m[2] == b:
                return f"{dst}.{m[1]}.{d}"
    return None


@dataclass(frozen=True)
class FluxShape:
    """What a BFL-layout transformer's keys and shapes say about it."""

    double_blocks: int
    single_blocks: int
    guidance: bool  # Flux dev (distilled guidance embedding); schnell has none
    hidden: int  # 3072 for the real models
    in_channels: int  # img_in's input width: 64, 384 for Fill, 128 for Depth


def strip_prefix(state: dict, prefix: str) -> dict:
    """The tensors under `prefix`, with it removed; everything else is dropped."""
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def bfl_shape(shapes: dict[str, tuple[int, ...]]) -> FluxShape | None:
    """Read a BFL transformer's structure from tensor shapes (no prefix); None if not one."""
    img_in = shapes.get("img_in.weight")
    if img_in is None or "double_blocks.0.img_attn.qkv.weight" not in shapes:
        return None

    def count(name: str) -> int:
        found = {int(m[1]) for k in shapes if (m := re.match(rf"{name}\.(\d+)\.", k))}
        return max(found) + 1 if found else 0

    return FluxShape(
        double_blocks=count("double_blocks"),
        single_blocks=count("single_blocks"),
        guidance="guidance_in.in_layer.weight" in shapes,
        hidden=int(img_in[0]),
        in_channels=int(img_in[-1]),
    )


def swap_halves(tensor: torch.Tensor) -> torch.Tensor:
    """BFL's and SD3's final modulation is (shift, scale); diffusers'
    AdaLayerNormContinuous is (scale, shift). The swap is its own inverse."""
    import torch

    first, second = tensor.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def diffusers_to_bfl(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A FluxTransformer2DModel state dict in BFL's single-file layout (no prefix)."""
    import torch

    out: dict[str, torch.Tensor] = {}
    done: set[str] = set()

    def put(bfl: str, key: str) -> None:
        out[bfl] = state[key]
        done.add(key)

    for key in state:
        module, _, param = key.rpartition(".")
        if module in _TOP:
            put(f"{_TOP[module]}.{param}", key)
        elif module == _FINAL_MOD[0]:
            out[f"{_FINAL_MOD[1]}.{param}"] = swap_halves(state[key])
            done.add(key)
    for i in _indices(state, "transformer_blocks"):
        src, dst = f"transformer_blocks.{i}.", f"double_blocks.{i}."
        for param in ("weight", "bias"):
            for d, b in _DOUBLE.items():
                put(f"{dst}{b}.{param}", f"{src}{d}.{param}")
            for b, parts in _DOUBLE_FUSED.items():
                names = [f"{src}{p}.{param}" for p in parts]
                out[f"{dst}{b}.{param}"] = torch.cat([state[n] for n in names], dim=0)
                done.update(names)
        for d, b in _DOUBLE_NORMS.items():
            put(dst + b, src + d)
    for i in _indices(state, "single_transformer_blocks"):
        src, dst = f"single_transformer_blocks.{i}.", f"single_blocks.{i}."
        for param in ("weight", "bias"):
            for d, b in _SINGLE.items():
                put(f"{dst}{b}.{param}", f"{src}{d}.{param}")
            names = [f"{src}{p}.{param}" for p in _SINGLE_FUSED]
            out[f"{dst}linear1.{param}"] = torch.cat([state[n] for n in names], dim=0)
            done.update(names)
        for d, b in _SINGLE_NORMS.items():
            put(dst + b, src + d)
    left = sorted(set(state) - done)
    if left:
        raise KeyError(f"no BFL name for Flux transformer keys {left[:3]}")
    return out


def bfl_to_diffusers(state: dict[str, torch.Tensor], head: bool = True) -> dict[str, torch.Tensor]:
    """BFL single-file tensors (prefix already stripped) -> FluxTransformer2DModel names;
    `head=False` for a trunk without the final layer (XLabs' ControlNets: flux_xlabs.py).

    Unknown keys raise, so a file of another architecture is not half-loaded."""
    shape = bfl_shape({k: tuple(v.shape) for k, v in state.items()})
    if shape is None:
        raise KeyError("not a Flux transformer in Black Forest Labs' layout (no img_in/qkv)")
    out: dict[str, torch.Tensor] = {}
    done: set[str] = set()

    def take(key: str) -> torch.Tensor:
        done.add(key)
        return state[key]

    for d, b in _TOP.items():
        for param in ("weight", "bias"):
            if f"{b}.{param}" in state:
                out[f"{d}.{param}"] = take(f"{b}.{param}")
    for param in ("weight", "bias") if head else ():
        out[f"{_FINAL_MOD[0]}.{param}"] = swap_halves(take(f"{_FINAL_MOD[1]}.{param}"))
    for i in range(shape.double_blocks):
        src, dst = f"double_blocks.{i}.", f"transformer_blocks.{i}."
        for param in ("weight", "bias"):
            for d, b in _DOUBLE.items():
                out[f"{dst}{d}.{param}"] = take(f"{src}{b}.{param}")
            for b, parts in _DOUBLE_FUSED.items():
                pieces = take(f"{src}{b}.{param}").chunk(3, dim=0)
                for p, piece in zip(parts, pieces, strict=True):
                    out[f"{dst}{p}.{param}"] = piece
        for d, b in _DOUBLE_NORMS.items():
            out[dst + d] = take(src + b)
    for i in range(shape.single_blocks):
        src, dst = f"single_blocks.{i}.", f"single_transformer_blocks.{i}."
        for param in ("weight", "bias"):
            for d, b in _SINGLE.items():
                out[f"{dst}{d}.{param}"] = take(f"{src}{b}.{param}")
            fused = take(f"{src}linear1.{param}")
            h = shape.hidden
            pieces = fused.split([h, h, h, fused.shape[0] - 3 * h], dim=0)
            for p, piece in zip(_SINGLE_FUSED, pieces, strict=True):
                out[f"{dst}{p}.{param}"] = piece
        for d, b in _SINGLE_NORMS.items():
            out[dst + d] = take(src + b)
    left = sorted(set(state) - done)
    if left:
        raise KeyError(f"unknown keys in a Flux transformer file, e.g. {left[:3]}")
    return out


def _indices(state: dict, block: str) -> list[int]:
    return sorted({int(m[1]) for k in state if (m := re.match(rf"{block}\.(\d+)\.", k))})


def t5_to_comfy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """T5EncoderModel -> the layout of t5xxl_fp16.safetensors: transformers' names, the token
    embedding once as `shared.weight` (the encoder's copy is tied to it)."""
    return {k: v for k, v in state.items() if k != "encoder.embed_tokens.weight"}


def clip_l_to_comfy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CLIPTextModel -> clip_l.safetensors: transformers' names under `text_model.`;
    ComfyUI's file also carries a `text_projection.weight` (Flux uses the pooled output
    before any projection), kept here for realism and ignored on load."""
    import torch

    from dreamwire.backend.library.ldm_layout import clip_to_ldm

    out = clip_to_ldm(state, "")
    norm = out["text_model.final_layer_norm.weight"]
    out["text_projection.weight"] = torch.eye(norm.shape[0], dtype=norm.dtype)
    return out


# llama.cpp's names for a T5 encoder in GGUF (city96's t5-v1_1-xxl-encoder-gguf), per
# block and at the top; ComfyUI-GGUF maps them back to these transformers names.
_T5_GGUF_BLOCK = {
    "attn_q": "layer.0.SelfAttention.q",
    "attn_k": "layer.0.SelfAttention.k",
    "attn_v": "layer.0.SelfAttention.v",
    "attn_o": "layer.0.SelfAttention.o",
    "attn_norm": "layer.0.layer_norm",
    "attn_rel_b": "layer.0.SelfAttention.relative_attention_bias",
    "ffn_gate": "layer.1.DenseReluDense.wi_0",
    "ffn_up": "layer.1.DenseReluDense.wi_1",
    "ffn_down": "layer.1.DenseReluDense.wo",
    "ffn_norm": "layer.1.layer_norm",
}
_T5_GGUF_TOP = {"token_embd": "shared", "enc.output_norm": "encoder.final_layer_norm"}


def _rename_t5(state: dict, top: dict, block: dict, block_re: str, block_fmt: str) -> dict:
    out = {}
    for key, value in state.items():
        module, _, param = key.rpartition(".")
        if module in top:
            out[f"{top[module]}.{param}"] = value
        elif (m := re.fullmatch(block_re, module)) and m[2] in block:
            out[f"{block_fmt.format(m[1])}.{block[m[2]]}.{param}"] = value
        else:
            raise KeyError(f"no name for T5 tensor {key!r} in the other layout")
    return out


def t5_from_gguf_names(state: dict) -> dict:
    """GGUF T5 (`enc.blk.0.attn_q.weight`, `token_embd.weight`) -> transformers' names."""
    return _rename_t5(
        state, _T5_GGUF_TOP, _T5_GGUF_BLOCK, r"enc\.blk\.(\d+)\.(\w+)", "encoder.block.{}"
    )


def t5_to_gguf_names(state: dict) -> dict:
    """The inverse, for the tiny GGUF T5 (the tied encoder embedding is not stored)."""
    top = {v: k for k, v in _T5_GGUF_TOP.items()}
    block = {v: k for k, v in _T5_GGUF_BLOCK.items()}
    return _rename_t5(t5_to_comfy(state), top, block, r"encoder\.block\.(\d+)\.(.+)", "enc.blk.{}")
