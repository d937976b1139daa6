"""Mask feathering, growing and shrinking in plain numpy (hosts have no cv2/scipy).

Masks are H x W arrays; uint8 (0..255) or float (0..1) in, same kind out. Feathering is
the Gaussian blur A1111 applies as "mask blur": kernel size 2 * int(2.5 * sigma + 0.5) + 1
with mirrored borders (OpenCV's BORDER_REFLECT_101).
"""

from __future__ import annotations

import numpy as np


def gaussian_kernel(sigma: float) -> np.ndarray:
    radius = int(2.5 * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return k / k.sum()


def _blur_axis(a: np.ndarray, k: np.ndarray, axis: int) -> np.ndarray:
    r = len(k) // 2
    if r == 0:
        return a
    n = a.shape[axis]
    if n == 1:
        return a
    pad = [(0, 0)] * a.ndim
    pad[axis] = (r, r)
    # reflect101 needs the axis longer than the radius; fall back to edge padding when not.
    mode = "reflect" if n > r else "edge"
    p = np.pad(a, pad, mode=mode)
    out = np.zeros_like(a)
    for i, w in enumerate(k):
        sl = [slice(None)] * a.ndim
        sl[axis] = slice(i, i + n)
        out += w * p[tuple(sl)]
    return out


def _as_float(mask: np.ndarray):
    m = np.asarray(mask)
    if m.dtype == np.uint8:
        return m.astype(np.float64) / 255.0, True
    if m.dtype == bool:
        return m.astype(np.float64), False
    return m.astype(np.float64), False


def _back(m: np.ndarray, was_uint8: bool, dtype) -> np.ndarray:
    if was_uint8:
        return np.clip(m * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if np.dtype(dtype) == np.bool_:
        return m.astype(np.float32)  # a feathered boolean mask is no longer boolean
    return m.astype(dtype)


def feather(mask: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-feathered mask (sigma in pixels; 0 returns the mask unchanged)."""
    mask = np.asarray(mask)
    if sigma <= 0:
        return mask.copy()
    m, u8 = _as_float(mask)
    k = gaussian_kernel(sigma)
    m = _blur_axis(_blur_axis(m, k, 1), k, 0)
    return _back(m, u8, mask.dtype)


def _shift_max(m: np.ndarray, cross: bool, op) -> np.ndarray:
    p = np.pad(m, 1, mode="edge")
    h, w = m.shape
    out = m.copy()
    offsets = [(0, 1), (2, 1), (1, 0), (1, 2)]
    if not cross:
        offsets += [(0, 0), (0, 2), (2, 0), (2, 2)]
    for dy, dx in offsets:
        out = op(out, p[dy : dy + h, dx : dx + w])
    return out


def _morph(mask: np.ndarray, pixels: int, op) -> np.ndarray:
    mask = np.asarray(mask)
    m, u8 = _as_float(mask)
    # Alternating 3x3 square and cross steps approximate a disk (an octagon) cheaply.
    for i in range(int(pixels)):
        m = _shift_max(m, cross=(i % 2 == 1), op=op)
    if mask.dtype == np.bool_:
        return m > 0.5
    return _back(m, u8, mask.dtype)


def grow(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Dilate the mask by about `pixels` in every direction (negative shrinks)."""
    if pixels < 0:
        return shrink(mask, -pixels)
    return _morph(mask, pixels, np.maximum)


def shrink(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Erode the mask by about `pixels` (negative grows)."""
    if pixels < 0:
        return grow(mask, -pixels)
    return _morph(mask, pixels, np.minimum)
