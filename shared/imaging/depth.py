"""ControlNet depth maps from a rendered Z buffer.

ControlNet's depth models were trained on MiDaS output: near is bright, far is dark, the
values normalised per image over what is visible. A render gives a linear Z buffer
(camera-space distance along the view axis); background pixels carry no geometry (inf,
NaN, or a huge value such as Cycles' 1e10) and are drawn black.
"""

from __future__ import annotations

import numpy as np

# Cycles and EEVEE write 1e10 where a ray hits nothing.
BACKGROUND_Z = 1e9


def geometry_mask(z: np.ndarray, far_limit: float = BACKGROUND_Z) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    return np.isfinite(z) & (z > 0) & (z < far_limit)


def normalize_depth(
    z: np.ndarray,
    *,
    mode: str = "linear",
    gamma: float = 1.0,
    floor: float = 0.0,
    far_limit: float = BACKGROUND_Z,
) -> np.ndarray:
    """H x W float32 in [0, 1]: 1 at the nearest visible surface, 0 at the farthest and on
    the background.

    mode "linear" spreads Z evenly; "inverse" spreads 1/Z (disparity, as MiDaS does), which
    gives near objects more of the range. gamma != 1 bends the curve (values ** gamma).
    floor > 0 lifts the farthest geometry to that value so it stays apart from the
    background (MiDaS, and so the default, puts it at 0 like the background).
    """
    if mode not in ("linear", "inverse"):
        raise ValueError(f"mode must be 'linear' or 'inverse', not {mode!r}")
    if gamma <= 0:
        raise ValueError("gamma must be positive")
    if not 0.0 <= floor < 1.0:
        raise ValueError("floor must be in [0, 1)")
    z = np.asarray(z, dtype=np.float64)
    if z.ndim == 3:
        z = z[..., 0]
    valid = geometry_mask(z, far_limit)
    out = np.zeros(z.shape, dtype=np.float32)
    if not valid.any():
        return out
    zv = z[valid]
    if mode == "inverse":
        zv = 1.0 / zv
        lo, hi = zv.min(), zv.max()
        t = (zv - lo) / (hi - lo) if hi > lo else np.ones_like(zv)
    else:
        lo, hi = zv.min(), zv.max()
        t = (hi - zv) / (hi - lo) if hi > lo else np.ones_like(zv)
    if gamma != 1.0:
        t = t**gamma
    if floor:
        t = floor + (1.0 - floor) * t
    out[valid] = t.astype(np.float32)
    return out


def depth_to_image(depth01: np.ndarray) -> np.ndarray:
    """[0, 1] depth -> H x W x 3 uint8, the grey RGB image ControlNet takes."""
    v = np.clip(np.asarray(depth01, dtype=np.float64) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.repeat(v[..., None], 3, axis=2)


def depth_image(z: np.ndarray, **kwargs) -> np.ndarray:
    """Z buffer -> ControlNet depth control image (H x W x 3 uint8)."""
    return depth_to_image(normalize_depth(z, **kwargs))
