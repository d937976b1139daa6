"""Loaded models as the engine sees them, and an LRU cache of them.

The model library finds and loads files; this module keeps the result in memory (one or
two checkpoints: a GPU rarely holds more), moves it to the engine's device and dtype, and
swaps in a separate VAE file without touching the cached checkpoint's own VAE.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from dreamwire.backend.caching import BoundedCache
from dreamwire.backend.library.weight_formats import is_compute_dtype

from .device import DeviceInfo, empty_cache


@dataclass
class LoadedModel:
    name: str  # the library's name for the checkpoint (what infotext calls "Model")
    family: str  # "sd1" | "sd2" | "sdxl"
    components: dict[
        str, Any
    ]  # diffusers modules: unet, vae, text_encoder(s), tokenizer(s), scheduler
    short_hash: str = ""  # A1111's 10-hex-digit hash for "Model hash"
    vae_name: str = ""  # "" = the checkpoint's own VAE
    vae_hash: str = ""
    arch: str = ""  # the catalog's architecture name, e.g. "sd1", "sdxl-base", "tiny-sd1"
    # Things derived from the model that jobs can share (e.g. prompt-encoder set-up); shared
    # with VAE-swapped copies, dropped with the model.
    cache: dict[Any, Any] = dataclasses.field(default_factory=dict)

    def with_vae(self, vae, name: str, short_hash: str = "") -> LoadedModel:
        return dataclasses.replace(
            self, components={**self.components, "vae": vae}, vae_name=name, vae_hash=short_hash
        )


def _same_device(a: torch.device, b: torch.device) -> bool:
    return a.type == b.type and (a.index or 0) == (b.index or 0)


def to_device(components: dict[str, Any], info: DeviceInfo) -> dict[str, Any]:
    """Place modules on `info`'s device and dtype; modules already there are left alone
    (this runs before every job, and walking every parameter costs tens of ms)."""
    for value in components.values():
        if not (hasattr(value, "to") and hasattr(value, "parameters")):
            continue
        first = next(value.parameters(), None)
        if first is None:
            continue
        # Storage layouts (fp8, GGUF) are kept as the library loaded them.
        if first.dtype != info.dtype and is_compute_dtype(first.dtype):
            value.to(dtype=info.dtype)  # the library loads in the dtype already; rarely needed
        if not _same_device(first.device, info.device):
            value.to(device=info.device)
        if value.training or first.requires_grad:
            value.eval()
            value.requires_grad_(False)
    return components


def model_cache(size: int, info: DeviceInfo) -> BoundedCache:
    """Models by key, least recently used first out; evicting frees the accelerator's
    memory at once."""
    return BoundedCache(size, on_evict=lambda: empty_cache(info))
