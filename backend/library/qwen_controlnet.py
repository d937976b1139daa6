"""Telling Qwen-Image ControlNets apart from their headers, and their diffusers config
(QwenImageControlNetModel) from shapes.

InstantX publish diffusers weights (InstantX/Qwen-Image-ControlNet-Union and
-Inpainting: a folder, or its one `diffusion_pytorch_model.safetensors`; Comfy-Org's
repackaging, Qwen-Image-InstantX-ControlNet-Union.safetensors in models/controlnet, keeps
the same names). They share Flux's ControlNet marks (`controlnet_x_embedder`,
`transformer_blocks.N`, `controlnet_blocks.N`), so they are told apart by Qwen's own
modules: `txt_norm` (the RMS norm over Qwen2.5-VL's states) and `img_in`/`txt_in` where
Flux has `x_embedder`/`context_embedder`.

The Inpainting net's control input is wider than its latent input by the packed mask
(`extra_condition_channels`: 1 mask channel x 2x2 patches = 4). What the shapes cannot
tell (the rotary axes, the output channels) is the base transformer's, as the net is a copy
of its first blocks.
"""

from __future__ import annotations

import re

MARK = "controlnet_x_embedder.weight"
QWEN_MARKS = ("txt_norm.weight", "img_in.weight", "txt_in.weight")


def layout(keys: set[str]) -> str | None:
    """ "qwen" for a diffusers-keyed Qwen-Image ControlNet single file, else None."""
    return "qwen" if MARK in keys and all(k in keys for k in QWEN_MARKS) else None


def is_folder_config(cfg: dict) -> bool:
    return cfg.get("_class_name") == "QwenImageControlNetModel"


def _count(shapes, prefix: str) -> int:
    found = {int(m[1]) for k in shapes if (m := re.match(rf"{prefix}\.(\d+)\.", k))}
    return max(found) + 1 if found else 0


def config_from_shapes(shapes: dict[str, tuple[int, ...]], base: dict) -> dict:
    """QwenImageControlNetModel's config for a single file; `base` is the base model's
    transformer config (rotary axes, output channels; empty when only identifying)."""
    inner, in_channels = shapes["img_in.weight"]
    head_dim = int(shapes["transformer_blocks.0.attn.norm_q.weight"][0])
    return {
        "patch_size": int(base.get("patch_size", 2)),
        "in_channels": int(in_channels),
        "out_channels": base.get("out_channels", 16),
        "num_layers": _count(shapes, "transformer_blocks"),
        "attention_head_dim": head_dim,
        "num_attention_heads": int(inner) // head_dim,
        "joint_attention_dim": int(shapes["txt_in.weight"][1]),
        "axes_dims_rope": list(base.get("axes_dims_rope", (16, 56, 56))),
        "extra_condition_channels": int(shapes[MARK][1]) - int(in_channels),
    }


def widths(cfg: dict) -> tuple[int, int]:
    """(hidden width, text width): what must match the base transformer's."""
    inner = int(cfg.get("num_attention_heads", 24)) * int(cfg.get("attention_head_dim", 128))
    return inner, int(cfg.get("joint_attention_dim", 3584))
