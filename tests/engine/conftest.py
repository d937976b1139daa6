"""Engine fixtures: one CPU engine over the tiny models, shared by the engine tests."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def engine(library):
    from dreamwire.backend.engine import Engine

    # No extensions: these tests pin the engine's own behaviour against diffusers.
    return Engine(library, device="cpu", extensions=[], cache_size=2)


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
