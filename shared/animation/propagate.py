"""Keyframes and propagation (EbSynth-like): which frames are generated, and how the frames
between two keyframes are made from both of them.

A frame between keyframes a and b takes each keyframe carried to it along the true motion
(warp.Carry, chained frame by frame) and blends the two by distance in time: the nearer
keyframe counts more, so the picture hands over from one to the other without a jump.
Where only one keyframe's carry is trusted, that one alone is used; where neither is, the
pixel is left for an inpaint job (the returned `unseen` mask).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .warp import Carry


def keyframes(frames: list[int], every: int, marked: Iterable[int] = ()) -> list[int]:
    """The frames to generate: the first and last of the range, every `every`-th from the
    first, and any marked frame inside the range (sorted)."""
    if not frames:
        return []
    if every < 1:
        raise ValueError("keyframe interval must be 1 or more")
    chosen = set(frames[::every]) | {frames[0], frames[-1]}
    chosen |= set(marked) & set(frames)
    return sorted(chosen)


def blend(
    a_image: np.ndarray,
    a_carry: Carry,
    b_image: np.ndarray,
    b_carry: Carry,
    t: int,
    a: int,
    b: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(H x W x 3 uint8 picture of frame t, H x W bool unseen) from keyframes a < t < b."""
    if not a < t < b:
        raise ValueError(f"frame {t} is not between keyframes {a} and {b}")
    wa = (b - t) / (b - a) * a_carry.valid
    wb = (t - a) / (b - a) * b_carry.valid
    total = wa + wb
    unseen = total <= 0
    safe = np.where(unseen, 1.0, total)
    mixed = (a_carry.apply(a_image) * wa[..., None] + b_carry.apply(b_image) * wb[..., None]) / (
        safe[..., None]
    )
    # Where neither is trusted, the nearer keyframe's carry is a first guess under the mask.
    guess = a_carry.apply(a_image) if t - a <= b - t else b_carry.apply(b_image)
    out = np.where(unseen[..., None], guess, mixed)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), unseen
