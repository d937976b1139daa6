"""Rasterisation, camera projection and single-view baking math (no Blender)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from blender_addon.core.texturing.projection import (
    BakeSettings,
    Camera,
    intrinsics,
    sample_bilinear,
    sample_view,
    texel_surface,
    view_depth_buffer,
)
from blender_addon.core.texturing.rasterize import dilate, rasterize


def look_at(eye, target, up=(0, 0, 1)) -> np.ndarray:
    """World-to-camera matrix of a Blender camera at `eye` looking at `target`."""
    eye = np.asarray(eye, float)
    f = np.asarray(target, float) - eye
    f /= np.linalg.norm(f)
    r = np.cross(f, up)
    if np.linalg.norm(r) < 1e-9:
        r = np.cross(f, (0, 1, 0))
    r /= np.linalg.norm(r)
    u = np.cross(r, f)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = r, u, -f, eye
    return np.linalg.inv(m)


def make_cam(eye, target, size=64, lens=50.0, sensor=36.0) -> Camera:
    fx, fy, cx, cy = intrinsics(size, size, lens, sensor, sensor)
    return Camera(look_at(eye, target), size, size, fx, fy, cx, cy)


def quad(center, half, normal_axis="y", sign=-1.0):
    """Two triangles of an axis-aligned square facing `sign` along `normal_axis`."""
    c = np.asarray(center, float)
    if normal_axis == "y":
        a, b = np.array([half, 0, 0]), np.array([0, 0, half])
    elif normal_axis == "x":
        a, b = np.array([0, half, 0]), np.array([0, 0, half])
    else:
        a, b = np.array([half, 0, 0]), np.array([0, half, 0])
    p = [c - a - b, c + a - b, c + a + b, c - a + b]
    tris = np.array([[p[0], p[1], p[2]], [p[0], p[2], p[3]]])
    n = np.zeros(3)
    n["xyz".index(normal_axis)] = sign
    normals = np.broadcast_to(n, (2, 3, 3)).copy()
    uvs = np.array([[[0, 0], [1, 0], [1, 1]], [[0, 0], [1, 1], [0, 1]]], float)
    return tris, normals, uvs


def test_two_triangles_cover_a_square_exactly_once():
    xy = np.array([[[0, 0], [16, 0], [16, 16]], [[0, 0], [16, 16], [0, 16]]], float)
    r = rasterize(xy, 16, 16)
    assert r.mask.all()
    # Each pixel's barycentrics reproduce its centre.
    ys, xs = np.mgrid[0:16, 0:16]
    centre = r.interpolate(xy)
    assert np.allclose(centre[..., 0], xs + 0.5, atol=1e-4)
    assert np.allclose(centre[..., 1], ys + 0.5, atol=1e-4)


def test_z_test_keeps_the_nearest_triangle_regardless_of_order():
    big = [[0, 0], [20, 0], [0, 20]]
    small = [[2, 2], [10, 2], [2, 10]]
    for order in ((0, 1), (1, 0)):
        tris = np.array([big, small], float)[list(order)]
        depth = np.array([[5.0] * 3, [1.0] * 3])[list(order)]
        r = rasterize(tris, 20, 20, depth=depth)
        small_idx = order.index(1)
        assert r.tri[3, 3] == small_idx and r.depth[3, 3] == pytest.approx(1.0)
        assert r.tri[15, 1] == 1 - small_idx


def test_perspective_correct_depth_matches_ray_plane_intersection():
    cam = make_cam((0, -4, 0), (0, 0, 0))
    # A plane tilted away from the camera: y = 0.5 * x.
    p = np.array([[-1, -0.5, -1], [1, 0.5, -1], [1, 0.5, 1], [-1, -0.5, 1]], float)
    tris = np.array([[p[0], p[1], p[2]], [p[0], p[2], p[3]]])
    r = view_depth_buffer(cam, tris)
    ys, xs = np.nonzero(r.mask)
    assert len(xs) > 200
    # Independent: intersect each pixel ray with the plane.
    inv = np.linalg.inv(cam.world_to_cam)
    for x, y in list(zip(xs, ys, strict=False))[::37]:
        d_cam = np.array([(x + 0.5 - cam.cx) / cam.fx, -(y + 0.5 - cam.cy) / cam.fy, -1.0])
        d = inv[:3, :3] @ d_cam
        o = inv[:3, 3]
        # plane: y - 0.5 x = 0 -> t
        t = -(o[1] - 0.5 * o[0]) / (d[1] - 0.5 * d[0])
        assert r.depth[y, x] == pytest.approx(t, rel=1e-3)


def test_projection_matches_pinhole_formula():
    cam = make_cam((0, -5, 0), (0, 0, 0), size=100, lens=50, sensor=36)
    # A point on the optical axis lands in the centre; one at the frame edge on the edge.
    xy, depth = cam.project(np.array([[0, 0, 0], [5 * 18 / 50, 0, 0], [0, 0, 5 * 18 / 50]]))
    assert np.allclose(xy[0], (50, 50))
    assert depth[0] == pytest.approx(5)
    assert np.allclose(xy[1], (100, 50))
    assert np.allclose(xy[2], (50, 0))  # up in the world is up in the image


def test_intrinsics_follow_sensor_fit_and_shift():
    fx, fy, cx, cy = intrinsics(200, 100, 50, 36, 24, "AUTO")
    assert fx == pytest.approx(200 * 50 / 36) and fy == fx
    fx, fy, cx, cy = intrinsics(
        100, 200, 50, 36, 24, "AUTO"
    )  # portrait: width of sensor spans height
    assert fy == pytest.approx(200 * 50 / 36)
    fx, fy, cx, cy = intrinsics(200, 100, 50, 36, 24, "VERTICAL")
    assert fy == pytest.approx(100 * 50 / 24)
    fx, fy, cx, cy = intrinsics(200, 100, 50, 36, 24, "AUTO", shift_x=0.1, shift_y=0.2)
    assert cx == pytest.approx(100 - 20) and cy == pytest.approx(50 + 40)
    fx, fy, cx, cy = intrinsics(200, 100, 50, 36, 24, "AUTO", ortho_scale=4.0)
    assert fx == pytest.approx(50)


def test_texel_surface_interpolates_positions_linearly():
    tris, normals, uvs = quad((0, 0, 0), 1.0)
    surf = texel_surface(uvs, tris, normals, (32, 32))
    assert surf.mask.all()
    ys, xs = np.nonzero(surf.mask)
    u = (xs + 0.5) / 32
    v = 1 - (ys + 0.5) / 32
    assert np.allclose(surf.positions[:, 0], -1 + 2 * u, atol=1e-5)
    assert np.allclose(surf.positions[:, 2], -1 + 2 * v, atol=1e-5)
    assert np.allclose(surf.normals, (0, -1, 0))


def test_sample_view_reads_the_pixel_each_texel_projects_to():
    cam = make_cam((0, -4, 0), (0, 0, 0), size=64)
    tris, normals, uvs = quad((0, 0, 0), 1.0)
    surf = texel_surface(uvs, tris, normals, (32, 32))
    ys, xs = np.mgrid[0:64, 0:64]
    image = np.stack([xs * 4, ys * 4, np.full_like(xs, 77)], axis=-1).astype(np.uint8)
    zb = view_depth_buffer(cam, tris).depth
    s = sample_view(cam, image, surf.positions, surf.normals, zb)
    assert s.visible.all()
    # Colour = image at the projected pixel (independent bilinear lookup).
    expect = sample_bilinear(image, s.pixels)
    assert np.allclose(s.colors, expect, atol=1e-3)
    assert np.allclose(s.colors[:, 2], 77)
    # Facing the camera head-on in the middle: full weight there.
    assert s.weights.max() == pytest.approx(1.0, abs=0.02)


def test_back_faces_occluded_and_grazing_texels_get_no_weight():
    cam = make_cam((0, -4, 0), (0, 0, 0), size=64)
    image = np.full((64, 64, 3), 200, np.uint8)
    tris, normals, uvs = quad((0, 0, 0), 1.0)
    surf = texel_surface(uvs, tris, normals, (16, 16))
    # Back-facing: flip the normals.
    s = sample_view(cam, image, surf.positions, -surf.normals, None)
    assert not s.visible.any() and (s.weights == 0).all()
    # Occluded: a bigger quad between the camera and ours.
    blocker, _, _ = quad((0, -1, 0), 2.0)
    zb = view_depth_buffer(cam, np.concatenate([tris, blocker])).depth
    s = sample_view(cam, image, surf.positions, surf.normals, zb)
    assert not s.visible.any()
    # Half occluded: a blocker covering only x < 0.
    half = np.array(
        [[[-3, -1, -3], [0, -1, -3], [0, -1, 3]], [[-3, -1, -3], [0, -1, 3], [-3, -1, 3]]], float
    )
    zb = view_depth_buffer(cam, np.concatenate([tris, half])).depth
    s = sample_view(cam, image, surf.positions, surf.normals, zb)
    left = surf.positions[:, 0] < -0.15
    right = surf.positions[:, 0] > 0.15
    assert not s.visible[left].any() and s.visible[right].all()
    # Grazing: a floor seen almost edge-on.
    ftris, fnormals, fuvs = quad((0, 0, -0.2), 1.0, "z", 1.0)
    low = make_cam((0, -6, 0.0), (0, 0, -0.2), size=64)
    fsurf = texel_surface(fuvs, ftris, fnormals, (16, 16))
    st = BakeSettings(grazing_deg=80, full_deg=50)
    s = sample_view(low, image, fsurf.positions, fsurf.normals, None, st)
    angle = np.degrees(np.arccos(np.clip(s.facing, -1, 1)))
    assert (angle > 80).all() and (s.weights == 0).all()


def test_weights_fall_with_the_viewing_angle():
    image = np.full((64, 64, 3), 100, np.uint8)
    pts = np.zeros((1, 3))
    nrm = np.array([[0, -1, 0]], float)
    weights = []
    for deg in (0, 30, 55, 70, 85):
        a = math.radians(deg)
        cam = make_cam((4 * math.sin(a), -4 * math.cos(a), 0), (0, 0, 0))
        weights.append(float(sample_view(cam, image, pts, nrm, None).weights[0]))
    assert weights[0] == pytest.approx(1.0, abs=1e-6)
    assert all(a > b for a, b in zip(weights, weights[1:-1], strict=False))
    assert weights[-1] == 0.0


def test_dilate_grows_colours_into_empty_texels():
    vals = np.zeros((5, 5, 3), np.float32)
    mask = np.zeros((5, 5), bool)
    vals[2, 2] = (10, 20, 30)
    mask[2, 2] = True
    out, m = dilate(vals, mask, 1)
    assert m[1:4, 1:4].all() and not m[0].any()
    assert np.allclose(out[1, 1], (10, 20, 30))


@pytest.mark.parametrize(
    "kw",
    [
        dict(width=96, height=64, lens=35.0, shift_x=0.1, shift_y=-0.2),
        dict(width=64, height=96, lens=50.0, sensor_fit="VERTICAL"),
        dict(width=80, height=64, ortho=True, ortho_scale=5.0, shift_x=0.05),
        dict(width=64, height=64, pixel_aspect_x=1.0, pixel_aspect_y=1.5),
    ],
)
def test_camera_from_model_projects_like_the_blender_camera_model(kw):
    from blender_addon.core.camera import CameraModel
    from blender_addon.core.texturing.projection import camera_from_model

    m = np.linalg.inv(look_at((1.0, -5.0, 2.0), (0.2, 0.0, 0.3)))
    model = CameraModel(matrix_world=m, **kw)
    cam = camera_from_model(model)
    pts = np.random.default_rng(1).uniform(-1.5, 1.5, (50, 3))
    a, da = cam.project(pts)
    b, db = model.project(pts)
    assert np.allclose(a, b, atol=1e-6) and np.allclose(da, db)
