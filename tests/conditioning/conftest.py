"""Conditioning fixtures: an engine with the conditioners the CLI and server give it
(conditioning.engine_extensions) over the shared tiny-model library."""

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
    from dreamwire.backend.conditioning import engine_extensions
    from dreamwire.backend.engine import Engine

    return Engine(library, device="cpu", extensions=engine_extensions(recorder), cache_size=2)


@pytest.fixture(scope="session")
def cn_dir(tiny_models):
    return tiny_models / "models" / "ControlNet"


@pytest.fixture(scope="session")
def lora_dir(tiny_models):
    return tiny_models / "models" / "Lora"
