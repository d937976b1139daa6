"""Filling the texels that no view saw, from their neighbours on the mesh.

A UV texture is cut into islands, so "neighbouring texel" has two meanings: inside an
island it is the next texel in the image, and at an island's border it is the texel on
the other side of the same mesh edge, which may lie anywhere in the texture (a UV seam).
`texel_graph` links both kinds; `fill_unseen` spreads colour from the texels the views
covered through those links, one ring per wave (each new texel takes the weighted mean of
its already filled neighbours), up to a distance limit. What the waves do not reach within
the limit is a hole for the UV inpaint pass (uv_inpaint.py), holding a first guess from
the nearest known colours.

Corners are welded by quantised world position, so it works on per-corner triangle data
(bpy_data.MeshTris) and also joins faces whose vertices were split (Edge Split).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from .projection import uv_to_pixels
from .rasterize import dilate, rasterize

# Accumulated view weight below which a texel counts as unseen: with the default bake
# settings one view at about 68 degrees from the normal gives this much.
SEEN_WEIGHT = 0.05
# Corners closer than this fraction of the mesh's size are one vertex.
WELD_FRACTION = 1e-6
# Two UVs of one vertex closer than this (in texels) are the same UV: no seam there.
SEAM_TEXELS = 1e-3
# How far into an island (texels) a point on its border edge is moved to find its texel.
_NUDGES = (0.5, 1.0, 1.5)


class TexelState(IntEnum):
    COVERED = 0  # the views determine it
    DILATED = 1  # filled from its neighbours within the distance limit
    INPAINTED = 2  # filled by the UV inpaint pass
    EMPTY = 3  # nothing reached it


# The 8 image neighbours (dy, dx) and their link weights (diagonals are farther).
_OFFSETS = ((0, 1), (1, 0), (1, 1), (1, -1), (0, -1), (-1, 0), (-1, -1), (-1, 1))
_OFFSET_WEIGHTS = np.array([1.0, 1.0, 0.7071, 0.7071, 1.0, 1.0, 0.7071, 0.7071])


@dataclass
class TexelGraph:
    """Links between the texels of a texture's UV islands; texels are numbered row-major
    over `mask` (as TexelSurface's points). Every link exists both ways."""

    mask: np.ndarray  # H x W bool, texels some UV triangle covers (as TexelSurface.mask)
    grid: np.ndarray  # N x 8 int64, the image neighbour in each of _OFFSETS, -1 if none
    # Links across UV seams (weight 1): texel i's are seam_nbr[seam_indptr[i]:...[i + 1]].
    seam_indptr: np.ndarray  # N + 1 int64
    seam_nbr: np.ndarray  # S int64

    @property
    def seam_links(self) -> int:
        return int(self.seam_nbr.size)


@dataclass
class TexelFill:
    colors: np.ndarray  # N x C float32 per texel; holes hold a first guess
    state: np.ndarray  # N int8, TexelState per texel

    @property
    def holes(self) -> np.ndarray:
        return self.state == TexelState.EMPTY


def weld_vertices(world_tris: np.ndarray) -> np.ndarray:
    """T x 3 vertex ids: corners at the same (quantised) world position share one."""
    pts = np.asarray(world_tris, np.float64).reshape(-1, 3)
    if pts.size == 0:
        return np.zeros((0, 3), np.int64)
    lo = pts.min(axis=0)
    size = float(np.linalg.norm(pts.max(axis=0) - lo)) or 1.0
    # Each axis quantised to at most 1 / WELD_FRACTION steps (< 2^20): one int64 key per
    # corner, which sorts far faster than rows.
    q = np.round((pts - lo) / (size * WELD_FRACTION)).astype(np.int64)
    key = (q[:, 0] << 42) | (q[:, 1] << 21) | q[:, 2]
    _, ids = np.unique(key, return_inverse=True)
    return ids.reshape(-1, 3)


@dataclass
class _SharedEdges:
    """Pairs of triangle edges that are one mesh edge, each with its two UV positions."""

    tri_a: np.ndarray  # P
    tri_b: np.ndarray  # P
    a0: np.ndarray  # P x 2 pixel position of the edge's lower-id vertex on triangle a
    a1: np.ndarray  # P x 2 ... of its other vertex
    b0: np.ndarray
    b1: np.ndarray

    @property
    def seam(self) -> np.ndarray:
        d = np.maximum(np.abs(self.a0 - self.b0).max(axis=1), np.abs(self.a1 - self.b1).max(axis=1))
        return d > SEAM_TEXELS


def _shared_edges(vid: np.ndarray, pix: np.ndarray) -> _SharedEdges:
    # Edge k of a triangle runs from corner k to corner k + 1 (mod 3).
    tri = np.repeat(np.arange(vid.shape[0]), 3)
    v0, v1 = vid.reshape(-1), vid[:, [1, 2, 0]].reshape(-1)
    q0, q1 = pix.reshape(-1, 2), pix[:, [1, 2, 0]].reshape(-1, 2)
    swap = v0 > v1
    lo, hi = np.where(swap, v1, v0), np.where(swap, v0, v1)
    p_lo = np.where(swap[:, None], q1, q0)
    p_hi = np.where(swap[:, None], q0, q1)
    ok = lo != hi
    tri, lo, hi, p_lo, p_hi = tri[ok], lo[ok], hi[ok], p_lo[ok], p_hi[ok]
    # One int64 key per edge; the stable sort keeps triangle order within an edge.
    order = np.argsort(lo * (int(vid.max(initial=0)) + 1) + hi, kind="stable")
    lo, hi = lo[order], hi[order]
    # Every later edge of a run of equal (lo, hi) pairs with the run's first one; a
    # manifold edge is a run of two.
    starts = np.ones(lo.size, bool)
    starts[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])
    first = np.maximum.accumulate(np.where(starts, np.arange(lo.size), 0))
    other = np.nonzero(~starts)[0]
    a, b = order[first[other]], order[other]
    return _SharedEdges(tri[a], tri[b], p_lo[a], p_hi[a], p_lo[b], p_hi[b])


def _components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected-component label (the smallest member) of n nodes linked by a-b."""
    label = np.arange(n)
    while True:
        m = np.minimum(label[a], label[b])
        new = label.copy()
        np.minimum.at(new, a, m)
        np.minimum.at(new, b, m)
        # Pointer jumping: follow labels to their own labels, halving path lengths.
        for _ in range(4):
            new = new[new]
        if np.array_equal(new, label):
            return label
        label = new


def _border_texels(
    p0: np.ndarray,
    p1: np.ndarray,
    t: np.ndarray,
    centroid: np.ndarray,
    island: np.ndarray,
    island_img: np.ndarray,
    index: np.ndarray,
) -> np.ndarray:
    """Texel index (-1 where none) of the island's texel at points along its border edge,
    found by stepping from the edge toward the triangle's centroid."""
    h, w = index.shape
    p = p0 + (p1 - p0) * t[:, None]
    to_c = centroid - p
    to_c /= np.maximum(np.linalg.norm(to_c, axis=1, keepdims=True), 1e-9)
    found = np.full(p.shape[0], -1, np.int64)
    for nudge in _NUDGES:
        q = p + to_c * nudge
        x = np.floor(q[:, 0]).astype(np.int64)
        y = np.floor(q[:, 1]).astype(np.int64)
        inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
        xs, ys = np.where(inside, x, 0), np.where(inside, y, 0)
        ok = inside & (island_img[ys, xs] == island) & (found < 0)
        found[ok] = index[ys[ok], xs[ok]]
    return found


def texel_graph(
    uv_tris: np.ndarray,
    world_tris: np.ndarray,
    size: tuple[int, int],
    tri: np.ndarray | None = None,
) -> TexelGraph:
    """Links between the texels of a `size` (width, height) texture of the triangles
    (UVs T x 3 x 2 as Blender's, world positions T x 3 x 3): 8-neighbours inside one UV
    island, and texel pairs facing each other across every UV seam. `tri` is the UV
    rasterisation's triangle per texel (TexelSurface.tri), drawn here if not given."""
    w, h = size
    pix = uv_to_pixels(uv_tris, size)
    if tri is None:
        tri = rasterize(pix, w, h).tri
    mask = tri >= 0
    n = int(mask.sum())
    index = np.full((h, w), -1, np.int64)
    index[mask] = np.arange(n)
    vid = weld_vertices(world_tris)
    edges = _shared_edges(vid, pix)
    seam = edges.seam
    island_of_tri = _components(vid.shape[0], edges.tri_a[~seam], edges.tri_b[~seam])
    island_img = np.where(mask, island_of_tri[np.maximum(tri, 0)], -1)

    # Image neighbours only inside one island: texels of two islands side by side in the
    # texture are not neighbours on the mesh.
    pad_isl = np.pad(island_img, 1, constant_values=-1)
    pad_idx = np.pad(index, 1, constant_values=-1)
    grid = np.empty((n, len(_OFFSETS)), np.int64)
    for k, (dy, dx) in enumerate(_OFFSETS):
        isl = pad_isl[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w][mask]
        idx = pad_idx[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w][mask]
        grid[:, k] = np.where(isl == island_img[mask], idx, -1)

    # Across seams: sample each seam edge about twice per texel of its longer UV side.
    pairs = np.nonzero(seam)[0]
    seam_src = np.zeros(0, np.int64)
    seam_dst = np.zeros(0, np.int64)
    if pairs.size:
        la = np.linalg.norm(edges.a1[pairs] - edges.a0[pairs], axis=1)
        lb = np.linalg.norm(edges.b1[pairs] - edges.b0[pairs], axis=1)
        count = np.ceil(2 * np.maximum(la, lb)).astype(np.int64) + 1
        rep = np.repeat(pairs, count)
        # Position within each pair's run of samples, as t in [0, 1].
        k = np.arange(rep.size) - np.repeat(np.cumsum(count) - count, count)
        t = (k + 0.5) / np.repeat(count, count)
        cen = pix.mean(axis=1)
        ta, tb = edges.tri_a[rep], edges.tri_b[rep]
        on_a = _border_texels(
            edges.a0[rep], edges.a1[rep], t, cen[ta], island_of_tri[ta], island_img, index
        )
        on_b = _border_texels(
            edges.b0[rep], edges.b1[rep], t, cen[tb], island_of_tri[tb], island_img, index
        )
        ok = (on_a >= 0) & (on_b >= 0) & (on_a != on_b)
        pair = np.unique(on_a[ok] * n + on_b[ok])
        seam_src = np.concatenate([pair // n, pair % n])
        seam_dst = np.concatenate([pair % n, pair // n])
    order = np.argsort(seam_src, kind="stable")
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(seam_src, minlength=n), out=indptr[1:])
    return TexelGraph(mask=mask, grid=grid, seam_indptr=indptr, seam_nbr=seam_dst[order])


def _gather(indptr: np.ndarray, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position in `nodes`, link index) of every link out of `nodes`."""
    starts = indptr[nodes]
    counts = indptr[nodes + 1] - starts
    owner = np.repeat(np.arange(nodes.size), counts)
    offsets = np.cumsum(counts) - counts
    return owner, np.arange(int(counts.sum())) + np.repeat(starts - offsets, counts)


def spread(
    graph: TexelGraph, colors: np.ndarray, known: np.ndarray, max_waves: int
) -> tuple[np.ndarray, np.ndarray]:
    """Colours spread from `known` texels through the graph, one ring per wave.

    Returns (colours N x C float32, wave N int32: 0 for known texels, the wave that
    reached the texel, -1 where no wave did within `max_waves`). Each wave only touches
    the links around the last wave's texels.
    """
    out = np.asarray(colors, np.float32).copy()
    n = out.shape[0]
    done = np.asarray(known, bool).copy()
    wave = np.where(done, 0, -1).astype(np.int32)
    grid, grid_w = graph.grid, _OFFSET_WEIGHTS
    front = np.nonzero(done)[0]
    mark = np.zeros(n, bool)
    for step in range(1, max_waves + 1):
        if not front.size:
            break
        # This wave's texels: not yet done, linked to one the last wave reached.
        near = grid[front].ravel()
        mark[near[near >= 0]] = True
        mark[graph.seam_nbr[_gather(graph.seam_indptr, front)[1]]] = True
        mark &= ~done
        cand = np.nonzero(mark)[0]
        mark[cand] = False
        if not cand.size:
            break
        nb = grid[cand]
        w = np.where((nb >= 0) & done[np.maximum(nb, 0)], grid_w, 0.0)
        total = w.sum(axis=1)
        acc = np.einsum("nk,nkc->nc", w, out[np.maximum(nb, 0)])
        owner, links = _gather(graph.seam_indptr, cand)
        src = graph.seam_nbr[links]
        live = done[src]
        owner, src = owner[live], src[live]
        total += np.bincount(owner, minlength=cand.size)
        for ch in range(out.shape[1]):
            acc[:, ch] += np.bincount(owner, weights=out[src, ch], minlength=cand.size)
        out[cand] = acc / total[:, None]
        done[cand] = True
        wave[cand] = step
        front = cand
    return out, wave


def push_pull(image: np.ndarray, known: np.ndarray) -> np.ndarray:
    """`image` (H x W x C) with its unknown pixels set from a pyramid of known-weighted
    averages: smooth colours from the nearest known pixels, in O(pixels)."""
    img = image.astype(np.float32) * known[..., None]
    wt = known.astype(np.float32)
    levels = [(img, wt)]
    while min(img.shape[:2]) > 1:
        h, w = img.shape[:2]
        img = np.pad(img, ((0, h % 2), (0, w % 2), (0, 0)))
        wt = np.pad(wt, ((0, h % 2), (0, w % 2)))
        img = img[0::2, 0::2] + img[1::2, 0::2] + img[0::2, 1::2] + img[1::2, 1::2]
        wt = wt[0::2, 0::2] + wt[1::2, 0::2] + wt[0::2, 1::2] + wt[1::2, 1::2]
        levels.append((img, wt))
    img, wt = levels[-1]
    mean = img / np.maximum(wt, 1e-12)[..., None]
    for img, wt in reversed(levels[:-1]):
        h, w = wt.shape
        up = np.repeat(np.repeat(mean, 2, axis=0), 2, axis=1)[:h, :w]
        have = wt > 0
        mean = np.where(have[..., None], img / np.maximum(wt, 1e-12)[..., None], up)
    return np.where(known[..., None], image, mean).astype(image.dtype)


def fill_unseen(
    graph: TexelGraph,
    colors: np.ndarray,
    weights: np.ndarray,
    max_distance: int,
    seen_weight: float = SEEN_WEIGHT,
) -> TexelFill:
    """Texel colours and states after the views (`colors` N x C, accumulated `weights` N):
    texels weighted below `seen_weight` take their neighbours' colours up to
    `max_distance` links from a covered texel (DILATED); farther ones are holes (EMPTY)
    holding a first guess: the nearest known colours in the texture (a push-pull pyramid,
    which does not know islands; the inpaint pass repaints holes anyway)."""
    covered = np.asarray(weights) >= seen_weight
    out, wave = spread(graph, colors, covered, max_distance)
    state = np.full(covered.shape, TexelState.EMPTY, np.int8)
    state[covered] = TexelState.COVERED
    state[wave > 0] = TexelState.DILATED
    holes = wave < 0
    if holes.any():
        if covered.any():
            img = np.zeros(graph.mask.shape + (out.shape[1],), np.float32)
            img[graph.mask] = out
            known = np.zeros(graph.mask.shape, bool)
            known[graph.mask] = ~holes
            out[holes] = push_pull(img, known)[graph.mask][holes]
        else:
            out[holes] = 128.0
    return TexelFill(out, state)


def texture_image(mask: np.ndarray, fill: TexelFill, pad_px: int = 4) -> np.ndarray:
    """H x W x 4 uint8 texture: every island texel's colour, alpha 255 except on holes
    (0), grown `pad_px` texels outward from the islands (alpha too) so bilinear filtering
    at their borders does not pull in the empty colour."""
    h, w = mask.shape
    c = fill.colors.shape[1]
    img = np.zeros((h, w, c + 1), np.float32)
    img[mask, :c] = fill.colors
    img[mask, c] = np.where(fill.holes, 0.0, 255.0)
    grown, _ = dilate(img, mask, pad_px)
    out = np.zeros((h, w, 4), np.uint8)
    px = np.clip(np.rint(grown), 0, 255).astype(np.uint8)
    out[..., :c] = px[..., :c]
    out[..., 3] = px[..., c]
    return out
