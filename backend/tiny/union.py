"""Tiny random-weight ControlNet Union models (xinsir's controlnet-union-sdxl-1.0 layout)
matching the tiny SDXL UNet.

    models/ControlNet/controlnet-union-sdxl-1.0/     diffusers folder (config.json +
                                                     diffusion_pytorch_model.safetensors),
                                                     6 control types, as xinsir ships it
    models/ControlNet/controlnet-union-sdxl-1.0_promax.safetensors
                                                     the ProMax weights as one file, the way
                                                     A1111/Forge users drop it in (diffusers
                                                     keys, no config), 8 control types

The model is diffusers' ControlNetUnionModel built from the tiny UNet's config, with the
union parts (task embedding, transformer, projections) at the UNet's base width: the real
model's 320 is SDXL's base width. As in tiny/conditioning.py, the zero-initialised layers
get small random values so that every control image, mode and weight really changes the
result.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from dreamwire.backend.tiny.conditioning import (
    HINT_CHANNELS,
    SEED,
    controlnet_config,
)
from dreamwire.backend.tiny.files import save_tensors, unet_config

FOLDER = "controlnet-union-sdxl-1.0"
PROMAX_FILE = "controlnet-union-sdxl-1.0_promax"
NUM_TYPES, PROMAX_TYPES = 6, 8
TRANS_HEADS = 8  # xinsir's num_trans_head (a file's shapes do not tell it)


def union_config(arch: str = "tiny-sdxl", num_control_type: int = NUM_TYPES) -> dict:
    from diffusers import ControlNetUnionModel

    from dreamwire.backend.conditioning.union import union_init_args

    base = controlnet_config(unet_config(arch))
    width = base["block_out_channels"][0]
    config = union_init_args(base, ControlNetUnionModel)
    config.update(
        conditioning_embedding_out_channels=list(HINT_CHANNELS),
        num_control_type=num_control_type,
        num_trans_channel=width,
        num_trans_head=TRANS_HEADS,
        num_trans_layer=1,
        num_proj_channel=width,
    )
    return config


def random_union(seed: int, num_control_type: int = NUM_TYPES, arch: str = "tiny-sdxl"):
    from diffusers import ControlNetUnionModel

    torch.manual_seed(seed)
    net = ControlNetUnionModel.from_config(union_config(arch, num_control_type)).eval()
    with torch.no_grad():
        for block in [*net.controlnet_down_blocks, net.controlnet_mid_block]:
            block.weight.normal_(0.0, 0.05)
            block.bias.normal_(0.0, 0.05)
        # The projection that mixes the task tokens into the features is zero-initialised.
        net.spatial_ch_projs.weight.normal_(0.0, 0.05)
        net.spatial_ch_projs.bias.normal_(0.0, 0.05)
        emb = net.controlnet_cond_embedding
        for conv in [emb.conv_in, *emb.blocks, emb.conv_out]:
            fan_in = conv.weight[0].numel()
            conv.weight.normal_(
                0.0, (2.0 / fan_in) ** 0.5 if conv is not emb.conv_out else fan_in**-0.5
            )
            conv.bias.zero_()
    return net


def build(folder: Path) -> dict[str, Path]:
    folder = Path(folder)
    target = folder / FOLDER
    if target.exists():
        shutil.rmtree(target)
    random_union(SEED + 70).save_pretrained(target, safe_serialization=True)
    promax = random_union(SEED + 71, PROMAX_TYPES)
    path = save_tensors(promax.state_dict(), folder / f"{PROMAX_FILE}.safetensors")
    return {FOLDER: target, PROMAX_FILE: path}
