"""`dreamwire xyz`: every cell a real job on the tiny model, saved with its own infotext;
the grid labelled and its infotext naming the axes."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np

from dreamwire.backend.cli import main
from dreamwire.backend.store import read_png


def test_xyz_runs_each_cell_as_its_own_job_and_labels_the_grid(tiny_models, tmp_path):
    out = tmp_path / "out"
    buf = io.StringIO()
    argv = ["xyz", "--models", str(tiny_models), "--prompt", "a red fox", "--sampler", "Euler",
            "--steps", "2", "--width", "64", "--height", "64", "--seed", "5", "--cfg", "5",
            "--x-type", "Steps", "--x-values", "1-2", "--y-type", "Prompt S/R",
            "--y-values", "red, blue", "--out", str(out), "--json"]  # fmt: skip
    with contextlib.redirect_stdout(buf):
        assert main(argv) == 0
    record = json.loads(buf.getvalue())
    cells = {(c["x"], c["y"]): c for c in record["cells"]}
    assert sorted(cells) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for (x, y), c in cells.items():
        _, info = read_png(c["path"])
        assert f"Steps: {x + 1}," in info and c["seed"] == 5
        assert info.startswith("a blue fox" if y else "a red fox")
    grid, info = read_png(record["grid"])
    # Two cells across, two down, plus the label margins A1111 draws.
    assert grid.shape[1] > 128 and grid.shape[0] > 128
    assert grid.shape[1] - 128 < 128 and grid.shape[0] - 128 < 128
    assert info.startswith("a red fox") and "Script: X/Y/Z plot" in info
    assert 'X Type: Steps, X Values: 1-2, Y Type: Prompt S/R, Y Values: "red, blue"' in info
    # The cell at x=1, y=1 is the job "a blue fox", 2 steps, run alone with the same seed.
    alone = tmp_path / "alone"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["generate", "--models", str(tiny_models), "--prompt", "a blue fox",
                     "--sampler", "Euler", "--steps", "2", "--width", "64", "--height", "64",
                     "--seed", "5", "--cfg", "5", "--out", str(alone), "--json"]) == 0  # fmt: skip
    same, _ = read_png(json.loads(buf.getvalue())["images"][0]["path"])
    cell, _ = read_png(cells[(1, 1)]["path"])
    assert np.array_equal(cell, same)
    # The grid shows that cell's pixels in its place (bottom right).
    assert np.array_equal(grid[-64:, -64:, :3], cell[..., :3])


def test_xyz_refuses_bad_axes_clearly(tiny_models, tmp_path, capsys):
    base = ["xyz", "--models", str(tiny_models), "--prompt", "a fox", "--out", str(tmp_path)]
    assert main(base) != 0
    assert "[invalid_job]" in capsys.readouterr().err
    assert main([*base, "--x-type", "Steps", "--x-values", "ten"]) != 0
    assert "Steps" in capsys.readouterr().err
    assert main([*base, "--x-type", "Prompt S/R", "--x-values", "purple, blue"]) != 0
    assert "did not find purple" in capsys.readouterr().err


def test_a_z_axis_without_y_stays_z_and_schedule_types_run(tiny_models, tmp_path):
    """A1111's rule for an empty Y: Z is still Z (side-by-side sub-grids, "Z Type" in the
    infotext), never promoted to Y; and the Schedule type axis runs what it names."""
    buf = io.StringIO()
    argv = ["xyz", "--models", str(tiny_models), "--prompt", "a fox", "--sampler", "Euler",
            "--steps", "1", "--width", "64", "--height", "64", "--seed", "5",
            "--x-type", "Seed", "--x-values", "5", "--z-type", "Schedule type",
            "--z-values", "Automatic, karras", "--out", str(tmp_path), "--json"]  # fmt: skip
    with contextlib.redirect_stdout(buf):
        assert main(argv) == 0
    record = json.loads(buf.getvalue())
    assert [(c["x"], c["y"], c["z"]) for c in record["cells"]] == [(0, 0, 0), (0, 0, 1)]
    infos = [read_png(c["path"])[1] for c in record["cells"]]
    assert "Sampler: Euler, Schedule type: Automatic" in infos[0]
    assert "Sampler: Euler, Schedule type: Karras" in infos[1]
    grid, info = read_png(record["grid"])
    assert "X Type: Seed" in info and "Z Type: Schedule type" in info and "Y Type" not in info
    # Two 64 px sub-grids side by side under their titles: wide, one cell (plus bands) high.
    assert grid.shape[1] >= 128 and 64 < grid.shape[0] < 128
