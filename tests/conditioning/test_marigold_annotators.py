"""Marigold depth and normals as preprocessors: diffusers' pipelines on tiny random
folders, turned into the control maps ControlNet's depth and normal models expect."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dreamwire.backend.conditioning import preprocess
from dreamwire.backend.tiny import marigold
from dreamwire.shared.errors import DreamwireError, ErrorCode


@pytest.fixture(scope="module")
def depth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("marigold-depth")
    marigold.build(root, ["tiny-marigold-depth"])
    return root


def _picture() -> np.ndarray:
    y, x = np.mgrid[0:40, 0:48]
    return (np.stack([x * 5, y * 6, (x * y) % 97], axis=2) % 256).astype(np.uint8)


def _reference(cls: str, folder, img: np.ndarray, seed: int) -> np.ndarray:
    import diffusers

    pipe = getattr(diffusers, cls).from_pretrained(str(folder), local_files_only=True)
    out = pipe(
        Image.fromarray(img), generator=torch.Generator().manual_seed(seed), output_type="np"
    )
    return out.prediction[0]


def test_marigold_depth_is_the_pipeline_with_near_bright(depth_root, tmp_path, monkeypatch):
    monkeypatch.setenv("DREAMWIRE_ANNOTATORS", str(tmp_path))
    img = _picture()
    got = preprocess.run("depth_marigold", img, roots=(depth_root,), seed=3)
    depth = _reference(
        "MarigoldDepthPipeline", depth_root / "models/Marigold/tiny-marigold-depth", img, 3
    )[..., 0]
    assert got.shape == (40, 48, 3) and depth.shape == (40, 48)
    near = (depth.max() - depth) / (depth.max() - depth.min()) * 255
    assert np.abs(got[..., 0].astype(float) - near).max() <= 1.0
    assert got[..., 0].flat[np.argmin(depth)] == 255 and got[..., 0].flat[np.argmax(depth)] == 0
    assert not np.array_equal(got, preprocess.run("depth_marigold", img, roots=(depth_root,)))


def test_marigold_normals_in_normalbae_colours(marigold_models, tmp_path, monkeypatch):
    monkeypatch.setenv("DREAMWIRE_ANNOTATORS", str(tmp_path))
    img = _picture()
    got = preprocess.run("normal_marigold", img, roots=(marigold_models,), seed=2)
    n = _reference(
        "MarigoldNormalsPipeline", marigold_models / "models/Marigold/tiny-marigold-normals", img, 2
    )
    n = n / np.linalg.norm(n, axis=-1, keepdims=True)
    # normalbae: red is left (-x), green is up (+y), blue is towards the viewer (+z).
    want = (np.stack([-n[..., 0], n[..., 1], n[..., 2]], axis=-1) + 1) / 2 * 255
    assert np.abs(got.astype(float) - want).max() <= 1.0


def test_missing_marigold_folder_names_the_model_and_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("DREAMWIRE_ANNOTATORS", str(tmp_path / "annotators"))
    for name, model in (
        ("depth_marigold", "marigold-depth-v1-1"),
        ("normal_marigold", "marigold-normals-v1-1"),
    ):
        with pytest.raises(DreamwireError) as err:
            preprocess.run(name, _picture(), roots=(tmp_path / "webui",))
        assert err.value.code == ErrorCode.PREPROCESSOR_UNAVAILABLE
        assert model in err.value.message
        assert str(tmp_path / "webui" / "models" / "Marigold") in err.value.message
