"""Blending several camera views into one texture, and planning the next view.

Each view adds colour * weight and weight per texel (weights from projection.sample_view:
facing ratio, visibility, distance from the frame border). The texture is the weighted
mean, so where two views overlap the result crossfades as one view's weight ramps down
and the other's up: no seam where one view stops. Coverage is the accumulated weight,
capped at 1; the next view is asked to inpaint exactly the pixels whose surface is not
yet well covered, starting from the texture so far rendered into that view.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .projection import Camera, ViewSample, sample_bilinear, view_depth_buffer
from .rasterize import dilate


class TextureAccumulator:
    """Weighted colour sums for one texture's covered texels (see TexelSurface.mask)."""

    def __init__(self, mask: np.ndarray, channels: int = 3):
        self.mask = np.asarray(mask, bool)
        n = int(self.mask.sum())
        self.color_sum = np.zeros((n, channels), np.float64)
        self.weight_sum = np.zeros(n, np.float64)
        self.views = 0

    def add(self, sample: ViewSample) -> None:
        w = sample.weights.astype(np.float64)
        self.color_sum += sample.colors[:, : self.color_sum.shape[1]] * w[:, None]
        self.weight_sum += w
        self.views += 1

    def coverage(self, full_weight: float = 0.5) -> np.ndarray:
        """Per covered texel, 0..1: how well the views so far determine it."""
        return np.clip(self.weight_sum / full_weight, 0.0, 1.0)

    def colors(self, fill: tuple[float, ...] = (128.0, 128.0, 128.0)) -> np.ndarray:
        """Weighted mean colour per covered texel; `fill` where no view saw it."""
        out = np.empty_like(self.color_sum)
        seen = self.weight_sum > 1e-8
        out[seen] = self.color_sum[seen] / self.weight_sum[seen, None]
        out[~seen] = np.asarray(fill[: out.shape[1]], np.float64)
        return out

    def texture(
        self, dilate_px: int = 4, fill: tuple[float, ...] = (128.0, 128.0, 128.0)
    ) -> np.ndarray:
        """H x W x 4 uint8 image: colours on seen texels, grown `dilate_px` into the empty
        texels around UV islands; alpha 255 where any view contributed."""
        h, w = self.mask.shape
        c = self.color_sum.shape[1]
        img = np.zeros((h, w, c), np.float32)
        seen = np.zeros((h, w), bool)
        seen[self.mask] = self.weight_sum > 1e-8
        img[self.mask] = self.colors(fill).astype(np.float32)
        grown, grown_mask = dilate(img, seen, dilate_px)
        out = np.zeros((h, w, 4), np.uint8)
        out[..., :c] = np.clip(np.rint(grown), 0, 255).astype(np.uint8)
        # Texels inside UV islands that no view saw keep the fill colour, not black.
        inside_unseen = self.mask & ~grown_mask
        out[inside_unseen, :c] = np.asarray(fill[:c], np.uint8)
        out[..., 3] = np.where(grown_mask, 255, 0).astype(np.uint8)
        return out

    def coverage_image(self, full_weight: float = 0.5) -> np.ndarray:
        """H x W float coverage (0 outside the UV islands)."""
        img = np.zeros(self.mask.shape, np.float32)
        img[self.mask] = self.coverage(full_weight)
        return img


@dataclass
class SurfaceMesh:
    """One target mesh as the view planner needs it."""

    world_tris: np.ndarray  # T x 3 x 3
    uv_tris: np.ndarray  # T x 3 x 2 (Blender UVs, v up)


@dataclass
class ViewPlan:
    init_image: np.ndarray  # H x W x 3 uint8: the texture so far, seen from this camera
    mask: np.ndarray  # H x W uint8, 255 = generate here (poorly covered or not yet seen)
    covered_fraction: float  # of the target's visible pixels, how many are already covered


def plan_view(
    cam: Camera,
    targets: list[SurfaceMesh],
    textures: list[np.ndarray],
    coverages: list[np.ndarray],
    occluders: np.ndarray | None = None,
    threshold: float = 0.6,
    grow_px: int = 2,
    background: tuple[int, int, int] = (128, 128, 128),
) -> ViewPlan:
    """Render the textures so far into `cam` and mark what the next generation must fill.

    `textures[i]` (H x W x 3|4 uint8) and `coverages[i]` (H x W float 0..1) belong to
    `targets[i]`; `occluders` (T x 3 x 3) is other scene geometry that may hide targets.
    """
    tris = [t.world_tris for t in targets]
    owner = (
        np.concatenate([np.full(len(t), i) for i, t in enumerate(tris)])
        if tris
        else np.zeros(0, int)
    )
    all_tris = np.concatenate(tris) if tris else np.zeros((0, 3, 3))
    if occluders is not None and len(occluders):
        owner = np.concatenate([owner, np.full(len(occluders), -1)])
        all_tris = np.concatenate([all_tris, occluders])
    r = view_depth_buffer(cam, all_tris)
    h, w = cam.height, cam.width
    init = np.empty((h, w, 3), np.float32)
    init[:] = background
    cov = np.zeros((h, w), np.float32)
    on_target = np.zeros((h, w), bool)
    uv_all = np.concatenate([t.uv_tris for t in targets]) if targets else np.zeros((0, 3, 2))
    for i, (tex, covimg) in enumerate(zip(textures, coverages, strict=False)):
        sel = r.mask & (np.where(r.mask, owner[np.maximum(r.tri, 0)], -2) == i)
        if not sel.any():
            continue
        t = r.tri[sel]
        uv = np.einsum("nc,nck->nk", r.bary[sel], uv_all[t])
        th, tw = tex.shape[:2]
        px = np.stack([uv[:, 0] * tw, (1.0 - uv[:, 1]) * th], axis=1)
        init[sel] = sample_bilinear(tex[..., :3], px)
        cov[sel] = sample_bilinear(covimg, px)[:, 0]
        on_target |= sel
    # Only well-covered target pixels are kept; background and occluders are regenerated
    # too, since leaving them fixed would freeze the filler colour they hold.
    todo = ~(on_target & (cov >= threshold))
    if grow_px > 0:
        todo = _grow(todo, grow_px)
    visible = int(on_target.sum())
    covered = float((on_target & ~todo).sum()) / visible if visible else 0.0
    return ViewPlan(
        init_image=np.clip(np.rint(init), 0, 255).astype(np.uint8),
        mask=np.where(todo, 255, 0).astype(np.uint8),
        covered_fraction=covered,
    )


def _grow(mask: np.ndarray, px: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(px):
        p = np.pad(out, 1)
        out = out | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]
    return out


def orbit_positions(
    center: np.ndarray,
    radius: float,
    count: int,
    elevation_deg: float = 20.0,
    start_deg: float = 0.0,
) -> list[np.ndarray]:
    """Camera positions evenly spaced on a circle around `center` (z up), starting in front
    (-y, Blender's front view) and turning counter-clockwise seen from above."""
    c = np.asarray(center, np.float64)
    el = np.radians(elevation_deg)
    out = []
    for i in range(max(1, count)):
        a = np.radians(start_deg + 360.0 * i / max(1, count))
        d = np.array([np.sin(a) * np.cos(el), -np.cos(a) * np.cos(el), np.sin(el)])
        out.append(c + radius * d)
    return out
