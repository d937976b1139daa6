"""Tiny random-weight Flux ControlNets (diffusers FluxControlNetModel, InstantX/Shakker's
layout) matching tiny-flux's transformer widths.

    models/ControlNet/flux-tiny-controlnet-canny/           diffusers folder (config.json +
                                                            diffusion_pytorch_model.safetensors)
    models/ControlNet/flux-tiny-controlnet-depth.safetensors the same kind as one file
                                                            (diffusers keys, no config), as
                                                            artists download it
    models/ControlNet/flux-tiny-controlnet-union.safetensors a Union with a mode input
                                                            (InstantX Union / Union-Pro)
    `write_xlabs(net, path)`: XLabs' flux-canny-controlnet-v3 layout (x-flux's
    ControlNetFlux state dict: BFL names, pixel hint block), from `xlabs_controlnet()`

As in tiny/conditioning.py, the zero-initialised layers (controlnet blocks, the control
image's input projection) get small random values, so that every control image, mode and
weight really changes the result.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from dreamwire import catalog
from dreamwire.backend.library import flux_xlabs
from dreamwire.backend.tiny.files import save_tensors, state_of

SEED = 4321
FOLDER = "flux-tiny-controlnet-canny"
SINGLE_FILE = "flux-tiny-controlnet-depth"
UNION_FILE = "flux-tiny-controlnet-union"
NUM_MODE = 10  # InstantX Union's mode embedder rows


def transformer_config(arch: str = "tiny-flux") -> dict:
    path = catalog.config_dir(arch) / "transformer" / "config.json"
    return json.loads(path.read_text())


def flux_controlnet(
    arch: str = "tiny-flux",
    num_mode: int | None = None,
    seed: int = SEED,
    xlabs: bool = False,
):
    """A seeded FluxControlNetModel with tiny-flux's widths (one double and one single
    block, as InstantX's nets are shallower than their transformer); `xlabs`: built as
    XLabs' (two double blocks, no single ones, the pixel hint encoder: flux_xlabs.py)."""
    from diffusers import FluxControlNetModel

    base = transformer_config(arch)
    keep = (
        "patch_size",
        "in_channels",
        "attention_head_dim",
        "num_attention_heads",
        "joint_attention_dim",
        "pooled_projection_dim",
        "guidance_embeds",
        "axes_dims_rope",
    )
    config = {k: base[k] for k in keep} | dict(num_layers=1, num_single_layers=1, num_mode=num_mode)
    if xlabs:
        config |= dict(
            num_layers=2,
            num_single_layers=0,
            patch_size=flux_xlabs.PATCH,
            conditioning_embedding_channels=flux_xlabs.HINT_WIDTH,
        )
    torch.manual_seed(seed)
    net = FluxControlNetModel.from_config(config).eval()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.startswith(
                ("controlnet_blocks", "controlnet_single_blocks", "controlnet_x_embedder")
            ) or name.startswith("input_hint_block.conv_out"):
                p.copy_(torch.randn_like(p) * 0.2)
    return net


def write_folder(net, folder: Path) -> Path:
    net.save_pretrained(folder, safe_serialization=True)
    return folder


def write_single_file(net, path: Path) -> Path:
    return save_tensors(dict(net.state_dict()), path)


def write_xlabs(net, path: Path) -> Path:
    return save_tensors(flux_xlabs.from_diffusers(state_of(net)), path)


def write_controlnets(controlnet_dir: Path) -> dict[str, Path]:
    """The three tiny Flux ControlNets in a models/ControlNet folder, by name."""
    return {
        FOLDER: write_folder(flux_controlnet(seed=SEED), controlnet_dir / FOLDER),
        SINGLE_FILE: write_single_file(
            flux_controlnet(seed=SEED + 1), controlnet_dir / f"{SINGLE_FILE}.safetensors"
        ),
        UNION_FILE: write_single_file(
            flux_controlnet(num_mode=NUM_MODE, seed=SEED + 2),
            controlnet_dir / f"{UNION_FILE}.safetensors",
        ),
    }
