"""DAAM attention maps as Krita overlays: a greyscale map (0..255, the backend's, min-max
normalised) coloured with a jet-like ramp, half transparent, as DAAM's plots lay its maps
over the image."""

from __future__ import annotations

import numpy as np

OVERLAY_ALPHA = 128  # DAAM's overlay shows the picture through the map at about half

# Jet's corners: dark blue, blue, cyan, yellow, red, dark red (matplotlib's jet).
_STOPS = np.array([0.0, 0.125, 0.375, 0.625, 0.875, 1.0])
_RGB = np.array(
    [[0, 0, 0.5], [0, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0], [0.5, 0, 0]], dtype=np.float64
)


def overlay(grey: np.ndarray) -> np.ndarray:
    """H x W uint8 map -> H x W x 4 uint8 overlay: blue where the word drew no attention,
    red where it drew the most."""
    t = grey.astype(np.float64) / 255.0
    rgb = np.stack([np.interp(t, _STOPS, _RGB[:, c]) for c in range(3)], axis=-1)
    out = np.empty(grey.shape + (4,), np.uint8)
    out[..., :3] = np.round(rgb * 255)
    out[..., 3] = OVERLAY_ALPHA
    return out
