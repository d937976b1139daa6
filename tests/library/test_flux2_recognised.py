"""Flux.2 files are found and identified in ComfyUI's and diffusers' layouts, never taken for
the Flux.1 their `double_blocks` names resemble: a Klein single file without its other files
is listed with the files to add, and the models Dreamwire only recognises (Klein 9B, Flux.2
dev) are listed with why they cannot run and refused by name with a stable code."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from dreamwire import catalog
from dreamwire.backend.library import ModelLibrary
from dreamwire.backend.library.entries import Kind
from dreamwire.shared.errors import DreamwireError, ErrorCode


def _bfl_transformer(path: Path, hidden: int, text: int, prefix: str = "") -> None:
    """The keys that tell a Flux.2 transformer, at the shapes BFL's files have them: a real
    safetensors header over zero bf16 data, written sparse (nothing here reads the weights)."""
    shapes = {
        "single_stream_modulation.lin.weight": [3 * 2 * hidden, hidden],
        "txt_in.weight": [hidden, text],
        "double_blocks.0.img_attn.qkv.weight": [3 * hidden, hidden],
    }
    header, offset = {}, 0
    for key, shape in shapes.items():
        size = 2 * shape[0] * shape[1]
        header[prefix + key] = {
            "dtype": "BF16",
            "shape": shape,
            "data_offsets": [offset, offset + size],
        }
        offset += size
    raw = json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + offset)


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
    # Klein 9B's widths (its config only: it is refused before any weight is read).
    folder = models / "diffusers" / "FLUX.2-klein-9B"
    (folder / "transformer").mkdir(parents=True)
    index = {
        "_class_name": "Flux2KleinPipeline",
        "transformer": ["diffusers", "Flux2Transformer2DModel"],
    }
    (folder / "model_index.json").write_text(json.dumps(index))
    config = {
        "_class_name": "Flux2Transformer2DModel",
        "num_attention_heads": 32,
        "attention_head_dim": 128,
        "joint_attention_dim": 12288,
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
    singles = ("flux-2-klein-tiny", "flux-2-klein-tiny-comfy")
    archs = {e.name: e.arch for e in library.entries(Kind.CHECKPOINT)}
    assert {archs[n] for n in singles} == {"tiny-flux2"}
    assert archs["FLUX.2-klein-9B"] == "flux2-klein-9b"
    assert library.find(Kind.VAE, "flux2-vae").arch == "flux2-vae"
    assert catalog.family_of("flux2-klein-9b") == "flux2"
    missing = library.missing_parts()
    # This tree has no Qwen3 text encoder and only a full-size Flux.2 VAE.
    assert all("qwen_3_4b.safetensors" in missing[n] for n in singles)
    assert all("flux2-vae.safetensors" in missing[n] for n in singles)
    assert "Flux.2 Klein 9B" in missing["FLUX.2-klein-9B"]


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("flux-2-klein-tiny", ErrorCode.MODEL_PART_MISSING),
        ("FLUX.2-klein-9B", ErrorCode.MODEL_UNSUPPORTED),
    ],
)
def test_loading_is_refused_by_name(comfy, name, code):
    with pytest.raises(DreamwireError) as err:
        ModelLibrary([comfy]).load_pipeline(name)
    assert err.value.code == code
    assert name in err.value.message and "Flux.2" in err.value.message


def test_a_klein_9b_single_file_is_refused_before_its_parts_are_looked_for(tmp_path):
    # Klein 9B's text width (Qwen3-8B's three layers); narrower than 9B, wider than tiny.
    _bfl_transformer(
        tmp_path / "models" / "diffusion_models" / "flux-2-klein-9b.safetensors", 4096, 12288
    )
    with pytest.raises(DreamwireError) as err:
        ModelLibrary([tmp_path]).load_pipeline("flux-2-klein-9b")
    assert err.value.code == ErrorCode.MODEL_UNSUPPORTED
    assert "Flux.2 Klein 9B" in err.value.message


def test_real_widths_name_the_model():
    from dreamwire.backend.library.flux2_identify import arch_for

    assert arch_for(7680, 3072) == "flux2-klein-4b"
    assert arch_for(12288, 4096) == "flux2-klein-9b"
    assert arch_for(15360, 6144) == "flux2-dev"
    assert catalog.recognised("flux2-klein-9b") == "Flux.2 Klein 9B"
    assert catalog.recognised("flux-dev") is None


def test_the_welcome_offers_no_mode_on_them(comfy):
    from dreamwire.backend.engine import Engine

    engine = Engine(ModelLibrary([comfy]), device="cpu", extensions=[], cache_size=1)
    welcome = engine.capabilities()
    assert welcome["model_modes"]["FLUX.2-klein-9B"] == []
    assert "qwen_3_4b" in welcome["model_missing"]["flux-2-klein-tiny"]
    assert welcome["model_families"]["FLUX.2-klein-9B"] == "flux2"
