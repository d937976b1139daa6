"""What every tiny-model builder shares: writing tensors as a .safetensors file the way the
released files are written (sorted keys, contiguous), and the tiny UNet configs.

Builders seed torch before making weights, so the same call always writes the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from dreamwire import catalog


def state_of(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous() for k, v in module.state_dict().items()}


def save_tensors(
    tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous() for k, v in sorted(tensors.items())}
    save_file(tensors, str(path), metadata=metadata)
    return path


def unet_config(arch: str) -> dict:
    """The diffusers UNet config of a catalog architecture ("tiny-sd1", "tiny-sdxl" ...)."""
    return json.loads((catalog.config_dir(arch) / "unet" / "config.json").read_text())


def component_config(arch: str, component: str) -> dict:
    """A component's diffusers/transformers config from the catalog's folder of `arch`."""
    folder = catalog.config_dir(arch) / component
    name = "scheduler_config.json" if component == "scheduler" else "config.json"
    return json.loads((folder / name).read_text())
