"""Qwen-Image fixtures: one models root with the tiny Qwen-Image, Qwen-Image-Edit and
Qwen-Image-Layered as diffusers folders (built once per session), a library and a CPU engine over it."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def qwen_parts() -> dict:
    """The tiny model's seeded modules (transformer, vae, text_encoder)."""
    from dreamwire.backend.tiny.qwen_image import qwen_components

    return qwen_components()


@pytest.fixture(scope="session")
def qwen_root(tmp_path_factory, qwen_parts) -> Path:
    from dreamwire.backend.tiny.qwen_image import qwen_components, write_qwen_diffusers_folder

    root = tmp_path_factory.mktemp("qwen-models")
    checkpoints = root / "models" / "Stable-diffusion"
    parts = qwen_parts
    write_qwen_diffusers_folder(parts, checkpoints / "tiny-qwen-image")
    # Edit has Qwen-Image's architecture; the tiny one shares its weights.
    edit = "tiny-qwen-image-edit"
    write_qwen_diffusers_folder(parts, checkpoints / edit, arch=edit)
    # Layered has two inputs more (its layer timestep embedding, an RGBA VAE): its own.
    layered = "tiny-qwen-image-layered"
    write_qwen_diffusers_folder(qwen_components(layered), checkpoints / layered, arch=layered)
    return root


@pytest.fixture(scope="session")
def qwen_library(qwen_root):
    from dreamwire.backend.library import ModelLibrary

    return ModelLibrary([qwen_root])


@pytest.fixture(scope="session")
def qwen_engine(qwen_library):
    from dreamwire.backend.engine import Engine

    return Engine(qwen_library, device="cpu", extensions=[], cache_size=1)
