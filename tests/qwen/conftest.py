"""Qwen-Image fixtures: one models root with the tiny Qwen-Image as a diffusers
folder (built once per session), a library and a CPU engine over it."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def qwen_root(tmp_path_factory) -> Path:
    from dreamwire.backend.tiny.qwen_image import qwen_components, write_qwen_diffusers_folder

    root = tmp_path_factory.mktemp("qwen-models")
    checkpoints = root / "models" / "Stable-diffusion"
    write_qwen_diffusers_folder(qwen_components(), checkpoints / "tiny-qwen-image")
    return root


@pytest.fixture(scope="session")
def qwen_library(qwen_root):
    from dreamwire.backend.library import ModelLibrary

    return ModelLibrary([qwen_root])


@pytest.fixture(scope="session")
def qwen_engine(qwen_library):
    from dreamwire.backend.engine import Engine

    return Engine(qwen_library, device="cpu", extensions=[], cache_size=1)
