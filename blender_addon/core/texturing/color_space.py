"""sRGB <-> CIELAB (D65), in plain numpy.

Colour matching compares views in a perceptual space: CIELAB separates lightness from the
two opponent colour axes, so matching each channel's mean and spread moves brightness and
tint independently, and equal steps look roughly equally large everywhere (in sRGB, a
brightness change would also shift the hue of saturated colours).

The chain is the standard one: sRGB 8-bit values -> linear light (IEC 61966-2-1 transfer
curve) -> CIE XYZ (sRGB primaries, D65 white) -> L*a*b* relative to the D65 reference
white. No chromatic adaptation is needed because sRGB's white already is D65.
"""

from __future__ import annotations

import numpy as np

# Linear sRGB -> XYZ for the sRGB primaries and D65 white (IEC 61966-2-1, to 7 places as
# Lindbloom tabulates it). Its rows sum to the white point below, so sRGB white maps to
# L* = 100, a* = b* = 0 exactly.
_RGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
D65_WHITE = _RGB_TO_XYZ.sum(axis=1)  # (0.95047, 1.0, 1.08883)

# CIE's constants for the cube-root curve and its linear toe near black.
_DELTA = 6.0 / 29.0


def srgb_to_linear(rgb255: np.ndarray) -> np.ndarray:
    c = np.asarray(rgb255, np.float64) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """Linear light to sRGB 0..255 (float, clipped to the displayable range)."""
    c = np.clip(np.asarray(linear, np.float64), 0.0, 1.0)
    s = np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1.0 / 2.4) - 0.055)
    return s * 255.0


def _f(t: np.ndarray) -> np.ndarray:
    return np.where(t > _DELTA**3, np.cbrt(t), t / (3.0 * _DELTA**2) + 4.0 / 29.0)


def _f_inv(t: np.ndarray) -> np.ndarray:
    return np.where(t > _DELTA, t**3, 3.0 * _DELTA**2 * (t - 4.0 / 29.0))


def srgb_to_lab(rgb255: np.ndarray) -> np.ndarray:
    """... x 3 sRGB values (0..255) to ... x 3 L*a*b* (L* 0..100)."""
    xyz = srgb_to_linear(rgb255) @ _RGB_TO_XYZ.T
    f = _f(xyz / D65_WHITE)
    lightness = 116.0 * f[..., 1] - 16.0
    a = 500.0 * (f[..., 0] - f[..., 1])
    b = 200.0 * (f[..., 1] - f[..., 2])
    return np.stack([lightness, a, b], axis=-1)


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """... x 3 L*a*b* to sRGB 0..255 floats; colours outside the sRGB gamut are clipped."""
    lab = np.asarray(lab, np.float64)
    fy = (lab[..., 0] + 16.0) / 116.0
    fx = fy + lab[..., 1] / 500.0
    fz = fy - lab[..., 2] / 200.0
    xyz = _f_inv(np.stack([fx, fy, fz], axis=-1)) * D65_WHITE
    return linear_to_srgb(xyz @ _XYZ_TO_RGB.T)
