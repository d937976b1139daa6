"""Tiny random-weight T2I-Adapters for the tiny UNets, in the layouts artists download.

    models/ControlNet/t2iadapter_depth_sd15v2/             diffusers folder (TencentARC's
                                                          t2iadapter_*_sd15v2 repos), SD1 full
    models/ControlNet/t2iadapter_depth_sd14v1.safetensors  the same weights in TencentARC's
                                                          original layout (A1111's t2iadapter_*)
    models/ControlNet/t2iadapter_canny_sd14v1.safetensors  original layout, one input channel
    models/ControlNet/t2iadapter_color_sd14v1.safetensors  original layout, light adapter
    models/ControlNet/t2i-adapter-sketch-sdxl-1.0/         SDXL full_adapter_xl, diffusers folder
    models/ControlNet/t2i-adapter_diffusers_xl_sketch.safetensors  the same weights, diffusers
                                                          keys in one file (sd_control_collection)
    models/ControlNet/t2iadapter_xl_sketch_original.safetensors    the same weights, original layout
    models/ControlNet/t2iadapter_style_sd14v1.safetensors  a style adapter (recognised, refused)

The stage widths are the tiny UNets' down-block widths (32, 64), so every feature lands in a
down block. The last conv of each resnet block gets a larger random init: with diffusers'
default init the features are too small for the tiny UNet to show them.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import torch

from dreamwire.backend.tiny.files import save_tensors

SEED = 20241111
CHANNELS = [32, 64]  # tiny-sd1 and tiny-sdxl both have block_out_channels (32, 64)


def random_adapter(seed: int, **config):
    from diffusers import T2IAdapter

    torch.manual_seed(seed)
    adapter = T2IAdapter(**config).eval()
    with torch.no_grad():
        for name, param in adapter.named_parameters():
            if name.endswith(("block2.weight", "out_conv.weight")):
                param.mul_(4.0)
    return adapter


def diffusers_to_original(state: dict[str, torch.Tensor], num_res_blocks: int, light: bool):
    """diffusers T2IAdapter keys -> TencentARC's layout (the inverse of the loader's map)."""
    out = {}
    for key, value in state.items():
        k = key.removeprefix("adapter.")
        if m := re.fullmatch(r"body\.(\d+)\.resnets\.(\d+)\.(.+)", k):
            stage, block, rest = int(m[1]), int(m[2]), m[3]
            k = (
                f"body.{stage}.body.{block}.{rest}"
                if light
                else f"body.{stage * num_res_blocks + block}.{rest}"
            )
        elif (m := re.fullmatch(r"body\.(\d+)\.in_conv\.(.+)", k)) and not light:
            k = f"body.{int(m[1]) * num_res_blocks}.in_conv.{m[2]}"
        out[k] = value.detach().contiguous()
    return out


def _folder(adapter, target: Path) -> Path:
    if target.exists():
        shutil.rmtree(target)
    adapter.save_pretrained(target, safe_serialization=True)
    return target


def _style(seed: int) -> dict[str, torch.Tensor]:
    """A few of TencentARC's StyleAdapter weights: enough to be recognised."""
    gen = torch.Generator().manual_seed(seed)
    return {
        "style_embedding": torch.randn(1, 8, 32, generator=gen),
        "ln_pre.weight": torch.ones(32),
        "ln_pre.bias": torch.zeros(32),
        "transformer_layes.0.attn.in_proj_weight": torch.randn(96, 32, generator=gen),
        "proj": torch.randn(32, 32, generator=gen),
    }


def build(folder: Path) -> dict[str, Path]:
    folder = Path(folder)
    written: dict[str, Path] = {}
    full = dict(channels=CHANNELS, num_res_blocks=2, downscale_factor=8)
    depth = random_adapter(SEED, in_channels=3, adapter_type="full_adapter", **full)
    written["t2iadapter_depth_sd15v2"] = _folder(depth, folder / "t2iadapter_depth_sd15v2")
    name = "t2iadapter_depth_sd14v1"
    written[name] = save_tensors(
        diffusers_to_original(depth.state_dict(), 2, False), folder / f"{name}.safetensors"
    )
    canny = random_adapter(SEED + 1, in_channels=1, adapter_type="full_adapter", **full)
    name = "t2iadapter_canny_sd14v1"
    written[name] = save_tensors(
        diffusers_to_original(canny.state_dict(), 2, False), folder / f"{name}.safetensors"
    )
    color = random_adapter(
        SEED + 2,
        in_channels=3,
        channels=CHANNELS,
        num_res_blocks=2,
        downscale_factor=8,
        adapter_type="light_adapter",
    )
    name = "t2iadapter_color_sd14v1"
    written[name] = save_tensors(
        diffusers_to_original(color.state_dict(), 2, True), folder / f"{name}.safetensors"
    )
    xl = random_adapter(
        SEED + 3,
        in_channels=1,
        channels=CHANNELS,
        num_res_blocks=2,
        downscale_factor=16,
        adapter_type="full_adapter_xl",
    )
    written["t2i-adapter-sketch-sdxl-1.0"] = _folder(xl, folder / "t2i-adapter-sketch-sdxl-1.0")
    name = "t2i-adapter_diffusers_xl_sketch"
    written[name] = save_tensors(dict(xl.state_dict()), folder / f"{name}.safetensors")
    name = "t2iadapter_xl_sketch_original"
    written[name] = save_tensors(
        diffusers_to_original(xl.state_dict(), 2, False), folder / f"{name}.safetensors"
    )
    name = "t2iadapter_style_sd14v1"
    written[name] = save_tensors(_style(SEED + 4), folder / f"{name}.safetensors")
    return written
