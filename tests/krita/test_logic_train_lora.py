"""The docker's "Train LoRA from these layers" logic (logic/train_lora.py): which layers,
their kohya captions, the checks before sending, and the job the backend validates."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from dreamwire_krita.logic import train_lora as tl
from dreamwire_krita.logic.prompt_regions import LayerInfo

from dreamwire.shared import protocol as P
from dreamwire.shared.families import SD1, SDXL, FamilyInfo
from dreamwire.shared.family_support import family_info

SD1_TRAINS = FamilyInfo(SD1, ("txt2img",), ("train_lora",))
REQ = tl.TrainRequest("my-char", "mychar", steps=40, rank=4)


def _pictures(n, h=96, w=80):
    rng = np.random.default_rng(n)
    return [
        tl.LayerPicture(f"red coat {i}", rng.integers(0, 256, (h, w, 4), dtype=np.uint8))
        for i in range(n)
    ]


def test_job_carries_each_layer_as_a_captioned_picture_and_validates():
    pics = _pictures(3)
    job = tl.build_job(REQ, pics, "tiny-sd1", SD1_TRAINS, {"max_images": 32}, 2, seed=5)
    job.validate()  # what the backend checks when it arrives
    t = job.train_lora
    assert (job.mode, job.model, job.prompt, job.steps, job.seed) == (
        "train_lora",
        "tiny-sd1",
        "mychar",
        2,
        5,
    )
    assert (t.name, t.max_train_steps, t.network_dim) == ("my-char", 40, 4)
    # Shorter side 80 (< SD1's 512): trained at 80, the sample at that size too.
    assert t.resolution == job.width == job.height == 80
    assert [p.caption for p in t.pictures] == ["mychar, red coat"] * 3
    a = pics[0].rgba.astype(np.float64)
    want = a[..., :3] * a[..., 3:] / 255 + 255 * (1 - a[..., 3:] / 255)
    assert t.pictures[0].image.shape == (96, 80, 3)
    assert np.abs(t.pictures[0].image - want).max() <= 0.5 + 1e-9


def test_resolution_is_capped_at_the_family_native_side_in_multiples_of_8():
    big = [tl.LayerPicture("a", np.zeros((700, 900, 4), np.uint8))] * 2
    assert tl.resolution(big, SD1.resolution.native) == 512
    assert tl.resolution(big, SDXL.resolution.native) == 696
    assert tl.resolution(_pictures(2, 20, 20), 512) == tl.MIN_RESOLUTION


@pytest.mark.parametrize(
    "layer, want",
    [
        ("red_coat-2.png", "mychar, red coat"),
        ("standing, side view", "mychar, standing, side view"),
        ("Paint Layer 3", "mychar"),
        ("Background", "mychar"),
        ("MyChar", "mychar"),
        ("7", "mychar"),
    ],
)
def test_caption_is_the_trigger_then_the_layer_name_cleaned(layer, want):
    assert tl.caption("mychar", layer) == want


def test_selected_layers_win_else_visible_top_level_paint_layers():
    a, b = LayerInfo("a", "A", True), LayerInfo("b", "B", False)
    c = LayerInfo("c", "C", True)
    assert tl.chosen_layers([b], [a, c]) == [b]  # selected: taken even when hidden
    assert tl.chosen_layers([], [a, b, c]) == [a, c]


@pytest.mark.parametrize(
    "req, words",
    [
        (dataclasses.replace(REQ, name="  "), "Name the LoRA"),
        (dataclasses.replace(REQ, name="../evil"), "cannot be a file name"),
        (dataclasses.replace(REQ, name="a/b"), "cannot be a file name"),
        (dataclasses.replace(REQ, name="x" * 101), "longer than 100"),
        (dataclasses.replace(REQ, trigger=" "), "trigger word"),
        (dataclasses.replace(REQ, trigger="a, b"), "comma"),
        (dataclasses.replace(REQ, steps=0), "Steps must be"),
        (dataclasses.replace(REQ, rank=0), "Rank must be"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(req, words):
    with pytest.raises(tl.TrainError, match=words):
        tl.build_job(req, _pictures(2), "", SD1_TRAINS, {})


def test_picture_count_is_bounded_by_two_and_the_wire_limit():
    with pytest.raises(tl.TrainError, match="at least 2 pictures.*got 1"):
        tl.build_job(REQ, _pictures(1), "", SD1_TRAINS, {})
    with pytest.raises(tl.TrainError, match="at most 3 pictures.*got 4"):
        tl.build_job(REQ, _pictures(4), "", SD1_TRAINS, {"max_images": 3})
    # No limit in the welcome: the wire's default (32 frames a message).
    assert P.training_picture_limit({}) == 32
    with pytest.raises(tl.TrainError, match="at most 32 pictures"):
        tl.build_job(REQ, _pictures(33, 8, 8), "", SD1_TRAINS, {})


def test_a_family_that_does_not_list_train_lora_is_refused_in_the_backends_words():
    flux = family_info("flux", None)
    no_train = dataclasses.replace(flux, supports=("hires_latent",))
    with pytest.raises(tl.TrainError, match="LoRA training is built for SD1.x and SDXL"):
        tl.build_job(REQ, _pictures(2), "flux-dev", no_train, {})
    sd1_old = FamilyInfo(SD1, ("txt2img",), ())  # a backend whose SD1 does not train
    with pytest.raises(tl.TrainError, match="SD1.x"):
        tl.build_job(REQ, _pictures(2), "", sd1_old, {})


def test_progress_and_result_words():
    assert tl.progress_text(3, 40) == "Training: step 3/40"
    assert tl.progress_text(3, 40, 0.12345) == "Training: step 3/40 · loss 0.1235"
    assert "<lora:my-char:1>" in tl.result_text("my-char")
