"""Fixtures for the model library tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # The machine's two cores are shared with other test runs.
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Generated tokenizer/config folders go to a per-session cache, not the user's home."""
    cache = tmp_path_factory.getbasetemp() / "dreamwire-cache"
    monkeypatch.setenv("DREAMWIRE_CACHE", str(cache))
