"""Layers marked as control images: the marks, how they are stored, and their pixels.

A mark lives with the document (Krita document annotation, keyed by the layer's unique
id), so it survives saving a .kra and renaming or moving the layer.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

from dreamwire.shared.job import ControlUnit

from .pixels import flatten_rgb

ANNOTATION_TYPE = "dreamwire/controls"

# Docker label -> ControlNet type on the wire (A1111 ControlNet extension names).
TYPES = {
    "Scribble": "scribble",
    "Line art": "lineart",
    "Depth": "depth",
    "Normals": "normalbae",
    "Pose": "openpose",
    "Segmentation": "seg",
    "Canny": "canny",
    "Soft edge": "softedge",
    "Shuffle / reference": "shuffle",
}
# Drawn as strokes: the model wants white lines on black.
LINE_TYPES = {"scribble", "lineart", "softedge", "canny", "mlsd"}


@dataclass
class ControlMark:
    type: str  # wire type, a value of TYPES
    weight: float = 1.0
    start: float = 0.0
    end: float = 1.0

    def __post_init__(self) -> None:
        if self.type not in TYPES.values():
            raise ValueError(f"unknown control type {self.type!r}")
        if not 0.0 <= self.start <= self.end <= 1.0:
            raise ValueError("control start/end must satisfy 0 <= start <= end <= 1")
        if not 0.0 <= self.weight <= 2.0:
            raise ValueError("control weight must be within 0..2")


def dump_marks(marks: dict[str, ControlMark]) -> bytes:
    return json.dumps({k: asdict(v) for k, v in sorted(marks.items())}).encode()


def load_marks(data: bytes | None) -> dict[str, ControlMark]:
    """Marks from an annotation; a damaged entry is dropped rather than blocking the docker."""
    if not data:
        return {}
    try:
        raw = json.loads(bytes(data).decode())
    except (ValueError, UnicodeDecodeError):
        return {}
    out = {}
    if isinstance(raw, dict):
        for key, val in raw.items():
            try:
                out[str(key)] = ControlMark(**val)
            except (TypeError, ValueError):
                continue
    return out


def control_image(rgba: np.ndarray, wire_type: str) -> np.ndarray:
    """The RGB image a ControlNet of this type expects, from a layer's RGBA pixels.

    Line types: a sketch on a transparent layer is its opacity (white strokes on black);
    an opaque light sketch (dark lines on paper) is inverted. Everything else (depth,
    normals, pose, segmentation, reference) is used as painted, over black.
    """
    if wire_type in LINE_TYPES:
        alpha = rgba[:, :, 3]
        if alpha.min() < 255:
            grey = alpha
        else:
            luma = rgba[:, :, :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
            grey = np.clip(luma + 0.5, 0, 255).astype(np.uint8)
            if grey.mean() > 127:
                grey = 255 - grey
        return np.repeat(grey[:, :, None], 3, axis=2)
    return flatten_rgb(rgba, background=0)


def control_unit(mark: ControlMark, rgba: np.ndarray) -> ControlUnit:
    return ControlUnit(
        type=mark.type,
        image=control_image(rgba, mark.type),
        weight=mark.weight,
        start=mark.start,
        end=mark.end,
    )
