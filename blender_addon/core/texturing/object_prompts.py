"""Per-object prompts when one view sees several objects: each object's own prompt guides
the pixels where the view shows it, as a regional prompt (Latent Couple's maths on the
backend, the job's prompt as the background), its mask the object's segmentation in that
view, taken from the same rasterisation the bake uses, so occlusion is exact.
"""

from __future__ import annotations

import numpy as np

from dreamwire.shared.job import Region

# An object showing in fewer pixels than this gets no region: a sliver's prompt would
# steer almost nothing and costs a denoiser pass per step.
MIN_PIXELS = 16


def pixel_owners(tri: np.ndarray, first_target_tri: int, counts: list[int]) -> np.ndarray:
    """H x W: which target each pixel shows (0..len(counts)-1), -1 for the background and
    other geometry. `tri` is a view's raster (triangle per pixel, -1 empty) over the scene's
    triangles laid out as occluders first, then each target's `counts[i]` triangles."""
    ends = first_target_tri + np.cumsum(counts)
    owner = np.searchsorted(ends, tri, side="right")
    return np.where((tri >= first_target_tri) & (owner < len(counts)), owner, -1)


def view_regions(owners: np.ndarray, prompts: list[str]) -> list[Region]:
    """A region per target with a prompt of its own that the view shows (masks 255 where
    it is seen), in the targets' order."""
    regions = []
    for i, prompt in enumerate(prompts):
        seen = owners == i
        if prompt.strip() and int(seen.sum()) >= MIN_PIXELS:
            regions.append(Region(prompt.strip(), np.where(seen, 255, 0).astype(np.uint8)))
    return regions
