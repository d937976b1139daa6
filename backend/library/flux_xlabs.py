"""XLabs-AI's Flux ControlNets (flux-canny/depth/hed-controlnet-v3.safetensors) <-> diffusers'
FluxControlNetModel.

XLabs' files are the state dict of x-flux's `ControlNetFlux` (src/flux/controlnet.py): a
Flux trunk in Black Forest Labs' names (`img_in`, `txt_in`, `time_in`, `vector_in`,
`guidance_in`, `double_blocks.N.*`; no single blocks, no final layer), plus
`controlnet_blocks.N` (one zero-initialised linear per double block), `pos_embed_input`
(the control features' input projection) and `input_hint_block`, an nn.Sequential of eight
3x3 convolutions with a SiLU after each but the last (indices 0, 2, ..., 14; 3 -> 16
channels, stride 2 at 4, 8 and 12: the control *pixels* down to latent resolution).

diffusers' FluxControlNetModel runs the same network when built with
`conditioning_embedding_channels=16` (its `input_hint_block` is a ControlNetConditioningEmbedding
with block_out_channels (16, 16, 16, 16): conv_in, six blocks alternating stride 1 and 2,
conv_out, SiLU after every one but conv_out) and `patch_size=2`: FluxControlNetModel uses
patch_size only to cut the hint features into 2x2 patches, channels first
(`b c (h 2) (w 2) -> b (h w) (c 2 2)`, x-flux's rearrange). `pos_embed_input` is its
`controlnet_x_embedder`, the trunk is converted as the transformer's (flux_layout.py).

Shapes diffusers' class cannot take (another hint width, single blocks) are refused by
KeyError/ValueError naming the key, never loaded half.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from . import flux_layout
from .flux_controlnet import count_blocks

if TYPE_CHECKING:
    import torch

# x-flux's Sequential index -> diffusers' ControlNetConditioningEmbedding module.
HINT = {
    0: "conv_in",
    2: "blocks.0",
    4: "blocks.1",
    6: "blocks.2",
    8: "blocks.3",
    10: "blocks.4",
    12: "blocks.5",
    14: "conv_out",
}
HINT_WIDTH = 16  # diffusers hard-codes (16, 16, 16, 16), as x-flux does
HINT_INPUT = 3  # RGB control images
PATCH = 2  # x-flux's rearrange: ph = pw = 2
_RENAMES = {"pos_embed_input": "controlnet_x_embedder"}
_EXTRA = re.compile(r"^(controlnet_blocks\.\d+|pos_embed_input|input_hint_block\.\d+)\.")


def _hint_shape(index: int) -> tuple[int, ...]:
    return (HINT_WIDTH, HINT_INPUT if index == 0 else HINT_WIDTH, 3, 3)


def check_shapes(shapes: dict[str, tuple[int, ...]]) -> None:
    """ValueError naming the first tensor diffusers' FluxControlNetModel cannot take."""
    for index in HINT:
        for param, want in (("weight", _hint_shape(index)), ("bias", (HINT_WIDTH,))):
            key = f"input_hint_block.{index}.{param}"
            if tuple(shapes.get(key, ())) != want:
                raise ValueError(f"{key} is {shapes.get(key)}, x-flux's is {want}")
    extra = sorted(k for k in shapes if k.startswith("input_hint_block.") and _index(k) not in HINT)
    if extra:
        raise ValueError(f"{extra[0]} is no part of x-flux's hint block")
    if any(k.startswith("single_blocks.") for k in shapes):
        raise ValueError("single blocks: x-flux's ControlNet has double blocks only")
    in_channels = shapes["img_in.weight"][1]
    if in_channels != HINT_WIDTH * PATCH * PATCH or shapes["pos_embed_input.weight"][1] != (
        in_channels
    ):
        raise ValueError(
            f"img_in/pos_embed_input take {in_channels}/{shapes['pos_embed_input.weight'][1]} "
            f"channels; x-flux's 2x2 patches of the hint are {HINT_WIDTH * PATCH * PATCH}"
        )
    doubles = count_blocks(shapes, "double_blocks")
    heads = count_blocks(shapes, "controlnet_blocks")
    if doubles != heads:
        raise ValueError(f"{doubles} double blocks but {heads} controlnet blocks")


def config(shapes: dict[str, tuple[int, ...]], base: dict) -> dict:
    """FluxControlNetModel's config for an XLabs file; `base` is the base transformer's
    config (its rotary axes: the file cannot tell them)."""
    hidden, in_channels = shapes["img_in.weight"]
    head_dim = int(shapes["double_blocks.0.img_attn.norm.query_norm.scale"][0])
    return {
        "patch_size": PATCH,
        "in_channels": int(in_channels),
        "num_layers": count_blocks(shapes, "double_blocks"),
        "num_single_layers": 0,
        "attention_head_dim": head_dim,
        "num_attention_heads": int(hidden) // head_dim,
        "joint_attention_dim": int(shapes["txt_in.weight"][1]),
        "pooled_projection_dim": int(shapes["vector_in.in_layer.weight"][1]),
        "guidance_embeds": "guidance_in.in_layer.weight" in shapes,
        "axes_dims_rope": list(base.get("axes_dims_rope", (16, 56, 56))),
        "num_mode": None,
        "conditioning_embedding_channels": HINT_WIDTH,
    }


def to_diffusers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """XLabs' tensors -> FluxControlNetModel's names. Every key is used or a KeyError names
    the first one that is not."""
    trunk = {k: v for k, v in state.items() if not _EXTRA.match(k)}
    out = flux_layout.bfl_to_diffusers(trunk, head=False)
    for key, value in state.items():
        if key in trunk:
            continue
        module, _, param = key.rpartition(".")
        if module.startswith("input_hint_block."):
            index = _index(key)
            if index not in HINT:
                raise KeyError(f"{key} is no part of x-flux's hint block")
            out[f"input_hint_block.{HINT[index]}.{param}"] = value
        else:
            out[f"{_RENAMES.get(module, module)}.{param}"] = value
    return out


def from_diffusers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A FluxControlNetModel built as XLabs' (conditioning_embedding_channels=16, no single
    blocks) in x-flux's names: the tiny test files, and the inverse `to_diffusers` checks."""
    back = {d: b for b, d in _RENAMES.items()}
    hint = {d: i for i, d in HINT.items()}
    trunk, out = {}, {}
    for key, value in state.items():
        module, _, param = key.rpartition(".")
        if module.startswith("input_hint_block."):
            out[f"input_hint_block.{hint[module.removeprefix('input_hint_block.')]}.{param}"] = (
                value
            )
        elif module in back:
            out[f"{back[module]}.{param}"] = value
        elif module.startswith("controlnet_blocks."):
            out[key] = value
        else:
            trunk[key] = value
    return out | flux_layout.diffusers_to_bfl(trunk)


def _index(key: str) -> int:
    return int(key.split(".")[1])
