"""X/Y/Z plot axes: A1111's value syntax and what each axis sets, value by value."""

from __future__ import annotations

import random

import numpy as np
import pytest

from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import ControlUnit, Job
from dreamwire.shared.xyz_axes import AXES, axis, cells, split_values


def test_values_are_one_csv_line_with_quotes_for_commas():
    # A1111 drops empty fields before stripping, so a blank one stays (as "").
    assert split_values('red fox,"a, b",,c') == ["red fox", "a, b", "c"]
    assert split_values("a, ,b") == ["a", "", "b"]


@pytest.mark.parametrize(
    "text, want",
    [
        ("1-5", [1, 2, 3, 4, 5]),
        ("1-10 (+3)", [1, 4, 7, 10]),
        ("10-1 (-3)", [10, 7, 4]),  # A1111's end + 1 assumes counting up
        ("1-10 [4]", [1, 4, 7, 10]),
        ("1-10 [3]", [1, 5, 10]),  # linspace 1, 5.5, 10, truncated as int() does
        ("5, 8-9", [5, 8, 9]),
        ("20", [20]),
    ],
)
def test_whole_number_ranges_as_a1111(text, want):
    assert axis("Steps").parse(text) == want


@pytest.mark.parametrize(
    "text, want",
    [
        ("1-2 (+0.5)", [1.0, 1.5, 2.0]),
        ("1-2 [3]", [1.0, 1.5, 2.0]),
        ("7.5, 3", [7.5, 3.0]),
    ],
)
def test_decimal_ranges_as_a1111(text, want):
    assert axis("CFG Scale").parse(text) == pytest.approx(want)


def test_bad_values_and_axes_are_clear_errors():
    with pytest.raises(DreamwireError) as err:
        axis("Steps").parse("twenty")
    assert err.value.code == ErrorCode.INVALID_JOB and "Steps" in err.value.message
    with pytest.raises(DreamwireError) as err:
        axis("Steps").parse("")
    assert "no values" in err.value.message
    with pytest.raises(DreamwireError) as err:
        axis("Eta squared")
    assert "Seed" in err.value.message  # lists what exists


def test_prompt_search_and_replace_and_its_refusal():
    base = Job(prompt="a red fox", negative="red eyes", seed=3)
    sr = axis("Prompt S/R")
    vals = sr.parse("red, blue, dark green")
    jobs = [c.job for c in cells(base, [(sr, vals)])]
    assert [j.prompt for j in jobs] == ["a red fox", "a blue fox", "a dark green fox"]
    assert [j.negative for j in jobs] == ["red eyes", "blue eyes", "dark green eyes"]
    assert [sr.cell_label(v) for v in vals] == ["red", "blue", "dark green"]
    with pytest.raises(DreamwireError, match="did not find purple"):
        cells(base, [(sr, ["purple", "blue"])])


def test_cells_run_x_fastest_and_every_job_validates():
    edges = np.zeros((64, 64, 3), np.uint8)
    base = Job(prompt="a fox", seed=-1, controls=[ControlUnit(type="canny", image=edges)])
    x = (axis("Steps"), axis("Steps").parse("2-3"))
    y = (axis("CFG Scale"), axis("CFG Scale").parse("4, 7"))
    z = (axis("[ControlNet] Weight"), [0.5])
    grid = cells(base, [x, y, z], random.Random(1))
    assert [(c.ix, c.iy, c.iz) for c in grid] == [(0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1, 0)]
    assert [(c.job.steps, c.job.cfg) for c in grid] == [(2, 4.0), (3, 4.0), (2, 7.0), (3, 7.0)]
    assert all(c.job.controls[0].weight == 0.5 for c in grid)
    # The base job's random seed is fixed once: every cell differs only by its axes.
    assert len({c.job.seed for c in grid}) == 1 and grid[0].job.seed != -1
    assert len({c.job.job_id for c in grid}) == 4
    for c in grid:
        c.job.validate()


def test_seed_axes_fix_random_seeds_and_labels_say_the_axis():
    seed = axis("Seed")
    grid = cells(Job(prompt="a fox"), [(seed, seed.parse("-1, 5"))], random.Random(7))
    first, second = (c.job.seed for c in grid)
    assert first != -1 and second == 5
    assert seed.cell_label(5) == "Seed: 5"
    assert axis("CFG Scale").cell_label(1 / 3) == "CFG Scale: 0.33333333"
    assert axis("Checkpoint name").cost > axis("Steps").cost  # kept in the outer loop
    assert {"Seed", "Steps", "CFG Scale", "Sampler", "Checkpoint name", "Prompt S/R"} <= set(AXES)
