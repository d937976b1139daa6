"""World-space normal pass -> normalbae control image, fast.

The same numbers as dreamwire.shared.imaging.normals (world_to_camera_normals, then
normals_to_image: the convention lives there and is tested there), computed in blocks of
pixels with in-place float64 arithmetic in the same order, so the result is identical
byte for byte while the temporaries stay in the CPU cache: about 3x faster on a 1024x1024
pass, where the straightforward version makes a dozen full-size float64 arrays.
"""

from __future__ import annotations

import numpy as np

from dreamwire.shared.imaging.normals import _NUDGE, FACING

# Pixels per block: 64k x 3 float64 = 1.5 MiB, about an L2 cache.
_BLOCK = 1 << 16


def camera_rotation(camera_matrix_world: np.ndarray) -> np.ndarray:
    """World -> camera rotation for row vectors (n @ rot), scale divided out."""
    m = np.asarray(camera_matrix_world, dtype=np.float64)[:3, :3]
    return m / np.linalg.norm(m, axis=0, keepdims=True)


def normal_image(
    normal_world: np.ndarray,
    camera_matrix_world: np.ndarray,
    mask: np.ndarray | None = None,
    background: tuple[int, int, int] | None = FACING,
) -> np.ndarray:
    """H x W x 3 world-space normals -> H x W x 3 uint8 normalbae colours; pixels outside
    `mask` get `background` (None: leave them as the normal data says)."""
    n = np.asarray(normal_world)[..., :3]
    shape = n.shape[:-1]
    flat = n.reshape(-1, 3)
    rot = camera_rotation(camera_matrix_world)
    out = np.empty(flat.shape, dtype=np.uint8)
    for start in range(0, flat.shape[0], _BLOCK):
        c = flat[start : start + _BLOCK].astype(np.float64) @ rot
        sq = c * c
        length = np.sqrt((sq[:, 0] + sq[:, 1]) + sq[:, 2])  # np.linalg.norm's order
        divisor = np.maximum(length, 1e-8)
        for k in range(3):  # column by column: faster than a broadcast, same quotients
            np.divide(c[:, k], divisor, out=c[:, k])
        missing = ~(length > 1e-8)
        if missing.any():  # a masked assignment costs more than all the arithmetic
            c[missing] = (0.0, 0.0, 1.0)  # no normal: facing the camera
        c[:, 0] *= -1.0  # red is left
        c += 1.0
        c *= 0.5
        np.minimum(np.maximum(c, 0.0, out=c), 1.0, out=c)  # np.clip, at half the cost
        c *= 255.0
        c += _NUDGE
        out[start : start + _BLOCK] = c  # truncates, as the annotator does
    img = out.reshape(*shape, 3)
    if mask is not None and background is not None:
        outside = ~np.asarray(mask, dtype=bool)[..., None]
        np.copyto(img, np.asarray(background, dtype=np.uint8), where=outside)
    return img
