"""Engine fixtures: one CPU engine over the tiny models, shared by the engine tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def engine(library):
    from dreamwire.backend.engine import Engine

    # No extensions: these tests pin the engine's own behaviour against diffusers.
    return Engine(library, device="cpu", extensions=[], cache_size=2)
