"""Materials fixtures: tiny Marigold folders in the layouts artists keep them in."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.marigold import APPEARANCE, LIGHTING, NORMALS, write_sd_folder


@pytest.fixture(scope="session")
def marigold_root(tmp_path_factory) -> Path:
    """A ComfyUI-style root: the appearance model in `models/Marigold`, the lighting model in
    `models/diffusers` beside an SD pipeline folder (configs only: the scan reads no
    weights), and no normals model."""
    from dreamwire.backend.tiny import marigold

    root = tmp_path_factory.mktemp("marigold-models")
    marigold.build(root, [APPEARANCE])
    marigold.build(root, [LIGHTING], under="diffusers")
    write_sd_folder(root / "models" / "diffusers" / "an-sd1-pipeline")
    return root


@pytest.fixture(scope="session")
def normals_root(tmp_path_factory) -> Path:
    """An A1111/Forge-style root holding only the normals model."""
    from dreamwire.backend.tiny import marigold

    root = tmp_path_factory.mktemp("marigold-normals")
    marigold.build(root, [NORMALS])
    return root
