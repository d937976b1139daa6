"""Control units planned before anything loads: `planning.plan` resolves each unit to its
file through the UnitPlanner the builder injects (conditioning.engine_extensions), checks it
against the checkpoint's denoiser config as the library reads it from files, and refuses an
impossible unit itself, so no model is loaded to find out."""

from __future__ import annotations

import numpy as np
import pytest

from dreamwire.backend.conditioning import engine_extensions
from dreamwire.backend.engine.planning import plan
from dreamwire.backend.tiny import union as tiny_union
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import ControlUnit, Job, Upscale
from tests.conditioning.cn_helpers import noise_image
from tests.support.engines import cpu_engine

PICTURE = noise_image(3)


def _job(model: str, *units: ControlUnit, **kw) -> Job:
    return Job(prompt="x", width=64, height=64, steps=2, model=model, controls=list(units), **kw)


@pytest.mark.parametrize(
    ("model", "unit", "code", "named"),
    [
        # A ControlNet the folders do not have.
        (
            "tiny-sd1",
            ControlUnit("canny", PICTURE, model="nope"),
            ErrorCode.CONTROLNET_NOT_FOUND,
            "nope",
        ),
        # An SDXL ControlNet on an SD1.5 checkpoint.
        (
            "tiny-sd1",
            ControlUnit("depth", PICTURE, model="diffusers_xl_depth_full"),
            ErrorCode.MODEL_MISMATCH,
            "SDXL",
        ),
        # A Union mode the file lacks: the 6-type Union has no tile mode (ProMax has).
        (
            "tiny-sdxl",
            ControlUnit("tile", PICTURE, model=tiny_union.FOLDER),
            ErrorCode.MODEL_UNSUPPORTED,
            "ProMax",
        ),
        # No file of the type for the family at all (no SDXL shuffle, no Union shuffle mode).
        ("tiny-sdxl", ControlUnit("shuffle", PICTURE), ErrorCode.CONTROLNET_NOT_FOUND, "shuffle"),
    ],
)
def test_an_impossible_unit_is_refused_by_the_plan_before_any_model_loads(
    library, model, unit, code, named
):
    job = _job(model, unit)
    with pytest.raises(DreamwireError) as err:
        plan(job, library, engine_extensions())  # the plan alone: no engine, no model
    assert err.value.code == code and named in err.value.message
    engine = cpu_engine(library)
    with pytest.raises(DreamwireError) as run_err:
        engine.run(job)
    assert (run_err.value.code, run_err.value.message) == (code, err.value.message)
    assert engine.models.keys() == []  # refused without loading the checkpoint


def test_units_without_a_unit_planner_are_refused_by_the_plan(library):
    job = _job("tiny-sd1", ControlUnit("canny", PICTURE))
    with pytest.raises(DreamwireError) as err:
        plan(job, library)  # a builder that injected no conditioning
    assert err.value.code == ErrorCode.CONTROLNET_NOT_FOUND


def test_the_plan_lists_the_units_with_their_files_kinds_and_windows(library):
    units = (
        ControlUnit("canny", PICTURE, start=0.1, end=0.6, weight=0.8),
        ControlUnit("color", PICTURE, end=0.5),  # only a T2I-Adapter serves color
        ControlUnit("ip-adapter", PICTURE, start=0.25),
        ControlUnit("depth", PICTURE, model="control_v11f1p_sd15_depth"),
    )
    p = plan(_job("tiny-sd1", *units), library, engine_extensions())
    assert [(u.index, u.kind, u.name, u.window) for u in p.units] == [
        (0, "controlnet", "control_v11p_sd15_canny", (0.1, 0.6)),
        (1, "t2i_adapter", "t2iadapter_color_sd14v1", (0.0, 0.5)),
        (2, "ip_adapter", "ip-adapter_sd15", (0.25, 1.0)),
        (3, "controlnet", "control_v11f1p_sd15_depth", (0.0, 1.0)),
    ]
    assert all(u.path.exists() and u.unit is units[u.index] for u in p.units)
    ip = p.units[2]
    assert ip.encoder is not None and ip.encoder.path.exists()  # its CLIP vision encoder
    # Grouped by the kind of conditioner that runs them, in the job's order within a kind.
    kinds = p.unit_kinds
    assert list(kinds) == ["controlnet", "t2i_adapter", "ip_adapter"]
    assert [u.index for u in kinds["controlnet"]] == [0, 3]
    # The infotext's "ControlNet 0" entry is known from the plan, with the model picked.
    entry = p.units[0].infotext
    assert entry.model_name == "control_v11p_sd15_canny" and entry.model_hash
    assert (entry.guidance_start, entry.guidance_end, entry.weight) == (0.1, 0.6, 0.8)
    assert (p.model.name, p.model.family) == ("tiny-sd1", "sd1")  # what they were checked on


def test_an_sd_upscale_plans_its_tile_unit(library):
    picture = np.zeros((64, 64, 3), np.uint8)
    up = Upscale(scale=1.5, tile=64, overlap=16, tile_control=True)
    job = Job(prompt="x", steps=2, init_image=picture, upscale=up, model="tiny-sd1")
    (tile,) = plan(job, library, engine_extensions()).units
    assert (tile.unit.type, tile.kind, tile.name) == (
        "tile",
        "controlnet",
        "control_v11f1e_sd15_tile",
    )
    assert job.controls == []  # the job stays as submitted
    # Without ControlNet support the tile pass runs unguided, as before.
    assert plan(job, library).units == ()
