"""Flux ControlNets (diffusers FluxControlNetModel): what a file is, which mode a unit takes,
and loading it offline. The headers are read by backend/library/flux_controlnet.py.

Kinds, as the family spec's `controlnets.union_modes` names them:

- a single-type ControlNet (InstantX canny, Shakker depth, ...): its type from the name;
- "modes": InstantX Union and Shakker Union-Pro, with a mode input (num_mode rows); the
  mode of each unit type is the spec's table (canny 0, tile 1, depth 2, blur 3, pose 4,
  gray 5, low quality 6 as the model cards number them);
- "no_mode": Shakker Union-Pro 2.0, which reads the control type from the image itself (no
  mode input): a Union by its name, serving the types its card lists.

XLabs' files (BFL-keyed, library/flux_xlabs.py) are converted to the same class with a
pixel hint encoder (`input_hint_block`). The pipelines treat such a net as XLabs' runs it
(pipeline_flux_controlnet.py "xlab controlnet has a input_hint_block"): the control image
goes in as pixels in [-1, 1] (x-flux's `img / 127.5 - 1`, ComfyUI's `hint * 2 - 1`), not
VAE latents, and the transformer adds the nets' block samples cyclically
(`controlnet_blocks_repeat`: double block i takes sample i % n, as ComfyUI tiles XLabs'
outputs and x-flux's `index_block % 2` does for its depth-2 nets), where InstantX's are
spread evenly (i // ceil(blocks / n)). The pipelines decide both by the first net only, so
XLabs and other Flux ControlNets are never mixed in one job (unit_resolution.py).
The unit's weight scales the samples as x-flux's `controlnet_gs`/ComfyUI's strength do
(XLabs suggest 0.7-0.9 on their cards; Dreamwire keeps the artist's weight as is).
"""

from __future__ import annotations

from typing import Any

import torch

from dreamwire.backend.families import spec_for
from dreamwire.backend.library import flux_controlnet as headers
from dreamwire.backend.library import flux_xlabs
from dreamwire.shared.errors import DreamwireError, ErrorCode

from .transformer_controlnet import load_net, width_problems

XLABS = "flux_xlabs"
LAYOUTS = ("flux", "flux_folder", XLABS)
LABEL = "Flux"
MODEL_CLASS = "FluxControlNetModel"
FAMILY = "flux"
file_layout = headers.layout
is_folder_config = headers.is_folder_config


def describe(info, config: dict) -> None:
    """Fill a ControlNetInfo of a Flux layout from its (read or derived) config."""
    inner, text = headers.widths(config)
    info.context_dim = text
    info.base_channels = inner
    num_mode = config.get("num_mode")
    union = "modes" if num_mode else ("no_mode" if "union" in info.name.lower() else "")
    info.detail.update(config=config, union=union, num_mode=num_mode)
    if union:
        info.type = None  # chosen per unit


def describe_file(info, shapes: dict[str, tuple[int, ...]]) -> None:
    # The rotary axes and patch size come from the base model at load time; the widths
    # and the mode count, all that identification needs, are in the shapes. Unreadable
    # shapes raise; controlnet_files.inspect names the file.
    if info.layout == XLABS:
        flux_xlabs.check_shapes(shapes)
        describe(info, flux_xlabs.config(shapes, {}))
        return
    describe(info, headers.config_from_shapes(shapes, {}))


def is_xlabs(info) -> bool:
    return getattr(info, "layout", "") == XLABS


def is_flux(info) -> bool:
    return getattr(info, "layout", "") in LAYOUTS


def union_kind(info) -> str:
    """A transformer family's Union kind as its describe() recorded it ("modes", "no_mode":
    Flux's, Z-Image's Fun); "" for any other file."""
    from .controlnet_files import transformer_kind

    return info.detail.get("union", "") if transformer_kind(info) is not None else ""


def control_mode(unit_type: str, info, family: str, where: str) -> int | None:
    """The mode input of a unit on a Flux Union model (None: the model takes none), or a
    clear MODEL_UNSUPPORTED for a type the model was not trained on."""
    kind = union_kind(info)
    table = spec_for(family).controlnets.union_modes.get(kind, {})
    if unit_type not in table:
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"{where}: {info.name} is a {info.family} ControlNet Union model, which has no {unit_type} "
            f"mode (it runs {', '.join(sorted(table))}); pick a {unit_type} ControlNet",
        )
    mode = table[unit_type]
    num_mode = info.detail.get("num_mode")
    if mode is not None and num_mode is not None and mode >= num_mode:
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"{where}: {info.name} has {num_mode} control modes; {unit_type} is mode {mode}",
        )
    return mode


def mismatch(info, transformer_config: dict) -> list[str]:
    """Why a Flux ControlNet does not fit a Flux transformer (empty when it fits)."""
    return width_problems(headers.widths(info.detail["config"]), headers.widths(transformer_config))


def load(info, transformer_config: dict, dtype: torch.dtype, device) -> Any:
    """A diffusers FluxControlNetModel on `device`, without any network access."""
    from diffusers import FluxControlNetModel

    if info.layout == XLABS:

        def xlabs_config(shapes: dict) -> dict:
            flux_xlabs.check_shapes(shapes)
            return flux_xlabs.config(shapes, transformer_config)

        return load_net(
            FluxControlNetModel,
            info,
            xlabs_config,
            LABEL,
            dtype,
            device,
            convert=flux_xlabs.to_diffusers,
        )
    return load_net(
        FluxControlNetModel,
        info,
        lambda shapes: headers.config_from_shapes(shapes, transformer_config),
        LABEL,
        dtype,
        device,
    )
