"""Filling the texels that no view saw, from their neighbours on the mesh.

A UV texture is cut into islands, so "neighbouring texel" has two meanings: inside an
island it is the next texel in the image, and at an island's border it is the texel on
the other side of the same mesh edge, which may lie anywhere in the texture (a UV seam).
`texel_graph` links both kinds; `fill_unseen` spreads colour from the texels the views
covered through those links, one ring per wave (each new texel takes the weighted mean of
its already filled neighbours), up to a distance limit. What the waves do not reach within
the limit is a hole for the UV inpaint pass (uv_inpaint.py); its colour from the same
spreading, continued without a limit, is a first guess for that pass.

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


@dataclass
class TexelGraph:
    """Directed links between the texels of a texture's UV islands (mask order)."""

    mask: np.ndarray  # H x W bool, texels some UV triangle covers (as TexelSurface.mask)
    # Links out of texel i (row-major index over `mask`) are nbr[indptr[i]:indptr[i + 1]];
    # every link exists both ways.
    indptr: np.ndarray  # N + 1 int64
    nbr: np.ndarray  # E int64
    weight: np.ndarray  # E float32, per link
    seam_links: int  # how many of the links cross a UV seam (each direction counted)


@dataclass
class TexelFill:
    colors: np.ndarray  # N x C float32 per texel; holes hold the unlimited spreading's guess
    state: np.ndarray  # N int8, TexelState per texel

    @property
    def holes(self) -> np.ndarray:
        return self.state == TexelState.EMPTY


def weld_vertices(world_tris: np.ndarray) -> np.ndarray:
    """T x 3 vertex ids: corners at the same (quantised) world position share one."""
    pts = np.asarray(world_tris, np.float64).reshape(-1, 3)
    if pts.size == 0:
        return np.zeros((0, 3), np.int64)
    size = float(np.linalg.norm(pts.max(axis=0) - pts.min(axis=0))) or 1.0
    q = np.round(pts / (size * WELD_FRACTION)).astype(np.int64)
    _, ids = np.unique(q, axis=0, return_inverse=True)
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
    t = vid.shape[0]
    tri = np.repeat(np.arange(t), 3)
    i0 = np.tile([0, 1, 2], t)
    i1 = np.tile([1, 2, 0], t)
    v0, v1 = vid[tri, i0], vid[tri, i1]
    swap = v0 > v1
    lo, hi = np.where(swap, v1, v0), np.where(swap, v0, v1)
    p_lo = np.where(swap[:, None], pix[tri, i1], pix[tri, i0])
    p_hi = np.where(swap[:, None], pix[tri, i0], pix[tri, i1])
    ok = lo != hi
    tri, lo, hi, p_lo, p_hi = tri[ok], lo[ok], hi[ok], p_lo[ok], p_hi[ok]
    order = np.lexsort((tri, hi, lo))
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


def texel_graph(uv_tris: np.ndarray, world_tris: np.ndarray, size: tuple[int, int]) -> TexelGraph:
    """Links between the texels of a `size` (width, height) texture of the triangles
    (UVs T x 3 x 2 as Blender's, world positions T x 3 x 3): 8-neighbours inside one UV
    island, and texel pairs facing each other across every UV seam."""
    w, h = size
    pix = uv_to_pixels(uv_tris, size)
    r = rasterize(pix, w, h)
    mask = r.mask
    index = np.full((h, w), -1, np.int64)
    index[mask] = np.arange(int(mask.sum()))
    vid = weld_vertices(world_tris)
    edges = _shared_edges(vid, pix)
    seam = edges.seam
    island_of_tri = _components(vid.shape[0], edges.tri_a[~seam], edges.tri_b[~seam])
    island_img = np.where(mask, island_of_tri[np.maximum(r.tri, 0)], -1)

    src, dst, wt = [], [], []
    # Each undirected image neighbour once (right, down, down-right, down-left), linked both
    # ways, only inside one island: texels of two islands side by side in the texture are
    # not neighbours on the mesh.
    for dy, dx, weight in ((0, 1, 1.0), (1, 0, 1.0), (1, 1, 0.7071), (1, -1, 0.7071)):
        ya, yb = slice(0, h - dy), slice(dy, h)
        xa = slice(max(0, -dx), w - max(0, dx))
        xb = slice(max(0, dx), w + min(0, dx))
        ia, ib = island_img[ya, xa], island_img[yb, xb]
        ok = (ia >= 0) & (ia == ib)
        a, b = index[ya, xa][ok], index[yb, xb][ok]
        src += [a, b]
        dst += [b, a]
        wt += [np.full(a.size * 2, weight, np.float32)]

    # Across seams: sample each seam edge about twice per texel of its longer UV side.
    pairs = np.nonzero(seam)[0]
    seam_src = np.zeros(0, np.int64)
    seam_dst = np.zeros(0, np.int64)
    if pairs.size:
        la = np.linalg.norm(edges.a1[pairs] - edges.a0[pairs], axis=1)
        lb = np.linalg.norm(edges.b1[pairs] - edges.b0[pairs], axis=1)
        n = np.ceil(2 * np.maximum(la, lb)).astype(np.int64) + 1
        rep = np.repeat(pairs, n)
        # Position within each pair's run of samples, as t in [0, 1].
        k = np.arange(rep.size) - np.repeat(np.cumsum(n) - n, n)
        t = (k + 0.5) / np.repeat(n, n)
        cen = pix.mean(axis=1)
        ta, tb = edges.tri_a[rep], edges.tri_b[rep]
        on_a = _border_texels(
            edges.a0[rep], edges.a1[rep], t, cen[ta], island_of_tri[ta], island_img, index
        )
        on_b = _border_texels(
            edges.b0[rep], edges.b1[rep], t, cen[tb], island_of_tri[tb], island_img, index
        )
        ok = (on_a >= 0) & (on_b >= 0) & (on_a != on_b)
        pair_key = np.unique(np.stack([on_a[ok], on_b[ok]], axis=1), axis=0)
        seam_src = np.concatenate([pair_key[:, 0], pair_key[:, 1]])
        seam_dst = np.concatenate([pair_key[:, 1], pair_key[:, 0]])
    src.append(seam_src)
    dst.append(seam_dst)
    wt.append(np.ones(seam_src.size, np.float32))
    all_src = np.concatenate(src)
    order = np.argsort(all_src, kind="stable")
    indptr = np.zeros(index.max(initial=-1) + 2, np.int64)
    np.cumsum(np.bincount(all_src, minlength=indptr.size - 1), out=indptr[1:])
    return TexelGraph(
        mask=mask,
        indptr=indptr,
        nbr=np.concatenate(dst)[order],
        weight=np.concatenate(wt)[order],
        seam_links=int(seam_src.size),
    )


def _gather(indptr: np.ndarray, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position in `nodes`, link index) of every link out of `nodes`."""
    starts = indptr[nodes]
    counts = indptr[nodes + 1] - starts
    owner = np.repeat(np.arange(nodes.size), counts)
    offsets = np.cumsum(counts) - counts
    return owner, np.arange(int(counts.sum())) + np.repeat(starts - offsets, counts)


def spread(
    graph: TexelGraph, colors: np.ndarray, known: np.ndarray, max_waves: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Colours spread from `known` texels through the graph, one ring per wave.

    Returns (colours N x C float32, wave N int32: 0 for known texels, the wave that
    reached the texel, -1 where no wave did within `max_waves` (None: until none can).
    Each wave only touches the links around the last wave's texels, so the cost is that
    of the links once, however many waves it takes.
    """
    out = np.asarray(colors, np.float32).copy()
    done = np.asarray(known, bool).copy()
    wave = np.where(done, 0, -1).astype(np.int32)
    indptr, nbr, wt = graph.indptr, graph.nbr, graph.weight
    # The first wave's candidates: unknown texels with a known neighbour.
    front = np.nonzero(done)[0]
    step = 0
    while front.size and (max_waves is None or step < max_waves):
        _, links = _gather(indptr, front)
        cand = np.unique(nbr[links])
        cand = cand[~done[cand]]
        if not cand.size:
            break
        step += 1
        owner, links = _gather(indptr, cand)
        src = nbr[links]
        live = done[src]
        owner, src, w = owner[live], src[live], wt[links][live].astype(np.float64)
        total = np.bincount(owner, weights=w, minlength=cand.size)
        for ch in range(out.shape[1]):
            acc = np.bincount(owner, weights=w * out[src, ch], minlength=cand.size)
            out[cand, ch] = acc / total
        done[cand] = True
        wave[cand] = step
        front = cand
    return out, wave


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
    holding the spreading's guess, or, out of reach of any covered texel, the mean colour."""
    covered = np.asarray(weights) >= seen_weight
    out, wave = spread(graph, colors, covered)
    state = np.full(covered.shape, TexelState.EMPTY, np.int8)
    state[covered] = TexelState.COVERED
    state[(wave > 0) & (wave <= max_distance)] = TexelState.DILATED
    unreached = wave < 0
    if unreached.any():
        base = out[covered].mean(axis=0) if covered.any() else np.full(out.shape[1], 128.0)
        out[unreached] = base
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
