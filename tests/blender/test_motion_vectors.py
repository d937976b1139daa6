"""Blender's Vector pass conventions and the motion capture, in real Blender (bpy),
against a scripted motion whose projections Blender itself computes (motion_probe.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from dreamwire.shared.animation.motion import FrameMotion
from dreamwire.shared.animation.occlusion import OcclusionSettings, reliable
from dreamwire.shared.animation.warp import warp
from tests.support.bpy_probe import run_probe

pytestmark = [
    pytest.mark.blender,
    pytest.mark.skipif(importlib.util.find_spec("bpy") is None, reason="bpy not installed"),
]

PROBE = Path(__file__).with_name("motion_probe.py")


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    return run_probe(PROBE, tmp_path_factory.mktemp("motion"), "motion")


def _at(a, point):
    x, y = point
    return a[int(round(y)), int(round(x))]


def test_vectors_are_pixels_to_the_previous_and_next_positions_y_down(probe):
    r, a = probe
    here = r["front_2"]
    before = np.subtract(r["front_1"], here)  # (-24.2, -8.1): left and UP in the picture
    after = np.subtract(r["front_3"], here)  # (+12.1, 0): right, no vertical motion
    assert before[1] < -5 and abs(after[1]) < 1e-3  # the path tells the directions apart
    np.testing.assert_allclose(_at(a["to_prev"], here), before, atol=0.05)
    np.testing.assert_allclose(_at(a["to_next"], here), after, atol=0.05)
    # Frame 1 points forward to the same surface point at frame 2.
    np.testing.assert_allclose(_at(a["to_next_1"], r["front_1"]), -before, atol=0.05)
    # The wall does not move.
    wall = a["ids"] == a["ids"][1, 1]
    assert wall.sum() > 1000 and np.abs(a["to_prev"][wall]).max() < 1e-4


def test_capture_gives_depth_and_ids_and_restores_the_scene(probe):
    r, a = probe
    assert _at(a["depth"], r["front_2"]) == pytest.approx(5.5, abs=1e-3)
    assert len(np.unique(a["ids"])) == 2 and np.isfinite(a["depth"]).all()
    assert r["vector_pass_left_on"] is False


def test_real_renders_line_up_when_warped_along_the_vectors(probe):
    _, a = probe
    here = FrameMotion(a["to_prev"], a["to_next"], a["depth"], a["ids"])
    there = FrameMotion(a["to_prev_1"], a["to_next_1"], a["depth_1"], a["ids_1"])
    ok = reliable(here, there, True, OcclusionSettings())
    cube = ok & (a["ids"] != a["ids"][1, 1])
    assert cube.sum() > 50 and 0.8 < ok.mean() < 0.99  # the uncovered strip is not trusted
    c1, c2 = a["color_1"].astype(float), a["color_2"].astype(float)
    warped = warp(a["color_1"], here.to_prev).astype(float)
    err_warped = np.abs(warped - c2).mean(-1)[cube].mean()
    err_still = np.abs(c1 - c2).mean(-1)[cube].mean()
    assert err_warped * 5 < err_still, (err_warped, err_still)
    # The other convention (Blender's raw Y, up) lines up far worse.
    flipped = warp(a["color_1"], here.to_prev * [1, -1]).astype(float)
    assert err_warped * 5 < np.abs(flipped - c2).mean(-1)[cube].mean()
