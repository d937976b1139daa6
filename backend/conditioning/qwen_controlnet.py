"""Qwen-Image ControlNets (diffusers QwenImageControlNetModel: InstantX's
Qwen-Image-ControlNet-Union and -Inpainting): what a file is, whether it fits a transformer,
and loading it offline. The headers are read by backend/library/qwen_controlnet.py.

The Union net has no mode input: it reads the control type from the picture (the family
spec's `union_modes["no_mode"]` lists the types its model card names). InstantX's
Inpainting net (a wider control input: the masked picture's latents and the mask) runs
only in diffusers' QwenImageControlNetInpaintPipeline, alone, which starts from pure noise
with no denoising strength: it serves the unit of an inpaint job (type "inpaint") that names
it or finds it by type, at strength 1 (unit_resolution.py checks both).
"""

from __future__ import annotations

from typing import Any

import torch

from dreamwire.backend.library import qwen_controlnet as headers

from .transformer_controlnet import load_net, width_problems

MODEL_CLASS = "QwenImageControlNetModel"
FAMILY = "qwen-image"
LAYOUTS = ("qwen", f"{FAMILY}_folder")
LABEL = "Qwen-Image"
file_layout = headers.layout
is_folder_config = headers.is_folder_config


def describe(info, config: dict) -> None:
    """Fill a ControlNetInfo of a Qwen layout from its (read or derived) config."""
    inner, text = headers.widths(config)
    info.context_dim = text
    info.base_channels = inner
    info.detail.update(config=config)
    if int(config.get("extra_condition_channels") or 0):
        info.type = "inpaint"  # the Inpainting net: the masked picture and mask are its control
        return
    info.detail["union"] = "no_mode"
    info.type = None  # a Union: chosen per unit


def is_inpainting(info) -> bool:
    """InstantX's Inpainting net (its control input wider than its latents by the mask)."""
    return getattr(info, "layout", "") in LAYOUTS and info.type == "inpaint"


def describe_file(info, shapes: dict[str, tuple[int, ...]]) -> None:
    describe(info, headers.config_from_shapes(shapes, {}))


def mismatch(info, transformer_config: dict) -> list[str]:
    """Why a Qwen-Image ControlNet does not fit a Qwen-Image transformer (empty when it
    fits)."""
    config = info.detail["config"]
    problems = width_problems(headers.widths(config), headers.widths(transformer_config))
    base_in = transformer_config.get("in_channels")
    if base_in is not None and config.get("in_channels") != base_in:
        problems.append(f"{config.get('in_channels')} vs {base_in} latent channels")
    return problems


def load(info, transformer_config: dict, dtype: torch.dtype, device) -> Any:
    """A diffusers QwenImageControlNetModel on `device`, without any network access."""
    from diffusers import QwenImageControlNetModel
    from diffusers.models.transformers.transformer_qwenimage import QwenEmbedRope

    net = load_net(
        QwenImageControlNetModel,
        info,
        lambda shapes: headers.config_from_shapes(shapes, transformer_config),
        LABEL,
        dtype,
        device,
    )
    # Its rotary tables are plain attributes (complex numbers, no buffer), so a net built on
    # the meta device has none: made again from the config, as the constructor makes them.
    net.pos_embed = QwenEmbedRope(
        theta=10000, axes_dim=list(net.config.axes_dims_rope), scale_rope=True
    ).to(device)
    return net
