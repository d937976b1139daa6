"""Black Forest Labs' Flux Control models: the Control LoRAs (flux1-canny-dev-lora,
flux1-depth-dev-lora) and the full models (flux1-canny-dev, flux1-depth-dev): what a file
is, which serves a unit, and what it holds.

A Control LoRA turns Flux.1 dev into BFL's Canny/Depth Control model: LoRA pairs for the
transformer's layers, `img_in` among them with 128 input columns (the packed latents, then
the control image's packed latents, concatenated per token), and replacement RMSNorm scales
(`...query_norm.scale`, `...key_norm.scale`). diffusers runs the result with its
FluxControlPipeline family. The files live in the LoRA folders, where ComfyUI and Forge
users put them. The full models are transformer files like Flux dev's with `img_in` 128
wide, in the checkpoint folders (ComfyUI's models/unet or diffusion_models), where the
library identifies them as the "control" variant. A canny or depth unit on a Flux model
picks one (a LoRA first: it costs no second transformer) when no Flux ControlNet of the type
is installed, or names it as its `model`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dreamwire.backend.caching import BoundedCache
from dreamwire.backend.library.flux_layout import bfl_norm_target
from dreamwire.backend.library.safetensors_header import read_header
from dreamwire.shared.control_names import type_from_name
from dreamwire.shared.errors import DreamwireError
from dreamwire.shared.families import FLUX

from . import files, lora
from .unit_file import UnitFile

# The unit types BFL made Control models for.
TYPES = ("canny", "depth")
# Where a ComfyUI-saved copy puts the transformer's keys.
_PREFIXES = ("", "diffusion_model.")
_INPUT = "img_in.lora_A.weight"


@dataclass
class FluxControlInfo(UnitFile):
    """A Flux Control LoRA in the LoRA folders (`in_channels`: its img_in's input width), or
    a full Control model, `entry` its library checkpoint entry."""

    in_channels: int = 128
    entry: Any = None  # library ModelEntry of a full model; None for a LoRA

    @property
    def family(self) -> str:
        return FLUX.label


@dataclass
class ControlLora:
    """A Control LoRA's contents: its LoRA pairs (lora.py applies them) and the RMSNorm
    scales it replaces, by FluxTransformer2DModel parameter name."""

    lora: lora.LoraFile
    norms: dict[str, torch.Tensor]
    in_channels: int


def inspect(path: Path, name: str) -> FluxControlInfo | None:
    """The file as a Control LoRA (header only), None for any other file."""
    if path.suffix.lower() != ".safetensors":
        return None
    try:
        header = read_header(path)
    except (OSError, ValueError):
        return None
    for prefix in _PREFIXES:
        shape = header.shape(prefix + _INPUT)
        norms = any(k.startswith(prefix) and k.endswith("query_norm.scale") for k in header.tensors)
        if shape is not None and norms:
            return FluxControlInfo(name, path, type_from_name(name), in_channels=int(shape[1]))
    return None


_INFO: BoundedCache[FluxControlInfo | None] = BoundedCache(256)


def inspect_cached(path: Path, name: str) -> FluxControlInfo | None:
    key = (str(path), files.mtime(path))
    return _INFO.get(key, lambda: inspect(path, name))[0]


def find(library, kind: str, name: str = "") -> FluxControlInfo | None:
    """The Control LoRA or full model named `name` (a LoRA's or checkpoint's name), or for
    "" the first whose name says `kind`, LoRAs first; None when the library has none."""
    return _lora(library, kind, name) or _full_model(library, kind, name)


def state(library) -> list:
    """What `find` depends on, for a cache key: the LoRA files and the full models."""
    loras = files.library_entries(library, "lora").values()
    return [
        sorted((str(p), files.mtime(p)) for p in loras),
        sorted(e.name for e in _control_models(library)),
    ]


def _control_models(library) -> list:
    if library is None:
        return []
    found = (e for e in library.entries("checkpoint") if e.control_model)
    return sorted(found, key=lambda e: e.name)


def _lora(library, kind: str, name: str) -> FluxControlInfo | None:
    available = files.library_entries(library, "lora")
    if name:
        try:
            path = lora.resolve(name, available)
        except DreamwireError:  # not a LoRA's name: perhaps a full model's
            return None
        return inspect_cached(path, name)
    for stem, path in sorted(available.items()):
        if type_from_name(stem) == kind:
            info = inspect_cached(path, stem)
            if info is not None:
                return info
    return None


def _full_model(library, kind: str, name: str) -> FluxControlInfo | None:
    """A checkpoint the library identified as a Flux Control model (flux_identify.py)."""
    for entry in _control_models(library):
        if (name and name in (entry.name, entry.path.name)) or (
            not name and type_from_name(entry.name) == kind
        ):
            return FluxControlInfo(
                entry.name, Path(entry.path), type_from_name(entry.name), entry=entry
            )
    return None


def read(info: FluxControlInfo) -> ControlLora:
    """The file's LoRA pairs and norm scales (the norms are no LoRA keys, so lora.read
    refuses the whole file as a style LoRA)."""
    data = files.load_tensors(info.path, "Flux Control LoRA")
    norms: dict[str, torch.Tensor] = {}
    pairs: dict[str, torch.Tensor] = {}
    for key, value in data.items():
        bare = next((key[len(p) :] for p in _PREFIXES[1:] if key.startswith(p)), key)
        target = bfl_norm_target(bare)
        if target is not None:
            norms[target] = value
        else:
            pairs[key] = value
    return ControlLora(lora.from_tensors(pairs, info.path, info.name), norms, info.in_channels)


def load_model(info: FluxControlInfo, dtype: torch.dtype, device: torch.device):
    """A full Control model's transformer (BFL layout, GGUF or fp8 kept as stored), with
    the configs of the catalog architecture its file loads as."""
    from dreamwire.backend.library import flux_loading
    from dreamwire.backend.library.flux_parts import Part

    entry = info.entry
    part = Part(entry, entry.detail.get("transformer_prefix", ""))
    model = flux_loading.load_transformer(part, flux_loading.config_arch(entry.arch), dtype)
    return model.to(device).eval().requires_grad_(False)
