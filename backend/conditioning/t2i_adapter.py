"""T2I-Adapter files: what an adapter file is, its diffusers config, and loading it offline.

Three layouts are read, as the A1111 ControlNet extension reads them
(scripts/controlnet_model_guess.py):

  * a diffusers folder (config.json with `_class_name` T2IAdapter and
    diffusion_pytorch_model.safetensors), as TencentARC publishes the SD1.5 v2 and SDXL ones;
  * a single file with diffusers keys (`adapter.conv_in.weight`, `adapter.body.0.resnets...`);
  * a single file in TencentARC's original layout (`t2iadapter_*_sd14v1`, `*_sd15v2`):
      full adapter   conv_in, then a flat `body.<k>` list of resnet blocks, num_res_blocks per
                     stage: body.<i*n + j>.block1/block2 is stage i's resnet j, and
                     body.<i*n>.in_conv the 1x1 conv that changes the channel count;
      light adapter  (color) body.<i>.in_conv / body.<i>.body.<j>.block1,2 / body.<i>.out_conv.
    The key mapping is diffusers' scripts/convert_original_t2i_adapter.py, for any stage and
    block count.

Architecture comes from the weights: the pixel-unshuffle factor (8 for SD1.x/SD2.x, 16 for
SDXL's full_adapter_xl) is conv_in's input width over the image channels (1 for sketch and
canny adapters, 3 otherwise); the stage widths must be the UNet's down-block widths (SDXL's
extra last feature goes to the middle block, as diffusers' UNet adds it).

Refused: pickles (as everywhere in Dreamwire); the style adapter (it reads CLIP-vision image
embeddings, not a control image); variants diffusers has no model for (convolutional
downsampling `down_opt`, 3x3 skip kernels).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dreamwire.shared.errors import DreamwireError, ErrorCode

from . import files
from .unit_file import UnitFile

ADAPTER_CLASS = "T2IAdapter"


@dataclass(frozen=True)
class AdapterConfig:
    """T2IAdapter's constructor arguments (diffusers' config.json)."""

    in_channels: int
    channels: tuple[int, ...]
    num_res_blocks: int
    downscale_factor: int
    adapter_type: str  # full_adapter | full_adapter_xl | light_adapter

    @property
    def sdxl(self) -> bool:
        return self.adapter_type == "full_adapter_xl"

    @property
    def feature_channels(self) -> tuple[int, ...]:
        """Channels of the features the adapter returns, in order (the light adapter repeats
        its last width once more, at half the size)."""
        if self.adapter_type == "light_adapter":
            return (*self.channels, self.channels[-1])
        return self.channels

    def as_dict(self) -> dict[str, Any]:
        return {
            "in_channels": self.in_channels,
            "channels": list(self.channels),
            "num_res_blocks": self.num_res_blocks,
            "downscale_factor": self.downscale_factor,
            "adapter_type": self.adapter_type,
        }


def is_adapter_folder(config: dict) -> bool:
    return config.get("_class_name") == ADAPTER_CLASS


def is_style(keys) -> bool:
    return any(k.startswith(("style_embedding", "transformer_layes.")) for k in keys)


def is_original(keys) -> bool:
    return any(re.fullmatch(r"body\.\d+\..+", k) for k in keys) and not any(
        k.startswith("adapter.") for k in keys
    )


# --- original layout -> diffusers keys ----------------------------------------------


def _full_res_blocks(keys) -> int:
    """Resnet blocks per stage: the first block with an in_conv starts stage 1 (stage 0 keeps
    conv_in's width). Without any (all stages one width) TencentARC's 2 is assumed."""
    starts = sorted(int(m[1]) for k in keys if (m := re.fullmatch(r"body\.(\d+)\.in_conv\..+", k)))
    return starts[0] if starts else 2


def original_to_diffusers(state: dict[str, Any]) -> dict[str, Any]:
    """TencentARC keys -> diffusers T2IAdapter keys (values untouched: tensors or shapes)."""
    keys = list(state)
    _check_variant(keys)
    out: dict[str, Any] = {}
    light = "conv_in.weight" not in state
    n = 0 if light else _full_res_blocks(keys)
    for key, value in state.items():
        if key.startswith("conv_in."):
            new = "adapter." + key
        elif light and (m := re.fullmatch(r"body\.(\d+)\.body\.(\d+)\.(block[12]\..+)", key)):
            new = f"adapter.body.{m[1]}.resnets.{m[2]}.{m[3]}"
        elif light and (m := re.fullmatch(r"body\.(\d+)\.((?:in|out)_conv\..+)", key)):
            new = f"adapter.body.{m[1]}.{m[2]}"
        elif not light and (m := re.fullmatch(r"body\.(\d+)\.(block[12]\..+)", key)):
            stage, block = divmod(int(m[1]), n)
            new = f"adapter.body.{stage}.resnets.{block}.{m[2]}"
        elif not light and (m := re.fullmatch(r"body\.(\d+)\.(in_conv\..+)", key)):
            stage, block = divmod(int(m[1]), n)
            if block != 0:
                raise DreamwireError(
                    ErrorCode.MODEL_CORRUPT,
                    f"T2I-Adapter: {key} changes width inside a stage of {n} blocks",
                )
            new = f"adapter.body.{stage}.{m[2]}"
        else:
            raise DreamwireError(
                ErrorCode.MODEL_UNSUPPORTED, f"T2I-Adapter: unexpected weight {key!r}"
            )
        out[new] = value
    return out


def _check_variant(keys) -> None:
    odd = [k for k in keys if "down_opt" in k or ".skep." in k]
    if odd:
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"a T2I-Adapter variant with {'convolutional downsampling' if 'down_opt' in odd[0] else 'skip convolutions'} "
            f"({odd[0]}), which diffusers has no model for",
        )


# --- config from diffusers keys -----------------------------------------------------


def _shape(value) -> tuple[int, ...]:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else tuple(value)


def config_from_state(state: dict[str, Any]) -> AdapterConfig:
    """The T2IAdapter config for diffusers-keyed weights (tensors or shapes)."""
    s = {k: _shape(v) for k, v in state.items()}
    stages = sorted({int(m[1]) for k in s if (m := re.fullmatch(r"adapter\.body\.(\d+)\..+", k))})
    if not stages or stages != list(range(len(stages))):
        raise DreamwireError(ErrorCode.MODEL_CORRUPT, "T2I-Adapter weights have no body blocks")
    blocks = {
        int(m[1]) for k in s if (m := re.fullmatch(r"adapter\.body\.0\.resnets\.(\d+)\..+", k))
    }
    n_blocks = len(blocks)
    try:
        if "adapter.conv_in.weight" in s:
            widths = tuple(s[f"adapter.body.{i}.resnets.0.block1.weight"][0] for i in stages)
            unshuffled = s["adapter.conv_in.weight"][1]
            # TencentARC's adapters read 1 (sketch, canny) or 3 image channels; SDXL unshuffles
            # by 16, SD1.x/SD2.x by 8 (the A1111 extension's test: cin 256 or 768 is SDXL).
            for factor, kind in ((16, "full_adapter_xl"), (8, "full_adapter")):
                for image_channels in (3, 1):
                    if unshuffled == image_channels * factor**2:
                        return AdapterConfig(image_channels, widths, n_blocks, factor, kind)
            raise DreamwireError(
                ErrorCode.MODEL_UNSUPPORTED,
                f"T2I-Adapter with {unshuffled} unshuffled input channels (not 1 or 3 image "
                "channels at 8x or 16x)",
            )
        outs = tuple(s[f"adapter.body.{i}.out_conv.weight"][0] for i in stages)
        unshuffled = s["adapter.body.0.in_conv.weight"][1]
    except KeyError as exc:
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT, f"T2I-Adapter weights lack {exc.args[0]}"
        ) from None
    if unshuffled % 64 or len(outs) < 2 or outs[-1] != outs[-2]:
        raise DreamwireError(ErrorCode.MODEL_UNSUPPORTED, "not a T2I-Adapter light model")
    return AdapterConfig(unshuffled // 64, outs[:-1], n_blocks, 8, "light_adapter")


# --- identification -----------------------------------------------------------------


@dataclass
class AdapterFile:
    config: AdapterConfig
    layout: str  # "original" | "diffusers" (single file) | "diffusers_folder"


@dataclass(kw_only=True)
class AdapterInfo(UnitFile):
    """A T2I-Adapter in the ControlNet folders."""

    adapter: AdapterFile

    @property
    def family(self) -> str:
        return "SDXL" if self.adapter.config.sdxl else "SD1.x/SD2.x"


def inspect_shapes(shapes: dict[str, tuple[int, ...]]) -> AdapterFile:
    if is_original(shapes):
        return AdapterFile(config_from_state(original_to_diffusers(shapes)), "original")
    return AdapterFile(config_from_state(shapes), "diffusers")


def inspect_folder(config: dict) -> AdapterFile:
    try:
        cfg = AdapterConfig(
            in_channels=int(config.get("in_channels", 3)),
            channels=tuple(int(c) for c in config.get("channels", (320, 640, 1280, 1280))),
            num_res_blocks=int(config.get("num_res_blocks", 2)),
            downscale_factor=int(config.get("downscale_factor", 8)),
            adapter_type=str(config.get("adapter_type", "full_adapter")),
        )
    except (TypeError, ValueError) as exc:
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT, f"T2I-Adapter config.json is malformed ({exc})"
        ) from None
    return AdapterFile(cfg, "diffusers_folder")


def mismatch(config: AdapterConfig, unet_config: dict) -> list[str]:
    """Why the adapter's features cannot feed this UNet (empty when they can)."""
    base_xl = unet_config.get("addition_embed_type") == "text_time"
    widths = list(unet_config.get("block_out_channels") or ())
    problems = []
    if config.sdxl != base_xl:
        problems.append(
            "SDXL adapter on a non-SDXL model"
            if config.sdxl
            else "SDXL model with a non-SDXL adapter"
        )
    # Feature i feeds down block i; SDXL's one extra feature feeds the middle block.
    got = list(config.feature_channels)
    if widths and (got[: len(widths)] != widths[: len(got)] or len(got) > len(widths) + 1):
        problems.append(f"feature widths {got} vs the UNet's {widths}")
    return problems


def check_size(config: AdapterConfig, width: int, height: int, name: str) -> None:
    """The adapter pixel-unshuffles the image by its factor (8, SDXL 16): the pass size must
    divide, or the features would not line up with the UNet's (INVALID_SIZE, not a shape
    error inside a step)."""
    f = config.downscale_factor
    if width % f or height % f:
        raise DreamwireError(
            ErrorCode.INVALID_SIZE,
            f"T2I-Adapter {name} needs a width and height in multiples of {f} px, not "
            f"{width}x{height}",
        )


# --- loading ------------------------------------------------------------------------


def load(path: Path, adapter: AdapterFile, name: str, dtype: torch.dtype, device) -> Any:
    """A diffusers T2IAdapter on `device`, loaded without network access."""
    from diffusers import T2IAdapter

    try:
        if adapter.layout == "diffusers_folder":
            model = T2IAdapter.from_pretrained(path, local_files_only=True, torch_dtype=dtype)
        else:
            state = files.load_tensors(path, "T2I-Adapter")
            if adapter.layout == "original":
                state = original_to_diffusers(state)
            config = config_from_state(state)
            model = T2IAdapter(**config.as_dict())
            missing, unexpected = model.load_state_dict(state, strict=False)
            if missing or unexpected:
                raise DreamwireError(
                    ErrorCode.MODEL_CORRUPT,
                    f"T2I-Adapter {name}: {len(missing)} missing and {len(unexpected)} "
                    "unexpected weights",
                )
    except DreamwireError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT, f"T2I-Adapter {name} could not be loaded: {exc}"
        ) from None
    if model.dtype != dtype:
        model = model.to(dtype=dtype)
    return model.to(device=device).eval().requires_grad_(False)
