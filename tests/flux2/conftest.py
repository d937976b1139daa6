"""Flux.2 Klein fixtures: one tiny Klein per session, written both as a diffusers folder
(models/diffusers, as ComfyUI users keep diffusers folders) and as ComfyUI's single files
(BFL's transformer bf16 and fp8, Qwen3-4B, Flux.2's VAE, Qwen's tokenizer), a library over
it and a CPU engine (no extensions: these tests pin the engine against diffusers' pipelines)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.tokenizers import only_tree_tokenizers


@pytest.fixture(scope="session")
def klein_parts() -> dict:
    from dreamwire.backend.tiny.flux2 import flux2_components

    return flux2_components()


@pytest.fixture(scope="session")
def klein_root(tmp_path_factory, klein_parts) -> Path:
    from dreamwire.backend.tiny.flux2 import build_comfy_tree, write_flux2_diffusers_folder

    root = tmp_path_factory.mktemp("klein") / "ComfyUI"
    write_flux2_diffusers_folder(klein_parts, root / "models" / "diffusers" / "klein")
    build_comfy_tree(root, klein_parts)
    return root


@pytest.fixture(autouse=True)
def no_outside_tokenizer(monkeypatch, tmp_path_factory):
    """Only the tree's tokenizer: none from the environment or this machine's hub cache."""
    only_tree_tokenizers(monkeypatch, tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def klein_library(klein_root):
    from dreamwire.backend.library import ModelLibrary

    return ModelLibrary([klein_root])


@pytest.fixture(scope="session")
def klein_engine(klein_library):
    from dreamwire.backend.engine import Engine

    return Engine(klein_library, device="cpu", extensions=[], cache_size=1)
