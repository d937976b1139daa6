"""Regional prompts from layers named "region: ...": names, visibility, masks, the job."""

from __future__ import annotations

import numpy as np
import pytest
from dreamwire_krita.logic.geometry import Rect
from dreamwire_krita.logic.jobs import generate_job, inpaint_job
from dreamwire_krita.logic.params import Params
from dreamwire_krita.logic.prompt_regions import (
    LayerInfo,
    RegionLayer,
    build_regions,
    region_layers,
    region_prompt,
)
from dreamwire_krita.logic.regions import PlanError, inpaint_inputs, plan_generate, plan_inpaint

from dreamwire.shared.job import MAX_REGIONS, Job


@pytest.mark.parametrize(
    ("name", "prompt"),
    [
        ("region: a red barn", "a red barn"),
        ("  Region:a cornfield, golden  ", "a cornfield, golden"),
        ("REGION: (sky:1.2) :0.5", "(sky:1.2) :0.5"),
        ("region:", ""),
        ("regional sketch", None),
        ("Paint Layer 1", None),
        ("my region: x", None),
    ],
)
def test_region_names(name, prompt):
    assert region_prompt(name) == prompt


def test_only_visible_region_layers_count_and_need_a_prompt():
    layers = [
        LayerInfo("{1}", "Background", True),
        LayerInfo("{2}", "region: a red barn", True),
        LayerInfo("{3}", "region: a cow", False),  # hidden (or inside a hidden group)
        LayerInfo("{4}", "Region: a cornfield", True),
    ]
    assert region_layers(layers) == [
        RegionLayer("{2}", "a red barn"),
        RegionLayer("{4}", "a cornfield"),
    ]
    with pytest.raises(PlanError, match="no prompt"):
        region_layers([LayerInfo("{5}", "region:  ", True)])
    assert region_layers([LayerInfo("{5}", "region:", False)]) == []


def _layer(h: int, w: int, box) -> np.ndarray:
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[box] = (200, 10, 10, 255)
    rgba[box][..., 3][0] = 128  # a soft edge row
    return rgba


def test_masks_are_the_layers_alpha_and_empty_layers_drop_out():
    found = [RegionLayer("{a}", "a barn"), RegionLayer("{b}", "a field")]
    pixels = {"{a}": _layer(40, 60, np.s_[5:20, 10:30]), "{b}": np.zeros((40, 60, 4), np.uint8)}
    out = build_regions(found, pixels)
    assert [r.prompt for r in out] == ["a barn"]
    assert out[0].mask.shape == (40, 60) and out[0].mask.dtype == np.uint8
    assert np.array_equal(out[0].mask, pixels["{a}"][..., 3])
    assert out[0].weight == 1.0
    many = [RegionLayer(f"{{{i}}}", f"p{i}") for i in range(MAX_REGIONS + 1)]
    with pytest.raises(PlanError, match="at most"):
        build_regions(many, {r.node_id: _layer(8, 8, np.s_[:4]) for r in many})


P = Params(prompt="a farm", model="tiny-sd1", steps=3, seed=1)


def test_region_masks_over_the_plan_fit_two_pass_and_outpaint_jobs():
    """Layers are read over plan.region: a two-pass generate job (sampled smaller, then
    Hires.fix to the region) and an outpainting inpaint job (the region is the grown
    canvas) both take masks of that size, and the masks survive the wire."""
    canvas = Rect(0, 0, 1600, 1000)
    plan = plan_generate(canvas, None)
    job = generate_job(P, plan, family="sd1")
    assert job.hires is not None and job.width < plan.region.w
    mask = _layer(plan.region.h, plan.region.w, np.s_[100:400, 200:900])
    job.regions = build_regions([RegionLayer("{a}", "a red barn")], {"{a}": mask})
    back = Job.from_wire(*job.validate().to_wire()).validate()
    assert np.array_equal(back.regions[0].mask, mask[..., 3])

    small = Rect(0, 0, 100, 80)
    plan = plan_inpaint(small, Rect(80, 10, 40, 40))  # past the right edge: outpaints
    r = plan.region
    rgba = np.zeros((r.h, r.w, 4), np.uint8)
    rgba[:, : small.right - r.x] = (10, 20, 30, 255)
    sel = np.zeros((r.h, r.w), np.uint8)
    sel[:, 5:] = 255
    job = inpaint_job(P, plan, inpaint_inputs(rgba, sel))
    assert job.outpaint.right > 0
    job.regions = build_regions(
        [RegionLayer("{a}", "a cornfield")], {"{a}": _layer(r.h, r.w, np.s_[:, 20:])}
    )
    assert job.region_area() == (r.w, r.h)
    job.validate()
