"""Telling SD3 ControlNets apart from their headers, and their diffusers config from shapes.

- diffusers' SD3ControlNetModel weights (Stability's stable-diffusion-3.5-large-controlnet-
  blur/canny/depth repositories, InstantX's SD3 ControlNets; a folder, or its one
  `diffusion_pytorch_model.safetensors` renamed): `pos_embed_input.proj.weight` (the
  control latents' patch embedding) beside `transformer_blocks.N.norm1.linear.weight` and
  `controlnet_blocks.N.weight`. Flux's have `controlnet_x_embedder` instead.
- Stability's original files (sd3.5_large_controlnet_canny.safetensors, as ComfyUI loads
  them) have `pos_embed_input` with SD3's own block names (`transformer_blocks.0.
  adaLN_modulation.1.bias`): diffusers 0.42 has no single-file loader or converter for
  them, so they are refused by name.

SD3.5 Large's ControlNets have no text stream (SD3SingleTransformerBlock, no
`context_embedder`) and no position embedding of their own (the pipeline lends them the
transformer's); SD3 Medium's InstantX nets have both. What the shapes cannot tell (sample
size, position-embedding size) is the base transformer's.
"""

from __future__ import annotations

import re

INPUT = "pos_embed_input.proj.weight"
DIFFUSERS_BLOCK = "transformer_blocks.0.norm1.linear.weight"
STABILITY_BLOCK = "transformer_blocks.0.adaLN_modulation.1.bias"


def layout(keys: set[str]) -> str | None:
    """ "sd3" (diffusers keys), "sd3_stability", or None for a file that is no SD3 ControlNet."""
    if INPUT not in keys:
        return None
    if DIFFUSERS_BLOCK in keys:
        return "sd3"
    if STABILITY_BLOCK in keys:
        return "sd3_stability"
    return None


def is_folder_config(cfg: dict) -> bool:
    return cfg.get("_class_name") == "SD3ControlNetModel"


def _count(shapes: dict, prefix: str) -> int:
    found = {int(m[1]) for k in shapes if (m := re.match(rf"{prefix}\.(\d+)\.", k))}
    return max(found) + 1 if found else 0


def config_from_shapes(shapes: dict[str, tuple[int, ...]], base: dict) -> dict:
    """SD3ControlNetModel's config for a diffusers-keyed single file; `base` is the base
    model's transformer config (sample and position-embedding sizes, head width)."""
    inner, in_channels, patch, _ = shapes[INPUT]
    norm_q = shapes.get("transformer_blocks.0.attn.norm_q.weight")
    head_dim = int(norm_q[0]) if norm_q else int(base.get("attention_head_dim", 64))
    context = shapes.get("context_embedder.weight")
    blocks = _count(shapes, "transformer_blocks")
    dual = [i for i in range(blocks) if f"transformer_blocks.{i}.attn2.to_q.weight" in shapes]
    return {
        "sample_size": base.get("sample_size", 128),
        "patch_size": int(patch),
        "in_channels": int(in_channels),
        "num_layers": blocks,
        "attention_head_dim": head_dim,
        "num_attention_heads": int(inner) // head_dim,
        "joint_attention_dim": int(context[1]) if context else None,
        "caption_projection_dim": int(context[0]) if context else int(inner),
        "pooled_projection_dim": int(shapes["time_text_embed.text_embedder.linear_1.weight"][1]),
        "out_channels": int(in_channels),
        "pos_embed_max_size": base.get("pos_embed_max_size", 96),
        "dual_attention_layers": dual,
        "qk_norm": "rms_norm" if norm_q else None,
        "pos_embed_type": "sincos" if "pos_embed.proj.weight" in shapes else None,
        "use_pos_embed": "pos_embed.proj.weight" in shapes,
        # Stability's SD3.5 nets take the prompt's pooled vector; InstantX's zeros.
        "force_zeros_for_pooled_projection": context is not None,
    }


def widths(cfg: dict) -> tuple[int, int | None]:
    """(hidden width, text width or None for a net without a text stream): what must
    match the base transformer's."""
    inner = int(cfg.get("num_attention_heads", 18)) * int(cfg.get("attention_head_dim", 64))
    text = cfg.get("joint_attention_dim")
    return inner, None if text is None else int(text)
