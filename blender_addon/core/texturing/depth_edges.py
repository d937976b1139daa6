"""Distance to the nearest depth discontinuity in a view's z-buffer, in pixels.

A generated image never lines up with the geometry to the pixel: along a silhouette the
model's outline wanders a pixel or two either way, so the foreground's colour lands on the
surface behind it and the background's on the foreground's rim (StableGen issue #66: a
character's outline printed onto the wall behind it). Those pixels are exactly the ones
next to a jump in depth, so projection lowers a view's weight smoothly to (almost) zero
toward such jumps and leaves the surface there to views that see it away from an edge.

A discontinuity is a step between neighbouring pixels that the surface's own slope does
not explain: on a tilted plane the depth changes a lot per pixel too, but steadily, and at
a crease the step lies between the slopes of the two faces. So the step is compared with
the steps just before and just after it, and only a step beyond both of them by more than
`rel_jump` times the depth counts. A drawn pixel next to an empty one (the
object's outline against nothing) is always an edge.
"""

from __future__ import annotations

import math

import numpy as np


def _row_edges(z: np.ndarray, rel_jump: float) -> np.ndarray:
    """Edges between horizontal neighbours (both pixels of each edge pair marked)."""
    h, w = z.shape
    out = np.zeros((h, w), bool)
    if w < 2:
        return out
    finite = np.isfinite(z)
    zf = np.where(finite, z, np.nan)
    a, b = zf[:, :-1], zf[:, 1:]
    step = b - a
    # The steps on either side of each pair (NaN past the image or next to empty pixels).
    pad = np.full((h, 1), np.nan)
    before = np.concatenate([pad, step[:, :-1]], axis=1)
    after = np.concatenate([step[:, 1:], pad], axis=1)
    with np.errstate(invalid="ignore"):
        # A crease (two faces meeting) bends the slope: its step lies between the steps
        # before and after it. A jump lies outside that range; by how much is the residual.
        # NaN (a side next to an empty pixel or the image border) compares false: such
        # a pair is left to the outline test. One slope cannot tell a corner of the face
        # from a jump, and the pixel beside the empty one is an edge anyway, so the
        # feather still reaches past it.
        lo = np.minimum(before, after)
        hi = np.maximum(before, after)
        residual = np.maximum(np.maximum(lo - step, step - hi), 0.0)
        jump = residual > rel_jump * np.fmin(a, b)
    jump &= finite[:, :-1] & finite[:, 1:]
    jump |= finite[:, :-1] ^ finite[:, 1:]
    out[:, :-1] |= jump
    out[:, 1:] |= jump
    return out


def depth_edges(depth: np.ndarray, rel_jump: float = 0.03) -> np.ndarray:
    """H x W bool: pixels on either side of a depth discontinuity (depth inf = empty)."""
    z = np.asarray(depth, np.float64)
    return _row_edges(z, rel_jump) | _row_edges(z.T, rel_jump).T


def _min_plus_1d(cost: np.ndarray, radius: int, axis: int) -> np.ndarray:
    """out[i] = min over |d| <= radius of cost[i + d] + d * d, along `axis`."""
    out = cost.copy()
    n = cost.shape[axis]
    for d in range(1, min(radius, n - 1) + 1):
        lo = [slice(None)] * cost.ndim
        hi = [slice(None)] * cost.ndim
        lo[axis], hi[axis] = slice(0, n - d), slice(d, n)
        lo_t, hi_t = tuple(lo), tuple(hi)
        out[lo_t] = np.minimum(out[lo_t], cost[hi_t] + d * d)
        out[hi_t] = np.minimum(out[hi_t], cost[lo_t] + d * d)
    return out


def edge_distance(depth: np.ndarray, max_px: float, rel_jump: float = 0.03) -> np.ndarray:
    """H x W float32: Euclidean distance (pixel centres) to the nearest depth-edge pixel,
    capped at `max_px` (exact up to the cap; farther pixels all read `max_px`)."""
    edges = depth_edges(depth, rel_jump)
    radius = max(1, math.ceil(max_px))
    # Squared distance transform, separable: rows then columns (exact within the radius).
    cost = np.where(edges, 0.0, np.inf)
    sq = _min_plus_1d(_min_plus_1d(cost, radius, axis=1), radius, axis=0)
    return np.minimum(np.sqrt(sq), max_px).astype(np.float32)
