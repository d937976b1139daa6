"""The bpy-free face capture: a mesh's face_* vertex groups drawn as the MediaPipe face
annotator draws the same landmarks (the mesh edges inside a group are its connections)."""

from __future__ import annotations

import numpy as np

from blender_addon.core import face
from blender_addon.core.camera import CameraModel
from dreamwire.shared.imaging import mediapipe_face as mp_face

W, H = 160, 128


def look_down_y() -> np.ndarray:
    """A camera at (0, -10, 0) looking along +Y with +Z up."""
    m = np.eye(4)
    m[:3, :3] = [[1, 0, 0], [0, 0, -1], [0, 1, 0]]
    m[:3, 3] = (0.0, -10.0, 0.0)
    return m


def landmark_mesh(seed: int) -> tuple[face.FaceMesh, CameraModel]:
    """A mesh whose vertex i is MediaPipe landmark i on a bumpy surface in front of the
    camera, with the contours' edges, tessellation-like edges that no group holds, and one
    group per feature (the pupils: landmarks 468 and 473)."""
    rng = np.random.default_rng(seed)
    n = mp_face.MESH_POINTS
    pts = np.stack([rng.uniform(-4, 4, n), rng.uniform(-0.5, 0.5, n), rng.uniform(-3, 3, n)], 1)
    contour = [e for f in mp_face.FEATURES for e in mp_face.edges(f)]
    feature_of = {i: f.name for f in mp_face.FEATURES for e in mp_face.edges(f) for i in e}
    pairs = rng.integers(0, n, (300, 2)).tolist()
    # Across features or out of them (the tessellation): never drawn.
    stray = [(a, b) for a, b in pairs if feature_of.get(a, -1) != feature_of.get(b, -2)]
    groups = {
        f"face_{f.name.removeprefix('face_')}": sorted({i for e in mp_face.edges(f) for i in e})
        for f in mp_face.FEATURES
    }
    groups["face_right_pupil"] = [mp_face.RIGHT_PUPIL]
    groups["face_left_pupil"] = [mp_face.LEFT_PUPIL]
    mesh = face.FaceMesh(pts, np.array(contour + stray), groups)
    return mesh, CameraModel(look_down_y(), width=W, height=H, lens=35)


def test_groups_draw_the_annotators_face():
    for seed in range(3):
        mesh, camera = landmark_mesh(seed)
        px, _ = camera.project(mesh.positions)
        landmarks = px / np.array([W, H])
        assert np.isfinite(landmarks).all() and ((landmarks > -0.1) & (landmarks < 1.1)).all()
        want = mp_face.face_map((H, W), [landmarks])
        got = face.face_image([mesh], camera)
        np.testing.assert_array_equal(got, want)
        assert got.any() and set(map(tuple, got.reshape(-1, 3))) > {(0, 0, 0)}


def test_a_vertex_behind_the_camera_drops_its_lines_and_meshes_without_groups_draw_nothing():
    mesh, camera = landmark_mesh(5)
    oval = mesh.groups["face_oval"]
    moved = mesh.positions.copy()
    moved[oval[0]] = (0.0, -20.0, 0.0)  # behind the camera
    behind = face.face_image([face.FaceMesh(moved, mesh.edges, mesh.groups)], camera)
    px, _ = camera.project(mesh.positions)
    landmarks = px / np.array([W, H])
    landmarks[oval[0]] = (-5.0, -5.0)  # the annotator drops a landmark off the picture
    np.testing.assert_array_equal(behind, mp_face.face_map((H, W), [landmarks]))
    assert not np.array_equal(behind, face.face_image([mesh], camera))
    bare = face.FaceMesh(mesh.positions, mesh.edges, {"Group": list(range(10))})
    assert not bare.has_features() and not face.face_image([bare], camera).any()
    assert "face_left_eye" in face.no_face_message()
