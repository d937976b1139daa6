"""The docker's X/Y/Z plot, without Krita: the cells' jobs (shared/xyz_axes.py, A1111's
axes and value syntax), the grid's layout and pixels, and the run collecting the cells'
results as they arrive from the backend's queue (in any order).

The grid is A1111's: X across, Y down, each Z value a sub-grid of its own side by side,
a band of labels above (Z title, then X) and to the left (Y). The labels' text is drawn by
the host (Qt) into the boxes `GridLayout.labels` gives.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dreamwire.shared.job import Job
from dreamwire.shared.xyz_axes import (
    Axis,
    Cell,
    cells,
    check_cells,
    grid_infotext,
    named_axes,
    parse_rows,
)

from .geometry import Rect


@dataclass(frozen=True)
class GridLayout:
    cell_w: int
    cell_h: int
    labels_x: list[str]
    labels_y: list[str]
    labels_z: list[str]

    @property
    def band(self) -> int:
        """One line of label text: a tenth of the cell's smaller side, at least 12 px."""
        return max(12, min(self.cell_w, self.cell_h) // 10) * 2

    @property
    def top(self) -> int:
        return self.band * (2 if len(self.labels_z) > 1 else 1)

    @property
    def left(self) -> int:
        return self.band * 4 if any(self.labels_y) else 0

    @property
    def sub_w(self) -> int:
        return self.left + len(self.labels_x) * self.cell_w

    @property
    def size(self) -> tuple[int, int]:
        return self.sub_w * len(self.labels_z), self.top + len(self.labels_y) * self.cell_h

    def cell_rect(self, ix: int, iy: int, iz: int) -> Rect:
        x = iz * self.sub_w + self.left + ix * self.cell_w
        return Rect(x, self.top + iy * self.cell_h, self.cell_w, self.cell_h)

    def labels(self) -> list[tuple[Rect, str]]:
        """Where each label's text goes, centred in its box."""
        out = []
        z_line = self.band if len(self.labels_z) > 1 else 0
        for iz, zt in enumerate(self.labels_z):
            x0 = iz * self.sub_w
            if z_line:
                out.append((Rect(x0, 0, self.sub_w, z_line), zt))
            for ix, t in enumerate(self.labels_x):
                if t:
                    out.append(
                        (Rect(x0 + self.left + ix * self.cell_w, z_line, self.cell_w, self.band), t)
                    )
            for iy, t in enumerate(self.labels_y):
                if t:
                    out.append((Rect(x0, self.top + iy * self.cell_h, self.left, self.cell_h), t))
        return out


def layout(axes: list[tuple[Axis, list]], cell_w: int, cell_h: int) -> GridLayout:
    labels = [[ax.cell_label(v) for v in vals] for ax, vals in axes]
    labels += [[""]] * (3 - len(labels))
    return GridLayout(cell_w, cell_h, *labels)


@dataclass
class XyzRun:
    """One grid in flight: its cells' jobs, and their pictures as they come back."""

    grid: GridLayout
    cells: list[Cell]
    axes_text: list[tuple[str, str, str]]  # ("X", type, values) of each axis used
    images: dict[int, np.ndarray] = field(default_factory=dict)  # cell index -> H x W x 4
    infotexts: dict[int, str] = field(default_factory=dict)
    job_ids: dict[str, int] = field(default_factory=dict)  # filled in as cells are queued
    group: bool = False  # also every cell as a layer of a group

    @property
    def total(self) -> int:
        return len(self.cells)

    @property
    def done(self) -> bool:
        return len(self.images) == self.total

    def add(self, job_id: str, rgba: np.ndarray, infotext: str) -> int:
        index = self.job_ids[job_id]
        self.images[index] = rgba
        self.infotexts[index] = infotext
        return index

    def cell_name(self, index: int) -> str:
        """A cell's layer name: its axis values, as its labels read."""
        c = self.cells[index]
        parts = [self.grid.labels_x[c.ix], self.grid.labels_y[c.iy], self.grid.labels_z[c.iz]]
        return ", ".join(p for p in parts if p) or f"cell {index + 1}"

    def compose(self) -> np.ndarray:
        """The grid's pixels (RGBA, white behind the labels); the text is the host's."""
        w, h = self.grid.size
        out = np.full((h, w, 4), 255, np.uint8)
        for i, c in enumerate(self.cells):
            r = self.grid.cell_rect(c.ix, c.iy, c.iz)
            img = self.images[i]
            out[r.y : r.y + r.h, r.x : r.x + r.w] = img[: r.h, : r.w]
        return out

    def infotext(self) -> str:
        """The first cell's infotext with the axes, as A1111 writes a grid's."""
        return grid_infotext(self.infotexts.get(0, ""), self.axes_text)


def plan_run(base: Job, rows: list[tuple[str, str]], cell_w: int, cell_h: int) -> XyzRun:
    axes = parse_rows(rows)
    grid = cells(base, axes)
    check_cells(grid)  # before any cell is queued
    return XyzRun(layout(axes, cell_w, cell_h), grid, named_axes(rows))
