"""Flux.2 (Klein, dev) files are found and identified in ComfyUI's and diffusers' layouts,
listed with why they cannot run, and refused by name with a stable code, never loaded as
the Flux.1 their `double_blocks` names resemble."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from dreamwire import catalog
from dreamwire.backend.library import ModelLibrary
from dreamwire.backend.library.entries import Kind
from dreamwire.shared.errors import DreamwireError, ErrorCode


def _bfl_transformer(path: Path, hidden: int, text: int, prefix: str = "") -> None:
    """The keys that tell a Flux.2 transformer, at the shapes BFL's files have them."""
    tensors = {
        "single_stream_modulation.lin.weight": torch.zeros(3 * 2 * hidden, hidden),
        "txt_in.weight": torch.zeros(hidden, text),
        "double_blocks.0.img_attn.qkv.weight": torch.zeros(3 * hidden, hidden),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({prefix + k: v for k, v in tensors.items()}, str(path))


@pytest.fixture(scope="module")
def comfy(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("flux2") / "ComfyUI"
    models = root / "models"
    _bfl_transformer(models / "diffusion_models" / "flux-2-klein-tiny.safetensors", 32, 96)
    _bfl_transformer(
        models / "checkpoints" / "flux-2-klein-tiny-comfy.safetensors",
        32,
        96,
        "model.diffusion_model.",
    )
    folder = models / "diffusers" / "FLUX.2-klein-tiny"
    (folder / "transformer").mkdir(parents=True)
    index = {
        "_class_name": "Flux2KleinPipeline",
        "transformer": ["diffusers", "Flux2Transformer2DModel"],
    }
    (folder / "model_index.json").write_text(json.dumps(index))
    config = {
        "_class_name": "Flux2Transformer2DModel",
        "num_attention_heads": 2,
        "attention_head_dim": 16,
        "joint_attention_dim": 96,
    }
    (folder / "transformer" / "config.json").write_text(json.dumps(config))
    vae = {
        "encoder.conv_in.weight": torch.zeros(128, 3, 3, 3),
        "encoder.conv_out.weight": torch.zeros(64, 128, 3, 3),
    }
    (models / "vae").mkdir(parents=True)
    save_file(vae, str(models / "vae" / "flux2-vae.safetensors"))
    return root


def test_flux2_files_are_identified_and_listed_as_unsupported(comfy):
    library = ModelLibrary([comfy])
    names = ("flux-2-klein-tiny", "flux-2-klein-tiny-comfy", "FLUX.2-klein-tiny")
    archs = {e.name: e.arch for e in library.entries(Kind.CHECKPOINT)}
    assert {archs[n] for n in names} == {"tiny-flux2"}
    assert library.find(Kind.VAE, "flux2-vae").arch == "flux2-vae"
    assert catalog.family_of("tiny-flux2") == "flux2"
    missing = library.missing_parts()
    assert all("Flux.2" in missing[n] and "does not run" in missing[n] for n in names)


@pytest.mark.parametrize("name", ["flux-2-klein-tiny", "FLUX.2-klein-tiny"])
def test_loading_a_flux2_model_is_refused_by_name(comfy, name):
    with pytest.raises(DreamwireError) as err:
        ModelLibrary([comfy]).load_pipeline(name)
    assert err.value.code == ErrorCode.MODEL_UNSUPPORTED
    assert name in err.value.message and "Flux.2" in err.value.message


def test_real_widths_name_the_model():
    from dreamwire.backend.library.flux2_identify import arch_for

    assert arch_for(7680, 3072) == "flux2-klein-4b"
    assert arch_for(12288, 4096) == "flux2-klein-9b"
    assert arch_for(15360, 6144) == "flux2-dev"
    assert catalog.recognised("flux2-klein-4b") == "Flux.2 Klein 4B"
    assert catalog.recognised("flux-dev") is None
