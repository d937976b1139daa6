"""Blender add-on tests: the repository root goes on sys.path so `blender_addon.core`
imports as plain Python (its package __init__ does not import bpy)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def blender_backend(tiny_models, flux_root, marigold_models, tmp_path_factory):
    """One real backend process (tiny models, and the tiny Flux.1 dev and Marigold models in
    roots of their own: the default model stays tiny-sd1) shared by the Blender tests."""
    from tests.support.backend import BackendProcess

    roots = [tiny_models, flux_root, marigold_models]
    with BackendProcess(roots, tmp_path_factory.mktemp("blender-backend")) as proc:
        yield proc
