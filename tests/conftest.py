"""Shared fixtures. Area-specific fixtures live beside their tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Nothing in the suite may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Path:
    """A models root in the A1111 layout holding every tiny random-weight model."""
    from dreamwire.backend.tiny import build_all

    root = tmp_path_factory.mktemp("tiny-models")
    build_all(root)
    return root


@pytest.fixture(scope="session")
def library(tiny_models):
    """A model library over the tiny models root."""
    from dreamwire.backend.library import ModelLibrary

    return ModelLibrary([tiny_models])
