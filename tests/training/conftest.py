"""Training fixtures: a models root of its own holding only the tiny SD1 checkpoint, so the
LoRAs trained here never show up in the shared tiny-model library's listings."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def train_root(tmp_path_factory, tiny_models):
    # The suite's tiny SD1 file (built once per session), copied: a few hundred kB.
    name = Path("models") / "Stable-diffusion" / "tiny-sd1.safetensors"
    root = tmp_path_factory.mktemp("train-models")
    (root / name).parent.mkdir(parents=True)
    shutil.copyfile(tiny_models / name, root / name)
    return root


@pytest.fixture(scope="module")
def train_engine(train_root):
    from dreamwire.backend.conditioning import engine_extensions
    from dreamwire.backend.engine import Engine
    from dreamwire.backend.library import ModelLibrary
    from dreamwire.backend.training.job_run import run_job

    return Engine(
        ModelLibrary([train_root]), device="cpu", extensions=engine_extensions(), trainer=run_job
    )


@pytest.fixture(scope="module")
def two_images(tmp_path_factory):
    """kohya's layout: `5_thing/` with two pictures, one captioned."""
    root = tmp_path_factory.mktemp("dataset")
    folder = root / "5_thing"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        pixels = (rng.random((40, 48, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")
    (folder / "0.txt").write_text("a red thing, moss\n", encoding="utf-8")
    return root
