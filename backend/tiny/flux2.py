"""A tiny random-weight Flux.2 Klein as a diffusers folder (black-forest-labs/FLUX.2-klein-4B's
layout): the transformer, Flux.2's 32-channel VAE and the Qwen3 text model (28 layers, so
that Klein's hidden states 9, 18 and 27 exist) from the catalog's tiny-flux2 configs after
seeding torch, and the tiny Qwen tokenizer (backend/tiny/zimage.py) with Qwen3's template.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from dreamwire import catalog
from dreamwire.backend.tiny.zimage import write_diffusers_tokenizer

ARCH = "tiny-flux2"
SEED = 20260115


def flux2_components() -> dict:
    """transformer, vae, text_encoder (Qwen3ForCausalLM), seeded."""
    from diffusers import AutoencoderKLFlux2, Flux2Transformer2DModel
    from transformers import Qwen3Config, Qwen3ForCausalLM

    folder = catalog.config_dir(ARCH)
    torch.manual_seed(SEED + 1)
    transformer = Flux2Transformer2DModel.from_config(
        Flux2Transformer2DModel.load_config(str(folder / "transformer"))
    ).eval()
    torch.manual_seed(SEED + 2)
    vae = AutoencoderKLFlux2.from_config(AutoencoderKLFlux2.load_config(str(folder / "vae")))
    torch.manual_seed(SEED + 3)
    config = Qwen3Config.from_pretrained(str(folder / "text_encoder"))
    text_encoder = Qwen3ForCausalLM(config).eval()
    return {"transformer": transformer, "vae": vae.eval(), "text_encoder": text_encoder}


def write_flux2_diffusers_folder(parts: dict, folder: Path) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(catalog.config_dir(ARCH), folder)
    write_diffusers_tokenizer(folder / "tokenizer")
    for name, module in parts.items():
        module.save_pretrained(str(folder / name))
    return folder
