"""`dreamwire xyz`: A1111's X/Y/Z plot. The base job is `generate`'s flags; each axis
(`--x-type Steps --x-values "10-30 (+10)"`, shared/xyz_axes.py for the types and the value
syntax) varies one field; every cell is a job of its own (in this process, or through a
backend's queue with --server), saved with its own infotext; the grid image has A1111-style
labels (X across the top, Y down the left, Z one sub-grid each, titled) and an infotext
naming the axes ("Script: X/Y/Z plot, X Type: ..., X Values: ...").
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from dreamwire.backend.cli import generate
from dreamwire.shared import xyz_axes
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.xyz_axes import AXES, cells, check_cells, named_axes, parse_rows

# A1111's img_max_size_mp default: a grid larger than this many megapixels is refused.
MAX_GRID_MP = 200


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("xyz", help="A1111's X/Y/Z plot: a grid of jobs, one field per axis")
    generate.add_job_arguments(p)
    for a in "xyz":
        p.add_argument(f"--{a}-type", default=None, choices=list(AXES), help=f"the {a} axis")
        p.add_argument(f"--{a}-values", default="", help="A1111's syntax: 1-5, 1-10 (+2), 1-10 [5]")
    p.add_argument("--no-legend", action="store_true", help="no axis labels on the grid")
    p.set_defaults(func=main)


def rows_of(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(type, values) of X, Y and Z by place: an axis not given is A1111's Nothing, so
    `--x-type ... --z-type ...` plots Z as Z (one row of sub-grids), never as Y."""
    rows = [(getattr(args, f"{a}_type") or "", getattr(args, f"{a}_values")) for a in "xyz"]
    if not named_axes(rows):
        raise DreamwireError(
            ErrorCode.INVALID_JOB, "give at least one axis (--x-type and --x-values)"
        )
    return rows


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow before 10.1: one built-in size
        return ImageFont.load_default()


def draw_grid(
    images: list[np.ndarray], cols: int, rows: int, x_labels, y_labels, legend: bool
) -> np.ndarray:
    """Cells (row-major, all one size) in a grid, X labels above, Y labels to the left."""
    from PIL import Image, ImageDraw

    h, w = images[0].shape[:2]
    size = max(12, min(w, h) // 10)
    font = _font(size)
    top = size * 2 if legend and any(x_labels) else 0
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left = 0
    if legend and any(y_labels):
        left = max(int(probe.textlength(t, font=font)) for t in y_labels) + size
    grid = Image.new("RGB", (left + cols * w, top + rows * h), "white")
    draw = ImageDraw.Draw(grid)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        grid.paste(Image.fromarray(img[..., :3]), (left + c * w, top + r * h))
    if top:
        for c, text in enumerate(x_labels):
            draw.text((left + c * w + w / 2, top / 2), text, fill="black", font=font, anchor="mm")
    if left:
        for r, text in enumerate(y_labels):
            draw.text((left / 2, top + r * h + h / 2), text, fill="black", font=font, anchor="mm")
    return np.asarray(grid)


def main(args: argparse.Namespace) -> int:
    from dreamwire.backend import config
    from dreamwire.backend.store import ResultStore, write_png

    rows = rows_of(args)
    axes = parse_rows(rows)
    base = generate.build_job(args, generate.model_family(args))
    grid_cells = cells(base, axes)
    check_cells(grid_cells)  # a bad value is refused before the first cell runs
    counts = [len(v) for _, v in axes] + [1] * (3 - len(axes))
    mp = len(grid_cells) * base.width * base.height / 1e6
    if mp >= MAX_GRID_MP:
        raise DreamwireError(
            ErrorCode.INVALID_JOB,
            f"the grid would be {round(mp)} megapixels (at most {MAX_GRID_MP})",
        )
    bar = generate.Bar(quiet=args.json)
    run_cell, close = generate.job_runner(args)
    store = ResultStore(config.output_dir(args.out))
    saved = []
    try:
        for n, cell in enumerate(grid_cells, 1):
            if not args.json:
                print(f"cell {n} of {len(grid_cells)}", file=sys.stderr)
            saved.append(store.save(cell.job, run_cell(cell.job, bar)))
    finally:
        bar.close()
        close()
    labels = [[ax.cell_label(v) for v in vals] for ax, vals in axes] + [[""]] * (3 - len(axes))
    nx, ny, nz = counts
    legend = not args.no_legend
    subgrids = []
    for iz in range(nz):
        imgs = [saved[iz * nx * ny + i].images[0].image for i in range(nx * ny)]
        subgrids.append(draw_grid(imgs, nx, ny, labels[0], labels[1], legend))
    grid = subgrids[0] if nz == 1 else draw_grid(subgrids, nz, 1, labels[2], [""], legend)
    info = xyz_axes.grid_infotext(saved[0].images[0].infotext, named_axes(rows))
    folder = Path(config.output_dir(args.out)) / "grids"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"xyz_grid-{base.job_id}.png"
    write_png(path, grid, info)
    record = {
        "grid": str(path.resolve()),
        "infotext": info,
        "cells": [
            {"x": c.ix, "y": c.iy, "z": c.iz, "path": s.images[0].path, "seed": s.images[0].seed}
            for c, s in zip(grid_cells, saved, strict=True)
        ],
    }
    print(json.dumps(record, indent=2) if args.json else f"grid: {path}")
    return 0
