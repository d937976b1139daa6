"""Per-object prompts: each target's pixels in a view become its region's mask."""

from __future__ import annotations

import numpy as np

from blender_addon.core.texturing.object_prompts import MIN_PIXELS, pixel_owners, view_regions


def test_pixels_are_owned_by_the_target_whose_triangle_they_show():
    # Scene triangles: 2 occluders, then target 0 (3 triangles), then target 1 (2).
    tri = np.array([[-1, 0, 1, 2], [3, 4, 5, 6]])
    owners = pixel_owners(tri, first_target_tri=2, counts=[3, 2])
    assert owners.tolist() == [[-1, -1, -1, 0], [0, 0, 1, 1]]


def test_regions_only_for_seen_targets_with_a_prompt():
    owners = np.full((16, 16), -1)
    owners[:8] = 0  # target 0: 128 pixels
    owners[8:, :4] = 1  # target 1: 32 pixels
    owners[15, 15] = 2  # target 2: one pixel, under MIN_PIXELS
    regions = view_regions(owners, ["rusty metal crate", "  ", "a red ball"])
    assert [r.prompt for r in regions] == ["rusty metal crate"]  # 1: no prompt; 2: a sliver
    assert regions[0].mask.dtype == np.uint8
    assert (regions[0].mask == 255).sum() == 128 and set(np.unique(regions[0].mask)) == {0, 255}
    owners[8:, 4:] = 2  # now target 2 shows in plenty of pixels
    assert [r.prompt for r in view_regions(owners, ["", "", "a red ball"])] == ["a red ball"]
    assert MIN_PIXELS > 1
