"""Grid mode's layout, tiling and splitting (no Blender)."""

from __future__ import annotations

import numpy as np
import pytest

from blender_addon.core.texturing.view_grid import grid_shape, plan_grid, tile, untile


@pytest.mark.parametrize(
    ("views", "shape"),
    [(1, (1, 1)), (2, (2, 1)), (3, (2, 2)), (4, (2, 2)), (5, (3, 2)), (6, (3, 2))],
)
def test_auto_layout_is_the_smallest_grid_that_holds_the_views(views, shape):
    assert grid_shape(views) == shape


def test_named_layouts_and_an_unknown_one():
    assert grid_shape(2, "3x2") == (3, 2) and grid_shape(6, "2x2") == (2, 2)
    with pytest.raises(ValueError, match="Unknown grid layout '4x4'"):
        grid_shape(4, "4x4")


@pytest.mark.parametrize(
    ("views", "budget"), [(4, (512, 512)), (6, (512, 512)), (5, (768, 512)), (2, (64, 64))]
)
def test_cells_are_multiples_of_8_in_the_budgets_shape_within_its_pixels(views, budget):
    g = plan_grid(views, budget)
    assert g.cell_width % 8 == 0 and g.cell_height % 8 == 0
    w, h = g.size
    assert w * h <= budget[0] * budget[1]
    # Within one rounding step of the budget: the grid uses what it may.
    assert (w + 8 * g.cols) * (h + 8 * g.rows) > budget[0] * budget[1]
    assert abs(g.cell_width / g.cell_height - budget[0] / budget[1]) < 0.1


def test_2x2_of_a_square_budget_is_the_budget():
    g = plan_grid(4, (512, 512))
    assert (g.cols, g.rows, g.size) == (2, 2, (512, 512))
    assert [g.origin(i) for i in range(4)] == [(0, 0), (256, 0), (0, 256), (256, 256)]


@pytest.mark.parametrize("views", [4, 5, 6])
def test_tile_then_untile_gives_back_every_view_exactly(views):
    g = plan_grid(views, (256, 192))
    rng = np.random.default_rng(views)
    rgb = [rng.integers(0, 256, (g.cell_height, g.cell_width, 3), np.uint8) for _ in range(views)]
    masks = [rng.integers(0, 256, (g.cell_height, g.cell_width), np.uint8) for _ in range(views)]
    grid = tile(rgb, g)
    assert grid.shape == (g.size[1], g.size[0], 3) and grid.dtype == np.uint8
    for a, b in zip(untile(grid, g, views), rgb, strict=True):
        assert np.array_equal(a, b)
    mask_grid = tile(masks, g)
    assert mask_grid.shape == (g.size[1], g.size[0])
    for a, b in zip(untile(mask_grid, g, views), masks, strict=True):
        assert np.array_equal(a, b)
    # Row by row: view 1 sits right of view 0 (a transposed layout would fail this).
    assert np.array_equal(grid[: g.cell_height, g.cell_width : 2 * g.cell_width], rgb[1])


def test_empty_cells_hold_the_fill_and_views_stay_in_their_cells():
    g = plan_grid(5, (96, 64))
    cells = [np.full((g.cell_height, g.cell_width, 3), 10 * (i + 1), np.uint8) for i in range(5)]
    cells[2] = None  # a view without this control image
    grid = tile(cells, g, fill=7)
    parts = untile(grid, g, 6)
    assert [int(p.min()) for p in parts] == [10, 20, 7, 40, 50, 7]
    assert [int(p.max()) for p in parts] == [10, 20, 7, 40, 50, 7]


def test_wrong_sizes_are_refused():
    g = plan_grid(4, (64, 64))
    good = np.zeros((g.cell_height, g.cell_width, 3), np.uint8)
    with pytest.raises(ValueError, match="View 1 is"):
        tile([good, np.zeros((8, 8, 3), np.uint8)], g)
    with pytest.raises(ValueError, match="do not fit"):
        tile([good] * 5, g)
    with pytest.raises(ValueError, match="generated grid is 48x64, expected 64x64"):
        untile(np.zeros((64, 48, 3), np.uint8), g, 4)


def test_more_views_than_cells_take_several_grids():
    g = plan_grid(9, (512, 512))
    assert [list(b) for b in g.batches(9)] == [[0, 1, 2, 3, 4, 5], [6, 7, 8]]
    assert [list(b) for b in plan_grid(4, (64, 64)).batches(4)] == [[0, 1, 2, 3]]
