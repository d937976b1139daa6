"""ControlNet files: what a file is (type, layout, architecture) and loading it offline.

Type comes from the file name, the way artists and the A1111 extension name them
(control_v11p_sd15_canny, control_v11f1p_sd15_depth, control_sd15_hed, t2iadapter_depth_sd15v2,
diffusers_xl_canny_full, controlnet-openpose-sdxl-1.0, ...). Architecture comes from the
weights: the width of the cross-attention context (768 SD1.x, 1024 SD2.x, 2048 SDXL) and the
presence of SDXL's added-condition embedding. It is compared with the base model's UNet
before anything is loaded, so a mismatch is a clear MODEL_MISMATCH, never a shape error
deep inside a step.

Loading needs no network: the ControlNet's diffusers config is the base UNet's config (a
ControlNet is a copy of the UNet's encoder, exactly as ControlNetModel.from_unet builds it)
plus the hint-encoder channels read from the file, written to a config folder in the cache
for `ControlNetModel.from_single_file(config=..., local_files_only=True)`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dreamwire.backend.families import label_for_width, spec_for
from dreamwire.backend.library import flux_controlnet as flux_controlnet_headers
from dreamwire.backend.library import qwen_controlnet as qwen_controlnet_headers
from dreamwire.backend.library import sd3_controlnet as sd3_controlnet_headers
from dreamwire.backend.library import zimage_controlnet as zimage_controlnet_headers
from dreamwire.shared.control_names import type_from_name
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.families import label as family_label

from . import files, ip_adapter_files, t2i_adapter
from .transformer_controlnet import reason
from .unit_file import UnitFile


def family_from_name(name: str) -> str | None:
    stem = Path(name).name.lower()
    if re.search(r"sdxl|_xl|xl_|\bxl\b", stem):
        return "SDXL"
    if re.search(r"sd21|sd2\b|sd_21|v2_1", stem):
        return "SD2.x"
    if re.search(r"sd15|sd_15|sd14|sd1\b|control_sd", stem):
        return "SD1.x"
    return None


@dataclass(kw_only=True)
class ControlNetInfo(UnitFile):
    """A ControlNet (1.0/1.1 original layout, diffusers, Union/ProMax) or a file in the
    ControlNet folders that Dreamwire refuses (UNSUPPORTED layouts)."""

    layout: str  # "original" | "diffusers" | "diffusers_folder" | union's | UNSUPPORTED's
    context_dim: int | None = None
    sdxl: bool = False
    base_channels: int | None = None
    hint_channels: tuple[int, ...] = ()
    conditioning_channels: int = 3
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def family(self) -> str:
        kind = transformer_kind(self)
        if kind is not None:
            return family_label(kind.FAMILY)
        by_width = label_for_width(self.context_dim)
        if by_width:
            return by_width
        by_name = family_from_name(self.name)
        if by_name:
            return by_name
        return f"a model with {self.context_dim}-wide text conditioning"


# What inspect() finds in the ControlNet folders: the info's class says which kind runs it.
AnyUnitFile = ControlNetInfo | t2i_adapter.AdapterInfo | ip_adapter_files.IPAdapterInfo


UNSUPPORTED = {
    "t2iadapter_style": "a T2I-Adapter style model (it reads CLIP-vision image embeddings "
    "through t2ia_style_clipvision, not a control image)",
    "control_lora": "a Control-LoRA (Stability's ControlNet LoRA)",
    "lllite": "a kohya ControlNet-LLLite model",
    # diffusers 0.42 has no single-file loader or converter for Stability's own SD3.5
    # ControlNet files; its diffusers repositories load.
    "sd3_stability": "Stability's SD3.5 ControlNet in its original layout, which diffusers "
    "cannot load; use the diffusers weights (stabilityai/stable-diffusion-3.5-large-"
    "controlnet-canny/-depth/-blur)",
    "unknown": "not a ControlNet Dreamwire recognises",
}


def _layout(keys: set[str]) -> str:
    if ip_adapter_files.is_ip_adapter(keys):
        return "ip_adapter"
    # Qwen's before Flux's: Qwen-Image ControlNets have Flux's marks too (their own modules
    # beside them); every transformer kind before "original": XLabs' has a hint block.
    for headers in (
        qwen_controlnet_headers,
        flux_controlnet_headers,
        sd3_controlnet_headers,
        zimage_controlnet_headers,
    ):
        found = headers.layout(keys)
        if found:
            return found
    if any(k.startswith("lllite_") for k in keys):
        return "lllite"
    if any("lora_controlnet" in k for k in keys) or any(".up" in k and "lora" in k for k in keys):
        return "control_lora"
    if any(k.startswith("task_embedding") or "control_add_embedding" in k for k in keys):
        return "union"
    if "control_model.input_hint_block.0.weight" in keys or "input_hint_block.0.weight" in keys:
        return "original"
    if "controlnet_cond_embedding.conv_in.weight" in keys:
        return "diffusers"
    if t2i_adapter.is_style(keys):
        return "t2iadapter_style"
    if any(k.startswith(("adapter.", "body.")) for k in keys):
        return "t2iadapter"
    return "unknown"


def _fill_from_shapes(info: ControlNetInfo, shapes: dict[str, tuple[int, ...]]) -> None:
    prefix = "control_model." if any(k.startswith("control_model.") for k in shapes) else ""
    s = {k.removeprefix(prefix): v for k, v in shapes.items()}
    for key, shape in s.items():
        if key.endswith("attn2.to_k.weight") and len(shape) == 2:
            info.context_dim = int(shape[1])
            break
    if info.layout == "original":
        info.sdxl = "label_emb.0.0.weight" in s
        if "input_blocks.0.0.weight" in s:
            info.base_channels = int(s["input_blocks.0.0.weight"][0])
        hint = [int(s["input_hint_block.0.weight"][0])]
        info.conditioning_channels = int(s["input_hint_block.0.weight"][1])
        # conv, SiLU pairs: blocks 2, 4, ..., 12 then the zero conv at 14
        for i in range(2, 13, 4):
            if f"input_hint_block.{i + 2}.weight" in s:
                hint.append(int(s[f"input_hint_block.{i + 2}.weight"][0]))
        info.hint_channels = tuple(hint)
    elif info.layout in ("diffusers", "union"):  # union files have diffusers keys
        info.sdxl = "add_embedding.linear_1.weight" in s
        if "conv_in.weight" in s:
            info.base_channels = int(s["conv_in.weight"][0])
        hint = [int(s["controlnet_cond_embedding.conv_in.weight"][0])]
        info.conditioning_channels = int(s["controlnet_cond_embedding.conv_in.weight"][1])
        i = 1
        while f"controlnet_cond_embedding.blocks.{i}.weight" in s:
            hint.append(int(s[f"controlnet_cond_embedding.blocks.{i}.weight"][0]))
            i += 2
        info.hint_channels = tuple(hint)


def inspect(path: Path, name: str | None = None) -> AnyUnitFile:
    """Identify a ControlNet, T2I-Adapter or IP-Adapter file or diffusers folder without
    loading its weights (pickled files have no header and are read through the restricted
    unpickler)."""
    path = Path(path)
    name = name or (path.name if path.is_dir() else path.stem)
    kind = type_from_name(name)
    if path.is_dir():
        cfg_path = path / "config.json"
        if not cfg_path.is_file():
            raise DreamwireError(
                ErrorCode.MODEL_CORRUPT, f"ControlNet folder {path.name} has no config.json"
            )
        try:
            cfg = json.loads(cfg_path.read_text())
        except (OSError, ValueError) as exc:
            raise DreamwireError(
                ErrorCode.MODEL_CORRUPT, f"ControlNet {path.name}: unreadable config.json ({exc})"
            ) from None
        for net_kind in _transformer_kinds():
            if net_kind.is_folder_config(cfg):
                layout = f"{net_kind.FAMILY}_folder"
                info = ControlNetInfo(name=name, path=path, type=kind, layout=layout)
                net_kind.describe(info, cfg)
                return info
        if t2i_adapter.is_adapter_folder(cfg):
            return t2i_adapter.AdapterInfo(
                name=name, path=path, type=kind, adapter=t2i_adapter.inspect_folder(cfg)
            )
        boc = cfg.get("block_out_channels") or [None]
        info = ControlNetInfo(
            name=name,
            path=path,
            type=kind,
            layout="diffusers_folder",
            context_dim=cfg.get("cross_attention_dim"),
            sdxl=cfg.get("addition_embed_type") == "text_time",
            base_channels=boc[0],
            hint_channels=tuple(cfg.get("conditioning_embedding_out_channels") or ()),
            conditioning_channels=int(cfg.get("conditioning_channels", 3)),
            detail={"config": cfg},
        )
        if _union().is_union_config(cfg):
            _union().describe_folder(info, cfg)
        return info
    if path.suffix.lower() == ".safetensors":
        shapes = files.shapes(path)
        pickled = False
    else:
        if kind == "ip-adapter":
            # h94's ip-adapter_*.bin pickles: refused before anything is unpickled.
            from dreamwire.backend.library.pickles import refuse_pickle

            refuse_pickle(path)
        state = pickled_state_dict(path)
        shapes = {k: tuple(v.shape) for k, v in state.items()}
        pickled = True
    layout = _layout(set(shapes))
    if layout == "t2iadapter":
        adapter = t2i_adapter.inspect_shapes(shapes)
        return t2i_adapter.AdapterInfo(
            name=name, path=path, type=kind, pickled=pickled, adapter=adapter
        )
    if layout == "ip_adapter":
        return ip_adapter_files.IPAdapterInfo(
            name=name,
            path=path,
            type="ip-adapter",
            pickled=pickled,
            # pickles are refused by check_supported, unread
            ip_adapter=None if pickled else ip_adapter_files.inspect_shapes(shapes, name),
        )
    info = ControlNetInfo(name=name, path=path, type=kind, layout=layout, pickled=pickled)
    net_kind = transformer_kind(info)
    if net_kind is not None:
        _describe_file(net_kind, info, shapes)
        return info
    _fill_from_shapes(info, shapes)
    if info.layout == "union":
        _union().describe(info, shapes)
    if kind is None and info.layout in ("original", "diffusers"):
        info.detail["note"] = "type not recognised from the file name"
    return info


def _describe_file(net_kind, info: ControlNetInfo, shapes: dict[str, tuple[int, ...]]) -> None:
    """The kind reads its config from the file's shapes; shapes that do not hold the network
    its keys promise (a tensor missing, cut short or of another shape) make a damaged file,
    whichever kind it is."""
    from .flux_controlnet import is_xlabs

    try:
        net_kind.describe_file(info, shapes)
    except (KeyError, ValueError, IndexError, ZeroDivisionError) as exc:
        # XLabs' files are Flux ControlNets in x-flux's own layout: named as artists know them.
        what = "an XLabs Flux ControlNet" if is_xlabs(info) else f"a {net_kind.LABEL} ControlNet"
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT,
            f"{info.path.name} looks like {what} but its weights are unreadable: {reason(exc)}",
        ) from None


def pickled_state_dict(path: Path) -> dict[str, torch.Tensor]:
    data = files.load_pickled(path, "ControlNet")
    if isinstance(data, dict) and "state_dict" in data and isinstance(data["state_dict"], dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED, f"ControlNet {path.name} does not hold a state dict"
        )
    return data


def _transformer_kinds():
    # Flux's, SD3's, Z-Image's and Qwen-Image's ControlNets (their modules import the
    # family specs).
    from . import flux_controlnet, qwen_controlnet, sd3_controlnet, zimage_controlnet

    return (flux_controlnet, sd3_controlnet, zimage_controlnet, qwen_controlnet)


def transformer_kind(info):
    """The module running a transformer family's ControlNet (flux_controlnet,
    sd3_controlnet, zimage_controlnet, qwen_controlnet) for `info`; None for a UNet ControlNet or an adapter."""
    if isinstance(info, ControlNetInfo):
        return next((k for k in _transformer_kinds() if info.layout in k.LAYOUTS), None)
    return None


def _union():
    from . import union  # ControlNet Union models (imports diffusers; only when needed)

    return union


def check_supported(info: AnyUnitFile) -> None:
    if isinstance(info, ControlNetInfo) and info.layout in UNSUPPORTED:
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"{info.path.name} is {UNSUPPORTED[info.layout]}; Dreamwire runs ControlNet 1.0/1.1 "
            "files (original layout), diffusers ControlNets (SD, Flux, SD3 and Qwen-Image), "
            "XLabs' Flux ControlNets, Z-Image Fun ControlNets, T2I-Adapters (full, "
            "light and SDXL; .safetensors or diffusers folders) and IP-Adapters (.safetensors)",
        )
    if not isinstance(info, ControlNetInfo) and info.pickled:
        # Unlike ControlNet 1.1's .pth files, adapters come as .safetensors (A1111's
        # t2iadapter_*.safetensors, TencentARC's diffusers folders): pickles stay refused.
        from dreamwire.backend.library.pickles import refuse_pickle

        refuse_pickle(info.path)


def check_compatible(
    info: AnyUnitFile, unet_config: dict, model_name: str, model_family: str
) -> None:
    """MODEL_MISMATCH unless the file was made for the base model's architecture
    (`unet_config`: the base model's denoiser config, its UNet or its transformer)."""
    base_class = spec_for(model_family).controlnets.model_class
    net_kind = transformer_kind(info)
    net_class = net_kind.MODEL_CLASS if net_kind is not None else "ControlNetModel"
    if net_class != base_class or net_kind is not None:
        problems = [] if net_class != base_class else net_kind.mismatch(info, unet_config)
        if net_class == base_class and not problems:
            return
        what = (
            "ControlNet"
            if isinstance(info, ControlNetInfo)
            else "T2I-Adapter"
            if isinstance(info, t2i_adapter.AdapterInfo)
            else "IP-Adapter"
        )
        detail = f" ({'; '.join(problems)})" if problems else ""
        raise DreamwireError(
            ErrorCode.MODEL_MISMATCH,
            f"{what} {info.name} is for {info.family} but {model_name} is a "
            f"{family_label(model_family)} model{detail}; pick one made for "
            f"{family_label(model_family)}",
        )
    if isinstance(info, ip_adapter_files.IPAdapterInfo):
        if info.ip_adapter is None:
            return  # a pickle: check_supported refuses it

        base_dim = unet_config.get("cross_attention_dim")
        base_dim = base_dim[0] if isinstance(base_dim, list | tuple) else base_dim
        if info.ip_adapter.cross_dim != base_dim:
            raise DreamwireError(
                ErrorCode.MODEL_MISMATCH,
                f"IP-Adapter {info.name} is for {info.family} but {model_name} is a "
                f"{family_label(model_family)} model (cross-attention width "
                f"{info.ip_adapter.cross_dim} vs {base_dim}); pick an IP-Adapter made for "
                f"{family_label(model_family)}",
            )
        return
    if isinstance(info, t2i_adapter.AdapterInfo):
        problems = t2i_adapter.mismatch(info.adapter.config, unet_config)
        if problems:
            raise DreamwireError(
                ErrorCode.MODEL_MISMATCH,
                f"T2I-Adapter {info.name} is for {info.family} but {model_name} is a "
                f"{family_label(model_family)} model ({'; '.join(problems)}); pick an adapter "
                f"made for {family_label(model_family)}",
            )
        return
    base_dim = unet_config.get("cross_attention_dim")
    base_dim = base_dim[0] if isinstance(base_dim, list | tuple) else base_dim
    base_xl = unet_config.get("addition_embed_type") == "text_time"
    base_ch = (unet_config.get("block_out_channels") or [None])[0]
    problems = []
    if info.context_dim is not None and info.context_dim != base_dim:
        problems.append(f"text width {info.context_dim} vs {base_dim}")
    if info.sdxl != base_xl:
        problems.append(
            "SDXL"
            + (
                " ControlNet on a non-SDXL model"
                if info.sdxl
                else " model with a non-SDXL ControlNet"
            )
        )
    if info.base_channels is not None and base_ch is not None and info.base_channels != base_ch:
        problems.append(f"{info.base_channels} vs {base_ch} base channels")
    if problems:
        raise DreamwireError(
            ErrorCode.MODEL_MISMATCH,
            f"ControlNet {info.name} is for {info.family} but {model_name} is a "
            f"{family_label(model_family)} model ({'; '.join(problems)}); pick a ControlNet "
            f"made for {family_label(model_family)}",
        )


# --- loading ------------------------------------------------------------------------


def controlnet_config(unet_config: dict, info: ControlNetInfo) -> dict:
    """The ControlNet mirroring this UNet, as diffusers' ControlNetModel.from_unet builds it."""
    from diffusers import ControlNetModel, UNet2DConditionModel

    clean = {k: v for k, v in unet_config.items() if not k.startswith("_")}
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(clean)
        net = ControlNetModel.from_unet(
            unet,
            load_weights_from_unet=False,
            conditioning_embedding_out_channels=info.hint_channels or (16, 32, 96, 256),
            conditioning_channels=info.conditioning_channels,
        )
    config = {k: v for k, v in dict(net.config).items() if not k.startswith("_")}
    # Global pooling (shuffle) is applied by the stack per unit, never by the model, so
    # that one pooled unit cannot switch the whole pipeline into guess mode.
    config["global_pool_conditions"] = False
    return config


def _config_dir(config: dict) -> Path:
    from dreamwire.backend.library.catalog import cache_root

    body = json.dumps({"_class_name": "ControlNetModel", **config}, sort_keys=True, default=list)
    folder = cache_root() / "controlnet-configs" / hashlib.sha256(body.encode()).hexdigest()[:16]
    if not (folder / "config.json").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".config.{id(config)}.json"
        tmp.write_text(body)
        tmp.replace(folder / "config.json")
    return folder


def load(
    info: ControlNetInfo | t2i_adapter.AdapterInfo, unet_config: dict, dtype: torch.dtype, device
) -> Any:
    """A diffusers ControlNetModel (T2IAdapter for adapters) on `device`, loaded without any
    network access."""
    from diffusers import ControlNetModel

    check_supported(info)
    if isinstance(info, t2i_adapter.AdapterInfo):
        return t2i_adapter.load(info.path, info.adapter, info.name, dtype, device)
    if info.layout in _union().LAYOUTS:
        return _union().load(info, unet_config, dtype, device)
    net_kind = transformer_kind(info)
    if net_kind is not None:
        return net_kind.load(info, unet_config, dtype, device)
    try:
        if info.layout == "diffusers_folder":
            net = ControlNetModel.from_pretrained(
                info.path, local_files_only=True, torch_dtype=dtype
            )
            if net.config.global_pool_conditions:
                net.register_to_config(global_pool_conditions=False)
        else:
            config = controlnet_config(unet_config, info)
            if info.pickled:
                net = _load_pickled(info, config, dtype)
            else:
                net = ControlNetModel.from_single_file(
                    str(info.path),
                    config=str(_config_dir(config)),
                    local_files_only=True,
                    torch_dtype=dtype,
                )
    except DreamwireError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT, f"ControlNet {info.name} could not be loaded: {exc}"
        ) from None
    if net.dtype != dtype:
        net = net.to(dtype=dtype)
    net.to(device=device).eval().requires_grad_(False)
    return net


def _load_pickled(info: ControlNetInfo, config: dict, dtype: torch.dtype):
    from diffusers import ControlNetModel
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

    state = pickled_state_dict(info.path)
    converted = convert_controlnet_checkpoint(state, config)
    net = ControlNetModel.from_config(config).to(dtype)
    missing, unexpected = net.load_state_dict(converted, strict=False)
    if missing or unexpected:
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT,
            f"ControlNet {info.name}: {len(missing)} missing and {len(unexpected)} unexpected "
            "weights after conversion",
        )
    return net
