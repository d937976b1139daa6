"""Fixtures for the library tests. Tiny Flux files laid out as a ComfyUI install and a Forge install keep them.

Built once per session; the tests only read them (each test that needs a broken tree makes
its own from these files)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from dreamwire.backend.tiny import flux_files


@dataclass(frozen=True)
class Trees:
    parts: dict  # the dev components the files were written from
    schnell: torch.nn.Module  # the schnell transformer (no guidance embedder)
    comfy: Path  # a ComfyUI install (models/ inside, tokenizer in comfy/text_encoders/)
    forge: Path  # a Forge install (models/ inside, tokenizer in backend/huggingface/)


def build_forge_tree(root: Path, parts: dict, schnell) -> None:
    models = root / "models"
    flux_files.write_bfl_transformer(
        schnell, models / "Stable-diffusion" / "flux1-schnell.safetensors"
    )
    flux_files.write_clip_l(parts["text_encoder"], models / "text_encoder" / "clip_l.safetensors")
    flux_files.write_t5xxl(
        parts["text_encoder_2"],
        models / "text_encoder" / "t5xxl_fp8_e4m3fn.safetensors",
        dtype=flux_files.FP8,
    )
    flux_files.write_flux_vae(parts["vae"], models / "VAE" / "ae.safetensors")
    flux_files.write_t5_tokenizer_folder(
        root / "backend/huggingface/black-forest-labs/FLUX.1-dev/tokenizer_2"
    )


@pytest.fixture(scope="session")
def flux_trees(tmp_path_factory) -> Trees:
    parts = flux_files.components()
    schnell = flux_files.components(guidance=False)["transformer"]
    comfy = tmp_path_factory.mktemp("ComfyUI")
    flux_files.build_comfy_tree(comfy, parts)
    flux_files.write_t5_tokenizer_folder(comfy / "comfy/text_encoders/t5_tokenizer")
    forge = tmp_path_factory.mktemp("Forge")
    build_forge_tree(forge, parts, schnell)
    return Trees(parts=parts, schnell=schnell, comfy=comfy, forge=forge)


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """Generated tokenizer/config folders go to a per-session cache, not the user's home;
    no T5 tokenizer from the environment of the machine running the tests."""
    monkeypatch.setenv("DREAMWIRE_CACHE", str(tmp_path_factory.getbasetemp() / "dreamwire-cache"))
    monkeypatch.delenv("DREAMWIRE_T5_TOKENIZER", raising=False)
    # Nor from this machine's Hugging Face cache (a FLUX.1 download would have one).
    empty = tmp_path_factory.getbasetemp() / "empty-hf-home"
    monkeypatch.setenv("HF_HOME", str(empty))
    monkeypatch.setenv("HF_HUB_CACHE", str(empty / "hub"))
    monkeypatch.setenv("HOME", str(empty))
