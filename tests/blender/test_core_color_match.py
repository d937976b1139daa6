"""Colour matching a later view to the texture so far, in CIELAB (no Blender)."""

from __future__ import annotations

import numpy as np
import pytest
from test_core_projection import make_cam

from blender_addon.core.texturing.color_match import MatchSettings, fit_transfer, match_view
from blender_addon.core.texturing.color_space import lab_to_srgb, srgb_to_lab
from blender_addon.core.texturing.multiview import TextureAccumulator
from blender_addon.core.texturing.projection import sample_view, texel_surface, view_depth_buffer


@pytest.mark.parametrize(
    ("rgb", "lab"),
    [
        # Published CIELAB (D65) values of the sRGB primaries, white, black and yellow.
        ((255, 255, 255), (100.0, 0.0, 0.0)),
        ((0, 0, 0), (0.0, 0.0, 0.0)),
        ((255, 0, 0), (53.2408, 80.0925, 67.2032)),
        ((0, 255, 0), (87.7347, -86.1827, 83.1793)),
        ((0, 0, 255), (32.2970, 79.1875, -107.8602)),
        ((255, 255, 0), (97.1393, -21.5537, 94.4780)),
        ((128, 128, 128), (53.5850, 0.0, 0.0)),
    ],
)
def test_srgb_to_lab_matches_known_values(rgb, lab):
    assert srgb_to_lab(np.array(rgb, float)) == pytest.approx(lab, abs=2e-3)


def test_lab_round_trip_is_exact_inside_the_gamut():
    rgb = np.random.default_rng(0).uniform(0, 255, (500, 3))
    assert np.abs(lab_to_srgb(srgb_to_lab(rgb)) - rgb).max() < 1e-6


def wall():
    """A wide wall facing -y (4 triangles' worth of UV texture, 256 x 32 texels)."""
    p = np.array([[-4, 0, -1], [4, 0, -1], [4, 0, 1], [-4, 0, 1]], float)
    tris = np.array([[p[0], p[1], p[2]], [p[0], p[2], p[3]]])
    normals = np.broadcast_to([0, -1, 0], (2, 3, 3)).astype(float)
    uvs = np.array([[[0, 0], [1, 0], [1, 1]], [[0, 0], [1, 1], [0, 1]]], float)
    return tris, normals, uvs, texel_surface(uvs, tris, normals, (256, 32))


def paint(xyz: np.ndarray) -> np.ndarray:
    """The wall's 'true' colour at world points: varied, well inside 0..255."""
    x, z = xyz[..., 0], xyz[..., 2]
    return np.stack(
        [120 + 60 * np.sin(2 * x), 110 + 50 * np.cos(3 * z), 100 + 40 * np.sin(x + z)], -1
    )


def render(cam, tris, grade=lambda c: c) -> np.ndarray:
    """What a generator 'draws' from `cam`: the wall's paint, graded, grey elsewhere."""
    r = view_depth_buffer(cam, tris)
    img = np.full((cam.height, cam.width, 3), 128.0)
    pos = r.interpolate(tris)
    img[r.mask] = grade(paint(pos[r.mask]))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def brighter_and_warmer(c):
    return c * 1.15 + np.array([25.0, 8.0, -15.0])


def view(cam, tris, surf, grade=lambda c: c):
    zb = view_depth_buffer(cam, tris).depth
    return sample_view(cam, render(cam, tris, grade), surf.positions, surf.normals, zb)


def test_brightened_tinted_view_is_matched_back_in_the_overlap():
    tris, _, _, surf = wall()
    acc = TextureAccumulator(surf.mask)
    first = view(make_cam((-1, -4, 0), (-1, 0, 0)), tris, surf)
    acc.add(first)
    # The second camera overlaps the first by about half; its generation came out
    # brighter and warmer.
    second = view(make_cam((0.5, -4, 0), (0.5, 0, 0)), tris, surf, brighter_and_warmer)
    (matched,), transfer = match_view([acc], [second])
    assert transfer is not None
    both = (first.weights > 0.3) & (second.weights > 0.3)
    assert both.sum() > 200
    truth = acc.colors()[both]
    before = np.abs(second.colors[both] - truth).mean()
    after = np.abs(matched.colors[both] - truth).mean()
    assert before > 15  # the grade is really visible...
    assert after < 3.0  # ...and matching undoes it up to bilinear and 8-bit rounding
    # Lightness comes down: the transform undoes the grade, it is not noise.
    assert transfer.source_mean[0] > transfer.target_mean[0] + 5
    # The whole view's contribution moved, including where only it sees the wall.
    only_new = (second.weights > 0.3) & (first.weights == 0)
    assert only_new.sum() > 100
    truth_new = paint(surf.positions[only_new])
    assert np.abs(matched.colors[only_new] - truth_new).mean() < 4.0
    assert np.abs(second.colors[only_new] - truth_new).mean() > 15
    # Weights are untouched: matching changes colours, not how views blend.
    assert np.array_equal(matched.weights, second.weights)


def test_histogram_method_undoes_a_non_linear_lightness_curve():
    """A contrast curve is not a shift and a scale: mean/std matching gets close, matching
    the quantiles undoes it."""

    def lightness_curve(c):
        lab = srgb_to_lab(c)
        lab[..., 0] = 100 * (lab[..., 0] / 100) ** 0.5
        return lab_to_srgb(lab)

    tris, _, _, surf = wall()
    acc = TextureAccumulator(surf.mask)
    first = view(make_cam((-1, -4, 0), (-1, 0, 0)), tris, surf)
    acc.add(first)
    second = view(make_cam((0.5, -4, 0), (0.5, 0, 0)), tris, surf, lightness_curve)
    only_new = (second.weights > 0.3) & (first.weights == 0)
    truth = paint(surf.positions[only_new])
    err = {}
    for method in ("mean_std", "histogram"):
        (m,), t = match_view([acc], [second], settings=MatchSettings(method=method))
        assert t is not None
        err[method] = np.abs(m.colors[only_new] - truth).mean()
    assert np.abs(second.colors[only_new] - truth).mean() > 30
    assert err["histogram"] < 0.7 and err["histogram"] < err["mean_std"] / 2, err
    with pytest.raises(ValueError, match="not one of"):
        MatchSettings(method="reinhard")


def test_no_overlap_leaves_the_view_unchanged():
    tris, _, _, surf = wall()
    acc = TextureAccumulator(surf.mask)
    acc.add(view(make_cam((-3, -2.5, 0), (-3, 0, 0)), tris, surf))
    far = view(make_cam((3, -2.5, 0), (3, 0, 0)), tris, surf, brighter_and_warmer)
    assert not ((acc.weight_sum > 0) & (far.weights > 0)).any()
    (out,), transfer = match_view([acc], [far])
    assert transfer is None and out is far


def test_only_the_regenerated_part_of_an_inpainted_view_is_compared_and_changed():
    """A later view is an inpainting: outside its mask it holds the texture so far, bit for
    bit. The graded colours are only in the masked part; matching measures and changes
    that part and leaves the kept part exactly as it was."""
    tris, _, _, surf = wall()
    acc = TextureAccumulator(surf.mask)
    acc.add(view(make_cam((-1, -4, 0), (-1, 0, 0)), tris, surf))
    cam = make_cam((0.5, -4, 0), (0.5, 0, 0))
    kept, graded = render(cam, tris), render(cam, tris, brighter_and_warmer)
    mask = np.zeros((64, 64), np.uint8)
    mask[:, 24:] = 255  # the right part of the view was generated anew
    image = np.where(mask[..., None] > 0, graded, kept)
    zb = view_depth_buffer(cam, tris).depth
    second = sample_view(cam, image, surf.positions, surf.normals, zb)
    (matched,), transfer = match_view([acc], [second], mask)
    assert transfer is not None
    px = second.pixels[:, 0]
    seen = second.weights > 0
    left, right = seen & (px < 23), seen & (px > 25)
    assert np.array_equal(matched.colors[left], second.colors[left])
    truth = paint(surf.positions[right])
    assert np.abs(second.colors[right] - truth).mean() > 15
    assert np.abs(matched.colors[right] - truth).mean() < 3.0
    # Without the mask the kept pixels (which agree by construction) dilute the statistics:
    # the correction falls short and the kept part gets shifted too.
    (unmasked,), _ = match_view([acc], [second])
    assert (
        np.abs(unmasked.colors[right] - truth).mean()
        > 2 * np.abs(matched.colors[right] - truth).mean()
    )


def test_small_overlap_is_not_trusted_and_the_gain_is_capped():
    rng = np.random.default_rng(1)
    ref = rng.uniform(30, 220, (400, 3))
    flat = np.full((400, 3), 128.0)
    few = np.zeros(400)
    few[:20] = 1.0  # 20 texels of overlap: below the default minimum of 32
    assert fit_transfer(ref, flat, few) is None
    # The size counts texels, not weight: an overlap seen obliquely (small weights
    # everywhere) is as large as one seen head-on; one dominant texel is not.
    assert fit_transfer(ref, flat, np.full(400, 0.01)) is not None
    lopsided = np.full(400, 1e-3)
    lopsided[0] = 1.0
    assert fit_transfer(ref, flat, lopsided) is None
    t = fit_transfer(ref, flat, np.ones(400), MatchSettings(max_gain=1.5))
    assert t is not None
    # A flat view against a textured reference would need a huge gain; it is capped.
    assert t.gain.max() == pytest.approx(1.5)
    assert np.all(np.isfinite(t.apply(flat)))
    out = t.apply(np.array([[0.0, 0.0, 0.0], [255.0, 255.0, 255.0]]))
    assert out.min() >= 0 and out.max() <= 255
    # The histogram curve's slope is capped the same way.
    nearly_flat = flat + rng.normal(0, 0.5, flat.shape)
    h = fit_transfer(ref, nearly_flat, np.ones(400), MatchSettings("histogram", max_gain=1.5))
    slopes = np.diff(h.knots_out, axis=1) / np.diff(h.knots_in, axis=1)
    assert slopes.max() <= 1.5 + 1e-9 and slopes.min() >= 1 / 1.5 - 1e-9
    assert np.all(np.isfinite(h.apply(np.array([[0.0, 0.0, 0.0], [255.0, 255.0, 255.0]]))))
