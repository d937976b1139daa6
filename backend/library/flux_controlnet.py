"""Telling Flux ControlNets apart from their headers, and their diffusers config from shapes.

- InstantX/Shakker publish diffusers FluxControlNetModel weights (a folder, or its one
  `diffusion_pytorch_model.safetensors` renamed, which is what artists drop into
  models/ControlNet): `controlnet_x_embedder.weight` beside `transformer_blocks.N...` and
  `controlnet_blocks.N.weight`. SD ControlNets have `controlnet_cond_embedding` and
  `down_blocks` instead, so the two never meet.
- The Union models (InstantX Union, Shakker Union-Pro) add `controlnet_mode_embedder`
  (num_mode rows); Union-Pro 2.0 has no mode input and is a Union only by its name.
- XLabs' files are BFL-keyed (`double_blocks.N.img_attn...`, `input_hint_block`,
  `pos_embed_input`): diffusers 0.42 has no single-file loader for FluxControlNetModel
  and no converter for that layout; flux_xlabs.py converts them.

A single file has no config: its sizes come from the shapes; what the shapes cannot tell
(the rotary axes, the patch size) is the base transformer's, as the ControlNet is a copy of
its first blocks.
"""

from __future__ import annotations

import re

# The key only diffusers' FluxControlNetModel has (its input projection for the control
# image latents); XLabs' files have BFL's block names with a controlnet head instead.
DIFFUSERS_MARK = "controlnet_x_embedder.weight"
XLABS_MARKS = ("pos_embed_input.weight", "double_blocks.0.img_attn.qkv.weight")
MODE_EMBEDDER = "controlnet_mode_embedder.weight"


def layout(keys: set[str]) -> str | None:
    """ "flux" (diffusers keys), "flux_xlabs", or None for a file that is no Flux ControlNet."""
    if DIFFUSERS_MARK in keys and any(k.startswith("transformer_blocks.") for k in keys):
        return "flux"
    if any(k.startswith("controlnet_blocks.") for k in keys) and all(
        k in keys for k in XLABS_MARKS
    ):
        return "flux_xlabs"
    return None


def is_folder_config(cfg: dict) -> bool:
    return cfg.get("_class_name") == "FluxControlNetModel"


def count_blocks(shapes: dict, prefix: str) -> int:
    """How many `prefix.N.` blocks the keys hold (their highest N + 1)."""
    found = {int(m[1]) for k in shapes if (m := re.match(rf"{prefix}\.(\d+)\.", k))}
    return max(found) + 1 if found else 0


def config_from_shapes(shapes: dict[str, tuple[int, ...]], base: dict) -> dict:
    """FluxControlNetModel's config for a diffusers-keyed single file; `base` is the base
    model's transformer config (rotary axes and patch size)."""
    inner, in_channels = shapes["x_embedder.weight"]
    head_dim = int(shapes["transformer_blocks.0.attn.norm_q.weight"][0])
    mode = shapes.get(MODE_EMBEDDER)
    hint = shapes.get("input_hint_block.conv_out.weight")
    return {
        "patch_size": base.get("patch_size", 1),
        "in_channels": int(in_channels),
        "num_layers": count_blocks(shapes, "transformer_blocks"),
        "num_single_layers": count_blocks(shapes, "single_transformer_blocks"),
        "attention_head_dim": head_dim,
        "num_attention_heads": int(inner) // head_dim,
        "joint_attention_dim": int(shapes["context_embedder.weight"][1]),
        "pooled_projection_dim": int(shapes["time_text_embed.text_embedder.linear_1.weight"][1]),
        "guidance_embeds": "time_text_embed.guidance_embedder.linear_1.weight" in shapes,
        "axes_dims_rope": list(base.get("axes_dims_rope", (16, 56, 56))),
        "num_mode": int(mode[0]) if mode else None,
        "conditioning_embedding_channels": int(hint[0]) if hint else None,
    }


def widths(cfg: dict) -> tuple[int, int]:
    """(hidden width, text width): what must match the base transformer's."""
    inner = int(cfg.get("num_attention_heads", 24)) * int(cfg.get("attention_head_dim", 128))
    return inner, int(cfg.get("joint_attention_dim", 4096))
