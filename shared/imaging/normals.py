"""Camera-space normals -> the normalbae colours ControlNet 1.1's normal model expects.

The normalbae annotator writes ((n + 1) / 2 * 255) truncated to uint8, in the ScanNet
protocol the ControlNet 1.1 README describes: "blue is front, red is left, green is top".
In Blender's camera space (x right, y up, +z towards the viewer) that is
    R = (1 - x) / 2,  G = (1 + y) / 2,  B = (1 + z) / 2
so a surface facing the camera, n = (0, 0, 1), is (127, 127, 255), a surface turned to
the image's left is reddish, one facing up is greenish.
"""

from __future__ import annotations

import numpy as np

FACING = (127, 127, 255)
_NUDGE = 0.01


def world_to_camera_normals(normals: np.ndarray, camera_matrix_world: np.ndarray) -> np.ndarray:
    """World-space normals (... x 3) into camera space, given the camera's 4x4 world matrix
    (only its rotation is used; scale is divided out)."""
    m = np.asarray(camera_matrix_world, dtype=np.float64)[:3, :3]
    rot = m / np.linalg.norm(m, axis=0, keepdims=True)
    return np.asarray(normals, dtype=np.float64) @ rot


def normals_to_image(
    normals_cam: np.ndarray,
    mask: np.ndarray | None = None,
    background: tuple[int, int, int] | None = FACING,
) -> np.ndarray:
    """Camera-space unit normals (H x W x 3) -> H x W x 3 uint8 normalbae colours.

    Pixels outside `mask` get `background`: by default a flat backdrop facing the camera,
    which is what the annotator would estimate for an empty wall; None leaves them as the
    normal data says.
    """
    n = np.asarray(normals_cam, dtype=np.float64)[..., :3]
    length = np.linalg.norm(n, axis=-1, keepdims=True)
    n = np.where(length > 1e-8, n / np.maximum(length, 1e-8), np.array([0.0, 0.0, 1.0]))
    conv = np.stack([-n[..., 0], n[..., 1], n[..., 2]], axis=-1)
    # The annotator truncates; a rendered unit normal is 1 - 1e-7 rather than 1, which
    # would truncate 255 to 254, so nudge by far less than one step before truncating
    # (0 still maps to 127, as in the annotator).
    img = (np.clip((conv + 1.0) * 0.5, 0.0, 1.0) * 255.0 + _NUDGE).astype(np.uint8)
    if mask is not None and background is not None:
        img[~np.asarray(mask, dtype=bool)] = np.asarray(background, dtype=np.uint8)
    return img


def image_to_normals(image: np.ndarray) -> np.ndarray:
    """Inverse of normals_to_image (up to quantisation): uint8 colours -> unit normals."""
    c = np.asarray(image, dtype=np.float64)[..., :3] / 255.0 * 2.0 - 1.0
    n = np.stack([-c[..., 0], c[..., 1], c[..., 2]], axis=-1)
    return n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-8)
