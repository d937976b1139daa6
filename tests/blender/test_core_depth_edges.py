"""Depth-edge detection and feathering of a view's weights near silhouettes (no Blender)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_core_projection import make_cam, quad

from blender_addon.core.texturing.depth_edges import depth_edges, edge_distance
from blender_addon.core.texturing.projection import (
    BakeSettings,
    sample_bilinear,
    sample_view,
    texel_surface,
    view_depth_buffer,
)


def test_a_step_is_an_edge_and_distances_grow_away_from_it():
    z = np.full((8, 20), 5.0)
    z[:, 10:] = 8.0  # a wall 3 units behind a board that ends at column 10
    edges = depth_edges(z)
    assert edges[:, 9:11].all() and edges.sum() == 16
    d = edge_distance(z, max_px=4.0)
    expect = np.minimum(np.minimum(np.abs(np.arange(20) - 9), np.abs(np.arange(20) - 10)), 4)
    assert np.allclose(d, expect[None, :])


def test_drawn_next_to_empty_is_an_edge():
    z = np.full((10, 10), np.inf)
    z[3:7, 3:7] = 2.0
    edges = depth_edges(z)
    ring = np.zeros((10, 10), bool)
    ring[2:8, 2:8] = True
    ring[4:6, 4:6] = False
    ring[[2, 2, 7, 7], [2, 7, 2, 7]] = False  # neighbours are 4-connected
    # Both sides of the outline (the empty pixels around it too: they read as edge, so
    # the feather is symmetric), and nothing in the middle of the square.
    assert np.array_equal(edges, ring)


@pytest.mark.parametrize("deg", [0, 45, 70])
def test_a_tilted_plane_and_a_crease_are_not_edges(deg):
    """Depth changes steadily across a tilted plane and bends at a convex corner: neither is
    a discontinuity, only the outline against nothing is."""
    a = math.radians(deg)
    cam = make_cam((6 * math.sin(a), -6 * math.cos(a), 0.3), (0, 0, 0), size=64, lens=35)
    front, _, _ = quad((0, -1, 0), 1.0, "y", -1)
    side, _, _ = quad((1, 0, 0), 1.0, "x", 1)
    r = view_depth_buffer(cam, np.concatenate([front, side]))
    edges = depth_edges(r.depth)
    inside = r.mask.copy()
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        inside &= np.roll(r.mask, (dy, dx), axis=(0, 1))
    assert inside.sum() > 100
    assert not edges[inside].any()


def test_a_step_smaller_than_the_threshold_is_not_an_edge():
    z = np.full((4, 12), 10.0)
    z[:, 6:] = 10.2  # 2 % deeper
    assert not depth_edges(z, rel_jump=0.03).any()
    assert depth_edges(z, rel_jump=0.01)[:, 5:7].all()


def test_feathering_zeroes_texels_next_to_a_silhouette_and_keeps_the_rest():
    """A board in front of a wall: the wall's texels just beside the board's outline (where a
    generated silhouette would bleed) lose their weight; texels away from it keep theirs."""
    cam = make_cam((0, -5, 0), (0, 0, 0), size=64, lens=35)
    wall, wn, wuv = quad((0, 1, 0), 3.0, "y", -1)  # fills the frame
    board, _, _ = quad((0, -0.5, 0), 0.5, "y", -1)
    zb = view_depth_buffer(cam, np.concatenate([wall, board])).depth
    surf = texel_surface(wuv, wall, wn, (128, 128))
    image = np.full((64, 64, 3), 90, np.uint8)
    plain = sample_view(cam, image, surf.positions, surf.normals, zb)
    feather = BakeSettings(edge_feather_px=3.0)
    fe = sample_view(cam, image, surf.positions, surf.normals, zb, feather)
    # Where each texel lies relative to the edges (an independent lookup of the map).
    d_texel = sample_bilinear(edge_distance(zb, 8.0), fe.pixels)[:, 0]
    near = fe.visible & (d_texel < 0.3)
    far = fe.visible & (d_texel >= 4)
    assert near.sum() > 20 and far.sum() > 200
    assert (fe.weights[near] / plain.weights[near]).max() < 0.03
    assert np.array_equal(fe.weights[far], plain.weights[far])
    # The ramp is smooth: weight rises with distance from the edge, never jumps to full.
    ratio = fe.weights / np.maximum(plain.weights, 1e-9)
    for lo, hi in ((0.3, 1.0), (1.0, 2.0), (2.0, 2.9)):
        band = fe.visible & (d_texel >= lo) & (d_texel < hi)
        assert band.sum() > 10
        assert 0.0 < ratio[band].mean() < 1.0
    bands = [ratio[fe.visible & (abs(d_texel - c) < 0.3)].mean() for c in (0.5, 1.5, 2.5)]
    assert bands[0] < bands[1] < bands[2]
    # ~0, not 0: a texel no other view sees still takes this view's colour.
    assert (fe.weights[near] > 0).all()
    assert np.array_equal(fe.visible, plain.visible)
