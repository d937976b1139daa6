"""Filling unseen texels across UV seams, the UV inpaint request and the coverage report
(no Blender)."""

from __future__ import annotations

import json

import numpy as np
from test_core_multiview import cube
from test_core_projection import make_cam

from blender_addon.core.texturing.coverage_report import CoverageReport
from blender_addon.core.texturing.multiview import TextureAccumulator
from blender_addon.core.texturing.projection import sample_view, texel_surface, view_depth_buffer
from blender_addon.core.texturing.texel_fill import (
    TexelState,
    fill_unseen,
    texel_graph,
    texture_image,
)
from blender_addon.core.texturing.uv_inpaint import apply_uv_inpaint, uv_inpaint_request

SIZE = 64


def seam_quads(mirror_b=True, gap=True):
    """Two unit squares side by side in 3D (x in [-1, 0] and [0, 1], facing -y) that share
    the edge x = 0. Square A's UVs fill the left of the texture with the shared edge on its
    right side; square B's fill the right, and with `mirror_b` its shared edge is on ITS
    right side too, far from A's in the texture: only the mesh says they touch."""
    a = np.array([[-1, -1, -1], [0, -1, -1], [0, -1, 1], [-1, -1, 1]], float)
    b = np.array([[0, -1, -1], [1, -1, -1], [1, -1, 1], [0, -1, 1]], float)
    ua = np.array([[0.05, 0.05], [0.45, 0.05], [0.45, 0.95], [0.05, 0.95]])
    ub = np.array([[0.55, 0.05], [0.95, 0.05], [0.95, 0.95], [0.55, 0.95]])
    if mirror_b:
        ub = ub[[1, 0, 3, 2]]  # B's x = 0 edge at u = 0.95
    if not gap:
        ua, ub = ua + [0.05, 0], ub - [0.05, 0]  # islands touching in the texture
    tris, uvs = [], []
    for p, u in ((a, ua), (b, ub)):
        for i in ((0, 1, 2), (0, 2, 3)):
            tris.append(p[list(i)])
            uvs.append(u[list(i)])
    tris, uvs = np.array(tris), np.array(uvs)
    normals = np.broadcast_to([0.0, -1.0, 0.0], tris.shape).copy()
    return tris, normals, uvs


def colour_of(points):
    """A colour that varies with world height z, so a texel's colour says where it came from."""
    c = np.zeros((len(points), 3))
    c[:, 0] = 40 + 80 * (points[:, 2] + 1)
    c[:, 1] = 90
    return c


def fill_seam_quads(max_distance, b_weight=0.0, **kw):
    tris, normals, uvs = seam_quads(**kw)
    surf = texel_surface(uvs, tris, normals, (SIZE, SIZE))
    graph = texel_graph(uvs, tris, (SIZE, SIZE), surf.tri)
    assert (graph.mask == surf.mask).all()
    on_a = surf.positions[:, 0] < 0
    weights = np.where(on_a, 1.0, b_weight)
    colors = np.where(on_a[:, None], colour_of(surf.positions), 128.0)
    return surf, graph, fill_unseen(graph, colors, weights, max_distance)


def test_unseen_side_of_a_uv_seam_takes_the_seen_sides_colour_through_the_seam():
    surf, graph, fill = fill_seam_quads(max_distance=3)
    assert graph.seam_links > 0
    pos = surf.positions
    on_b = pos[:, 0] > 0
    near_seam = on_b & (pos[:, 0] < 0.04)  # B's texels along the shared edge
    assert near_seam.sum() > 20
    assert (fill.state[near_seam] == TexelState.DILATED).all()
    # Each takes A's colour at the same height across the seam, not some other texel's.
    err = np.abs(fill.colors[near_seam, 0] - colour_of(pos[near_seam])[:, 0])
    assert err.max() < 8, err.max()
    # A texel's own island neighbours in the texture are the far edge of B (x = 1), not
    # the seam: plain image-space dilation could never have reached it from A.
    assert (fill.state[pos[:, 0] < 0] == TexelState.COVERED).all()


def test_a_hole_beyond_the_distance_limit_is_left_for_the_inpaint_pass():
    # B seen only at a grazing angle (a little weight) counts as unseen all the same.
    surf, graph, fill = fill_seam_quads(max_distance=3, b_weight=0.01)
    far = surf.positions[:, 0] > 0.5  # B's half away from the seam
    assert (fill.state[far] == TexelState.EMPTY).all()
    report = CoverageReport.from_states(fill.state)
    assert report.empty > 0.2 and report.dilated > 0 and report.inpainted == 0
    total = report.covered + report.dilated + report.inpainted + report.empty
    assert abs(total - 1.0) < 1e-9
    assert report.texels == surf.positions.shape[0]
    # The hole still holds a guess spread from the seam (not the flat grey it started as).
    assert np.abs(fill.colors[far, 0] - 128).max() > 20
    # A larger limit fills it all.
    _, _, fill_all = fill_seam_quads(max_distance=64)
    assert not fill_all.holes.any()


def test_islands_side_by_side_in_the_texture_do_not_bleed_into_each_other():
    """Two squares that touch in the texture but not on the mesh: no link between them."""
    tris, normals, uvs = seam_quads(gap=False)
    tris[2:] += [3.0, 0, 0]  # move B away in 3D: no shared edge any more
    surf = texel_surface(uvs, tris, normals, (SIZE, SIZE))
    graph = texel_graph(uvs, tris, (SIZE, SIZE))
    on_a = surf.positions[:, 0] < 0
    fill = fill_unseen(graph, colour_of(surf.positions), np.where(on_a, 1.0, 0.0), 64)
    assert graph.seam_links == 0
    assert (fill.state[~on_a] == TexelState.EMPTY).all()


def test_cube_seen_from_the_front_is_filled_through_its_seams_and_inpaint_fills_the_rest():
    tris, normals, uvs = cube()
    surf = texel_surface(uvs, tris, normals, (SIZE, SIZE))
    cam = make_cam((0, -6, 0), (0, 0, 0))
    acc = TextureAccumulator(surf.mask)
    view = np.zeros((64, 64, 3), np.uint8)
    view[..., 0] = np.arange(64)[None, :] * 4  # red grows to the right
    acc.add(
        sample_view(cam, view, surf.positions, surf.normals, view_depth_buffer(cam, tris).depth)
    )
    graph = texel_graph(uvs, tris, (SIZE, SIZE))
    fill = fill_unseen(graph, acc.colors(), acc.weight_sum, max_distance=4)
    pos = surf.positions
    # The right face (+x) touches the front along x = 1: the red of the front's right edge
    # arrives there, the left face (-x) gets the front's left edge's (little) red.
    right = (pos[:, 0] > 0.99) & (pos[:, 1] < -0.9)
    left = (pos[:, 0] < -0.99) & (pos[:, 1] < -0.9)
    assert (fill.state[right] == TexelState.DILATED).all()
    assert fill.colors[right, 0].mean() > 180 and fill.colors[left, 0].mean() < 70
    back = pos[:, 1] > 0.99
    assert (fill.state[back] == TexelState.EMPTY).any()

    tex = texture_image(surf.mask, fill)
    assert (tex[surf.mask, 3] == np.where(fill.holes, 0, 255)).all()
    req = uv_inpaint_request(tex, surf.mask, fill, (SIZE, SIZE))
    hole = req.mask == 255
    # Only hole texels, all inside islands, are repainted.
    assert hole.sum() == fill.holes.sum() and not (hole & ~surf.mask).any()
    # The init image is the texture on the islands, their nearest colours between them.
    assert (req.init_image[surf.mask] == tex[surf.mask, :3]).all()
    gap = ~surf.mask & (tex[..., 3] == 0)
    assert gap.any() and req.init_image[gap].max() > 100  # the front's reds, not black
    result = np.full((SIZE, SIZE, 3), 7, np.uint8)
    done = apply_uv_inpaint(surf.mask, fill, result)
    assert (done.colors[fill.holes] == 7).all()
    assert (done.colors[~fill.holes] == fill.colors[~fill.holes]).all()
    before, after = CoverageReport.from_states(fill.state), CoverageReport.from_states(done.state)
    assert after.empty == 0 and abs(after.inpainted - before.empty) < 1e-9
    assert after.covered == before.covered and after.dilated == before.dilated
    data = json.loads(after.to_json())
    assert data["filled"] == after.dilated + after.inpainted and data["empty"] == 0
