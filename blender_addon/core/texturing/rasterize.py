"""Triangle rasterisation in numpy: a z-buffer and attribute interpolation.

Projection baking needs two rasterisations that Blender's Python API does not expose
without a GPU context: triangles in UV space (which texel lies on which surface point)
and triangles in camera space (what the camera sees, for occlusion and for reading the
texture back into a view). Both are the same operation, so it lives here once, vectorised
over fragments rather than looping over pixels.

Pixel (x, y) covers [x, x+1) x [y, y+1) with its centre at (x + 0.5, y + 0.5); y grows
downwards, as in images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Fragments generated per batch; bounds memory for large triangles.
_BATCH_FRAGMENTS = 4_000_000


@dataclass
class Raster:
    tri: np.ndarray  # H x W int32, index of the triangle drawn there, -1 where none
    bary: np.ndarray  # H x W x 3 float32, (perspective-correct) barycentric weights
    depth: np.ndarray  # H x W float32, interpolated depth (inf where nothing is drawn)

    @property
    def mask(self) -> np.ndarray:
        return self.tri >= 0

    def interpolate(self, attrs: np.ndarray) -> np.ndarray:
        """Per-pixel values of a per-corner attribute (T x 3 x K); zeros where empty."""
        attrs = np.asarray(attrs, np.float32)
        h, w = self.tri.shape
        out = np.zeros((h, w, attrs.shape[2]), np.float32)
        m = self.mask
        t = self.tri[m]
        b = self.bary[m]
        out[m] = np.einsum("nc,nck->nk", b, attrs[t])
        return out


def rasterize(
    xy: np.ndarray,
    width: int,
    height: int,
    depth: np.ndarray | None = None,
    perspective: bool = False,
    eps: float = 1e-6,
    bounds: np.ndarray | None = None,
) -> Raster:
    """Draw triangles `xy` (T x 3 x 2, pixel coordinates) into a width x height grid.

    `depth` (T x 3) enables the z-test (smaller wins); with `perspective` it is the view
    depth of each corner and barycentrics are made perspective-correct. Triangles with a
    corner at depth <= 0 are skipped (behind the camera; callers clip by the near plane).
    `bounds` (T x 4: x0, y0, x1, y1 pixel indices, end exclusive) confines each triangle to
    its own rectangle, so that several small views can share one call as tiles of one
    image (the per-call cost then spreads over them all).
    """
    xy = np.asarray(xy, np.float64)
    n = xy.shape[0]
    tri_img = np.full((height, width), -1, np.int32)
    bary_img = np.zeros((height, width, 3), np.float32)
    depth_img = np.full((height, width), np.inf, np.float32)
    if n == 0:
        return Raster(tri_img, bary_img, depth_img)
    z = np.zeros((n, 3)) if depth is None else np.asarray(depth, np.float64)
    keep = np.isfinite(xy).all(axis=(1, 2)) & np.isfinite(z).all(axis=1)
    if perspective:
        keep &= (z > 0).all(axis=1)
    # Dropped triangles (NaN corners, clipped by the caller) get a harmless box here.
    xy_box = np.where(keep[:, None, None], xy, 0.0)
    lo = np.floor(xy_box.min(axis=1) - 0.5).astype(np.int64)  # first candidate pixel
    hi = np.ceil(xy_box.max(axis=1) - 0.5).astype(np.int64)  # last candidate pixel
    lo = np.maximum(lo, 0)
    hi[:, 0] = np.minimum(hi[:, 0], width - 1)
    hi[:, 1] = np.minimum(hi[:, 1], height - 1)
    if bounds is not None:
        b = np.asarray(bounds, np.int64)
        lo = np.maximum(lo, b[:, :2])
        hi = np.minimum(hi, b[:, 2:] - 1)
    keep &= (hi >= lo).all(axis=1)
    # Signed area; degenerate triangles cover nothing.
    e1 = xy[:, 1] - xy[:, 0]
    e2 = xy[:, 2] - xy[:, 0]
    area = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    keep &= np.abs(area) > 1e-12
    idx = np.nonzero(keep)[0]
    if idx.size == 0:
        return Raster(tri_img, bary_img, depth_img)

    spans = hi[idx] - lo[idx] + 1  # (m, 2) box sizes
    # Group by box size (rounded up to a power of two) so each group is one dense block.
    bw = 1 << np.ceil(np.log2(spans[:, 0])).astype(np.int64)
    bh = 1 << np.ceil(np.log2(spans[:, 1])).astype(np.int64)
    frag_pix, frag_tri, frag_bary, frag_z = [], [], [], []
    # The distinct sizes, found in numpy: a Python set over every triangle cost about a
    # fifth of a small rasterisation (camera placement rasterises hundreds of views).
    for key in np.unique(bw << 32 | bh).tolist():
        gw, gh = key >> 32, key & 0xFFFFFFFF
        group = idx[(bw == gw) & (bh == gh)]
        per = gw * gh
        step = max(1, _BATCH_FRAGMENTS // per)
        for s in range(0, group.size, step):
            g = group[s : s + step]
            ox, oy = np.meshgrid(np.arange(gw), np.arange(gh))
            px = lo[g, 0][:, None] + ox.ravel()[None, :]  # (m, per)
            py = lo[g, 1][:, None] + oy.ravel()[None, :]
            inside = (px <= hi[g, 0][:, None]) & (py <= hi[g, 1][:, None])
            cx = px + 0.5
            cy = py + 0.5
            a = xy[g]
            ar = area[g][:, None]

            def edge(i: int, j: int, a=a, cx=cx, cy=cy) -> np.ndarray:
                # Twice the signed area of (corner i, corner j, pixel centre).
                ax, ay = a[:, i, 0][:, None], a[:, i, 1][:, None]
                bx, by = a[:, j, 0][:, None], a[:, j, 1][:, None]
                return (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)

            w0 = edge(1, 2) / ar
            w1 = edge(2, 0) / ar
            w2 = 1.0 - w0 - w1
            inside &= (w0 >= -eps) & (w1 >= -eps) & (w2 >= -eps)
            if not inside.any():
                continue
            tri_ids = np.broadcast_to(g[:, None], inside.shape)[inside]
            b = np.stack([w0[inside], w1[inside], w2[inside]], axis=1)
            zc = z[tri_ids]
            if perspective:
                b = b / zc
                b /= b.sum(axis=1, keepdims=True)
            frag_pix.append(py[inside] * width + px[inside])
            frag_tri.append(tri_ids)
            frag_bary.append(b)
            frag_z.append((b * zc).sum(axis=1))
    if not frag_pix:
        return Raster(tri_img, bary_img, depth_img)
    pix = np.concatenate(frag_pix)
    tri = np.concatenate(frag_tri)
    bary = np.concatenate(frag_bary)
    zz = np.concatenate(frag_z)
    # Z-test: nearest fragment per pixel; ties go to the lower triangle index so the
    # result does not depend on grouping order.
    order = np.lexsort((tri, zz, pix))
    first = np.ones(order.size, bool)
    first[1:] = pix[order][1:] != pix[order][:-1]
    win = order[first]
    flat_tri = tri_img.reshape(-1)
    flat_tri[pix[win]] = tri[win]
    bary_img.reshape(-1, 3)[pix[win]] = bary[win]
    depth_img.reshape(-1)[pix[win]] = zz[win]
    return Raster(tri_img, bary_img, depth_img)


def dilate(values: np.ndarray, mask: np.ndarray, iterations: int) -> tuple[np.ndarray, np.ndarray]:
    """Grow filled texels into their empty neighbours (mean of filled 8-neighbours), so
    bilinear texture filtering at UV island borders does not pull in the empty colour."""
    values = values.astype(np.float32, copy=True)
    mask = mask.copy()
    h, w = mask.shape
    for _ in range(iterations):
        if mask.all():
            break
        acc = np.zeros_like(values)
        cnt = np.zeros((h, w), np.float32)
        pad_v = np.pad(values * mask[..., None], ((1, 1), (1, 1), (0, 0)))
        pad_m = np.pad(mask.astype(np.float32), 1)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if dy == 0 and dx == 0:
                    continue
                acc += pad_v[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
                cnt += pad_m[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
        grow = (~mask) & (cnt > 0)
        if not grow.any():
            break
        values[grow] = acc[grow] / cnt[grow][:, None]
        mask = mask | grow
    return values, mask
