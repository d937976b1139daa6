"""Hires.fix "Resize width/height to" (A1111's hr_resize_x / hr_resize_y): the second
pass's size, validation, and the "Hires resize" infotext key."""

from __future__ import annotations

import pytest

from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.infotext import format_infotext, parse_infotext
from dreamwire.shared.job import HiresFix, Job


def a1111_target(width: int, height: int, rx: int, ry: int, scale: float = 2.0):
    """A1111's calculate_target_resolution and sample_hr_pass crop, written out as it
    stands in modules/processing.py (opt_f = 8), to check HiresFix.plan against."""
    truncate_x = truncate_y = 0
    if rx == 0 and ry == 0:
        to_x, to_y = int(width * scale), int(height * scale)
    elif ry == 0:
        to_x, to_y = rx, rx * height // width
    elif rx == 0:
        to_x, to_y = ry * width // height, ry
    else:
        if width / height < rx / ry:
            to_x, to_y = rx, rx * height // width
        else:
            to_x, to_y = ry * width // height, ry
        truncate_x, truncate_y = (to_x - rx) // 8, (to_y - ry) // 8
    # Latents of to // 8 cells, cropped by truncate cells.
    return (to_x // 8 - truncate_x) * 8, (to_y // 8 - truncate_y) * 8, truncate_x, truncate_y


@pytest.mark.parametrize(
    "first, resize",
    [
        ((512, 512), (0, 0)),
        ((512, 768), (1024, 0)),  # height follows: 1536
        ((640, 448), (0, 1000)),  # width follows: 1428 -> floored to 1424
        ((640, 448), (1280, 960)),  # wider first pass: cover by height, crop the sides
        ((448, 640), (1280, 960)),  # taller first pass: cover by width, crop top and bottom
        ((512, 512), (1024, 768)),
        ((520, 384), (2048, 1536)),
        ((720, 512), (1024, 720)),
    ],
)
def test_plan_matches_a1111(first, resize):
    w, h = first
    plan = HiresFix(width=resize[0], height=resize[1]).plan(w, h)
    want_w, want_h, tx, ty = a1111_target(w, h, *resize)
    assert plan.size == (want_w, want_h)
    assert (plan.truncate_x, plan.truncate_y) == (tx, ty)
    if all(resize):
        assert plan.size == resize  # both set: exactly the requested box


def test_one_side_keeps_the_aspect_ratio():
    assert HiresFix(width=1024).plan(512, 768).size == (1024, 1536)
    assert HiresFix(height=1024).plan(768, 512).size == (1536, 1024)
    # Scale is ignored once a size is given, as in A1111.
    assert HiresFix(scale=4.0, width=768).plan(512, 512).size == (768, 768)


def test_both_sides_crop_centred_in_latent_cells():
    plan = HiresFix(width=1280, height=960).plan(640, 448)
    # 640x448 covers 1280x960 at 1371x960; 11 cells too wide: 5 off the left, 6 off the right.
    assert (plan.upscale_width, plan.upscale_height) == (1368, 960)
    assert (plan.exact_width, plan.exact_height) == (1371, 960)  # A1111's hr_upscale_to_x/y
    assert plan.truncate_x == 11 and plan.truncate_y == 0
    assert plan.crop_box == (40, 0, 1368 - 48, 960)


def test_scale_only_is_unchanged():
    plan = HiresFix(scale=1.5).plan(520, 384)
    assert plan.size == (int(520 * 1.5) // 8 * 8, 576) and plan.crop_box == (0, 0, 776, 576)


@pytest.mark.parametrize(
    "hires, fragment",
    [
        (HiresFix(width=1020), "multiple of 8"),
        (HiresFix(height=-8), "multiple of 8"),
        (HiresFix(width=16384), "larger than"),
        (HiresFix(width=1.5), "multiple of 8"),
        (HiresFix(width=True), "multiple of 8"),
        # One side given: the other follows 512x64's aspect ratio to 65536 px.
        (HiresFix(height=8192), "outside"),
        # Both given: covering 8x8192 with a 512x64 first pass needs a 65536 px upscale.
        (HiresFix(width=8, height=8192), "outside"),
    ],
)
def test_validation_errors(hires, fragment):
    job = Job(prompt="x", width=512, height=64, hires=hires)
    with pytest.raises(DreamwireError) as err:
        job.validate()
    assert err.value.code == ErrorCode.INVALID_SIZE
    assert fragment in err.value.message


def test_valid_resize_passes_and_travels():
    job = Job(prompt="x", width=512, height=768, hires=HiresFix(width=1024, denoise=0.4))
    body, arrays = job.validate().to_wire()
    back = Job.from_wire(body, arrays)
    assert back.hires == job.hires and back.hires.plan(512, 768).size == (1024, 1536)


# Published with the Pastel-Mix model (andite/pastel-mix on Hugging Face), made by A1111.
A1111_TEXT = (
    "masterpiece, best quality, ultra-detailed, illustration, 1girl\n"
    "Negative prompt: lowres, ((bad anatomy)), ((bad hands)), text\n"
    "Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 2203084815, Size: 640x448, "
    "Model hash: 7edc8e08, Model: pastelmix-fp32, Denoising strength: 0.6, Clip skip: 2, "
    "ENSD: 31337, Hires resize: 1280x960, Hires steps: 20, Hires upscaler: Latent"
)


def test_a1111_infotext_round_trip():
    info = parse_infotext(A1111_TEXT)
    assert info.hires_resize == (1280, 960) and info.hires_upscale is None
    assert (info.width, info.height) == (640, 448)
    assert "Hires resize" not in info.extras
    assert format_infotext(info) == A1111_TEXT
    # Read back into a job, it makes the size A1111 made.
    hires = HiresFix(width=info.hires_resize[0], height=info.hires_resize[1])
    assert hires.plan(info.width, info.height).size == (1280, 960)


def test_infotext_one_side_zero_and_odd_values():
    info = parse_infotext("p\nSteps: 4, Seed: 1, Size: 512x768, Hires resize: 1024x0")
    assert info.hires_resize == (1024, 0)
    assert format_infotext(info).endswith("Hires resize: 1024x0")
    odd = parse_infotext("p\nSteps: 4, Seed: 1, Size: 512x768, Hires resize: big")
    assert odd.hires_resize is None and odd.extras["Hires resize"] == "big"


def test_written_in_a1111s_place():
    text = format_infotext(
        prompt="p",
        steps=4,
        seed=1,
        width=512,
        height=512,
        denoising_strength=0.5,
        hires_resize=(1024, 768),
        hires_steps=2,
        hires_upscaler="Latent",
        version="v1.10.1",
    )
    assert text.endswith(
        "Denoising strength: 0.5, Hires resize: 1024x768, Hires steps: 2, "
        "Hires upscaler: Latent, Version: v1.10.1"
    )
