"""SD3 ControlNets (diffusers SD3ControlNetModel: Stability's SD3.5 Large blur/canny/depth,
InstantX's): what a file is, whether it fits a transformer, and loading it offline. The
headers are read by backend/library/sd3_controlnet.py.

Stability's nets are single-type (their names say canny, depth or blur; blur is their
tile-style upscaling net and runs tile units); there is no SD3 Union model.
"""

from __future__ import annotations

from typing import Any

import torch

from dreamwire.backend.library import sd3_controlnet as headers

from .transformer_controlnet import load_net, width_problems

LAYOUTS = ("sd3", "sd3_folder")
LABEL = "SD3"
MODEL_CLASS = "SD3ControlNetModel"
FAMILY = "sd3"
file_layout = headers.layout
is_folder_config = headers.is_folder_config


def describe(info, config: dict, inner: int | None = None) -> None:
    """Fill a ControlNetInfo of an SD3 layout from its (read or derived) config; `inner`:
    the hidden width a file's shapes show (its head width is the base model's business)."""
    width, text = headers.widths(config)
    info.context_dim = text
    info.base_channels = inner or width
    info.detail.update(config=config)
    if info.type is None and "blur" in info.name.lower():
        info.type = "tile"  # Stability's blur net: upscaling from a blurred picture


def describe_file(info, shapes: dict[str, tuple[int, ...]]) -> None:
    describe(info, headers.config_from_shapes(shapes, {}), int(shapes[headers.INPUT][0]))


def mismatch(info, transformer_config: dict) -> list[str]:
    """Why an SD3 ControlNet does not fit an SD3 transformer (empty when it fits)."""
    base_inner = int(transformer_config.get("num_attention_heads", 0)) * int(
        transformer_config.get("attention_head_dim", 0)
    )
    return width_problems(
        (info.base_channels, headers.widths(info.detail["config"])[1]),
        (base_inner, transformer_config.get("joint_attention_dim")),
    )


def load(info, transformer_config: dict, dtype: torch.dtype, device) -> Any:
    from diffusers import SD3ControlNetModel

    return load_net(
        SD3ControlNetModel,
        info,
        lambda shapes: headers.config_from_shapes(shapes, transformer_config),
        LABEL,
        dtype,
        device,
    )
