"""Blending views into one texture and planning the next view's inpaint (no Blender)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_core_projection import make_cam, quad

from blender_addon.core.texturing.multiview import SurfaceMesh, TextureAccumulator, plan_view
from blender_addon.core.texturing.projection import sample_view, texel_surface, view_depth_buffer


def cube():
    """Six faces, each its own UV island in a 3 x 2 atlas."""
    faces = [
        quad((0, -1, 0), 1, "y", -1),
        quad((1, 0, 0), 1, "x", 1),
        quad((0, 1, 0), 1, "y", 1),
        quad((-1, 0, 0), 1, "x", -1),
        quad((0, 0, 1), 1, "z", 1),
        quad((0, 0, -1), 1, "z", -1),
    ]
    tris, normals, uvs = [], [], []
    for i, (t, n, uv) in enumerate(faces):
        col, row = i % 3, i // 3
        tris.append(t)
        normals.append(n)
        uvs.append((uv * 0.9 + 0.05 + [col, row]) / [3, 2])
    return np.concatenate(tris), np.concatenate(normals), np.concatenate(uvs)


def solid(value, size=64):
    return np.full((size, size, 3), value, np.uint8)


def test_overlapping_views_blend_by_weight():
    tris, normals, uvs = quad((0, 0, 0), 1.0)
    surf = texel_surface(uvs, tris, normals, (32, 32))
    acc = TextureAccumulator(surf.mask)
    views = []
    for deg, value in ((-30, 40), (30, 200)):
        a = math.radians(deg)
        cam = make_cam((4 * math.sin(a), -4 * math.cos(a), 0), (0, 0, 0))
        zb = view_depth_buffer(cam, tris).depth
        s = sample_view(cam, solid(value), surf.positions, surf.normals, zb)
        acc.add(s)
        views.append(s)
    w0, w1 = views[0].weights.astype(float), views[1].weights.astype(float)
    expect = (40 * w0 + 200 * w1) / (w0 + w1)
    got = acc.colors()[:, 0]
    assert np.allclose(got, expect, atol=1e-6)
    # Symmetric views: the middle column is an even mix.
    tex = acc.texture()
    assert abs(int(tex[16, 16, 0]) - 120) <= 8


def test_no_seam_where_a_view_ends():
    """Two side-by-side views of a wide wall: the texture changes gradually across the
    region where the first view's frame ends, never in one step."""
    p = np.array([[-4, 0, -1], [4, 0, -1], [4, 0, 1], [-4, 0, 1]], float)
    tris = np.array([[p[0], p[1], p[2]], [p[0], p[2], p[3]]])
    normals = np.broadcast_to([0, -1, 0], (2, 3, 3)).astype(float)
    uvs = np.array([[[0, 0], [1, 0], [1, 1]], [[0, 0], [1, 1], [0, 1]]], float)
    surf = texel_surface(uvs, tris, normals, (256, 16))
    acc = TextureAccumulator(surf.mask)
    for x, value in ((-1.0, 30), (1.0, 230)):
        cam = make_cam((x, -4, 0), (x, 0, 0))
        s = sample_view(
            cam, solid(value), surf.positions, surf.normals, view_depth_buffer(cam, tris).depth
        )
        acc.add(s)
    tex = acc.texture(dilate_px=0)
    row = tex[8, :, 0].astype(int)
    seen = tex[8, :, 3] > 0
    cols = np.nonzero(seen)[0]
    steps = np.abs(np.diff(row[cols[0] : cols[-1] + 1]))
    assert row[cols[0]] == 30 and row[cols[-1]] == 230
    # A hard seam would jump ~200 in one texel; the blend spreads it out.
    assert steps.max() < 40


def test_plan_view_marks_what_earlier_views_did_not_cover():
    tris, normals, uvs = cube()
    size = (96, 64)
    surf = texel_surface(uvs, tris, normals, size)
    acc = TextureAccumulator(surf.mask)
    front = make_cam((0, -5, 0), (0, 0, 0), size=64)
    acc.add(
        sample_view(
            front, solid(180), surf.positions, surf.normals, view_depth_buffer(front, tris).depth
        )
    )
    # From the front again: (almost) everything visible is covered, nothing to inpaint on the cube.
    tex = acc.texture()
    cov = acc.coverage_image()
    mesh = SurfaceMesh(tris, uvs)
    plan = plan_view(front, [mesh], [tex], [cov], grow_px=0)
    cube_px = view_depth_buffer(front, tris).mask
    assert plan.covered_fraction > 0.9
    assert (plan.mask[cube_px] == 0).mean() > 0.9
    assert np.abs(plan.init_image[cube_px].astype(int) - 180).max() <= 2
    assert (plan.mask[~cube_px] == 255).all()
    # From the side at 60 degrees: the front face is covered, the right face is not.
    a = math.radians(60)
    side = make_cam((5 * math.sin(a), -5 * math.cos(a), 0), (0, 0, 0), size=64)
    plan = plan_view(side, [mesh], [tex], [cov], grow_px=0)
    r = view_depth_buffer(side, tris)
    face = r.tri // 2  # two triangles per face: 0 front, 1 right
    front_px = r.mask & (face == 0)
    right_px = r.mask & (face == 1)
    assert front_px.sum() > 50 and right_px.sum() > 50
    assert (plan.mask[right_px] == 255).all()
    assert (plan.mask[front_px] == 0).mean() > 0.8
    assert 0.1 < plan.covered_fraction < 0.9


def test_occluder_hides_target_in_the_plan():
    tris, normals, uvs = quad((0, 0, 0), 1.0)
    surf = texel_surface(uvs, tris, normals, (32, 32))
    acc = TextureAccumulator(surf.mask)
    cam = make_cam((0, -4, 0), (0, 0, 0))
    acc.add(sample_view(cam, solid(90), surf.positions, surf.normals, None))
    blocker, _, _ = quad((0, -1, 0), 3.0)
    plan = plan_view(
        cam, [SurfaceMesh(tris, uvs)], [acc.texture()], [acc.coverage_image()], occluders=blocker
    )
    # The target is entirely hidden: nothing of it counts as covered, the frame is to be generated.
    assert plan.covered_fraction == 0.0
    assert (plan.mask == 255).all()


def test_unseen_texels_get_the_fill_colour_and_zero_alpha_outside_islands():
    tris, normals, uvs = quad((0, 0, 0), 1.0)
    uvs = uvs * 0.5  # one island in the lower-left quarter
    surf = texel_surface(uvs, tris, normals, (32, 32))
    acc = TextureAccumulator(surf.mask)
    tex = acc.texture(fill=(1, 2, 3))
    assert (tex[surf.mask, :3] == (1, 2, 3)).all()
    assert (tex[~surf.mask, 3] == 0).all()
    assert acc.coverage_image().max() == pytest.approx(0.0)


def test_orbit_positions_circle_the_centre_at_the_elevation():
    from blender_addon.core.texturing.multiview import orbit_positions

    c = np.array([1.0, 2.0, 0.5])
    pos = orbit_positions(c, 4.0, 4, elevation_deg=30.0)
    d = np.array(pos) - c
    assert np.allclose(np.linalg.norm(d, axis=1), 4.0)
    assert np.allclose(d[:, 2], 4.0 * math.sin(math.radians(30)))
    assert d[0, 1] < 0 and abs(d[0, 0]) < 1e-9  # the first one in front (-y)
    assert np.allclose(d[2, :2], -d[0, :2])  # opposite after half a turn
