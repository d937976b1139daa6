"""Black Forest Labs' Flux Control LoRAs (flux1-canny-dev-lora, flux1-depth-dev-lora): what a
file is, which serves a unit, and what it holds.

A Control LoRA turns Flux.1 dev into BFL's Canny/Depth Control model: LoRA pairs for the
transformer's layers, `img_in` among them with 128 input columns (the packed latents, then
the control image's packed latents, concatenated per token), and replacement RMSNorm scales
(`...query_norm.scale`, `...key_norm.scale`). diffusers runs the result with its
FluxControlPipeline family. The files live in the LoRA folders, where ComfyUI and Forge
users put them; a canny or depth unit on a Flux model picks one when no Flux ControlNet of
the type is installed, or names it as its `model`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
    """A Flux Control LoRA in the LoRA folders; `in_channels` its img_in's input width."""

    in_channels: int = 128

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
    """The Control LoRA named `name` (a LoRA's name, A1111's way), or for "" the first by
    name whose file name says `kind`; None when the LoRA folders have none."""
    available = files.library_entries(library, "lora")
    if name:
        try:
            path = lora.resolve(name, available)
        except DreamwireError:  # not a LoRA's name: the caller says what is missing
            return None
        return inspect_cached(path, name)
    for stem, path in sorted(available.items()):
        if type_from_name(stem) == kind:
            info = inspect_cached(path, stem)
            if info is not None:
                return info
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
