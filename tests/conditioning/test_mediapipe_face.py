"""The mediapipe_face preprocessor through the real mediapipe package (its Tasks API
FaceLandmarker) on a tiny face_landmarker.task built in the real bundle format
(backend/tiny/mediapipe_face.py): MediaPipe's own graph decodes the planted detection,
crops the face, runs the landmark network and projects its 478 points back, and Dreamwire
draws them as ControlNetMediaPipeFace's annotator does. Skipped where mediapipe is not
installed (the refusal by name: test_preprocess.py)."""

from __future__ import annotations

import numpy as np
import pytest
from cn_helpers import SIZE, load_net, maxdiff, reference_pipe, run_job_settings
from PIL import Image

from dreamwire.backend.conditioning import control_image, preprocess
from dreamwire.backend.conditioning import mediapipe_face as face
from dreamwire.backend.library import annotator_files
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.imaging import mediapipe_face as drawing
from dreamwire.shared.infotext import parse_infotext
from dreamwire.shared.job import ControlUnit, Job
from tests.engine.reference import JOB_BASE

pytest.importorskip("mediapipe.tasks.python.vision")
from dreamwire.backend.tiny import mediapipe_face as tiny  # noqa: E402 (needs mediapipe)

SIDE = 128  # the detector's own input size: MediaPipe letterboxes nothing
FACE = (0.45, 0.55, 0.6)  # centre x, y and side of the detector's box
SMALL = (0.75, 0.3, 0.3)  # a second, less certain face, too small to draw (IoU 0.07)


def _landmarks() -> np.ndarray:
    """478 points in the crop, the pupils inside it away from the lines' ends."""
    pts = np.random.default_rng(19).uniform(0.05, 0.95, (tiny.MESH_POINTS, 2))
    pts[drawing.RIGHT_PUPIL], pts[drawing.LEFT_PUPIL] = (0.3, 0.4), (0.7, 0.4)
    return pts


def _in_picture(crop: np.ndarray, box=FACE) -> np.ndarray:
    """Where MediaPipe's graph puts crop points: the detector's box, its eyes level (no
    rotation), scaled 1.5 about its centre (face_detector_graph.cc) is the crop."""
    cx, cy, side = box
    return np.array([cx, cy]) + (crop - 0.5) * side * 1.5


def _picture() -> np.ndarray:
    y, x = np.mgrid[0:SIDE, 0:SIDE]
    return (np.stack([x * 2, y * 2, (x + y) % 97], axis=2) % 256).astype(np.uint8)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    base = tmp_path_factory.mktemp("mediapipe")
    folder = base / annotator_files.A1111_DOWNLOADS / "mediapipe"
    tiny.save(folder / face.TASK_FILE, tiny.Planted((FACE, SMALL), _landmarks()))
    (base / "empty").mkdir()
    return base


@pytest.fixture
def no_own_folder(root, monkeypatch):
    monkeypatch.setenv("DREAMWIRE_ANNOTATORS", str(root / "empty"))


def test_mediapipe_finds_the_planted_face_and_it_is_drawn(root, no_own_folder):
    rgb = _picture()
    found = face.landmarks(rgb, [root])
    assert len(found) == 1 and found[0].shape == (tiny.MESH_POINTS, 2)
    np.testing.assert_allclose(found[0], _in_picture(_landmarks()), atol=1e-5)

    out = preprocess.PREPROCESSORS["mediapipe_face"](rgb, roots=[root])
    assert out.shape == (SIDE, SIDE, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, drawing.face_map((SIDE, SIDE), found))
    # The pupils in their iris colours (RGB out) where the planted points fall.
    for index, bgr in drawing.PUPILS.items():
        x, y = (int(v * SIDE) for v in _in_picture(_landmarks())[index])
        assert tuple(out[y, x]) == bgr[::-1], index
    # The contours are there in their features' colours.
    colours = {tuple(c) for c in out.reshape(-1, 3)}
    assert {f.bgr[::-1] for f in drawing.FEATURES} <= colours
    # Through the A1111 entry at the picture's own resolution: the same map.
    np.testing.assert_array_equal(
        preprocess.run("mediapipe_face", rgb, roots=[root], processor_res=SIDE), out
    )
    # Max Faces 2: the second face too, which the drawing leaves out (under 64 pixels).
    two = face.landmarks(rgb, [root], max_faces=2)
    assert len(two) == 2
    np.testing.assert_allclose(two[1], _in_picture(_landmarks(), SMALL), atol=1e-5)
    assert np.array_equal(face.mediapipe_face(rgb, [root], max_faces=2), out)
    # Min Face Confidence over both detections' scores (sigmoid(10) = 0.99995): no face.
    assert face.landmarks(rgb, [root], min_confidence=0.99999) == []
    assert not face.mediapipe_face(rgb, [root], min_confidence=0.99999).any()


def test_a_missing_or_broken_task_file_is_named(root, no_own_folder, tmp_path):
    with pytest.raises(DreamwireError) as err:
        preprocess.run("mediapipe_face", _picture(), roots=[tmp_path])
    assert err.value.code is ErrorCode.PREPROCESSOR_UNAVAILABLE
    assert "face_landmarker.task" in err.value.message
    assert "annotator/downloads" in err.value.message
    bad = tmp_path / "annotators" / face.TASK_FILE
    bad.parent.mkdir()
    bad.write_bytes(b"not a bundle")
    with pytest.raises(DreamwireError) as err:
        preprocess.run("mediapipe_face", _picture(), roots=[tmp_path])
    assert err.value.code is ErrorCode.MODEL_CORRUPT and str(bad) in err.value.message


FACE_NET = "control_v2p_sd15_mediapipe_face"  # the tiny library's, named as CrucibleAI's


def test_a_face_unit_runs_the_face_controlnet_on_a_drawn_or_a_detected_face(
    engine, cn_dir, root, monkeypatch
):
    """A `mediapipe_face` unit naming no model finds ControlNetMediaPipeFace by its file
    name; a host-drawn face map (preprocessor none) and the same picture's face detected by
    the backend (preprocessor mediapipe_face) make the same image, which the map steers."""
    monkeypatch.setenv("DREAMWIRE_ANNOTATORS", str(root / annotator_files.A1111_DOWNLOADS))
    picture = _picture()
    drawn = preprocess.run("mediapipe_face", picture, roots=[root], processor_res=SIDE)
    assert drawn.any()

    def run(*units: ControlUnit):
        job = Job(**{**JOB_BASE, "steps": 2, "sampler": "Euler", "controls": list(units)})
        result = engine.run(job).images[0]
        return result.image, parse_infotext(result.infotext).controlnets

    host, entries = run(ControlUnit("mediapipe_face", drawn))
    assert entries[0].model_name == FACE_NET and entries[0].module == "none"
    unit = ControlUnit("mediapipe_face", picture, preprocessor="mediapipe_face", processor_res=SIDE)
    detected, entries = run(unit)
    assert entries[0].model_name == FACE_NET and entries[0].module == "mediapipe_face"
    assert (entries[0].threshold_a, entries[0].threshold_b) == (1.0, 0.5)  # the sliders'
    np.testing.assert_array_equal(detected, host)
    # What ran is diffusers' ControlNet pipeline with the face file and the map (cropped
    # and resized to the job, the unit's default resize mode).
    net = load_net(engine, cn_dir / f"{FACE_NET}.safetensors")
    pipe = reference_pipe(engine, "StableDiffusionControlNetPipeline", [net])
    fitted = control_image.resize(drawn, 64, 64, "crop_and_resize")
    ref = run_job_settings(pipe, image=[Image.fromarray(fitted)], num_inference_steps=2, **SIZE)
    assert maxdiff(host, ref) <= 1
    bare = run_job_settings(
        pipe, image=[Image.fromarray(fitted * 0)], num_inference_steps=2, **SIZE
    )
    assert maxdiff(ref, bare) > 1  # the face's lines, not the net alone, made the difference
