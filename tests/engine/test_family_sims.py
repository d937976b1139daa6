"""The transformer families' memory figures against their real architectures.

bench/pipeline_sim.py builds each family's pipeline from the catalog configs a
bench/sim_families.py entry names, on the meta device, and runs it on fake tensors;
bench/bench_family_memory.py records the 1024x1024 peaks in bench/RESULTS.md. These tests
check what the memory plan reads from each family spec (backend/families, MemoryFigures)
against the architecture it describes, and run one small stage on fake tensors.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensor

from bench import bench_lowvram  # noqa: F401  (puts bench/ on the path)
from dreamwire.backend.engine import memory_plan as mp
from dreamwire.backend.families import spec_for

import bench_family_memory  # noqa: E402  isort: skip
import pipeline_sim as ps  # noqa: E402  isort: skip
import sim_families as sf  # noqa: E402  isort: skip

# Every simulated architecture: a family, or a variant with its own figures (SD3.5 Medium).
SPECCED = [
    sf.FLUX,
    sf.SD35_LARGE,
    sf.SD35_MEDIUM,
    sf.QWEN_IMAGE,
    sf.ZIMAGE_TURBO,
    sf.FLUX2_KLEIN,
]
RECORDED = Path(__file__).resolve().parents[2] / "bench" / "family_memory.json"
GiB = 2**30


@pytest.mark.parametrize("fam", SPECCED, ids=lambda f: f.arch)
def test_spec_figures_are_the_architectures(fam):
    fig = ps.figures(fam)
    m = spec_for(fam.key).memory_for(fam.variant)
    assert m.denoiser_params_m == pytest.approx(fig.transformer_m, rel=0.01)
    # Each text encoder's own count, in the pipeline's order (model offload's text stage
    # holds the largest alone); their sum is what every model resident holds.
    assert m.text_encoders_params_m == pytest.approx(tuple(fig.text_m.values()), rel=0.01)
    assert m.text_params_m == pytest.approx(fig.text_total_m, rel=0.01)
    assert m.vae_params_m == pytest.approx(fig.vae_m, rel=0.01)
    assert m.cast_share == pytest.approx(fig.cast_share, abs=0.01)
    assert m.largest_layer_params_m == pytest.approx(fig.largest_layer_m, rel=0.01)
    assert m.largest_module_params_m == pytest.approx(fig.largest_module_m, rel=0.01)
    # Whether CFG doubles the batch is how diffusers' pipeline runs it (sim_families).
    assert m.cfg_batch == fam.cfg_batch


@pytest.fixture(scope="module")
def klein():
    return ps.PipelineSim(sf.FLUX2_KLEIN)  # the smallest transformer of the families


def test_a_stage_on_fake_tensors_holds_the_spec_weights(klein):
    assert not isinstance(torch.zeros(1), FakeTensor)  # the fake mode is off between stages
    stage = klein.transformer_stage(128, "model")
    assert not isinstance(torch.zeros(1), FakeTensor)
    assert stage.weights == pytest.approx(mp.weight_bytes("flux2", "denoiser"), rel=0.01)
    # 64 tokens of image beside 512 of text (fake tensors cost per operator, not per
    # pixel: the smallest picture is as good a check of the stage as any): activations
    # there, and below the 1024 px figure the spec holds (4096 image tokens).
    assert 0 < stage.activations < mp.denoiser_activations("flux2", 1024, 1024, 1)
    # The same modules serve a second stage (nothing was closed or consumed).
    again = klein.transformer_stage(128, "model")
    assert (again.weights, again.peak) == (stage.weights, stage.peak)


def _recorded_rows():
    run = json.loads(RECORDED.read_text())
    for arch, rec in run["families"].items():
        for row in rec["rows"]:
            yield pytest.param(
                run["side"], sf.FAMILIES[arch], row, id=f"{arch}-{row['weights']}-{row['mode']}"
            )


@pytest.mark.parametrize("side,fam,row", list(_recorded_rows()))
def test_the_plan_covers_every_simulated_peak(side, fam, row):
    """bench/bench_family_memory.py's calibrated peaks (whole txt2img, every model resident,
    model offload, sequential offload) against the plan's estimate for the same mode and
    format: never below, and for a model resident and alone (the stages the figures are
    calibrated on) within 10 % where the transformer or its decode peaks."""
    est = bench_family_memory.plan_estimate(fam, side, row["mode"], row["weights"])
    peak = row["peak_GiB"] * GiB
    assert est >= peak
    if row["mode"] == "none":
        assert est <= peak * 1.1


def _text_stage_rows():
    """Recorded model-offload rows whose peak is a text encoder's stage, of the families
    with several encoders (SD3.5 Large/Medium, Flux.1)."""
    for param in _recorded_rows():
        _side, fam, row = param.values
        several = len(spec_for(fam.key).memory_for(fam.variant).text_encoders_params_m) > 1
        text_peak = row["peak_stage"] in {t.label for t in fam.texts}
        if row["mode"] == "model" and several and text_peak:
            yield param


@pytest.mark.parametrize("side,fam,row", list(_text_stage_rows()))
def test_model_offload_counts_one_text_encoder_at_a_time(side, fam, row):
    """diffusers' model CPU offload moves one text encoder at a time to the GPU: where the
    text stage peaks, the estimate is the largest encoder's stage, not every encoder's."""
    est = bench_family_memory.plan_estimate(fam, side, row["mode"], row["weights"])
    peak = row["peak_GiB"] * GiB
    assert peak <= est <= peak * 1.1


def test_every_multi_encoder_family_has_a_text_peak_row():
    # The check above runs on what was recorded: it must find SD3.5 and Flux rows to check.
    arches = {param.values[1].arch for param in _text_stage_rows()}
    assert {sf.SD35_LARGE.arch, sf.SD35_MEDIUM.arch, sf.FLUX.arch} <= arches
