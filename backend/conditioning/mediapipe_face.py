"""The mediapipe_face preprocessor (A1111's, for ControlNetMediaPipeFace): MediaPipe Face
Mesh landmarks found in the picture, drawn by the annotator's rules
(shared/imaging/mediapipe_face.py).

Detection needs the `mediapipe` package, which the backend extra does not install (PyPI's
wheel is 132 MB and declares opencv-contrib-python, whose cv2 would overwrite the
opencv-python-headless the backend uses: scripts/setup.sh installs it for the tests without
its declared dependencies); without it the preprocessor is PREPROCESSOR_UNAVAILABLE naming
it (Blender's face capture, or any ready-made control image with preprocessor 'none',
needs no detection). With it:
  * the legacy `solutions.face_mesh.FaceMesh` where the package still has it, called as
    the annotator calls it (static images, refined 478-point landmarks, max_num_faces,
    min_detection_confidence); its model ships inside the package;
  * else the Tasks API FaceLandmarker (newer packages dropped `solutions`), which reads
    MediaPipe's face_landmarker.task from the annotator folders (annotator_files.py,
    directly or in mediapipe/); a missing file is PREPROCESSOR_UNAVAILABLE naming it and
    the folders searched, one MediaPipe cannot load MODEL_CORRUPT naming it.
The extension's sliders: Max Faces (default 1) and Min Face Confidence (0.5).
The tests run the Tasks path on a tiny face_landmarker.task (backend/tiny/mediapipe_face.py);
packages with `solutions` (mediapipe < 0.10.30 or so) are not installed here, so the legacy
path has not run.
"""

from __future__ import annotations

import numpy as np

from dreamwire.backend.library import annotator_files
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.imaging.mediapipe_face import face_map

TASK_FILE = "face_landmarker.task"
CANDIDATES = (f"mediapipe/{TASK_FILE}", TASK_FILE)
MAX_FACES, MIN_CONFIDENCE = 1, 0.5  # the extension's slider defaults


def _package():
    try:
        import mediapipe
    except Exception as exc:  # ImportError, or a broken install failing inside it
        raise DreamwireError(
            ErrorCode.PREPROCESSOR_UNAVAILABLE,
            "mediapipe_face detects faces with the mediapipe package, which could not be "
            f"imported here ({type(exc).__name__}: {exc}); install it (pip install mediapipe) "
            f"and, for its Tasks API, put {TASK_FILE} in an annotator folder. Or send a "
            "ready-made control image with preprocessor 'none' (Blender's face capture "
            "draws one from a face mesh)",
        ) from None
    return mediapipe


def _legacy(mp, rgb: np.ndarray, max_faces: int, min_confidence: float) -> list[np.ndarray]:
    with mp.solutions.face_mesh.FaceMesh(
        static_image_mode=True,
        max_num_faces=max_faces,
        refine_landmarks=True,
        min_detection_confidence=min_confidence,
    ) as mesh:
        found = mesh.process(rgb).multi_face_landmarks or []
    return [np.array([(p.x, p.y) for p in face.landmark]) for face in found]


def _tasks(mp, rgb: np.ndarray, roots, max_faces: int, min_confidence: float):
    path = annotator_files.find(CANDIDATES, roots)
    if path is None:
        raise annotator_files.missing(
            "mediapipe_face (MediaPipe's FaceLandmarker)", CANDIDATES, roots
        )
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(path)),
        num_faces=max_faces,
        min_face_detection_confidence=min_confidence,
    )
    try:
        landmarker = vision.FaceLandmarker.create_from_options(options)
    except Exception as exc:  # not a zip, a bundle without both models, models MediaPipe refuses
        raise DreamwireError(
            ErrorCode.MODEL_CORRUPT,
            f"{path} does not load as MediaPipe's face landmarker bundle: {exc}",
        ) from exc
    image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
    with landmarker:
        found = landmarker.detect(image).face_landmarks
    return [np.array([(p.x, p.y) for p in face]) for face in found]


def landmarks(
    rgb: np.ndarray, roots=(), max_faces: int = MAX_FACES, min_confidence: float = MIN_CONFIDENCE
) -> list[np.ndarray]:
    """Each face's normalised landmarks (N x 2, x right, y down) in an RGB uint8 picture."""
    mp = _package()
    if getattr(getattr(mp, "solutions", None), "face_mesh", None) is not None:
        return _legacy(mp, rgb, max_faces, min_confidence)
    return _tasks(mp, rgb, roots, max_faces, min_confidence)


def mediapipe_face(
    rgb: np.ndarray,
    roots=(),
    max_faces: int = MAX_FACES,
    min_confidence: float = MIN_CONFIDENCE,
    **_,
) -> np.ndarray:
    """The control image for an RGB uint8 picture (H x W x 3): black where no face is."""
    faces = landmarks(rgb, roots, int(max_faces), float(min_confidence))
    return face_map(rgb.shape[:2], faces)
