"""One frame's true motion, depth and object ids, and the flow-file format.

Convention everywhere in this package: images are H x W, top row first; a motion field is
H x W x 2 float32 (dx, dy) in pixels with x to the right and y DOWN; pixel p of this frame
shows the surface point that sits at p + to_prev[p] in the frame before and at
p + to_next[p] in the frame after.

Blender's Vector pass (Cycles, motion blur off) is 4 channels in pixels with y UP (X, Y,
Z, W): (X, Y) = position in the previous frame minus position now, and (Z, W) = position
now minus position in the next frame (tests/blender/test_motion_vectors.py checks this
against a scripted motion in real Blender). `from_blender_vector` turns it into ours.

A flow file is one `.npz` per frame (`<prefix><frame:04d>.npz`) holding `to_prev` and
`to_next` (H x W x 2 float32, our convention), and optionally `depth` (H x W float32 view
depth, inf where nothing) and `object_index` (H x W int32, 0 = background).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class MotionError(ValueError):
    """A flow file or motion array that cannot be used, phrased for the artist."""


@dataclass
class FrameMotion:
    to_prev: np.ndarray  # H x W x 2 float32, pixels, y down
    to_next: np.ndarray  # H x W x 2 float32, pixels, y down
    depth: np.ndarray | None = None  # H x W float32, inf where nothing was hit
    object_index: np.ndarray | None = None  # H x W int32, 0 = background

    def __post_init__(self) -> None:
        shape = self.to_prev.shape
        if len(shape) != 3 or shape[2] != 2 or self.to_next.shape != shape:
            raise MotionError(
                f"motion must be two H x W x 2 arrays, got {self.to_prev.shape} and "
                f"{self.to_next.shape}"
            )
        for name in ("depth", "object_index"):
            a = getattr(self, name)
            if a is not None and a.shape != shape[:2]:
                raise MotionError(f"{name} is {a.shape}, the motion is {shape[:2]}")

    @property
    def shape(self) -> tuple[int, int]:
        return self.to_prev.shape[:2]


def from_blender_vector(vector: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(to_prev, to_next) in our convention from Blender's Vector pass (H x W x 4, channels
    X, Y, Z, W, top row first)."""
    v = np.asarray(vector, np.float32)
    if v.ndim != 3 or v.shape[2] != 4:
        raise MotionError(f"Blender's Vector pass has 4 channels, got shape {v.shape}")
    to_prev = np.stack([v[..., 0], -v[..., 1]], axis=-1)
    to_next = np.stack([-v[..., 2], v[..., 3]], axis=-1)
    return to_prev, to_next


def flow_path(folder: str | os.PathLike, frame: int, prefix: str = "frame_") -> Path:
    return Path(folder) / f"{prefix}{frame:04d}.npz"


def save_motion(path: str | os.PathLike, m: FrameMotion) -> None:
    """Write a flow file (through a temporary name, so a file with the final name is whole)."""
    p = Path(path)
    arrays = {"to_prev": m.to_prev, "to_next": m.to_next}
    if m.depth is not None:
        arrays["depth"] = m.depth
    if m.object_index is not None:
        arrays["object_index"] = m.object_index
    tmp = p.with_name(p.name + ".part")
    with tmp.open("wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, p)


def load_motion(path: str | os.PathLike) -> FrameMotion:
    p = Path(path)
    try:
        with np.load(p) as z:
            if "to_prev" not in z or "to_next" not in z:
                raise MotionError(f"{p.name} holds no to_prev/to_next arrays")
            return FrameMotion(
                to_prev=z["to_prev"].astype(np.float32),
                to_next=z["to_next"].astype(np.float32),
                depth=z["depth"].astype(np.float32) if "depth" in z else None,
                object_index=z["object_index"].astype(np.int32) if "object_index" in z else None,
            )
    except (OSError, ValueError) as exc:
        if isinstance(exc, MotionError):
            raise
        raise MotionError(f"cannot read the flow file {p}: {exc}") from None
