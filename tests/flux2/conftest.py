"""Flux.2 Klein fixtures: one tiny Klein diffusers folder per session (models/diffusers, as
ComfyUI users keep diffusers folders), a library over it and a CPU engine (no extensions:
these tests pin the engine against diffusers' pipelines)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def klein_root(tmp_path_factory) -> Path:
    from dreamwire.backend.tiny.flux2 import flux2_components, write_flux2_diffusers_folder

    root = tmp_path_factory.mktemp("klein")
    write_flux2_diffusers_folder(flux2_components(), root / "models" / "diffusers" / "klein")
    return root


@pytest.fixture(scope="session")
def klein_engine(klein_root):
    from dreamwire.backend.engine import Engine
    from dreamwire.backend.library import ModelLibrary

    return Engine(ModelLibrary([klein_root]), device="cpu", extensions=[], cache_size=1)
