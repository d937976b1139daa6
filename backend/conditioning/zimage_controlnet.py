"""Z-Image Fun ControlNets (Alibaba PAI's Z-Image-Turbo-Fun-Controlnet-Union 1.0, 2.0, 2.1;
diffusers ZImageControlNetModel): what a file is, whether it fits a transformer, and loading
it offline. The headers and the config are read by backend/library/zimage_controlnet.py.

Every version is a Union with no mode input: it reads the control type from the picture
itself (the family spec's `union_modes["no_mode"]` lists the types its model card names).
2.0 and 2.1 also take the inpaint mask and the masked picture's latents (33 input
channels); the txt2img pipeline gives them zeros there, as diffusers does.

The net has no timestep, caption or patch embedding of its own: diffusers'
`ZImageControlNetModel.from_transformer` lends it the transformer's, which the control
stack (zimage_control_stack.py) does per call.
"""

from __future__ import annotations

from typing import Any

import torch

from dreamwire.backend.library import zimage_controlnet as headers

from . import files
from .transformer_controlnet import load_net, width_problems

LAYOUTS = ("zimage_fun", "zimage_folder")
LABEL = "Z-Image"
MODEL_CLASS = "ZImageControlNetModel"
FAMILY = "zimage"
file_layout = headers.layout
is_folder_config = headers.is_folder_config


def describe(info, config: dict) -> None:
    """Fill a ControlNetInfo of a Z-Image layout from its (read or derived) config."""
    info.base_channels = int(config.get("dim", 0))
    info.conditioning_channels = int(config.get("control_in_dim") or 16)
    info.detail.update(config=config, union="no_mode")
    info.type = None  # a Union: chosen per unit


def describe_file(info, shapes: dict[str, tuple[int, ...]]) -> None:
    describe(info, headers.config_from_shapes(shapes, {}))


def mismatch(info, transformer_config: dict) -> list[str]:
    """Why a Z-Image ControlNet does not fit a Z-Image transformer (empty when it fits)."""
    config = info.detail["config"]
    # No text stream of its own: the transformer lends it its caption embedding.
    problems = width_problems((info.base_channels, None), (transformer_config.get("dim"), None))
    if not problems and config.get("n_heads") != transformer_config.get("n_heads"):
        problems.append(f"{config.get('n_heads')} vs {transformer_config.get('n_heads')} heads")
    count = len(config.get("control_layers_places") or ())
    layers = int(transformer_config.get("n_layers", 0))
    if count > layers:
        problems.append(f"{count} control layers for a {layers}-layer transformer")
    return problems


def load(info, transformer_config: dict, dtype: torch.dtype, device) -> Any:
    """A diffusers ZImageControlNetModel on `device` (its shared parts still unset)."""
    from diffusers import ZImageControlNetModel

    if info.layout.endswith("_folder"):
        return load_net(ZImageControlNetModel, info, None, LABEL, dtype, device)
    state = files.load_tensors(info.path, "ControlNet")
    before = state.get(headers.REFINER_BEFORE)
    mode = headers.refiner_mode(state, None if before is None else bool((before == 0).all()))
    if mode == "control_layers":
        # diffusers' converter: 2.0's untrained refiner copies are not part of the model.
        state = {k: v for k, v in state.items() if not k.startswith("control_noise_refiner.")}
    return load_net(
        ZImageControlNetModel,
        info,
        lambda shapes: headers.config_from_shapes(shapes, transformer_config, mode),
        LABEL,
        dtype,
        device,
        state=state,
    )
