"""Flux fixtures: a library over the tiny Flux models root (`flux_root` is in
tests/conftest.py: the hosts' tests use it too), and a CPU engine over it (no extensions:
these tests pin the engine against diffusers' pipelines)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def flux_library(flux_root):
    from dreamwire.backend.library import ModelLibrary

    return ModelLibrary([flux_root])


@pytest.fixture(scope="session")
def flux_engine(flux_library):
    from dreamwire.backend.engine import Engine

    return Engine(flux_library, device="cpu", extensions=[], cache_size=1)
