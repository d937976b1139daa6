"""Make a control layer from the active layer, the plain part: which annotator makes each
type on a backend (its welcome's `preprocessors`), the preprocess job, and the new layer's
name, pixels and mark."""

from __future__ import annotations

import numpy as np
import pytest
from dreamwire_krita.logic import control_from_layer as cfl
from dreamwire_krita.logic.controls import dump_marks, load_marks
from dreamwire_krita.logic.regions import PlanError

from dreamwire.shared.events import Welcome
from dreamwire.shared.job_mode import JobMode


def welcome(*preprocessors: str) -> Welcome:
    return Welcome.from_body(
        {
            "protocol": 1,
            "server_version": "x",
            "server_id": "y",
            "preprocessors": list(preprocessors),
        }
    )


def layer(h: int = 30, w: int = 40) -> np.ndarray:
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[5:20, 8:30] = (10, 20, 30, 255)
    return rgba


def test_each_type_runs_the_first_annotator_the_backend_lists():
    w = welcome("canny", "lineart", "lineart_standard", "depth_midas", "openpose")
    assert cfl.annotator("lineart", w) == "lineart_standard"  # model-free first
    assert cfl.annotator("depth", w) == "depth_midas"  # Depth Anything not listed
    assert cfl.annotator("openpose", w) == "openpose"
    assert cfl.annotator("softedge", w) is None
    assert cfl.annotator("ip-adapter", w) is None  # not a map: nothing to make
    assert cfl.makeable(w) == ["Line art", "Canny", "Depth", "Pose"]  # the docker's order


def test_an_older_backend_offers_nothing_to_make():
    old = Welcome.from_body({"protocol": 1, "server_version": "x", "server_id": "y"})
    assert cfl.makeable(old) == [] and cfl.makeable(None) == []
    with pytest.raises(PlanError, match="cannot make a Depth layer"):
        cfl.preprocess_job("depth", old, layer())


def test_the_job_reads_the_layer_over_white_with_one_unit():
    job = cfl.preprocess_job("depth", welcome("depth_anything_v2"), layer())
    assert job.mode is JobMode.PREPROCESS
    (unit,) = job.controls
    assert (unit.type, unit.preprocessor, unit.image) == ("depth", "depth_anything_v2", None)
    assert job.init_image.shape == (30, 40, 3)
    assert tuple(job.init_image[10, 10]) == (10, 20, 30)  # painted
    assert tuple(job.init_image[0, 0]) == (255, 255, 255)  # transparent: white
    body, _ = job.to_wire()
    assert body["mode"] == "preprocess"


def test_an_empty_layer_is_refused_before_sending():
    with pytest.raises(PlanError, match="empty"):
        cfl.preprocess_job("canny", welcome("canny"), np.zeros((8, 8, 4), np.uint8))


def test_the_new_layer_is_named_opaque_and_marked():
    assert cfl.layer_name("openpose", "Sketch 2") == "Pose of Sketch 2"
    rgba = cfl.layer_pixels(np.full((4, 6, 3), 7, np.uint8))
    assert rgba.shape == (4, 6, 4) and (rgba[..., 3] == 255).all() and (rgba[..., :3] == 7).all()
    mark = cfl.mark("softedge")
    assert (mark.type, mark.weight, mark.start, mark.end) == ("softedge", 1.0, 0.0, 1.0)
    assert load_marks(dump_marks({"id": mark})) == {"id": mark}  # stored as any mark is


def test_normals_are_made_by_normalbae_or_else_marigold():
    assert cfl.annotator("normalbae", welcome("normal_marigold", "normalbae")) == "normalbae"
    assert cfl.annotator("normalbae", welcome("normal_marigold")) == "normal_marigold"
    assert cfl.makeable(welcome("canny", "normal_marigold")) == ["Canny", "Normals"]
    job = cfl.preprocess_job("normalbae", welcome("normalbae"), layer())
    assert [(u.type, u.preprocessor) for u in job.controls] == [("normalbae", "normalbae")]


def test_every_annotator_is_a_backend_preprocessor():
    from dreamwire.backend.conditioning import preprocess

    known = set(preprocess.names())
    assert {p for names in cfl.ANNOTATORS.values() for p in names} <= known


def test_a_face_layer_is_made_by_mediapipe_face_where_the_backend_lists_it():
    assert cfl.makeable(welcome("canny", "openpose")) == ["Canny", "Pose"]  # no Face
    w = welcome("openpose", "mediapipe_face")
    assert cfl.makeable(w) == ["Pose", "Face"]
    job = cfl.preprocess_job("mediapipe_face", w, layer())
    (unit,) = job.controls
    assert (unit.type, unit.preprocessor) == ("mediapipe_face", "mediapipe_face")
    assert cfl.layer_name("mediapipe_face", "Portrait") == "Face of Portrait"
    assert cfl.mark("mediapipe_face").type == "mediapipe_face"
