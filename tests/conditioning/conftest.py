"""Conditioning fixtures: an engine with the conditioning extension (the default
extensions) over the shared tiny-model library."""

from __future__ import annotations

import pytest

from tests.support.stack_recorder import StackRecorder


@pytest.fixture(scope="session")
def recorder() -> StackRecorder:
    return StackRecorder()


@pytest.fixture
def seen(recorder) -> StackRecorder:
    """What the engine's conditioning attached and ran, from this test on."""
    recorder.clear()
    return recorder


@pytest.fixture(scope="session")
def engine(library, recorder):
    from dreamwire.backend.conditioning.extension import ConditioningExtension
    from dreamwire.backend.engine import Engine

    extension = ConditioningExtension(observer=recorder)
    return Engine(library, device="cpu", extensions=[extension], cache_size=2)


@pytest.fixture(scope="session")
def extension(engine):
    return engine.extensions[0]


@pytest.fixture(scope="session")
def cn_dir(tiny_models):
    return tiny_models / "models" / "ControlNet"


@pytest.fixture(scope="session")
def lora_dir(tiny_models):
    return tiny_models / "models" / "Lora"
