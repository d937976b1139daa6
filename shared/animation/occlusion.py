"""Which pixels the true motion can carry from one frame into the next, and which must be
generated: those the other frame did not show (disocclusions), those that leave the
picture, and those where the motion is not to be trusted.

Three tests, each catching what the others miss: forward-backward consistency (going to
the other frame and back must return to the same pixel: fails where a surface was hidden
or the vectors mix two objects at an outline), an object-index change (the other frame
shows another object there: one object passed in front of another), and a depth test
(the other frame's surface there is at another depth: a turning object hiding part of
itself, which keeps its index).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .motion import FrameMotion
from .warp import inside, pixel_grid, sample, sample_nearest


@dataclass(frozen=True)
class OcclusionSettings:
    # Round-trip error allowed, in pixels, plus a share of the motion's length (vectors are
    # sampled bilinearly, so a long move carries a slightly larger error).
    fb_pixels: float = 0.75
    fb_share: float = 0.05
    # Depth change allowed between the two frames, as a share of the depth: a camera that
    # dollies changes every depth a little each frame.
    depth_share: float = 0.1
    # Pixels the mask grows by: a generated patch needs some context to blend in.
    grow: int = 2
    # Depth step between neighbouring pixels, as a share of the nearer depth, above which
    # they are on different surfaces and the mask does not grow across (grow's `surface`).
    edge_share: float = 0.05


def reliable(
    here: FrameMotion, there: FrameMotion, forward: bool, s: OcclusionSettings
) -> np.ndarray:
    """H x W bool: pixels of `here` that the motion carries from `there`, the frame just
    before (`forward`: moving forward in time, along here.to_prev) or just after."""
    flow = here.to_prev if forward else here.to_next
    back = there.to_next if forward else there.to_prev
    if there.shape != here.shape:
        raise ValueError(f"frames of different sizes: {here.shape} and {there.shape}")
    h, w = here.shape
    grid = pixel_grid(h, w)
    pos = grid + flow
    ok = inside(pos, h, w)
    round_trip = pos + sample(back, pos) - grid
    err = np.hypot(round_trip[..., 0], round_trip[..., 1])
    ok &= err <= s.fb_pixels + s.fb_share * np.hypot(flow[..., 0], flow[..., 1])
    if here.object_index is not None and there.object_index is not None:
        ok &= sample_nearest(there.object_index, pos) == here.object_index
    if here.depth is not None and there.depth is not None:
        z0 = here.depth
        z1 = sample_nearest(there.depth, pos)
        f0, f1 = np.isfinite(z0), np.isfinite(z1)
        with np.errstate(invalid="ignore"):
            near = np.abs(z1 - z0) <= s.depth_share * np.where(f0, z0, 0)
        ok &= (f0 & f1 & near) | (~f0 & ~f1)
    return ok


_NEIGHBOURS = ((-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))


def _shifted(a: np.ndarray, dy: int, dx: int, fill) -> np.ndarray:
    """`a` moved by (dy, dx): out[y, x] = a[y - dy, x - dx], `fill` where that is outside."""
    h, w = a.shape
    out = np.full_like(a, fill)
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = a[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def _same_surface(surface: FrameMotion, dy: int, dx: int, edge_share: float) -> np.ndarray:
    """H x W bool: pixel (y, x) lies on the same surface as its neighbour (y - dy, x - dx):
    the same object and no depth step above `edge_share` of the nearer depth."""
    h, w = surface.shape
    same = np.ones((h, w), bool)
    if surface.object_index is not None:
        same &= _shifted(surface.object_index, dy, dx, -1) == surface.object_index
    if surface.depth is not None:
        z0 = surface.depth
        z1 = _shifted(z0, dy, dx, np.nan)
        f0, f1 = np.isfinite(z0), np.isfinite(z1)
        with np.errstate(invalid="ignore"):
            near = np.abs(z1 - z0) <= edge_share * np.minimum(z0, z1)
        same &= (f0 & f1 & near) | (~f0 & ~f1 & ~np.isnan(z1))
    return same


def grow(
    mask: np.ndarray,
    pixels: int,
    surface: FrameMotion | None = None,
    edge_share: float = 0.05,
) -> np.ndarray:
    """The mask grown by `pixels` in every direction (a square neighbourhood). With a
    `surface` (the frame's depth and object ids), growth stays on the surface it starts
    from: a generated patch needs context to blend into the surface it continues, not
    into a nearer limb or object whose outline is an edge anyway; growing across such an
    edge would regenerate thin, correctly carried occluders (a limb in front of its own
    torso) whole."""
    out = mask.astype(bool, copy=True)
    steps = [
        (dy, dx, None if surface is None else _same_surface(surface, dy, dx, edge_share))
        for dy, dx in _NEIGHBOURS
    ]
    for _ in range(max(0, int(pixels))):
        grown = out.copy()
        for dy, dx, same in steps:
            moved = _shifted(out, dy, dx, False)
            grown |= moved if same is None else moved & same
        out = grown
    return out


def to_mask(regenerate: np.ndarray) -> np.ndarray:
    """A job's inpaint mask (H x W uint8, 255 = generate) from a bool array."""
    return np.where(regenerate, 255, 0).astype(np.uint8)
