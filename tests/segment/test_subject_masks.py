"""Select subject: rembg's background-removal models (U2-Net, IS-Net, BiRefNet) from ONNX
files, each step of rembg's pre- and post-processing checked against values worked out by
hand, the whole run against the tiny models' known linear answer; the files are found in
ComfyUI's, A1111's and rembg's folders; bad jobs get stable codes. A subject job over the
wire shares test_sam2_masks.py's backend process (one process for both kinds)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dreamwire.backend.segmentation import subject_masks as sm
from dreamwire.backend.tiny import subject as tiny
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job
from dreamwire.shared.job_mode import JobMode
from dreamwire.shared.segment import Click, Segment

IMG = np.random.default_rng(9).integers(0, 255, (48, 64, 3), dtype=np.uint8)
# IS-Net runs as U2-Net does, with its own normalisation (checked on its own below).
LAYOUTS = {"u2net": tiny.U2NETP, "birefnet": tiny.BIREFNET}


@pytest.fixture(scope="module")
def comfy(tmp_path_factory):
    """A ComfyUI root with the tiny models in models/rembg, and an empty folder."""
    base = tmp_path_factory.mktemp("rembg")
    for layout in LAYOUTS.values():
        tiny.save(base / "comfy" / sm.COMFY_REMBG, layout)
    (base / "empty").mkdir()
    return base / "comfy", base / "empty"


@pytest.fixture
def isolated(comfy, monkeypatch):
    """rembg's home and Dreamwire's annotator folder empty: only the roots count."""
    _, empty = comfy
    monkeypatch.setenv("U2NET_HOME", str(empty))
    monkeypatch.setenv("DREAMWIRE_ANNOTATORS", str(empty))


@pytest.mark.parametrize(
    "recipe, mean, std",
    [
        (sm.U2NET, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        (sm.ISNET_GENERAL, (0.5, 0.5, 0.5), (1, 1, 1)),
        (sm.ISNET_ANIME, (0.485, 0.456, 0.406), (1, 1, 1)),
        (sm.BIREFNET, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ],
)
def test_input_is_rembg_normalize(recipe, mean, std):
    """Square side, divided by the picture's own largest value (here 200, not 255), then
    mean and std per channel: a flat (200, 100, 50) picture gives (1, 0.5, 0.25) - mean over
    std everywhere; a black one (largest value 0) gives -mean / std."""
    recipe = dataclasses.replace(recipe, side=48)  # the real sides: test_sides_are_rembg_sessions
    flat = np.empty((30, 70, 3), np.uint8)
    flat[...] = (200, 100, 50)
    x = sm.model_input(flat, recipe)
    assert x.shape == (1, 3, 48, 48) and x.dtype == np.float32
    for c, v in enumerate((1.0, 0.5, 0.25)):
        assert np.all(x[0, c] == np.float32((v - mean[c]) / std[c])), c
    black = sm.model_input(np.zeros((5, 9, 3), np.uint8), recipe)
    for c in range(3):
        assert np.all(black[0, c] == np.float32(-mean[c] / std[c]))


def test_sides_are_rembg_sessions():
    assert sm.U2NET.side == 320
    u2 = {k.name for k in sm.KNOWN if k.recipe is sm.U2NET}
    assert u2 == {"u2net", "u2netp", "silueta", "u2net_human_seg"}
    assert {k.recipe.side for k in sm.KNOWN if k.recipe is not sm.U2NET} == {1024}
    assert [k.recipe.sigmoid for k in sm.KNOWN].count(True) == 7  # every BiRefNet


def test_output_min_max_to_uint8():
    """Channel 0 only, min-max to 0..1, x 255 truncated: -2, 0, 2, 6 -> 0, 63.75, 127.5, 255
    -> 0, 63, 127, 255 (a 2 x 2 picture: Lanczos to the same size changes nothing)."""
    out = np.array([[[[-2, 0], [2, 6]], [[9, 9], [9, 9]]]], np.float32)
    np.testing.assert_array_equal(sm.mask_from_output(out, sm.U2NET, (2, 2)), [[0, 63], [127, 255]])


def test_birefnet_output_goes_through_a_sigmoid():
    """Logits -ln 3, 0, ln 3, ln 7 -> 0.25, 0.5, 0.75, 0.875 -> min-max 0, 0.4, 0.8, 1 ->
    0, 102, 204, 255 (float32 may land a hair under, truncated one lower)."""
    out = np.log(np.array([[[[1 / 3, 1], [3, 7]]]], np.float32))
    got = sm.mask_from_output(out, sm.BIREFNET, (2, 2)).astype(int)
    assert np.abs(got - [[0, 102], [204, 255]]).max() <= 1
    # Without the sigmoid the same logits normalise differently (ln: 0, 0.36, 0.72, 1).
    plain = sm.mask_from_output(out, sm.U2NET, (2, 2)).astype(int)
    assert abs(int(plain[0, 1]) - 92) <= 1


def test_flat_output_is_an_empty_mask_and_size_comes_back():
    assert not sm.mask_from_output(np.ones((1, 1, 8, 8), np.float32), sm.U2NET, (5, 7)).any()
    half = np.zeros((1, 1, 8, 8), np.float32)
    half[..., 4:] = 1  # right half the subject
    got = sm.mask_from_output(half, sm.U2NET, (6, 20))
    assert got.shape == (6, 20)
    assert (got[:, :3] == 0).all() and (got[:, -3:] == 255).all()
    assert (got == got[0]).all()  # every row alike: resized as a picture, not shifted


@pytest.mark.parametrize("kind", LAYOUTS)
def test_mask_is_the_models_first_output_post_processed(comfy, isolated, kind):
    """The tiny model is a 1 x 1 convolution: its first output is w . x + b per pixel of
    rembg's input, worked out here with numpy; the side outputs (negated) would give the
    inverse mask."""
    root, _ = comfy
    layout = LAYOUTS[kind]
    model = sm.find([root], layout.file)
    assert model.path.name == layout.file
    recipe = model.known.recipe
    w, b = tiny.weights(layout)
    x = sm.model_input(IMG, recipe)
    out = (np.einsum("c,nchw->nhw", w[0, :, 0, 0], x) + b[0])[:, None]
    want = sm.mask_from_output(out, recipe, IMG.shape[:2]).astype(int)
    got = sm.predict(model, IMG)
    assert got.shape == IMG.shape[:2] and got.dtype == np.uint8
    assert np.abs(got.astype(int) - want).max() <= 1  # float32 sums in another order
    assert got.min() < 64 and got.max() > 192  # a soft mask spanning the range


def test_found_in_comfy_a1111_and_rembg_folders_best_first(comfy, isolated, tmp_path, monkeypatch):
    root, empty = comfy
    with pytest.raises(DreamwireError) as err:
        sm.find([tmp_path / "a1111"])
    msg = str(err.value)
    assert err.value.code is ErrorCode.MODEL_NOT_FOUND
    assert "u2net.onnx" in msg and "birefnet-general.onnx" in msg
    assert "models/rembg" in msg and "models/u2net" in msg and str(empty) in msg
    a1111 = tmp_path / "a1111" / sm.A1111_U2NET
    a1111.mkdir(parents=True)
    (a1111 / "u2net_cloth_seg.onnx").write_bytes(b"x")  # not a subject model: passed by
    with pytest.raises(DreamwireError):
        sm.find([tmp_path / "a1111"])
    (a1111 / "u2netp.onnx").write_bytes(b"x")
    (a1111 / "u2net.onnx").write_bytes(b"x")
    assert sm.find([tmp_path / "a1111"]).path == a1111 / "u2net.onnx"  # better than u2netp
    assert sm.find([tmp_path / "a1111"], "u2netp").path == a1111 / "u2netp.onnx"
    # ComfyUI's BiRefNet (its release name) comes before U2-Net whatever the root order.
    both = sm.find([tmp_path / "a1111", root])
    assert both.path.name == tiny.BIREFNET.file and both.known.name == "birefnet-general"
    assert sm.find([root], "birefnet-general").path.name == tiny.BIREFNET.file
    # rembg's own folder.
    home = tmp_path / "u2net_home"
    home.mkdir()
    (home / "isnet-anime.onnx").write_bytes(b"x")
    monkeypatch.setenv("U2NET_HOME", str(home))
    assert sm.find([], "isnet-anime").known.recipe is sm.ISNET_ANIME
    with pytest.raises(DreamwireError) as err:
        sm.find([], "birefnet-portrait")
    assert err.value.code is ErrorCode.MODEL_NOT_FOUND and "birefnet-portrait" in str(err.value)


def test_a_file_that_is_not_the_model_is_model_corrupt(isolated, tmp_path):
    folder = tmp_path / sm.COMFY_REMBG
    folder.mkdir(parents=True)
    (folder / "u2net.onnx").write_bytes(b"not onnx")
    with pytest.raises(DreamwireError) as err:
        sm.predict(sm.find([tmp_path]), IMG)
    assert err.value.code is ErrorCode.MODEL_CORRUPT and "u2net.onnx" in str(err.value)


def _job(seg: Segment, **kw) -> Job:
    return Job(mode=JobMode.SEGMENT, init_image=IMG, segment=seg, **kw)


@pytest.mark.parametrize(
    "seg, field",
    [
        (Segment([Click(1, 1)], subject=True), "no clicks and no box"),
        (Segment(box=[1, 1, 5, 5], subject=True), "no clicks and no box"),
        (Segment(subject=1), "segment.subject"),
        (Segment(), "a click or a box (or subject)"),
    ],
)
def test_bad_subject_jobs_are_invalid_job(seg, field):
    with pytest.raises(DreamwireError) as err:
        _job(seg).validate()
    assert err.value.code is ErrorCode.INVALID_JOB and field in str(err.value)


def test_subject_travels_only_when_set():
    body, arrays = _job(Segment(subject=True, model="u2netp")).to_wire()
    assert body["segment"]["subject"] is True
    assert Job.from_wire(body, arrays).validate().segment == Segment(subject=True, model="u2netp")
    # A click job's body is what it was before the field (older backends refuse unknowns).
    assert "subject" not in _job(Segment([Click(2, 2)])).to_wire()[0]["segment"]
