"""Grid mode: several views generated as one image.

The model draws the cells of one picture in one style and one light, so views that share a
grid agree with each other more than views generated one after another. The captures of up
to `cols x rows` cameras (and their control images, the same way) are tiled row by row into
one image of the generation's size budget; the result is split back into per-view images
that are baked as the sequential mode bakes them.

Cells keep the aspect of the panel's width:height (each view is captured at the cell size,
so its field of view follows the cell) and are multiples of 8 px, what the models accept;
the grid holds at most the budget's pixel count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

AUTO = "auto"
# (cols, rows) of the layouts the panel offers; "auto" picks one from the number of views.
LAYOUTS: dict[str, tuple[int, int]] = {"2x2": (2, 2), "3x2": (3, 2)}
MULTIPLE = 8


@dataclass(frozen=True)
class GridLayout:
    cols: int
    rows: int
    cell_width: int
    cell_height: int

    @property
    def cells(self) -> int:
        return self.cols * self.rows

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the grid image: the job's size."""
        return self.cols * self.cell_width, self.rows * self.cell_height

    def origin(self, index: int) -> tuple[int, int]:
        """(x, y) pixel of cell `index`'s top-left corner; cells run row by row."""
        row, col = divmod(index, self.cols)
        return col * self.cell_width, row * self.cell_height

    def batches(self, n_views: int) -> list[range]:
        """The views of each grid job, in order (more views than cells take several)."""
        return [range(i, min(i + self.cells, n_views)) for i in range(0, n_views, self.cells)]


def grid_shape(n_views: int, layout: str = AUTO) -> tuple[int, int]:
    """(cols, rows): the named layout, or for "auto" the smallest that holds the views
    (2x1 for two, 2x2 for three or four, 3x2 beyond; more than six take several grids)."""
    if layout != AUTO:
        if layout not in LAYOUTS:
            raise ValueError(f"Unknown grid layout '{layout}' (one of: auto, {', '.join(LAYOUTS)})")
        return LAYOUTS[layout]
    if n_views <= 1:
        return 1, 1
    if n_views == 2:
        return 2, 1
    return LAYOUTS["2x2"] if n_views <= 4 else LAYOUTS["3x2"]


def plan_grid(
    n_views: int, budget: tuple[int, int], layout: str = AUTO, multiple: int = MULTIPLE
) -> GridLayout:
    """The grid for `n_views` within the `budget` (width, height) of one generation."""
    cols, rows = grid_shape(n_views, layout)
    bw, bh = budget
    # Scale the budget's shape down so cols*rows cells of it hold its pixel count.
    scale = 1.0 / math.sqrt(cols * rows)
    cw = max(multiple, int(bw * scale) // multiple * multiple)
    ch = max(multiple, int(bh * scale) // multiple * multiple)
    return GridLayout(cols, rows, cw, ch)


def tile(images: list[np.ndarray | None], grid: GridLayout, fill: float = 0) -> np.ndarray:
    """One grid image from per-view images of the cell size (H x W or H x W x C, one
    dtype); cells with no image (None, or past the list's end) hold `fill`."""
    present = [a for a in images if a is not None]
    if not present:
        raise ValueError("Nothing to tile: every cell is empty")
    if len(images) > grid.cells:
        raise ValueError(f"{len(images)} views do not fit a {grid.cols}x{grid.rows} grid")
    first = np.asarray(present[0])
    cell_shape = (grid.cell_height, grid.cell_width) + first.shape[2:]
    w, h = grid.size
    out = np.full((h, w) + first.shape[2:], fill, dtype=first.dtype)
    for i, a in enumerate(images):
        if a is None:
            continue
        a = np.asarray(a)
        if a.shape != cell_shape:
            raise ValueError(f"View {i} is {a.shape}, the grid's cells are {cell_shape}")
        x, y = grid.origin(i)
        out[y : y + grid.cell_height, x : x + grid.cell_width] = a
    return out


def untile(image: np.ndarray, grid: GridLayout, count: int) -> list[np.ndarray]:
    """The first `count` cells of a generated grid image, as separate images."""
    w, h = grid.size
    if image.shape[:2] != (h, w):
        raise ValueError(
            f"The generated grid is {image.shape[1]}x{image.shape[0]}, expected {w}x{h}"
        )
    if count > grid.cells:
        raise ValueError(f"{count} views do not fit a {grid.cols}x{grid.rows} grid")
    parts = []
    for i in range(count):
        x, y = grid.origin(i)
        parts.append(image[y : y + grid.cell_height, x : x + grid.cell_width].copy())
    return parts
