"""Conditioning fixtures: an engine with the conditioning extension (the default
extensions) over the shared tiny-model library."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def engine(library):
    from dreamwire.backend.conditioning.extension import ConditioningExtension
    from dreamwire.backend.engine import Engine

    return Engine(library, device="cpu", extensions=[ConditioningExtension()], cache_size=2)


@pytest.fixture(scope="session")
def extension(engine):
    return engine.extensions[0]


@pytest.fixture(scope="session")
def cn_dir(tiny_models):
    return tiny_models / "models" / "ControlNet"


@pytest.fixture(scope="session")
def lora_dir(tiny_models):
    return tiny_models / "models" / "Lora"
