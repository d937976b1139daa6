"""Krita plugin tests: pure logic with the venv's Python, real Krita through kritarun.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The plugin's package lives beside the project, not inside the dreamwire import root.
if str(REPO / "krita_plugin") not in sys.path:
    sys.path.insert(0, str(REPO / "krita_plugin"))
# `tests.support` (the backend process helper) needs the repository root.
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))


@pytest.fixture(scope="session")
def krita_session(tmp_path_factory, tiny_models, flux_root):
    """The offscreen Krita run the offline, backend and local-backend tests share."""
    from krita_session import run_session

    return run_session(tmp_path_factory.mktemp("krita-session"), tiny_models, flux_root)
