"""Shared fixtures. Area-specific fixtures live beside their tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.support.threads import TORCH_THREADS, pin_environment

# Before anything imports torch: the same thread count here and in every child process, so
# images compared bit for bit across processes are computed the same way.
pin_environment()

# Nothing in the suite may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def _torch_threads():
    # torch may have been imported before this conftest (a plugin): pin it directly too.
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(TORCH_THREADS)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Path:
    """A models root in the A1111 layout holding every tiny random-weight model."""
    from dreamwire.backend.tiny import build_all

    root = tmp_path_factory.mktemp("tiny-models")
    build_all(root)
    return root


@pytest.fixture(scope="session")
def flux_root(tmp_path_factory) -> Path:
    """A models root holding the tiny Flux.1 dev, Fill and Kontext as diffusers folders
    (apart from tiny_models, so the tests over that root see the models they always did;
    the hosts' test backends take both roots)."""
    from dreamwire.backend.tiny.flux import flux_components, write_flux_diffusers_folder

    root = tmp_path_factory.mktemp("flux-models")
    checkpoints = root / "models" / "Stable-diffusion"
    write_flux_diffusers_folder(flux_components(), checkpoints / "tiny-flux")
    fill = "tiny-flux-fill"
    write_flux_diffusers_folder(flux_components(fill), checkpoints / fill, arch=fill)
    # Kontext has dev's architecture; the tiny one shares tiny-flux's weights.
    kontext = "tiny-flux-kontext"
    write_flux_diffusers_folder(flux_components(), checkpoints / kontext, arch=kontext)
    return root


@pytest.fixture(scope="session")
def library(tiny_models):
    """A model library over the tiny models root."""
    from dreamwire.backend.library import ModelLibrary

    return ModelLibrary([tiny_models])


@pytest.fixture
def init_image() -> np.ndarray:
    rng = np.random.default_rng(7)
    base = np.linspace(0, 255, 64, dtype=np.float32)
    img = np.stack(
        [np.add.outer(base, base) / 2, np.tile(base, (64, 1)), np.tile(base[:, None], (1, 64))], -1
    )
    return np.clip(img + rng.normal(0, 10, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def mask() -> np.ndarray:
    m = np.zeros((64, 64), np.uint8)
    m[16:48, 20:44] = 255
    return m


@pytest.fixture(scope="session")
def marigold_models(tmp_path_factory) -> Path:
    """A models root holding the tiny Marigold appearance and normals folders in
    `models/Marigold` (apart from tiny_models, so other tests' welcomes are unchanged)."""
    from dreamwire.backend.tiny import marigold

    root = tmp_path_factory.mktemp("marigold-pbr")
    marigold.build(root, ["tiny-marigold-iid-appearance", "tiny-marigold-normals"])
    return root
