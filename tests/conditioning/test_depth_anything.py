"""Depth Anything v2, the default depth preprocessor: transformers' model and pipeline on a
tiny random network, found in A1111's, ComfyUI's or Dreamwire's folder in each layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from dreamwire.backend.conditioning import depth_anything, detect_resolution, preprocess
from dreamwire.backend.library import annotator_files
from dreamwire.backend.tiny import depth_anything as tiny
from dreamwire.shared.errors import DreamwireError, ErrorCode

A1111_FILE = "depth_anything_v2/depth_anything_v2_vitl.safetensors"
COMFY_FILE = "depth-anything/Depth-Anything-V2-Large/depth_anything_v2_vitl.pth"


@pytest.fixture(scope="module")
def installs(tmp_path_factory):
    """One tiny network as a transformers folder in Dreamwire's annotator folder, as the
    original-layout safetensors in an A1111 install and as the original .pth in ComfyUI."""
    net = tiny.model()
    base = tmp_path_factory.mktemp("depth")
    own = base / "annotators"
    net.save_pretrained(str(own / "Depth-Anything-V2-Small-hf"))
    original = tiny.to_original(net.state_dict())
    a1111 = base / "a1111"
    path = a1111 / annotator_files.A1111_DOWNLOADS / A1111_FILE
    path.parent.mkdir(parents=True)
    save_file(original, str(path))
    comfy = base / "comfy"
    path = comfy / annotator_files.COMFY_CKPTS / COMFY_FILE
    path.parent.mkdir(parents=True)
    torch.save(original, path)
    return net, own, a1111, comfy, base / "empty"


def _picture() -> np.ndarray:
    y, x = np.mgrid[0:36, 0:50]
    img = np.stack([x * 5, y * 7, (x + y) * 3], axis=2) % 256
    return img.astype(np.uint8)


def test_depth_anything_v2_is_transformers_pipeline(installs, monkeypatch):
    from transformers import pipeline

    net, own, *_ = installs
    monkeypatch.setenv("DREAMWIRE_ANNOTATORS", str(own))
    img = _picture()
    got = preprocess.PREPROCESSORS["depth"](img)  # at the picture's size
    pipe = pipeline("depth-estimation", model=net, image_processor=depth_anything.processor())
    ref = pipe(Image.fromarray(img))["predicted_depth"]
    ref = ref.squeeze().float().numpy()
    assert ref.shape == img.shape[:2]
    want = depth_anything.to_uint8(ref)
    assert got.shape == (36, 50, 3) and got.dtype == np.uint8
    assert np.abs(got.astype(int) - want).max() <= 1
    assert got.std() > 10  # a map, not a flat image
    assert np.array_equal(preprocess.PREPROCESSORS["depth_anything_v2"](img), got)
    # As a unit runs it: on the picture resized to the detect resolution and padded.
    padded, (h, w) = detect_resolution.resize_with_pad(img, 64)
    at_64 = preprocess.run("depth", img, processor_res=64)
    assert at_64.shape == (64, 89, 3)
    np.testing.assert_array_equal(at_64, preprocess.PREPROCESSORS["depth"](padded)[:h, :w])


def test_original_files_in_a1111_and_comfyui_installs_give_the_same_map(installs, monkeypatch):
    _, own, a1111, comfy, empty = installs
    monkeypatch.setenv("DREAMWIRE_ANNOTATORS", str(own))
    img = _picture()
    want = preprocess.run("depth", img, processor_res=64)
    monkeypatch.setenv("DREAMWIRE_ANNOTATORS", str(empty))
    assert depth_anything.find([a1111]).name == "depth_anything_v2_vitl.safetensors"
    assert depth_anything.find([comfy]).suffix == ".pth"
    for root in (a1111, comfy):
        got = preprocess.run("depth", img, roots=(root,), processor_res=64)
        assert np.abs(got.astype(int) - want).max() <= 1, root


def test_missing_weights_name_the_file_and_the_folders(installs, monkeypatch):
    *_, empty = installs
    monkeypatch.setenv("DREAMWIRE_ANNOTATORS", str(empty))
    with pytest.raises(DreamwireError) as err:
        preprocess.run("depth", _picture(), roots=(empty / "webui",))
    assert err.value.code == ErrorCode.PREPROCESSOR_UNAVAILABLE
    message = err.value.message
    assert A1111_FILE in message and COMFY_FILE in message
    assert str(empty / "webui" / annotator_files.A1111_DOWNLOADS) in message
    assert str(empty / "webui" / annotator_files.COMFY_CKPTS) in message
