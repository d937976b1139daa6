"""Z-Image fixtures: one tiny Z-Image Turbo written once per session as a ComfyUI install
(transformer, GGUF copy, Qwen3 text encoder, Flux VAE, Qwen's tokenizer in
comfy/text_encoders/qwen25_tokenizer/) plus a diffusers folder, a library over it and a CPU
engine (no extensions: these tests pin the engine against diffusers' pipelines)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.tokenizers import only_tree_tokenizers


@dataclass(frozen=True)
class ZImageTree:
    parts: dict  # the components the files were written from
    root: Path  # the ComfyUI install
    files: dict  # build_comfy_tree's paths


@pytest.fixture(scope="session")
def zimage_tree(tmp_path_factory) -> ZImageTree:
    from dreamwire.backend.tiny import zimage

    parts = zimage.zimage_components()
    root = tmp_path_factory.mktemp("zimage") / "ComfyUI"
    files = zimage.build_comfy_tree(root, parts)
    zimage.write_zimage_diffusers_folder(parts, root / "models" / "diffusers" / "tiny-zimage")
    return ZImageTree(parts, root, files)


@pytest.fixture(autouse=True)
def no_outside_tokenizer(monkeypatch, tmp_path_factory):
    """Only the tree's tokenizer: none from the environment or this machine's hub cache."""
    only_tree_tokenizers(monkeypatch, tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def zimage_library(zimage_tree):
    from dreamwire.backend.library import ModelLibrary

    return ModelLibrary([zimage_tree.root])


@pytest.fixture(scope="session")
def zimage_engine(zimage_library):
    from dreamwire.backend.engine import Engine

    return Engine(zimage_library, device="cpu", extensions=[], cache_size=1)
