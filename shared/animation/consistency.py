"""The temporal-consistency score: how much each output frame differs from the frame before
it carried along the true motion, on the pixels the motion can carry (occlusion.reliable).
A sequence that sticks to the surfaces scores near 0; independent frames that each put
their detail somewhere else score high. Mean absolute difference in 0..255 units.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from .motion import FrameMotion
from .occlusion import OcclusionSettings, reliable
from .warp import warp


@dataclass
class PairScore:
    frame: int
    error: float  # mean |frame - warped previous| over the carried pixels
    carried: float  # share of pixels the score looked at


def pair_error(
    previous: np.ndarray,
    current: np.ndarray,
    here: FrameMotion,
    there: FrameMotion,
    s: OcclusionSettings | None = None,
) -> tuple[float, float]:
    ok = reliable(here, there, True, s or OcclusionSettings())
    if not ok.any():
        return 0.0, 0.0
    moved = warp(previous, here.to_prev).astype(np.float32)
    diff = np.abs(current[..., :3].astype(np.float32) - moved[..., :3]).mean(axis=-1)
    return float(diff[ok].mean()), float(ok.mean())


def score(
    frames: list[int], images: dict, motions: dict, s: OcclusionSettings | None = None
) -> list[PairScore]:
    """One PairScore per consecutive pair (frame t against t-1 carried to it); `s` picks
    the tests that decide which pixels count (OcclusionSettings(surface_tests=False): the
    pixel set the bench's earlier numbers were scored on)."""
    out = []
    for a, b in pairwise(frames):
        err, carried = pair_error(images[a], images[b], motions[b], motions[a], s)
        out.append(PairScore(b, err, carried))
    return out
