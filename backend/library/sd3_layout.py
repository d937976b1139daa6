"""Stability's SD3 single-file key layout <-> diffusers' SD3Transformer2DModel.

Stability's files (sd3.5_large.safetensors, sd3.5_medium.safetensors, the Turbo) hold the
MMDiT under `model.diffusion_model.` (`joint_blocks.N.x_block.attn.qkv.weight` ...), the
VAE under `first_stage_model.` in LDM names, and, in the "incl clips" files and ComfyUI's
bundles, the text encoders under `text_encoders.clip_l|clip_g|t5xxl.transformer.`. Reading
uses diffusers' own converter (single_file_utils.convert_sd3_transformer_checkpoint_to_
diffusers, which reads depth, width and dual-attention layers from the keys, so it serves
the tiny models too); `diffusers_to_mmdit` is its inverse, for the tiny builders.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dreamwire.backend.library.flux_layout import swap_halves

if TYPE_CHECKING:  # torch is imported where tensors are touched: scanning needs no torch
    import torch

TRANSFORMER = "model.diffusion_model."
VAE = "first_stage_model."
CLIP_L = "text_encoders.clip_l.transformer."
CLIP_G = "text_encoders.clip_g.transformer."
T5 = "text_encoders.t5xxl.transformer."

# (diffusers module, MMDiT module): plain renames (weight and bias).
_TOP = {
    "pos_embed.proj": "x_embedder.proj",
    "time_text_embed.timestep_embedder.linear_1": "t_embedder.mlp.0",
    "time_text_embed.timestep_embedder.linear_2": "t_embedder.mlp.2",
    "time_text_embed.text_embedder.linear_1": "y_embedder.mlp.0",
    "time_text_embed.text_embedder.linear_2": "y_embedder.mlp.2",
    "context_embedder": "context_embedder",
    "proj_out": "final_layer.linear",
}
_BLOCK = {
    "attn.to_out.0": "x_block.attn.proj",
    "attn.to_add_out": "context_block.attn.proj",
    "attn2.to_out.0": "x_block.attn2.proj",
    "norm1.linear": "x_block.adaLN_modulation.1",
    "norm1_context.linear": "context_block.adaLN_modulation.1",
    "ff.net.0.proj": "x_block.mlp.fc1",
    "ff.net.2": "x_block.mlp.fc2",
    "ff_context.net.0.proj": "context_block.mlp.fc1",
    "ff_context.net.2": "context_block.mlp.fc2",
}
_NORMS = {
    "attn.norm_q": "x_block.attn.ln_q",
    "attn.norm_k": "x_block.attn.ln_k",
    "attn.norm_added_q": "context_block.attn.ln_q",
    "attn.norm_added_k": "context_block.attn.ln_k",
    "attn2.norm_q": "x_block.attn2.ln_q",
    "attn2.norm_k": "x_block.attn2.ln_k",
}
_FUSED = {
    "x_block.attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
    "context_block.attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"),
    "x_block.attn2.qkv": ("attn2.to_q", "attn2.to_k", "attn2.to_v"),
}


def depth(keys) -> int:
    """The number of joint blocks in an MMDiT's keys (prefix removed)."""
    return 1 + max(
        (int(k.split(".")[1]) for k in keys if k.startswith("joint_blocks.")), default=-1
    )


def diffusers_to_mmdit(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A diffusers SD3 transformer's state dict in Stability's names (no prefix)."""
    import torch

    out: dict[str, torch.Tensor] = {"pos_embed": state["pos_embed.pos_embed"]}
    for ours, theirs in _TOP.items():
        for leaf in ("weight", "bias"):
            if f"{ours}.{leaf}" in state:
                out[f"{theirs}.{leaf}"] = state[f"{ours}.{leaf}"]
    for leaf in ("weight", "bias"):
        out[f"final_layer.adaLN_modulation.1.{leaf}"] = swap_halves(
            state[f"norm_out.linear.{leaf}"]
        )
    blocks = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("transformer_blocks."))
    for i in range(blocks):
        ours, theirs = f"transformer_blocks.{i}.", f"joint_blocks.{i}."
        last = i == blocks - 1
        for name, target in _BLOCK.items():
            for leaf in ("weight", "bias"):
                key = f"{ours}{name}.{leaf}"
                if key not in state:
                    continue
                value = state[key]
                if last and name == "norm1_context.linear":
                    # The last block's context norm is a final one: (shift, scale) in SD3.
                    value = swap_halves(value)
                out[f"{theirs}{target}.{leaf}"] = value
        for name, target in _NORMS.items():
            if f"{ours}{name}.weight" in state:
                out[f"{theirs}{target}.weight"] = state[f"{ours}{name}.weight"]
        for target, parts in _FUSED.items():
            for leaf in ("weight", "bias"):
                keys = [f"{ours}{p}.{leaf}" for p in parts]
                if all(k in state for k in keys):
                    out[f"{theirs}{target}.{leaf}"] = torch.cat([state[k] for k in keys])
    return out


def mmdit_to_diffusers(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Stability's names (prefix removed) to diffusers', by diffusers' own converter."""
    from diffusers.loaders.single_file_utils import (
        convert_sd3_transformer_checkpoint_to_diffusers,
    )

    return convert_sd3_transformer_checkpoint_to_diffusers(dict(tensors))
