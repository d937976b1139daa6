"""The docker's X/Y/Z plot logic (logic/xyz.py): cells from A1111's axis syntax, the grid's
layout, pixels and infotext, results arriving in any order."""

from __future__ import annotations

import numpy as np
import pytest
from dreamwire_krita.logic.xyz import plan_run

from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job

BASE = Job(prompt="a red fox", steps=2, seed=7, width=64, height=64)


def test_cells_labels_and_grid_in_any_arrival_order():
    rows = [("Steps", "1-2"), ("CFG Scale", "3, 5.5"), ("", "")]
    run = plan_run(BASE, rows, 40, 30)
    assert [(c.job.steps, c.job.cfg) for c in run.cells] == [(1, 3), (2, 3), (1, 5.5), (2, 5.5)]
    assert run.grid.labels_x == ["Steps: 1", "Steps: 2"]
    assert run.grid.labels_y == ["CFG Scale: 3.0", "CFG Scale: 5.5"]
    for i, c in enumerate(run.cells):
        run.job_ids[c.job.job_id] = i
    colours = [(i * 60, 0, 0, 255) for i in range(4)]
    for i in (3, 0, 2, 1):  # the queue may finish them in any order
        assert not run.done
        cell = np.empty((30, 40, 4), np.uint8)
        cell[:] = colours[i]
        run.add(run.cells[i].job.job_id, cell, f"a red fox\nSteps: {i}")
    assert run.done
    grid = run.compose()
    w, h = run.grid.size
    assert grid.shape == (h, w, 4) and w == run.grid.left + 80 and h == run.grid.top + 60
    for i, c in enumerate(run.cells):
        r = run.grid.cell_rect(c.ix, c.iy, c.iz)
        assert (grid[r.y : r.bottom, r.x : r.right] == colours[i]).all()
    # The label bands stay white for the host's text; every label has a box inside them.
    assert (grid[: run.grid.top] == 255).all() and (grid[:, : run.grid.left] == 255).all()
    boxes = run.grid.labels()
    assert sorted(t for _, t in boxes) == sorted(run.grid.labels_x + run.grid.labels_y)
    assert all(b.x >= 0 and b.right <= w and b.bottom <= h for b, _ in boxes)
    assert run.cell_name(3) == "Steps: 2, CFG Scale: 5.5"
    info = run.infotext()
    assert info.startswith("a red fox\nSteps: 0")
    assert 'X Type: Steps, X Values: 1-2, Y Type: CFG Scale, Y Values: "3, 5.5"' in info


def test_z_axis_makes_side_by_side_subgrids_with_titles():
    run = plan_run(BASE, [("Seed", "1,2"), ("", ""), ("Sampler", "Euler,DDIM")], 32, 32)
    assert run.total == 4 and run.grid.labels_y == [""] and run.grid.left == 0
    assert run.grid.size[0] == 2 * 2 * 32
    assert run.grid.cell_rect(0, 0, 1).x == 64
    titles = [t for b, t in run.grid.labels() if b.y == 0]
    assert titles == ["Euler", "DDIM"]


def test_bad_axes_are_refused_by_name():
    with pytest.raises(DreamwireError) as err:
        plan_run(BASE, [("Steps", "a-b")], 32, 32)
    assert err.value.code is ErrorCode.INVALID_JOB and "Steps" in str(err.value)
    with pytest.raises(DreamwireError, match="no X/Y/Z axis"):
        plan_run(BASE, [("Colour", "1")], 32, 32)


def test_infotext_names_each_axis_by_its_place():
    run = plan_run(BASE, [("Seed", "1,2"), ("", ""), ("Sampler", "Euler")], 32, 32)
    assert "X Type: Seed" in run.infotext() and "Z Type: Sampler" in run.infotext()
    assert "Y Type" not in run.infotext()


def test_heat_map_overlay_runs_blue_to_red_half_transparent():
    from dreamwire_krita.logic.heatmaps import OVERLAY_ALPHA, overlay

    grey = np.array([[0, 128, 255]], np.uint8)
    o = overlay(grey)
    assert o.shape == (1, 3, 4) and (o[..., 3] == OVERLAY_ALPHA).all()
    assert o[0, 0, 2] > 100 and o[0, 0, 0] == 0  # cold: blue
    assert o[0, 2, 0] > 100 and o[0, 2, 2] == 0  # hot: red
    assert o[0, 1, 1] > 200  # the middle: green-ish (jet's cyan to yellow)
