"""Krita pixel layouts and the colour-space policy."""

from __future__ import annotations

import numpy as np
import pytest
from dreamwire_krita.logic.pixels import (
    bgra_to_rgba,
    colour_plan,
    content_bounds,
    flatten_rgb,
    mask_from_bytes,
    rgba_to_bgra,
)


def test_bgra_bytes_round_trip_and_channel_order():
    rgba = np.random.default_rng(0).integers(0, 256, (5, 7, 4), dtype=np.uint8)
    raw = rgba_to_bgra(rgba)
    assert raw[:4] == bytes([rgba[0, 0, 2], rgba[0, 0, 1], rgba[0, 0, 0], rgba[0, 0, 3]])
    assert np.array_equal(bgra_to_rgba(raw, 7, 5), rgba)


def test_rgb_becomes_opaque_bgra():
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0] = 255
    assert rgba_to_bgra(rgb)[:4] == bytes([0, 0, 255, 255])


def test_wrong_sizes_are_errors_not_garbage():
    with pytest.raises(ValueError):
        bgra_to_rgba(b"\0" * 15, 2, 2)
    with pytest.raises(ValueError):
        mask_from_bytes(b"\0" * 3, 2, 2)


@pytest.mark.parametrize(
    ("model", "depth", "convert"),
    [
        ("RGBA", "U8", False),
        ("RGBA", "U16", True),
        ("RGBA", "F16", True),
        ("RGBA", "F32", True),
        ("GRAYA", "U8", True),
        ("CMYKA", "U8", True),
        ("LABA", "U16", True),
    ],
)
def test_colour_plan_converts_everything_but_8bit_srgb(model, depth, convert):
    plan = colour_plan(model, depth, "sRGB-elle-V2-srgbtrc.icc")
    assert plan.convert is convert and not plan.refuse
    if convert:
        assert model in plan.note


def test_rgb_with_a_wide_gamut_profile_is_converted():
    assert colour_plan("RGBA", "U8", "Rec2020-elle-V4-g10.icc").convert


def test_unknown_colour_model_is_refused_with_advice():
    plan = colour_plan("XYZWA", "U8")
    assert plan.refuse and "Convert Image Color Space" in plan.refuse


def test_flatten_composites_over_background():
    rgba = np.array([[[0, 0, 0, 0], [100, 100, 100, 255], [0, 0, 0, 128]]], np.uint8)
    out = flatten_rgb(rgba, background=255)
    assert out[0, 0].tolist() == [255, 255, 255]
    assert out[0, 1].tolist() == [100, 100, 100]
    assert out[0, 2].tolist() == [127, 127, 127]


def test_content_bounds():
    a = np.zeros((10, 12), np.uint8)
    assert content_bounds(a) is None
    a[2:5, 3:9] = 1
    assert content_bounds(a) == (3, 2, 6, 3)
