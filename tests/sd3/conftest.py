"""SD3.5 fixtures: one tiny SD3 written once per session in every layout artists have (a
ComfyUI tree: Stability's single files with and without text encoders, a bare MMDiT, the
text-encoder folder's CLIP-L/CLIP-G/T5, T5's tokenizer where ComfyUI keeps it, and a
diffusers folder), a library over it and a CPU engine (no extensions: these tests pin the
engine against diffusers' pipelines)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def sd3_parts():
    from dreamwire.backend.tiny.sd3 import sd3_components

    return sd3_components()


@pytest.fixture(scope="session")
def sd3_root(tmp_path_factory, sd3_parts) -> Path:
    import torch

    from dreamwire.backend.tiny import sd3
    from dreamwire.backend.tiny.flux import write_t5_tokenizer

    root = tmp_path_factory.mktemp("sd3-comfyui")
    models = root / "models"
    checkpoints = models / "checkpoints"
    sd3.write_sd3_diffusers_folder(sd3_parts, checkpoints / "tiny-sd3")
    sd3.write_stability_checkpoint(sd3_parts, checkpoints / "sd3.5_large.safetensors")
    sd3.write_stability_checkpoint(sd3_parts, checkpoints / "sd3.5_large_turbo.safetensors")
    sd3.write_stability_checkpoint(
        sd3_parts,
        checkpoints / "sd3.5_medium_incl_clips_t5xxl.safetensors",
        text_encoders=sd3.TEXT_PARTS,
    )
    diffusion_models = models / "diffusion_models"
    sd3.write_mmdit(sd3_parts["transformer"], diffusion_models / "sd3.5_mmdit.safetensors")
    sd3.write_mmdit(
        sd3_parts["transformer"],
        diffusion_models / "sd3.5_large_fp8_e4m3fn.safetensors",
        dtype=torch.float8_e4m3fn,
    )
    sd3.write_gguf_mmdit(sd3_parts["transformer"], diffusion_models / "sd3.5_large-Q8_0.gguf")
    sd3.write_vae(sd3_parts["vae"], models / "vae" / "sd3.5_vae.safetensors")
    for name, folder, file in (
        ("clip_l", "clip", "clip_l.safetensors"),
        ("clip_g", "clip", "clip_g.safetensors"),
        ("t5", "text_encoders", "t5xxl_fp16.safetensors"),
    ):
        sd3.write_text_encoder(sd3_parts, name, models / folder / file)
    write_t5_tokenizer(root / "comfy" / "text_encoders" / "t5_tokenizer")
    return root


@pytest.fixture(scope="session")
def sd3_library(sd3_root):
    from dreamwire.backend.library import ModelLibrary

    return ModelLibrary([sd3_root])


@pytest.fixture(scope="session")
def sd3_engine(sd3_library):
    from dreamwire.backend.engine import Engine

    return Engine(sd3_library, device="cpu", extensions=[], cache_size=1)
