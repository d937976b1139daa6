"""Krita pixel bytes <-> numpy arrays, and the colour-space policy.

Krita's 8-bit RGBA pixel data is laid out B, G, R, A (its little-endian ARGB32 heritage);
the wire wants R, G, B(, A). Only 8-bit RGBA is handled here: every other colour model or
depth is converted by Krita itself first (it knows the profiles), see `colour_plan`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WIRE_MODEL = "RGBA"
WIRE_DEPTH = "U8"
WIRE_PROFILE = "sRGB-elle-V2-srgbtrc.icc"

# Models Krita can convert to sRGB without losing the meaning of the picture.
CONVERTIBLE_MODELS = ("RGBA", "GRAYA", "CMYKA", "LABA", "XYZA", "YCbCrA")
KNOWN_DEPTHS = ("U8", "U16", "F16", "F32")


@dataclass(frozen=True)
class ColourPlan:
    convert: bool  # True: Krita converts to 8-bit sRGB RGBA for sending and back for results
    refuse: str = ""  # non-empty: the reason this document cannot be used
    note: str = ""  # shown to the artist when a conversion happens


def colour_plan(model: str, depth: str, profile: str = "") -> ColourPlan:
    if model not in CONVERTIBLE_MODELS or depth not in KNOWN_DEPTHS:
        return ColourPlan(
            convert=False,
            refuse=f"Dreamwire cannot use a {model}/{depth} document; convert it to RGB "
            "(Image > Convert Image Color Space) first.",
        )
    if model == WIRE_MODEL and depth == WIRE_DEPTH and (not profile or "srgb" in profile.lower()):
        return ColourPlan(convert=False)
    return ColourPlan(
        convert=True,
        note=f"{model}/{depth} is sent as 8-bit sRGB; results are converted back to {model}/{depth}.",
    )


def bgra_to_rgba(data: bytes, w: int, h: int) -> np.ndarray:
    buf = np.frombuffer(bytes(data), dtype=np.uint8)
    if buf.size != w * h * 4:
        raise ValueError(f"expected {w * h * 4} bytes of 8-bit RGBA for {w}x{h}, got {buf.size}")
    return buf.reshape(h, w, 4)[:, :, [2, 1, 0, 3]].copy()


def rgba_to_bgra(img: np.ndarray) -> bytes:
    """H x W x 3|4 uint8 RGB(A) -> Krita 8-bit BGRA bytes (opaque when there is no alpha)."""
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"expected H x W x 3|4 uint8, got {img.dtype} {img.shape}")
    h, w = img.shape[:2]
    out = np.empty((h, w, 4), np.uint8)
    out[:, :, 0] = img[:, :, 2]
    out[:, :, 1] = img[:, :, 1]
    out[:, :, 2] = img[:, :, 0]
    out[:, :, 3] = img[:, :, 3] if img.shape[2] == 4 else 255
    return out.tobytes()


def mask_from_bytes(data: bytes, w: int, h: int) -> np.ndarray:
    """A Krita selection's pixel data (one byte per pixel, 255 = selected)."""
    buf = np.frombuffer(bytes(data), dtype=np.uint8)
    if buf.size != w * h:
        raise ValueError(f"expected {w * h} selection bytes for {w}x{h}, got {buf.size}")
    return buf.reshape(h, w).copy()


def flatten_rgb(rgba: np.ndarray, background: int = 255) -> np.ndarray:
    """Composite RGBA over a flat grey level; the diffusion models take RGB."""
    if rgba.shape[2] == 3:
        return rgba
    a = rgba[:, :, 3:4].astype(np.uint16)
    rgb = rgba[:, :, :3].astype(np.uint16)
    out = (rgb * a + background * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def content_bounds(alpha: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x, y, w, h) of the pixels with any opacity, or None when all are transparent."""
    ys, xs = np.nonzero(alpha)
    if ys.size == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)
