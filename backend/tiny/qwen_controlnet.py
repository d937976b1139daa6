"""A tiny random-weight Qwen-Image ControlNet (InstantX's Union layout) for the tiny
Qwen-Image: diffusers' QwenImageControlNetModel at tiny-qwen-image's widths, seeded, saved
as InstantX ship it (one `diffusion_pytorch_model.safetensors` in diffusers' names, which
Comfy-Org's Qwen-Image-InstantX-ControlNet-Union.safetensors keeps)."""

from __future__ import annotations

from pathlib import Path

import torch

from dreamwire.backend.tiny.files import component_config, save_tensors, state_of
from dreamwire.backend.tiny.qwen_image import ARCH, SEED

CONTROLNET_SEED = SEED + 10


def qwen_controlnet(extra_condition_channels: int = 0):
    """The net with tiny-qwen-image's widths (InstantX's copy 5 of the 60 blocks; here one
    of the two). Its zero-initialised projections get small random values, so that the
    control picture and the weight really change the result. `extra_condition_channels` 4:
    the Inpainting net's wider control input."""
    from diffusers import QwenImageControlNetModel

    base = component_config(ARCH, "transformer")
    keep = ("patch_size", "in_channels", "out_channels", "attention_head_dim")
    keep += ("num_attention_heads", "joint_attention_dim", "axes_dims_rope")
    config = {k: base[k] for k in keep}
    torch.manual_seed(CONTROLNET_SEED)
    net = QwenImageControlNetModel(
        **config, num_layers=1, extra_condition_channels=extra_condition_channels
    ).eval()
    with torch.no_grad():
        for name, param in net.named_parameters():
            if name.startswith(("controlnet_blocks.", "controlnet_x_embedder.")):
                param.normal_(0.0, 0.3)
    return net


def write_qwen_controlnet(net, path: Path) -> Path:
    """The weights in one .safetensors, diffusers' module names."""
    return save_tensors(state_of(net), path)
