"""PBR maps baked with the colour's weights (blender_addon/core/texturing/pbr_maps.py), as
plain Python: maps read where the colour was read, views blended by the colour's weights,
camera-space normals turned into the object's frame, and the job that asks for them."""

from __future__ import annotations

import math

import numpy as np

from blender_addon.core.texturing.pbr_maps import (
    MapBaker,
    maps_of,
    materials_job,
    missing_maps,
    normals_to_object,
    resample,
    wanted_maps,
)
from blender_addon.core.texturing.projection import ViewSample
from dreamwire.shared.job_mode import JobMode
from dreamwire.shared.result import GeneratedImage, JobResult


def _sample(pixels, weights, colour=0.0) -> ViewSample:
    pixels = np.asarray(pixels, np.float64)
    w = np.asarray(weights, np.float32)
    n = len(w)
    return ViewSample(np.full((n, 3), colour, np.float32), w, np.ones(n, np.float32), w > 0, pixels)


def _gradient(h=8, w=8) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 30, y * 30, np.full_like(x, 7)], -1).astype(np.uint8)


def test_a_map_is_read_at_the_colours_pixels_with_the_colours_weights():
    s = _sample([[2.5, 3.5], [6.5, 1.5], [0.5, 0.5]], [0.7, 0.2, 0.0], colour=99.0)
    r = resample(s, _gradient())
    assert r.weights is s.weights and r.pixels is s.pixels
    # Pixel centres: the map's own values; the unseen texel takes nothing.
    np.testing.assert_allclose(r.colors[0], [60, 90, 7])
    np.testing.assert_allclose(r.colors[1], [180, 30, 7])
    np.testing.assert_allclose(r.colors[2], [0, 0, 0])


def test_two_views_maps_crossfade_as_their_colours_do():
    mask = np.zeros((2, 2), bool)
    mask[0, :] = True  # two covered texels
    baker = MapBaker({"T": mask}, wanted_maps(normal=False))
    grey = {m: np.full((4, 4, 3), v, np.uint8) for m, v in (("albedo", 200), ("roughness", 40))}
    baker.add("T", _sample([[1.5, 1.5], [2.5, 2.5]], [1.0, 0.25]), grey)
    dark = {m: np.full((4, 4, 3), 0, np.uint8) for m in ("albedo", "roughness")}
    baker.add("T", _sample([[1.5, 1.5], [2.5, 2.5]], [1.0, 0.75]), dark)
    tex = baker.textures("T")
    assert set(tex) == {"albedo", "roughness"}  # no view sent metallic: nothing baked
    assert tex["albedo"][0, 0, 0] == 100 and tex["albedo"][0, 1, 0] == 50
    assert tex["roughness"][0, 0, 0] == 20 and tex["roughness"][0, 1, 0] == 10
    assert tex["albedo"][0, 0, 3] == 255


def _rot_z(deg: float) -> np.ndarray:
    a = math.radians(deg)
    m = np.eye(4)
    m[:2, :2] = [[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]
    return m


def test_camera_normals_become_the_objects():
    # A camera on -y looking at +y (Blender: rotation x 90 deg): its +z points to -y.
    cam_to_world = np.eye(4)
    cam_to_world[:3, :3] = [[1, 0, 0], [0, 0, -1], [0, 1, 0]]
    facing_camera = np.array([[[128, 128, 255]]], np.uint8)  # n_cam = (0, 0, 1)
    up = np.array([[[128, 255, 128]]], np.uint8)  # n_cam = (0, 1, 0): world +z
    world = normals_to_object(facing_camera, cam_to_world, np.eye(4))
    np.testing.assert_allclose(world[0, 0], [128, 0, 128], atol=1)  # world -y
    # An object turned 90 deg about z: world -y is its +x... (R^T (0,-1,0) = (-1, 0, 0)).
    turned = normals_to_object(facing_camera, cam_to_world, _rot_z(90))
    np.testing.assert_allclose(turned[0, 0], [0, 128, 128], atol=1)
    np.testing.assert_allclose(
        normals_to_object(up, cam_to_world, _rot_z(90))[0, 0], [128, 128, 255], atol=1
    )


def test_the_materials_job_and_its_maps():
    view = np.zeros((16, 24, 4), np.uint8)
    job = materials_job(view, wanted_maps(normal=True), seed=5, tag="maps Cam").validate()
    assert job.mode is JobMode.MATERIALS and job.init_image.shape == (16, 24, 3)
    assert job.materials.maps == ["albedo", "roughness", "metallic", "normal"] and job.seed == 5
    img = np.zeros((16, 24, 3), np.uint8)
    result = JobResult("j", [GeneratedImage(img, 5, "", map="albedo"), GeneratedImage(img, 5, "")])
    assert list(maps_of(result)) == ["albedo"]


def test_maps_the_backend_cannot_make_are_named_before_any_job():
    from dreamwire.shared.events import Welcome

    welcome = Welcome.from_body({"protocol": 1, "materials": {"albedo": ["m"], "roughness": ["m"]}})
    assert missing_maps(["albedo", "roughness"], welcome) is None
    why = missing_maps(wanted_maps(normal=True), welcome)
    assert "metallic, normal" in why and "models/Marigold" in why
    assert missing_maps(["albedo"], None) is None  # not connected yet: the job will say


def test_a_tiling_texture_is_wrapped_for_its_maps_and_cut_back():
    from blender_addon.core.texturing.pbr_maps import crop_maps, seamless_padding

    img = np.arange(64 * 48 * 3, dtype=np.uint32).reshape(48, 64, 3).astype(np.uint8)
    padded, offset = seamless_padding(img, "both")
    assert offset == (8, 16) and padded.shape == (64, 96, 3)
    # Left of the texture is its own right edge, above it its own bottom rows.
    assert np.array_equal(padded[8:56, :16], img[:, -16:])
    assert np.array_equal(padded[:8, 16:80], img[-8:])
    assert np.array_equal(crop_maps({"a": padded}, offset, (64, 48))["a"], img)
    xs, off_x = seamless_padding(img, "x")
    assert off_x == (0, 16) and xs.shape == (48, 96, 3)
    same, none = seamless_padding(img, "none")
    assert none == (0, 0) and np.array_equal(same, img)
