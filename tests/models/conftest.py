"""Fixtures for the model library tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Generated tokenizer/config folders go to a per-session cache, not the user's home."""
    cache = tmp_path_factory.getbasetemp() / "dreamwire-cache"
    monkeypatch.setenv("DREAMWIRE_CACHE", str(cache))
