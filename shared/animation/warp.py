"""Moving pictures along a motion field (backward warping, bilinear).

A `Carry` maps every pixel of the frame being made to a position in a source frame (a
keyframe, or simply the previous frame) and says where that mapping is trusted. Carries
chain one frame at a time: the source position of p in frame t is the source position, in
frame t-1, of where p was in frame t-1. So a keyframe several frames away is reached by
composing the per-frame vectors, never by one long jump the renderer never measured.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def pixel_grid(h: int, w: int) -> np.ndarray:
    """H x W x 2 float32 (x, y) pixel coordinates (integers at pixel centres)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([xs, ys], axis=-1)


def inside(coords: np.ndarray, h: int, w: int) -> np.ndarray:
    """Positions that land on the picture (half a pixel of slack at the border)."""
    x, y = coords[..., 0], coords[..., 1]
    return (x >= -0.5) & (x <= w - 0.5) & (y >= -0.5) & (y <= h - 0.5)


def sample(values: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Bilinear samples of `values` (H x W or H x W x C) at `coords` (... x 2, x then y),
    clamped at the border. Float32 out."""
    v = values.astype(np.float32, copy=False)
    h, w = v.shape[:2]
    x = np.clip(coords[..., 0], 0.0, w - 1.0)
    y = np.clip(coords[..., 1], 0.0, h - 1.0)
    x0 = np.minimum(np.floor(x).astype(np.int64), w - 2) if w > 1 else np.zeros(x.shape, int)
    y0 = np.minimum(np.floor(y).astype(np.int64), h - 2) if h > 1 else np.zeros(y.shape, int)
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    fx = (x - x0).astype(np.float32)
    fy = (y - y0).astype(np.float32)
    if v.ndim == 3:
        fx, fy = fx[..., None], fy[..., None]
    top = v[y0, x0] * (1 - fx) + v[y0, x1] * fx
    bottom = v[y1, x0] * (1 - fx) + v[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def _catmull_rom(t: np.ndarray) -> list[np.ndarray]:
    """Weights of the four taps at offsets -1, 0, 1, 2 for fractions t."""
    t2, t3 = t * t, t * t * t
    return [
        0.5 * (-t3 + 2 * t2 - t),
        0.5 * (3 * t3 - 5 * t2 + 2),
        0.5 * (-3 * t3 + 4 * t2 + t),
        0.5 * (t3 - t2),
    ]


def sample_cubic(values: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Catmull-Rom samples (4 x 4 taps), clamped at the border. A picture warped again and
    again (each frame from the one before) softens with bilinear taps; cubic ones keep most
    of its detail. May overshoot the input range: clip before storing."""
    v = values.astype(np.float32, copy=False)
    h, w = v.shape[:2]
    x = np.clip(coords[..., 0], 0.0, w - 1.0)
    y = np.clip(coords[..., 1], 0.0, h - 1.0)
    x0 = np.floor(x).astype(np.int64)
    y0 = np.floor(y).astype(np.int64)
    wx = _catmull_rom((x - x0).astype(np.float32))
    wy = _catmull_rom((y - y0).astype(np.float32))
    out = np.zeros(coords.shape[:-1] + v.shape[2:], np.float32)
    for j in range(4):
        yj = np.clip(y0 + j - 1, 0, h - 1)
        row = np.zeros_like(out)
        for i in range(4):
            xi = np.clip(x0 + i - 1, 0, w - 1)
            wgt = wx[i][..., None] if v.ndim == 3 else wx[i]
            row += v[yj, xi] * wgt
        out += row * (wy[j][..., None] if v.ndim == 3 else wy[j])
    return out


def sample_nearest(values: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Nearest-pixel samples (for ids and depths, which must not be mixed)."""
    h, w = values.shape[:2]
    x = np.clip(np.rint(coords[..., 0]).astype(np.int64), 0, w - 1)
    y = np.clip(np.rint(coords[..., 1]).astype(np.int64), 0, h - 1)
    return values[y, x]


@dataclass
class Carry:
    coords: np.ndarray  # H x W x 2 float32: position in the source frame
    valid: np.ndarray  # H x W bool: the mapping is trusted there

    @classmethod
    def identity(cls, h: int, w: int) -> Carry:
        return cls(pixel_grid(h, w), np.ones((h, w), bool))

    def step(self, flow: np.ndarray, reliable: np.ndarray) -> Carry:
        """The carry one frame further: `flow` leads from the new frame's pixels into the
        frame this carry maps (to_prev when moving forward in time, to_next backward);
        `reliable` is occlusion.reliable for that step."""
        h, w = flow.shape[:2]
        pos = pixel_grid(h, w) + flow
        coords = sample(self.coords, pos)
        # A pixel whose neighbourhood in the frame before was partly untrusted is not
        # trusted either: bilinear mixing would carry the untrusted colour into it.
        before = sample(self.valid.astype(np.float32), pos) > 0.999
        return Carry(coords, reliable & inside(pos, h, w) & before)

    def apply(self, source: np.ndarray) -> np.ndarray:
        """The source picture (H x W x C uint8) carried into this frame, float32."""
        return sample_cubic(source, self.coords)


def warp(previous: np.ndarray, to_prev: np.ndarray) -> np.ndarray:
    """The previous frame's picture moved into this frame, uint8."""
    h, w = to_prev.shape[:2]
    out = sample_cubic(previous, pixel_grid(h, w) + to_prev)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
