"""Choosing camera viewpoints by facing-weighted surface coverage (no Blender)."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest
from test_core_multiview import cube
from test_core_projection import quad

from blender_addon.core.texturing.camera_placement import (
    PlacementSettings,
    candidate_weights,
    choose_greedy,
    clip_near,
    coverage_camera,
    depth_buffers,
    facing_bounds,
    fibonacci_directions,
    framing_distance,
    look_at,
    narrow_fov_deg,
    place_cameras,
    simplify_for_depth,
    surface_samples,
    up_for,
)
from blender_addon.core.texturing.projection import BakeSettings, view_depth_buffer

# Fewer candidates and samples than the defaults keep these tests quick; the choices
# on a cube do not depend on them.
QUICK = PlacementSettings(candidates=96, samples=600)
FACE_NORMALS = np.array([[0, -1, 0], [1, 0, 0], [0, 1, 0], [-1, 0, 0], [0, 0, 1], [0, 0, -1]])


def facing_face(pose) -> int:
    """The cube face (index into FACE_NORMALS) the camera looks at most squarely."""
    d = pose.position - pose.target
    return int(np.argmax(FACE_NORMALS @ (d / np.linalg.norm(d))))


def uv_sphere(segments=48, rings=32, radius=1.0):
    th = np.linspace(0, np.pi, rings + 1)[:, None]
    ph = np.linspace(0, 2 * np.pi, segments + 1)[None, :]
    p = radius * np.stack(
        [np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th) * np.ones_like(ph)], -1
    )
    a, b, c, d = p[:-1, :-1], p[1:, :-1], p[1:, 1:], p[:-1, 1:]
    return np.concatenate(
        [np.stack([a, b, c], -2).reshape(-1, 3, 3), np.stack([a, c, d], -2).reshape(-1, 3, 3)]
    )


def test_fibonacci_directions_are_unit_and_spread_over_the_sphere_or_its_top_half():
    full = fibonacci_directions(200)
    half = fibonacci_directions(100, hemisphere=True)
    assert np.allclose(np.linalg.norm(full, axis=1), 1) and np.allclose(
        np.linalg.norm(half, axis=1), 1
    )
    assert np.abs(full.mean(axis=0)).max() < 0.02  # balanced: no side is favoured
    assert (half[:, 2] >= 0).all() and abs(half[:, 2].mean() - 0.5) < 0.02
    # Evenly spread: every direction has a neighbour within a few degrees, none a twin.
    cos = full @ full.T
    np.fill_diagonal(cos, -1)
    nearest = np.degrees(np.arccos(cos.max(axis=1)))
    assert nearest.max() < 20 and nearest.min() > 5


def test_look_at_points_the_camera_at_the_target_with_up_kept():
    m = look_at(np.array([0.0, -5.0, 1.0]), np.zeros(3), np.array([0.0, 0.0, 1.0]))
    forward = -m[:3, 2]
    assert np.allclose(forward, np.array([0, 5, -1]) / np.sqrt(26))
    assert m[:3, 1] @ [0, 0, 1] > 0.9 and np.allclose(m[:3, :3] @ m[:3, :3].T, np.eye(3))
    top = look_at(np.array([0.0, 0.0, 5.0]), np.zeros(3), np.array([0.0, 1.0, 0.0]))
    assert np.allclose(-top[:3, 2], [0, 0, -1]) and np.allclose(top[:3, 1], [0, 1, 0])


def test_surface_samples_stand_for_the_whole_area():
    tris, normals, _ = cube()
    pts, nrm, w = surface_samples(tris, normals, 3000)
    assert np.isclose(w.sum(), 24.0)  # six 2 x 2 faces
    assert 2500 <= len(pts) <= 3000
    per_face = [w[np.argmax(nrm @ FACE_NORMALS.T, axis=1) == f].sum() for f in range(6)]
    assert np.allclose(per_face, 4.0)
    assert (np.abs(pts) <= 1 + 1e-9).all()


def test_greedy_covers_every_cube_face_head_on_before_repeating_and_then_stops():
    tris, normals, _ = cube()
    p = place_cameras(tris, target_normals=normals, settings=replace(QUICK, count=10))
    faces = [facing_face(pose) for pose in p.poses]
    assert sorted(faces[:6]) == [0, 1, 2, 3, 4, 5], faces
    # A seventh view adds (almost) nothing: choosing stops before the ten allowed.
    assert len(p.poses) < 10
    gains = [pose.gain for pose in p.poses]
    assert all(a >= b - 1e-9 for a, b in zip(gains, gains[1:], strict=False))
    assert gains[0] > 0.1 and p.coverage > 0.8
    # Every camera frames the cube: at the distance its bounding sphere fits the lens.
    d = framing_distance(np.sqrt(3), PlacementSettings().fov_deg, PlacementSettings().margin)
    for pose in p.poses:
        assert np.isclose(np.linalg.norm(pose.position - pose.target), d)
        assert np.allclose(pose.target, 0)


def test_hemisphere_never_places_a_camera_below_the_ground():
    tris, normals, _ = cube()
    # A big ground plane (two triangles crossing the near plane of many cameras) under
    # the cube by more than the depth test's tolerance at coverage resolution.
    ground, _, _ = quad((0, 0, -1.5), 20.0, "z", 1)
    p = place_cameras(
        tris,
        occluders=ground,
        target_normals=normals,
        settings=replace(QUICK, count=8, hemisphere=True),
    )
    assert p.poses and all(pose.position[2] >= 0 for pose in p.poses)
    faces = {facing_face(pose) for pose in p.poses}
    assert faces == {0, 1, 2, 3, 4}  # four sides and the top; the bottom stands on the ground
    # On the full sphere the bottom is wanted, but the ground hides it from every camera
    # below: none is chosen there either.
    full = place_cameras(
        tris, occluders=ground, target_normals=normals, settings=replace(QUICK, count=8)
    )
    assert full.poses and all(pose.position[2] > -1.5 for pose in full.poses)


def test_occluders_steer_cameras_to_where_the_target_can_be_seen():
    # A single wall in front of the -y face: its head-on view sees only the wall.
    front_tris, front_n, _ = quad((0, -1, 0), 1.0, "y", -1)
    wall, _, _ = quad((0, -1.6, 0), 3.0, "y", -1)
    free = place_cameras(front_tris, target_normals=front_n, settings=replace(QUICK, count=1))
    walled = place_cameras(
        front_tris, occluders=wall, target_normals=front_n, settings=replace(QUICK, count=1)
    )
    assert facing_face(free.poses[0]) == 0 and free.poses[0].gain > 0.5
    assert not walled.poses or walled.poses[0].gain < free.poses[0].gain / 2


def exhaustive_greedy(w, areas, count, min_gain):
    """Plain greedy over all candidates' real weights, written out here to compare with."""
    best, out = np.zeros(w.shape[1]), []
    for _ in range(count):
        gains = np.maximum(w - best, 0) @ areas / areas.sum()
        i = int(np.argmax(gains))
        if gains[i] < min_gain:
            break
        out.append(i)
        best = np.maximum(best, w[i])
    return out


def test_greedy_gain_counts_only_what_is_new():
    w = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.1], [0.0, 0.0, 1.0]])
    areas = np.array([1.0, 1.0, 1.0])
    g = choose_greedy(w, lambda idx: w[idx], areas, count=3, min_gain=0.05)
    assert [i for i, _ in g.chosen] == [1, 2]  # candidate 0 would add nothing after 1
    assert np.allclose([gain for _, gain in g.chosen], [2.1 / 3, 0.9 / 3])
    assert np.allclose(g.best, [1, 1, 1])


def test_lazy_greedy_chooses_as_the_exhaustive_one_while_evaluating_fewer():
    rng = np.random.default_rng(3)
    for trial in range(20):
        real = rng.random((60, 200)) ** 4 * (rng.random((60, 200)) < 0.5)
        loose = real + rng.random(real.shape) * 0.3 * (trial % 2)  # tight or loose bounds
        areas = rng.random(200)
        asked = []

        def evaluate(idx, real=real, asked=asked):
            asked.extend(idx)
            return real[idx]

        g = choose_greedy(loose, evaluate, areas, count=6, min_gain=0.001, chunk=4)
        assert [i for i, _ in g.chosen] == exhaustive_greedy(real, areas, 6, 0.001)
        assert len(set(asked)) == len(asked) == g.evaluated  # each evaluated once at most
        if trial % 2 == 0:
            assert g.evaluated < 60  # exact bounds: far from all of them


def test_a_few_hundred_candidates_over_thousands_of_triangles_are_quick():
    tris = uv_sphere(40, 32)  # 2,560 triangles
    start = time.process_time()
    p = place_cameras(tris, settings=PlacementSettings(count=6, candidates=200))
    spent = time.process_time() - start
    assert len(p.poses) == 6 and p.candidates == 200 and p.rasterised < 100
    # About half a second of CPU time on the loaded 2-core test box; rasterising every
    # candidate took five times as long.
    assert spent < 2.0, spent


def test_the_narrower_field_of_view_of_a_blender_camera():
    # 50 mm on a 36 mm sensor: 39.6 degrees across the longer side (AUTO fit), less across
    # the shorter one; a square frame has the same both ways.
    assert np.isclose(narrow_fov_deg(512, 512, 50, 36, 24, "AUTO"), 39.5978, atol=1e-3)
    wide = narrow_fov_deg(768, 512, 50, 36, 24, "AUTO")
    assert np.isclose(wide, 2 * np.degrees(np.arctan(12 / 50)), atol=1e-3)
    assert narrow_fov_deg(512, 768, 50, 36, 24, "AUTO") == pytest.approx(wide)


def test_tiled_depth_buffers_equal_one_rasterisation_per_camera():
    tris, _, _ = cube()
    dirs = fibonacci_directions(12)
    cams = [coverage_camera(look_at(5 * d, np.zeros(3), up_for(d)), 40.0, 24) for d in dirs]
    tiled = depth_buffers(cams, tris)
    for cam, z in zip(cams, tiled, strict=True):
        alone = view_depth_buffer(cam, tris).depth
        assert np.isfinite(alone).any() and np.array_equal(z, alone)


def test_triangles_crossing_the_near_plane_are_cut_not_dropped():
    # Camera space, looking down -Z; near plane at depth 1.
    one_behind = np.array([[[0, 0, -3.0], [1, 0, -3.0], [0, 1, 0.0]]])
    two_behind = np.array([[[0, 0, -3.0], [1, 0, 0.0], [0, 1, 0.0]]])
    cut1, cut2 = clip_near(one_behind, 1.0), clip_near(two_behind, 1.0)
    assert cut1.shape == (2, 3, 3) and cut2.shape == (1, 3, 3)
    for cut in (cut1, cut2):
        assert (-cut[..., 2] >= 1.0 - 1e-9).all()  # all in front of the near plane
    # What is left is the part in front: a third of the way to the far corner.

    def area(t):
        return 0.5 * np.linalg.norm(np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]), axis=1)

    assert np.isclose(area(cut2).sum(), area(two_behind)[0] * (2 / 3) ** 2)
    assert np.isclose(area(cut1).sum(), area(one_behind)[0] * (1 - (1 / 3) ** 2))
    assert clip_near(np.array([[[0, 0, 1.0], [1, 0, 1.0], [0, 1, 1.0]]]), 1.0).shape[0] == 0
    # A big ground plane under a camera looking up still hides what is above it.
    ground, _, _ = quad((0, 0, -1.5), 20.0, "z", 1)
    cam = coverage_camera(look_at(np.array([1.0, 0.5, -5.6]), np.zeros(3), [0, 0, 1]), 40, 24)
    assert np.isfinite(depth_buffers([cam], ground)[0]).all()


def test_facing_bounds_cap_the_real_bake_weights():
    tris, normals, _ = cube()
    wall, _, _ = quad((0, -1.6, 0), 1.0, "y", -1)
    scene = np.concatenate([tris, wall])
    pts, nrm, _ = surface_samples(tris, normals, 600)
    dirs = fibonacci_directions(40)
    cams = [coverage_camera(look_at(5 * d, np.zeros(3), up_for(d)), 40.0, 32) for d in dirs]
    bake = BakeSettings(border_px=0.0)
    bounds = facing_bounds(cams, pts, nrm, bake)
    real = candidate_weights(cams, pts, nrm, scene, bake)
    assert (real <= bounds).all()
    assert real.max() > 0.9 and (real < bounds - 0.1).any()  # the wall hides some
    # Leaving out the samples the bounds rule out changes nothing.
    skipped = candidate_weights(cams, pts, nrm, scene, bake, bounds)
    assert np.abs(skipped - real).max() < 1e-5  # (only weights under that are dropped)


def rippled_sphere(segments, rings):
    """A dense, non-convex test mesh: a sphere with radial ripples that hide each other."""
    t = uv_sphere(segments, rings)
    az = np.arctan2(t[..., 1], t[..., 0])[..., None]
    pol = np.arccos(np.clip(t[..., 2:3], -1, 1))
    return t * (1 + 0.25 * np.sin(5 * az) * np.sin(3 * pol))


def test_dense_geometry_is_merged_for_the_z_buffers_without_changing_the_choice():
    tris = rippled_sphere(96, 60)  # 11,520 triangles
    s = replace(QUICK, count=3, candidates=16)
    centre, radius = np.zeros(3), 1.25
    dist = framing_distance(radius, s.fov_deg, s.margin)
    pixel = 2 * dist * np.tan(np.radians(s.fov_deg) / 2) / s.raster_px
    merged = simplify_for_depth(tris, pixel)
    assert len(merged) < len(tris) / 2
    assert simplify_for_depth(tris, 0.0).shape == tris.shape
    cube_tris, _, _ = cube()
    assert np.array_equal(simplify_for_depth(cube_tris, 0.5), cube_tris)  # coarse: as it was
    # The coverage-sized z-buffers hardly change: the same pixels, depths within a few
    # hundredths of the radius where they are not at a silhouette.
    dirs = fibonacci_directions(3)
    cams = [coverage_camera(look_at(centre + dist * d, centre, up_for(d)), 40, 32) for d in dirs]
    for a, b in zip(depth_buffers(cams, tris), depth_buffers(cams, merged), strict=True):
        both = np.isfinite(a) & np.isfinite(b)
        assert (np.isfinite(a) != np.isfinite(b)).mean() < 0.02
        assert np.median(np.abs(a[both] - b[both])) < 0.02 * radius
    fine = place_cameras(tris, settings=replace(s, depth_cell_px=0.0))
    coarse = place_cameras(tris, settings=s)
    assert [p.position.tolist() for p in coarse.poses] == [p.position.tolist() for p in fine.poses]
    assert abs(coarse.coverage - fine.coverage) < 0.01
