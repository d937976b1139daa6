"""Tiny random-weight SD1.x / SDXL models, written in the real file formats.

The weights are random, so images are noise; what matters is that every file has the
layout of an artist's real file (single-file LDM checkpoints, an A1111 VAE file, a diffusers
folder) so that the tests run the same loading code as real use. Each component is built
from the catalog's tiny configs after seeding torch, so every build writes the same bytes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from dreamwire import catalog
from dreamwire.backend.library.catalog import write_pipeline_config
from dreamwire.backend.library.ldm_layout import (
    clip_to_ldm,
    open_clip_to_ldm,
    unet_to_ldm,
    vae_to_ldm,
)
from dreamwire.backend.tiny.files import save_tensors, state_of

SEED = 20240601
# Written into every tiny checkpoint so that tools (and the library) can tell them apart.
METADATA = {"dreamwire.tiny": "1"}


def _config(arch: str, component: str) -> dict:
    folder = catalog.config_dir(arch) / component
    name = "scheduler_config.json" if component == "scheduler" else "config.json"
    return json.loads((folder / name).read_text())


def _seeded(offset: int) -> None:
    torch.manual_seed(SEED + offset)


def _unet(arch: str):
    from diffusers import UNet2DConditionModel

    _seeded(1)
    return UNet2DConditionModel.from_config(_config(arch, "unet")).eval()


def _vae(arch: str):
    from diffusers import AutoencoderKL

    _seeded(2)
    return AutoencoderKL.from_config(_config(arch, "vae")).eval()


def _text_encoder(arch: str, component: str, offset: int):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(**_config(arch, component))
    cls = CLIPTextModelWithProjection if component == "text_encoder_2" else CLIPTextModel
    _seeded(offset)
    return cls(config).eval()


def sd1_components(arch: str = "tiny-sd1") -> dict:
    return {
        "unet": _unet(arch),
        "vae": _vae(arch),
        "text_encoder": _text_encoder(arch, "text_encoder", 3),
    }


def sdxl_components(arch: str = "tiny-sdxl") -> dict:
    return {
        "unet": _unet(arch),
        "vae": _vae(arch),
        "text_encoder": _text_encoder(arch, "text_encoder", 3),
        "text_encoder_2": _text_encoder(arch, "text_encoder_2", 4),
    }


def write_sd1_checkpoint(parts: dict, path: Path, arch: str = "tiny-sd1") -> Path:
    tensors = unet_to_ldm(state_of(parts["unet"]), _config(arch, "unet"))
    tensors |= vae_to_ldm(state_of(parts["vae"]), _config(arch, "vae"))
    tensors |= clip_to_ldm(state_of(parts["text_encoder"]), "cond_stage_model.transformer.")
    return save_tensors(tensors, path, METADATA)


def _sdxl_tensors(parts: dict, arch: str) -> dict[str, torch.Tensor]:
    tensors = unet_to_ldm(state_of(parts["unet"]), _config(arch, "unet"))
    tensors |= vae_to_ldm(state_of(parts["vae"]), _config(arch, "vae"))
    tensors |= clip_to_ldm(state_of(parts["text_encoder"]), "conditioner.embedders.0.transformer.")
    tensors |= open_clip_to_ldm(state_of(parts["text_encoder_2"]), "conditioner.embedders.1.model.")
    return tensors


def write_sdxl_checkpoint(parts: dict, path: Path, arch: str = "tiny-sdxl") -> Path:
    return save_tensors(_sdxl_tensors(parts, arch), path, METADATA)


def write_sdxl_vpred_checkpoint(parts: dict, path: Path, ztsnr: bool = True) -> Path:
    """A tiny SDXL single file marked as NoobAI-XL v-pred files are: empty `v_pred` (and
    `ztsnr`) tensors beside the weights (backend/library/prediction.py)."""
    tensors = _sdxl_tensors(parts, "tiny-sdxl")
    tensors["v_pred"] = torch.empty(0)
    if ztsnr:
        tensors["ztsnr"] = torch.empty(0)
    return save_tensors(tensors, path, METADATA)


def write_vae_file(vae, path: Path, arch: str = "tiny-sd1") -> Path:
    """A1111 VAE files hold the LDM VAE keys with no prefix (`encoder.conv_in.weight`)."""
    return save_tensors(vae_to_ldm(state_of(vae), _config(arch, "vae"), prefix=""), path, METADATA)


def write_diffusers_folder(parts: dict, folder: Path, arch: str = "tiny-sd1") -> Path:
    """A diffusers pipeline folder: the catalog configs and tokenizer plus weights per component."""
    if folder.exists():
        shutil.rmtree(folder)
    write_pipeline_config(arch, folder)
    for name, module in parts.items():
        target = folder / name
        if name.startswith("text_encoder"):
            # Keep the catalog's config.json (the same one single-file loading uses).
            _save_plain(state_of(module), target / "model.safetensors")
        else:
            _save_plain(state_of(module), target / "diffusion_pytorch_model.safetensors")
    return folder


def _save_plain(tensors: dict[str, torch.Tensor], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(dict(sorted(tensors.items())), str(path), metadata={"format": "pt"})
