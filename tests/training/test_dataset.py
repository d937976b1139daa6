"""The kohya-layout dataset reader: repeats, captions, and clear errors for bad folders."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dreamwire.backend.training.dataset import load_pixels, read_dataset
from dreamwire.backend.training.options import LoraTrainOptions
from dreamwire.shared.errors import DreamwireError, ErrorCode


def _image(path, size=(20, 12)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), 128, np.uint8)).save(path)
    return path


def test_repeats_and_captions_follow_kohyas_layout(tmp_path):
    _image(tmp_path / "10_mychar" / "a.png")
    _image(tmp_path / "10_mychar" / "b.jpg")
    (tmp_path / "10_mychar" / "b.txt").write_text(" mychar, red hat \n", encoding="utf-8")
    _image(tmp_path / "loose.png")
    _image(tmp_path / "style" / "c.webp")
    (tmp_path / "10_mychar" / "notes.md").write_text("not an image")

    ds = read_dataset(tmp_path)

    by_name = {img.path.name: img for img in ds.images}
    assert sorted(by_name) == ["a.png", "b.jpg", "c.webp", "loose.png"]
    assert by_name["a.png"].caption == "mychar"  # no .txt: the folder's token
    assert by_name["b.jpg"].caption == "mychar, red hat"
    assert (by_name["a.png"].repeats, by_name["loose.png"].repeats) == (10, 1)
    assert by_name["c.webp"].repeats == 1 and by_name["c.webp"].caption == "style"
    assert len(ds.epoch()) == 10 + 10 + 1 + 1
    assert {(f.name, f.repeats, f.images) for f in ds.folders} == {
        (tmp_path.name, 1, 1),
        ("10_mychar", 10, 2),
        ("style", 1, 1),
    }


@pytest.mark.parametrize("make", ["missing", "empty", "only_text"])
def test_a_folder_without_images_is_refused(tmp_path, make):
    root = tmp_path / "data"
    if make != "missing":
        (root / "5_x").mkdir(parents=True)
    if make == "only_text":
        (root / "5_x" / "a.txt").write_text("caption without a picture")
    with pytest.raises(DreamwireError) as err:
        read_dataset(root)
    assert err.value.code is ErrorCode.DATASET_EMPTY
    assert str(root) in err.value.message


def test_an_unreadable_image_is_named(tmp_path):
    _image(tmp_path / "3_x" / "good.png")
    bad = tmp_path / "3_x" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png")
    with pytest.raises(DreamwireError) as err:
        read_dataset(tmp_path)
    assert err.value.code is ErrorCode.DATASET_UNREADABLE
    assert "broken.png" in err.value.message


def test_an_undecodable_caption_is_named(tmp_path):
    _image(tmp_path / "3_x" / "a.png")
    (tmp_path / "3_x" / "a.txt").write_bytes(b"\xff\xfe\xfa caption")
    with pytest.raises(DreamwireError) as err:
        read_dataset(tmp_path)
    assert err.value.code is ErrorCode.DATASET_UNREADABLE
    assert "a.txt" in err.value.message


def test_pixels_are_the_middle_square_in_minus_one_to_one(tmp_path):
    pixels = np.zeros((16, 48, 3), np.uint8)
    pixels[:, 16:32] = 255  # a white band in the middle third
    path = tmp_path / "wide.png"
    Image.fromarray(pixels).save(path)
    t = load_pixels(path, 8)
    assert t.shape == (1, 3, 8, 8)
    assert float(t.min()) >= -1.0 and float(t.max()) <= 1.0
    assert float(t[0, :, :, 3:5].mean()) > 0.9  # the crop kept the middle, which is white


def test_options_out_of_range_are_refused():
    with pytest.raises(DreamwireError) as err:
        LoraTrainOptions(network_dim=0, learning_rate=0, resolution=30)
    assert err.value.code is ErrorCode.INVALID_JOB
    for word in ("rank", "learning rate", "resolution"):
        assert word in err.value.message
