"""ADE20K palette, depth and normal conventions, masks and tiles."""

from __future__ import annotations

import numpy as np
import pytest

from dreamwire.shared.imaging import ade20k, depth, masks, normals, tiling


def test_ade20k_known_entries():
    assert ade20k.NUM_CLASSES == 150 == len(ade20k.PALETTE)
    assert ade20k.color_of("wall") == (120, 120, 120)
    assert ade20k.color_of("building") == (180, 120, 120)
    assert ade20k.color_of("sky") == (6, 230, 230)
    assert ade20k.color_of("floor") == (80, 50, 50)
    assert ade20k.color_of("tree") == (4, 200, 3)
    assert ade20k.color_of("person") == (150, 5, 61)
    assert ade20k.color_of("flag") == (92, 0, 255)
    assert ade20k.class_id("Bed") == 7 and ade20k.class_name(7) == "bed"
    assert ade20k.class_id("chest_of_drawers") == 44
    assert ade20k.class_id("window") == ade20k.class_id("windowpane") == 8
    assert ade20k.class_id(149) == 149 and ade20k.class_id(150) is None
    assert ade20k.class_id("unicorn") is None
    with pytest.raises(ValueError):
        ade20k.color_of("unicorn")


def test_ade20k_palette_distinct_except_the_original_duplicate():
    colours = [tuple(c) for c in ade20k.PALETTE]
    # The mmseg palette ControlNet uses has exactly one shared colour: road and skyscraper.
    assert len(set(colours)) == 149
    assert colours[6] == colours[48] == (140, 140, 140)
    assert ade20k.CLASS_NAMES[6] == "road" and ade20k.CLASS_NAMES[48] == "skyscraper"
    assert all(0 <= v <= 255 for c in colours for v in c)


def test_ade20k_colorize_and_back():
    labels = np.array([[0, 1, 2], [-1, 149, 12]])
    img = ade20k.colorize(labels)
    assert img.dtype == np.uint8 and img.shape == (2, 3, 3)
    assert tuple(img[0, 2]) == (6, 230, 230) and tuple(img[1, 0]) == (0, 0, 0)
    np.testing.assert_array_equal(ade20k.nearest_labels(img), labels)


def test_depth_near_is_bright_background_black():
    z = np.full((4, 5), np.inf)
    z[0, 0], z[1, 1], z[2, 2] = 2.0, 4.0, 6.0
    z[3, 3] = 1e10  # Cycles' "no hit"
    z[3, 4] = np.nan
    d = depth.normalize_depth(z)
    assert d[0, 0] == 1.0 and d[2, 2] == 0.0 and d[1, 1] == pytest.approx(0.5)
    assert d[3, 3] == 0 and d[3, 4] == 0 and d[0, 1] == 0
    img = depth.depth_image(z)
    assert img.shape == (4, 5, 3) and img.dtype == np.uint8
    assert tuple(img[0, 0]) == (255, 255, 255) and img[1, 1, 0] == 128
    inv = depth.normalize_depth(z, mode="inverse")
    assert inv[0, 0] == 1.0 and inv[2, 2] == 0.0 and inv[1, 1] == pytest.approx(0.25)
    g = depth.normalize_depth(z, gamma=2.0)
    assert g[1, 1] == pytest.approx(0.25)
    assert not depth.normalize_depth(np.full((2, 2), np.inf)).any()


def test_depth_ordering_is_monotonic():
    rng = np.random.default_rng(0)
    z = rng.uniform(1, 100, (32, 32))
    d = depth.normalize_depth(z).ravel()
    order = np.argsort(z.ravel())
    assert np.all(np.diff(d[order]) <= 1e-7)


def test_normals_facing_camera_and_axes():
    n = np.array(
        [
            [0.0, 0.0, 1.0],  # facing the camera
            [-1.0, 0.0, 0.0],  # turned to the image's left
            [1.0, 0.0, 0.0],  # turned right
            [0.0, 1.0, 0.0],  # facing up
            [0.0, -1.0, 0.0],  # facing down
        ]
    )[None]
    img = normals.normals_to_image(n)
    assert tuple(img[0, 0]) == (127, 127, 255) == normals.FACING
    assert tuple(img[0, 1]) == (255, 127, 127)  # red is left
    assert tuple(img[0, 2]) == (0, 127, 127)
    assert tuple(img[0, 3]) == (127, 255, 127)  # green is up
    assert tuple(img[0, 4]) == (127, 0, 127)
    back = normals.image_to_normals(img)
    assert np.all((back * n[0]).sum(-1) > 0.99)


def test_normals_world_to_camera_and_background():
    # A camera looking down -Y (rotated +90 degrees about X): world -Y faces away from it,
    # world +Y faces it; world +Z is the camera's up.
    c, s = np.cos(np.pi / 2), np.sin(np.pi / 2)
    cam = np.eye(4)
    cam[:3, :3] = [[1, 0, 0], [0, c, -s], [0, s, c]]
    world = np.array([[[0.0, -1.0, 0.0], [0.0, 0.0, 1.0]]])
    cam_n = normals.world_to_camera_normals(world, cam * 2.0)  # scale must not matter
    np.testing.assert_allclose(cam_n[0, 0], [0, 0, 1], atol=1e-9)
    np.testing.assert_allclose(cam_n[0, 1], [0, 1, 0], atol=1e-9)
    img = normals.normals_to_image(cam_n, mask=np.array([[True, False]]), background=(0, 0, 0))
    assert tuple(img[0, 0]) == (127, 127, 255) and tuple(img[0, 1]) == (0, 0, 0)


def test_feather_matches_opencv_gaussian():
    cv2 = pytest.importorskip("cv2")
    m = np.zeros((40, 50), np.float32)
    m[10:30, 12:35] = 1.0
    for sigma in (1.0, 2.5, 4.0):
        size = 2 * int(2.5 * sigma + 0.5) + 1
        ref = cv2.GaussianBlur(m, (size, size), sigma)
        np.testing.assert_allclose(masks.feather(m, sigma), ref, atol=1e-5)
    u8 = (m * 255).astype(np.uint8)
    f = masks.feather(u8, 3)
    assert f.dtype == np.uint8 and f[20, 23] == 255 and f[0, 0] == 0 and 0 < f[10, 23] < 255


def test_grow_and_shrink():
    m = np.zeros((30, 30), bool)
    m[10:20, 10:20] = True
    g = masks.grow(m, 3)
    assert g.dtype == bool and g[7, 15] and not g[6, 15] and g[:, :].sum() > m.sum()
    s = masks.shrink(m, 3)
    assert s[13, 15] and not s[12, 15] and s.sum() < m.sum()
    np.testing.assert_array_equal(masks.grow(m, -3), s)
    u8 = m.astype(np.uint8) * 255
    assert masks.grow(u8, 2).dtype == np.uint8 and masks.grow(u8, 2)[8, 15] == 255


def test_tile_grid_covers_with_overlap_and_merges_seamlessly():
    w, h, t, ov = 1000, 700, 512, 64
    tiles = tiling.tile_grid(w, h, t, ov)
    cover = np.zeros((h, w), int)
    for tl in tiles:
        assert tl.width == t and tl.height == t
        assert tl.x >= 0 and tl.y >= 0 and tl.x + t <= w and tl.y + t <= h
        cover[tl.slices] += 1
    assert cover.min() >= 1
    xs = sorted({tl.x for tl in tiles})
    assert all(b - a <= t - ov for a, b in zip(xs, xs[1:], strict=False))
    img = np.random.default_rng(0).random((h, w, 3)).astype(np.float32)
    parts = [img[tl.slices] for tl in tiles]
    np.testing.assert_allclose(tiling.merge_tiles(tiles, parts, w, h, ov), img, atol=1e-5)
    assert tiling.tile_grid(300, 200, 512) == [tiling.Tile(0, 0, 300, 200)]
    with pytest.raises(ValueError):
        tiling.tile_grid(1000, 1000, 64, 64)


def test_depth_floor_keeps_far_geometry_apart_from_background():
    z = np.array([[2.0, 6.0, np.inf]])
    d = depth.normalize_depth(z, floor=0.2)
    assert d[0].tolist() == pytest.approx([1.0, 0.2, 0.0])
    with pytest.raises(ValueError):
        depth.normalize_depth(z, floor=1.0)
    with pytest.raises(ValueError):
        depth.normalize_depth(z, mode="log")


def test_rendered_unit_normals_do_not_lose_the_top_value():
    # A renderer's unit normal is 1 - 1e-7, not 1; the facing colour must still be 255.
    n = np.array([[[0.0, 0.0, np.float32(0.99999994)], [0.0, np.float32(0.9999999), 0.0]]])
    img = normals.normals_to_image(n)
    assert tuple(img[0, 0]) == (127, 127, 255) and tuple(img[0, 1]) == (127, 255, 127)
