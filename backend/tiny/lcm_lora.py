"""A tiny random-weight LCM-LoRA for tiny SD1, named and laid out like the real one.

latent-consistency/lcm-lora-sdv1-5 ships `pytorch_lora_weights.safetensors`, which Krita AI
Diffusion (and most guides) save as `models/Lora/lcm-lora-sdv1-5.safetensors`; clients find
it by that name (krita_plugin logic/live.py `lcm_lora`). Its keys are kohya-style names over
the *diffusers* UNet modules (not the original `input_blocks` layout), UNet only, with an
`alpha` beside every pair:

    lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight
    lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_up.weight
    lora_unet_down_blocks_0_resnets_0_conv1.alpha
    lora_unet_mid_block_resnets_0_time_emb_proj.lora_down.weight  ...

and it covers the attention projections, proj_in/proj_out, the feed-forward layers and the
ResNet convolutions, time-embedding projections, shortcuts and down/up-samplers. The tiny
file does the same over every such module of the tiny SD1 UNet, at rank 4.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .conditioning import SEED, layer_shape, lora_pair
from .files import save_tensors, unet_config

NAME = "lcm-lora-sdv1-5"
RANK = 4
ALPHA = 4.0
# The module names (last part) the real file adapts.
_LEAVES = (
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
    "proj_in",
    "proj_out",
    "ff.net.0.proj",
    "ff.net.2",
    "conv1",
    "conv2",
    "conv_shortcut",
    "time_emb_proj",
    "downsamplers.0.conv",
    "upsamplers.0.conv",
)


def _targets() -> dict[str, torch.nn.Module]:
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_config(unet_config("tiny-sd1"))
    return {
        name: module
        for name, module in unet.named_modules()
        if isinstance(module, torch.nn.Linear | torch.nn.Conv2d)
        and any(name.endswith("." + leaf) for leaf in _LEAVES)
        and (name.startswith(("down_blocks.", "mid_block.", "up_blocks.")))
    }


def build_lcm_lora_sd1(path: Path) -> Path:
    gen = torch.Generator().manual_seed(SEED + 110)
    tensors: dict[str, torch.Tensor] = {}
    for name, module in sorted(_targets().items()):
        out_f, in_f, kernel = layer_shape(module)
        down, up = lora_pair(gen, out_f, in_f, RANK, kernel)
        if module.weight.ndim == 4 and kernel is None:  # 1x1 convolutions stay 4-D
            down, up = down[:, :, None, None], up[:, :, None, None]
        key = "lora_unet_" + name.replace(".", "_")
        tensors[f"{key}.lora_down.weight"] = down
        tensors[f"{key}.lora_up.weight"] = up
        tensors[f"{key}.alpha"] = torch.tensor(ALPHA)
    return save_tensors(tensors, path, {})


def build(lora_folder: Path) -> dict[str, Path]:
    return {NAME: build_lcm_lora_sd1(Path(lora_folder) / f"{NAME}.safetensors")}
