"""X/Y/Z plot axes: A1111's value syntax and what each axis sets, value by value."""

from __future__ import annotations

import random

import numpy as np
import pytest

from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import ControlUnit, Job
from dreamwire.shared.xyz_axes import (
    AXES,
    axis,
    cells,
    check_cells,
    named_axes,
    parse_rows,
    split_values,
)


def test_values_are_one_csv_line_with_quotes_for_commas():
    # A1111 1.10 (csv_string_to_list_strip) keeps an empty field, as "".
    assert split_values('red fox,"a, b",,c') == ["red fox", "a, b", "", "c"]
    assert split_values("a, ,b") == ["a", "", "b"]
    assert split_values("") == []
    with pytest.raises(DreamwireError, match="Steps"):
        axis("Steps").parse("1,,2")  # int("") fails in A1111 too


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


def test_schedule_type_replaces_the_samplers_schedule():
    # The backend runs these names: tests/engine/test_cli_xyz.py (and test_samplers.py holds
    # the two lists of schedule types equal).
    ax = axis("Schedule type")
    vals = ax.parse("automatic, Karras, sgm uniform, Exponential")
    assert vals == ["Automatic", "Karras", "SGM Uniform", "Exponential"]  # spelt as A1111's
    jobs = [c.job for c in cells(Job(prompt="a", sampler="DPM++ 2M SDE Karras"), [(ax, vals)])]
    assert [j.sampler for j in jobs] == [
        "DPM++ 2M SDE",
        "DPM++ 2M SDE Karras",
        "DPM++ 2M SDE SGM Uniform",
        "DPM++ 2M SDE Exponential",
    ]
    assert ax.cell_label("Karras") == "Schedule type: Karras"
    again = cells(Job(prompt="a", sampler="Euler SGM Uniform"), [(ax, ["Karras"])])
    assert again[0].job.sampler == "Euler Karras"  # the two-word schedule is replaced whole
    with pytest.raises(DreamwireError) as err:
        ax.parse("Karras, Align Your Stairs")
    assert "Schedule type" in err.value.message and "KL Optimal" in err.value.message


def test_hires_axes_turn_hires_on_and_denoising_is_the_hires_pass_on_txt2img():
    from dreamwire.shared.job import HiresFix

    base = Job(prompt="a", hires=HiresFix(scale=1.5, denoise=0.4, steps=3))
    up = axis("Hires upscaler")
    grid = cells(base, [(up, up.parse("Latent, Lanczos")), (axis("Denoising"), [0.2, 0.7])])
    assert [(c.job.hires.upscaler, c.job.hires.denoise) for c in grid] == [
        ("Latent", 0.2), ("Lanczos", 0.2), ("Latent", 0.7), ("Lanczos", 0.7)
    ]  # fmt: skip
    assert {(c.job.hires.scale, c.job.hires.steps) for c in grid} == {(1.5, 3)}  # kept
    assert up.cell_label("Lanczos") == "Hires upscaler: Lanczos"
    plain = Job(prompt="a")
    scale = axis("Hires upscale")
    grid = cells(plain, [(scale, scale.parse("1-2 [3]"))])
    assert [c.job.hires.scale for c in grid] == [1.0, 1.5, 2.0]
    assert grid[0].job.hires.upscaler == HiresFix().upscaler  # turned on with defaults
    assert cells(plain, [(axis("Denoising"), [0.3])])[0].job.hires is None
    # A value the job refuses is refused for the whole grid before any cell runs.
    with pytest.raises(DreamwireError, match="Hires.fix upscaler"):
        check_cells(cells(plain, [(up, up.parse("Lanczos, Latent (bicubic)"))]))


def test_lora_weight_sets_the_jobs_one_lora_as_the_backend_reads_it():
    from dreamwire.backend.prompts import extract_extra_networks
    from dreamwire.shared.job import LoraRef

    ax = axis("LoRA weight")
    vals = ax.parse("0-1 [3]")
    base = Job(prompt="a fox <lora:ink:0.8:0.6:dyn=4:te=2>, night", negative="<lora:x:1>")
    jobs = [c.job for c in cells(base, [(ax, vals)])]
    assert [j.prompt for j in jobs] == [
        "a fox <lora:ink:0.0:0.0:dyn=4>, night",
        "a fox <lora:ink:0.5:0.5:dyn=4>, night",
        "a fox <lora:ink:1.0:1.0:dyn=4>, night",
    ]
    # Text encoder and UNet alike, as the backend reads the tag.
    nets = [extract_extra_networks(j.prompt)[1][0] for j in jobs]
    assert [(n.te_multiplier, n.unet_multiplier, n.dyn_dim) for n in nets] == [
        (0.0, 0.0, 4), (0.5, 0.5, 4), (1.0, 1.0, 4)
    ]  # fmt: skip
    assert ax.cell_label(0.5) == "LoRA weight: 0.5"
    listed = Job(prompt="a fox", loras=[LoraRef("ink", 0.8, weight_te=0.3)])
    got = cells(listed, [(ax, [0.25])])[0].job.loras
    assert got == [LoraRef("ink", 0.25, weight_te=None)]
    with pytest.raises(DreamwireError, match="no LoRA"):
        cells(Job(prompt="a fox"), [(ax, [0.5])])
    with pytest.raises(DreamwireError) as err:
        cells(Job(prompt="a <lora:ink:1> <lora:paper:1>"), [(ax, [0.5])])
    assert "2 LoRAs (ink, paper)" in err.value.message and "Prompt S/R" in err.value.message


def test_an_unused_axis_before_a_used_one_is_nothing_so_z_stays_z():
    rows = [("Seed", "1, 2"), ("", ""), ("Steps", "3, 4")]
    axes = parse_rows(rows)
    assert [a.label for a, _ in axes] == ["Seed", "Nothing", "Steps"]
    grid = cells(Job(prompt="a"), axes)
    assert [(c.ix, c.iy, c.iz) for c in grid] == [(0, 0, 0), (1, 0, 0), (0, 0, 1), (1, 0, 1)]
    assert [c.job.steps for c in grid] == [3, 3, 4, 4]
    assert named_axes(rows) == [("X", "Seed", "1, 2"), ("Z", "Steps", "3, 4")]
    # A1111's own word for it, and trailing unused rows dropped.
    assert [a.label for a, _ in parse_rows([("Nothing", ""), ("Steps", "2"), ("", "")])] == [
        "Nothing",
        "Steps",
    ]
    assert axis("Nothing").cell_label("") == ""
