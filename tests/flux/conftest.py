"""Flux fixtures: a models root holding the tiny Flux.1 dev as a diffusers folder, and a CPU
engine over it (no extensions: these tests pin the engine against diffusers' pipelines)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def flux_root(tmp_path_factory):
    from dreamwire.backend.tiny.flux import flux_components, write_flux_diffusers_folder

    root = tmp_path_factory.mktemp("flux-models")
    checkpoints = root / "models" / "Stable-diffusion"
    write_flux_diffusers_folder(flux_components(), checkpoints / "tiny-flux")
    fill = "tiny-flux-fill"
    write_flux_diffusers_folder(flux_components(fill), checkpoints / fill, arch=fill)
    return root


@pytest.fixture(scope="session")
def flux_library(flux_root):
    from dreamwire.backend.library import ModelLibrary

    return ModelLibrary([flux_root])


@pytest.fixture(scope="session")
def flux_engine(flux_library):
    from dreamwire.backend.engine import Engine

    return Engine(flux_library, device="cpu", extensions=[], cache_size=1)
