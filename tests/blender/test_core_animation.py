"""Frame range bookkeeping and resume (no Blender)."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest

from blender_addon.core.animation import (
    AnimationError,
    frame_path,
    is_complete_png,
    plan,
    write_atomic,
)
from dreamwire.shared.animation.sequence import Mode, SequenceSettings, resume_fingerprint
from dreamwire.shared.codec import encode_png


def png(value=0):
    return encode_png(np.full((8, 8, 3), value, np.uint8))


def test_fresh_range_renders_everything_and_fixes_the_seed(tmp_path):
    p = plan(tmp_path, 1, 9, 2, seed=-1, settings={"prompt": "a"}, rng=random.Random(4))
    assert p.frames == [1, 3, 5, 7, 9] and p.todo == p.frames and p.done == []
    assert 0 <= p.seed < 2**32
    assert p.previous(1) is None and p.previous(5) == 3


def test_resume_skips_complete_frames_and_keeps_the_seed(tmp_path):
    first = plan(tmp_path, 1, 5, seed=-1, settings={"prompt": "a"})
    for f in (1, 2):
        write_atomic(frame_path(tmp_path, f), png(f))
    # A frame cut off mid-write (no IEND) does not count as done.
    frame_path(tmp_path, 3).write_bytes(png(3)[:-12])
    again = plan(tmp_path, 1, 5, seed=-1, settings={"prompt": "a"})
    assert again.done == [1, 2] and again.todo == [3, 4, 5]
    assert again.seed == first.seed
    assert not is_complete_png(frame_path(tmp_path, 3))
    assert is_complete_png(frame_path(tmp_path, 2))


def test_other_settings_in_the_same_folder_are_refused_unless_overwriting(tmp_path):
    plan(tmp_path, 1, 3, seed=5, settings={"prompt": "a"})
    write_atomic(frame_path(tmp_path, 1), png())
    with pytest.raises(AnimationError, match="other settings"):
        plan(tmp_path, 1, 3, seed=5, settings={"prompt": "b"})
    p = plan(tmp_path, 1, 3, seed=6, settings={"prompt": "b"}, overwrite=True)
    assert p.todo == [1, 2, 3] and p.seed == 6
    assert not frame_path(tmp_path, 1).exists()


def test_explicit_seed_is_used_and_bad_ranges_are_refused(tmp_path):
    assert plan(tmp_path, 10, 12, seed=1234).seed == 1234
    with pytest.raises(AnimationError, match="empty"):
        plan(tmp_path / "x", 5, 1)
    with pytest.raises(AnimationError, match="step"):
        plan(tmp_path / "y", 1, 5, 0)


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = frame_path(tmp_path, 7, prefix="shot_")
    write_atomic(target, png(9))
    assert target.name == "shot_0007.png"
    assert [p.name for p in tmp_path.iterdir()] == ["shot_0007.png"]


def test_a_changed_occlusion_setting_refuses_the_resume_unless_overwriting(tmp_path):
    warp = SequenceSettings(Mode.WARP)

    def settings(s: SequenceSettings) -> dict:  # as render_animation builds it
        return {"prompt": "a", **resume_fingerprint(s)}

    plan(tmp_path, 1, 3, seed=5, settings=settings(warp))
    write_atomic(frame_path(tmp_path, 1), png())
    assert plan(tmp_path, 1, 3, seed=5, settings=settings(warp)).done == [1]
    for change in ({"edge_share": 0.03}, {"surface_tests": False}, {"grow": 3}):
        other = replace(warp, occlusion=replace(warp.occlusion, **change))
        with pytest.raises(AnimationError, match="other settings"):
            plan(tmp_path, 1, 3, seed=5, settings=settings(other))
    p = plan(tmp_path, 1, 3, seed=6, settings=settings(other), overwrite=True)
    assert p.todo == [1, 2, 3] and p.seed == 6
    # Modes without motion keep the fingerprint their earlier renders were made with.
    assert resume_fingerprint(replace(warp, mode=Mode.FIXED_SEED)) == {}
