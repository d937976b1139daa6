"""Train a LoRA from a collection: turntable cameras, captions, the job and its refusals
(blender_addon.core.training, plain Python)."""

from __future__ import annotations

import numpy as np
import pytest

from blender_addon.core.camera import CameraModel
from blender_addon.core.tasks import ActionError
from blender_addon.core.training import (
    TrainingRequest,
    caption,
    check_request,
    readable_name,
    subject,
    training_job,
    turntable,
    view_hint,
)
from dreamwire.shared import protocol as P
from dreamwire.shared.job import Job
from dreamwire.shared.protocol import Limits, training_picture_limit

# A box off the origin, longer in x: framing must follow its own centre and size.
BOX = np.array([[x, y, z] for x in (1.0, 5.0) for y in (-1.0, 1.0) for z in (0.0, 2.0)])


def _look_at(pos, target) -> np.ndarray:
    """A camera's world matrix at `pos` looking at `target`, +Z up (Blender's track quat)."""
    f = np.asarray(target, float) - pos
    f /= np.linalg.norm(f)
    right = np.cross(f, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, f)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, up, -f, pos
    return m


def test_turntable_goes_evenly_round_and_frames_the_whole_collection():
    views = turntable(BOX, 6, fov_deg=39.6, elevations=(10.0, 40.0))
    assert len(views) == 6
    centre = np.array([3.0, 0.0, 1.0])
    az = [v.azimuth_deg for v in views]
    assert np.allclose(np.diff(az), 60.0) and az[0] == 0.0
    assert [v.elevation_deg for v in views] == [10.0, 40.0] * 3
    dists = [np.linalg.norm(v.position - centre) for v in views]
    assert np.allclose(dists, dists[0])  # one distance: the sphere's framing
    # The first view is Blender's front: on the -Y side of the centre.
    assert views[0].position[1] < centre[1] - 1.0
    for v in views:
        assert np.allclose(v.target, centre)
        cam = CameraModel(matrix_world=_look_at(v.position, v.target), width=64, height=64)
        px, depth = cam.project(BOX)
        assert cam.in_frame(px, depth).all(), (v, px)
        # ... and not lost in it: the box spans a good part of the frame.
        assert np.ptp(px[:, 0]) > 16 or np.ptp(px[:, 1]) > 16


def test_view_hints_name_the_side_seen_as_turntables_are_captioned():
    assert view_hint(0, 10) == "front view"
    assert view_hint(90, 10) == "side view"
    assert view_hint(180, 10) == "back view"
    assert view_hint(270, 0) == "side view"
    assert view_hint(0, 40) == "front view, from above"
    assert view_hint(180, 75) == "from above"
    hints = [v.hint for v in turntable(BOX, 4, 40.0, (15.0,))]
    assert hints == ["front view", "side view", "back view", "side view"]


def test_captions_start_with_the_trigger_word_and_name_the_objects_once():
    assert readable_name("Robot_Arm.001") == "robot arm"
    what = subject("Robot", ["Robot.001", "Head", "Left_Arm", "Head.002"])
    assert what == "robot, head, left arm"
    c = caption("zxbot", what, "back view")
    assert c == "zxbot, robot, head, left arm, back view"
    many = subject("Props", [f"Thing{i}" for i in range(30)])
    assert many.count(",") < 10


def test_job_carries_every_render_with_its_caption_and_passes_the_wire():
    req = TrainingRequest(name="zxbot", trigger="zxbot", steps=2, views=3, size=64)
    rng = np.random.default_rng(0)
    renders = [(rng.random((64, 64, 4)) * 255).astype(np.uint8) for _ in range(3)]
    captions = [caption("zxbot", "robot", h) for h in ("front view", "side view", "back view")]
    job = training_job(req, renders, captions, "robot")
    job.validate()
    t = job.train_lora
    assert t.name == "zxbot" and t.max_train_steps == 2 and t.resolution == 64
    assert [p.caption for p in t.pictures] == captions
    for p, r in zip(t.pictures, renders, strict=True):
        assert p.image.shape == (64, 64, 3) and np.array_equal(p.image, r[..., :3])
    assert job.prompt == "zxbot, robot"  # the sample shows the object, from no side
    # What the Blender client sends decodes on the backend's side with every picture.
    back = Job.from_wire(*_roundtrip(job))
    assert [p.caption for p in back.train_lora.pictures] == captions


def _roundtrip(job: Job):
    body, arrays = job.to_wire()
    msg = P.decode(P.encode(P.Message("submit", body, arrays)), Limits())
    return msg.body, msg.buffers


def test_refusals_before_anything_renders():
    ok = TrainingRequest(name="zxbot", trigger="zxbot", views=8)
    check_request(ok, ["Cube"], {"max_images": 32})
    with pytest.raises(ActionError, match="no mesh objects"):
        check_request(ok, [], None)
    with pytest.raises(ActionError, match="at least 2 views"):
        check_request(TrainingRequest(name="a", trigger="a", views=1), ["Cube"], None)
    with pytest.raises(ActionError, match="at least 2 views"):
        turntable(BOX, 1, 40.0)
    with pytest.raises(ActionError, match=r"\(32 on this backend\)"):
        check_request(TrainingRequest(name="a", trigger="a", views=33), ["Cube"], None)
    with pytest.raises(ActionError, match=r"\(12 on this backend\)"):
        check_request(
            TrainingRequest(name="a", trigger="a", views=16), ["Cube"], {"max_images": 12}
        )
    with pytest.raises(ActionError, match="trigger word"):
        check_request(TrainingRequest(name="a", trigger=" ", views=4), ["Cube"], None)
    with pytest.raises(ActionError, match="name"):
        check_request(TrainingRequest(name="", trigger="t", views=4), ["Cube"], None)
    assert training_picture_limit(None) == Limits().max_images
