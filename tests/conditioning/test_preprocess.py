"""Preprocessors: the model-free ones follow controlnet-aux / A1111, the ones that need
annotator weights say which file is missing and where it goes; the command line runs them."""

from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from dreamwire.backend.cli import main
from dreamwire.backend.conditioning import preprocess
from dreamwire.shared.errors import DreamwireError, ErrorCode


@pytest.fixture
def picture() -> np.ndarray:
    img = np.full((64, 96, 3), 230, np.uint8)
    cv2.rectangle(img, (10, 10), (50, 40), (20, 40, 200), -1)
    cv2.circle(img, (70, 40), 15, (10, 10, 10), 2)
    return img


def test_canny_is_opencv_canny_100_200(picture):
    out = preprocess.canny(picture)  # at the picture's size (the resolution: below)
    expected = cv2.Canny(picture, 100, 200)
    assert out.shape == (64, 96, 3) and (out[..., 0] == expected).all()
    assert set(np.unique(out)) == {0, 255}
    assert (preprocess.canny(picture, low=1, high=2) > 0).sum() >= (out > 0).sum()


def test_shuffle_moves_content_and_is_seeded(picture):
    a = preprocess.shuffle(picture, seed=1)
    b = preprocess.shuffle(picture, seed=1)
    c = preprocess.shuffle(picture, seed=2)
    assert a.shape == picture.shape and np.array_equal(a, b) and not np.array_equal(a, c)
    assert not np.array_equal(a, picture)
    # a remap only moves (and blends) existing colours: nothing brighter than the source
    assert a.max() <= picture.max() and a.min() >= picture.min()


def test_scribble_invert_binary(picture):
    lines = preprocess.scribble(picture)
    assert set(np.unique(lines)) <= {0, 255} and lines.any() and not lines.all()
    assert np.array_equal(preprocess.run("invert", picture), 255 - picture)
    binary = preprocess.binary(picture, threshold=100)
    grey = cv2.cvtColor(picture, cv2.COLOR_RGB2GRAY)
    assert ((binary[..., 0] == 255) == (grey <= 100)).all()
    otsu = preprocess.binary(picture)  # threshold 0: Otsu
    assert set(np.unique(otsu)) == {0, 255}
    rgba = np.dstack([picture, np.full(picture.shape[:2], 255, np.uint8)])
    assert np.array_equal(preprocess.run("invert", rgba), 255 - picture)


def test_threshold_keeps_what_is_bright_in_every_channel():
    # sd-webui-controlnet's `threshold`: white where the darkest channel is above thr_a
    # (127), so bright paper stays white and a saturated red or dark ink turns black; it
    # is not `binary`, which inverts (dark strokes white).
    pixels = np.array([[[255, 255, 255], [200, 200, 200], [255, 0, 0], [20, 20, 20]]], np.uint8)
    out = preprocess.threshold(pixels)
    assert out[0, :, 0].tolist() == [255, 255, 0, 0] and (out == out[..., :1]).all()
    assert preprocess.threshold(pixels, threshold=210)[0, :, 0].tolist() == [255, 0, 0, 0]
    assert preprocess.binary(pixels, threshold=127)[0, :, 0].tolist()[3] == 255


def test_lineart_standard_marks_dark_strokes(picture):
    out = preprocess.lineart_standard(picture)
    assert out.shape == picture.shape
    ring = out[40, 55:85, 0]  # across the thin dark circle
    assert ring.max() > 100 and out[0:5, 0:5].max() == 0  # flat background: no line
    assert np.array_equal(
        preprocess.lineart_standard(np.full((16, 16, 3), 9, np.uint8)),
        np.zeros((16, 16, 3), np.uint8),
    )


def test_annotator_weights_missing_names_file_and_folder(picture, tmp_path, monkeypatch):
    monkeypatch.setenv("DREAMWIRE_ANNOTATORS", str(tmp_path))
    for name, file in [
        ("softedge", "ControlNetHED.pth"),
        ("depth_midas", "dpt_hybrid-midas-501f0c75.pt"),
        ("depth", "depth_anything_v2/depth_anything_v2_vitl.safetensors"),
        ("openpose", "body_pose_model.pth"),
        ("normalbae", "scannet.pt"),
        ("lineart", "sk_model.pth"),
        ("lineart_anime", "netG.pth"),
    ]:
        with pytest.raises(DreamwireError) as err:
            preprocess.run(name, picture)
        assert err.value.code == ErrorCode.PREPROCESSOR_UNAVAILABLE
        assert file in err.value.message and str(tmp_path) in err.value.message


def test_annotator_weights_are_found_in_a1111_and_comfyui_installs(tmp_path, monkeypatch):
    monkeypatch.setenv("DREAMWIRE_ANNOTATORS", str(tmp_path / "own"))
    openpose = preprocess.openpose()  # the original networks ("openpose" prefers DWPose)
    a1111, comfy = tmp_path / "webui", tmp_path / "ComfyUI"
    assert openpose.weights_folder((a1111, comfy)) is None
    with pytest.raises(DreamwireError) as err:
        openpose(np.zeros((8, 8, 3), np.uint8), roots=(a1111,))
    assert str(a1111 / "extensions/sd-webui-controlnet/annotator/downloads/openpose") in str(
        err.value
    )
    # ComfyUI keeps lllyasviel/Annotators as downloaded; all three files must be together.
    held = comfy / "custom_nodes/comfyui_controlnet_aux/ckpts/lllyasviel/Annotators"
    held.mkdir(parents=True)
    for name in ("body_pose_model.pth", "hand_pose_model.pth"):
        (held / name).write_bytes(b"")
    assert openpose.weights_folder((a1111, comfy)) is None
    (held / "facenet.pth").write_bytes(b"")
    assert openpose.weights_folder((a1111, comfy)) == held
    # A1111 keeps each annotator's files in its own downloads subfolder, and comes first.
    midas = a1111 / "extensions/sd-webui-controlnet/annotator/downloads/midas"
    midas.mkdir(parents=True)
    (midas / "dpt_hybrid-midas-501f0c75.pt").write_bytes(b"")
    assert preprocess.PREPROCESSORS["depth_midas"].weights_folder((a1111, comfy)) == midas


def test_unknown_preprocessor(picture):
    with pytest.raises(DreamwireError) as err:
        preprocess.run("magic", picture)
    assert err.value.code == ErrorCode.PREPROCESSOR_UNAVAILABLE and "canny" in err.value.message


def test_command_line(picture, tmp_path, capsys, monkeypatch):
    src = tmp_path / "in.png"
    Image.fromarray(picture).save(src)
    out = tmp_path / "edges.png"
    assert main(["preprocess", "canny", str(src), "--out", str(out)]) == 0
    assert np.array_equal(np.asarray(Image.open(out)), preprocess.run("canny", picture))
    assert main(["preprocess", "canny", str(src), "--out", str(out), "--res", "128"]) == 0
    assert np.asarray(Image.open(out)).shape == (128, 192, 3)
    monkeypatch.setenv("DREAMWIRE_ANNOTATORS", str(tmp_path / "none"))
    assert main(["preprocess", "depth", str(src), "--out", str(tmp_path / "d.png")]) == 2
    assert "depth_anything_v2_vitl.safetensors" in capsys.readouterr().err


def test_mediapipe_face_without_the_package_is_refused_by_name(picture, monkeypatch):
    # Where the tests install mediapipe, a None entry makes its import fail as a missing
    # package does (ImportError).
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    with pytest.raises(DreamwireError) as err:
        preprocess.run("mediapipe_face", picture)
    assert err.value.code == ErrorCode.PREPROCESSOR_UNAVAILABLE
    assert "mediapipe" in err.value.message and "face_landmarker.task" in err.value.message
    assert "mediapipe_face" in preprocess.names()
