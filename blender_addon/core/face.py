"""A face mesh's landmark vertex groups -> the MediaPipe face control image that
ControlNetMediaPipeFace reads, as pose.py turns an armature into an OpenPose image.

The mesh marks MediaPipe's contours with vertex groups ("left"/"right" are the person's,
as MediaPipe names them):
  face_oval, face_left_eye, face_left_eyebrow, face_right_eye, face_right_eyebrow, face_lips
and, for the pupils, face_right_pupil and face_left_pupil. A feature's lines are the mesh
edges whose two vertices are both in its group (an eye's rim loop, the lips' outer and inner
loops, an eyebrow's two rows), the counterpart of MediaPipe's FACEMESH_* connections
between landmarks; a pupil is the mean of its group's vertices. The positions are the
evaluated mesh's, so shape keys and a face rig move the lines. Each point is projected
through the camera to the annotator's normalised image positions; a point behind the camera
drops its lines, as the annotator drops a landmark outside the picture, and the face's
extent (the annotator's 64-pixel size rule) spans the grouped vertices in front of it. The
drawing is the annotator's own (shared/imaging/mediapipe_face.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from dreamwire.shared.imaging import mediapipe_face as mp_face

from .camera import CameraModel

# Vertex group -> the feature it draws (mediapipe_face.FEATURES names).
FEATURE_GROUPS = {f"face_{f.name.removeprefix('face_')}": f.name for f in mp_face.FEATURES}
PUPIL_GROUPS = {"face_right_pupil": mp_face.RIGHT_PUPIL, "face_left_pupil": mp_face.LEFT_PUPIL}
GROUPS = (*FEATURE_GROUPS, *PUPIL_GROUPS)


@dataclass(frozen=True)
class FaceMesh:
    """One mesh as the capture reads it: world positions (N x 3), its edges (M x 2 vertex
    indices) and the vertices of each face_* vertex group."""

    positions: np.ndarray
    edges: np.ndarray
    groups: Mapping[str, Sequence[int]]

    def has_features(self) -> bool:
        return any(self.groups.get(g) for g in GROUPS)


def face_lines(mesh: FaceMesh, camera: CameraModel) -> mp_face.FaceLines:
    """The mesh's face as the camera sees it, in normalised image positions."""
    px, depth = camera.project(np.asarray(mesh.positions, np.float64).reshape(-1, 3))
    norm = px / np.array([camera.width, camera.height], np.float64)
    norm[~(depth > 0)] = np.nan  # behind the camera: not on the picture
    edges = np.asarray(mesh.edges, np.int64).reshape(-1, 2)
    segments = {}
    for group, feature in FEATURE_GROUPS.items():
        members = np.zeros(len(norm), bool)
        members[list(mesh.groups.get(group, ()))] = True
        inside = edges[members[edges[:, 0]] & members[edges[:, 1]]]
        segments[feature] = [(tuple(norm[a]), tuple(norm[b])) for a, b in inside.tolist()]
    pupils = {}
    for group, index in PUPIL_GROUPS.items():
        members = list(mesh.groups.get(group, ()))
        if members:
            pupils[index] = tuple(norm[members].mean(axis=0))
    grouped = sorted({int(i) for g in GROUPS for i in mesh.groups.get(g, ())})
    extent = norm[grouped]
    return mp_face.FaceLines(segments, pupils, extent[np.isfinite(extent).all(axis=1)])


def face_image(meshes: Sequence[FaceMesh], camera: CameraModel) -> np.ndarray:
    """The control image (H x W x 3 uint8 RGB at the camera's size) of the face meshes."""
    faces = [face_lines(m, camera) for m in meshes if m.has_features()]
    return mp_face.draw((camera.height, camera.width), faces)


def no_face_message() -> str:
    return (
        "No face mesh to draw: give a mesh vertex groups named "
        + ", ".join(GROUPS)
        + " (MediaPipe's contours; left and right are the person's)"
    )
