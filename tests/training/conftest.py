"""Training fixtures: models roots of their own, each holding one tiny checkpoint (SD1 or
SDXL), so the LoRAs trained here never show up in the shared tiny-model library's listings."""

from __future__ import annotations

import pytest

from tests.support.training import own_root, training_engine, write_pictures


@pytest.fixture(scope="module")
def train_root(tmp_path_factory, tiny_models):
    # The suite's tiny SD1 file (built once per session), copied: a few hundred kB.
    return own_root(tmp_path_factory, tiny_models, "tiny-sd1")


@pytest.fixture(scope="module")
def train_engine(train_root):
    return training_engine(train_root)


@pytest.fixture(scope="module")
def xl_root(tmp_path_factory, tiny_models):
    return own_root(tmp_path_factory, tiny_models, "tiny-sdxl")


@pytest.fixture(scope="module")
def xl_engine(xl_root):
    return training_engine(xl_root)


@pytest.fixture(scope="module")
def two_images(tmp_path_factory):
    """kohya's layout: `5_thing/` with two pictures, one captioned."""
    root = tmp_path_factory.mktemp("dataset")
    write_pictures(root / "5_thing", [(48, 40)] * 2, ["a red thing, moss\n", None], seed=0)
    return root
