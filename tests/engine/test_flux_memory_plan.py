"""The memory plan for Flux.1 dev (issue 12): what it chooses with 24, 12 and 8 GiB free for
a bf16 and a GGUF Q4_K transformer, and why, in terms of the family's figures.

The figures themselves (weights counted on the real architecture, activations calibrated)
come from bench/bench_lowvram.py --only flux, which also checks that each plan's estimate
covers the simulated peak; this test only reads them, so it costs nothing."""

from __future__ import annotations

import pytest

from dreamwire.backend.engine import memory_plan as mp
from dreamwire.backend.families import spec_for
from dreamwire.backend.library.weight_formats import FP8, FULL, GGUF, NF4, WeightFormat

GiB = 2**30
SIDE = 1024
ORDER = ("full", "tiled", "offload", "sequential")


def _largest_model(weights: WeightFormat) -> int:
    """What model CPU offload must hold at once: one text encoder (T5) or the denoiser."""
    act = mp.denoiser_activations("flux", SIDE, SIDE, 1)
    return max(mp.largest_text_bytes("flux"), mp.denoiser_bytes("flux", weights) + act)


def _all_weights(weights: WeightFormat) -> int:
    return (
        mp.weight_bytes("flux", "text")
        + mp.denoiser_bytes("flux", weights)
        + mp.weight_bytes("flux", "vae")
    )


@pytest.mark.parametrize("weights", [FULL, GGUF["Q4_K"]], ids=lambda w: w.key)
@pytest.mark.parametrize("free_gib", [24, 12, 8])
def test_flux_plan_follows_the_figures(weights, free_gib):
    plan = mp.choose("flux", SIDE, SIDE, free_gib * GiB, weights=weights)
    budget = free_gib * GiB * mp.HEADROOM
    assert plan.estimate <= budget
    if plan.level in ("full", "tiled"):
        assert _all_weights(weights) <= budget
    else:
        # Offloading only when every model together does not fit...
        assert _all_weights(weights) > budget
        assert plan.low_vram
        # ...and one layer at a time only when one model alone does not fit.
        assert plan.sequential == (_largest_model(weights) > budget)


def test_flux_plan_choices_by_card():
    q4 = GGUF["Q4_K"]
    levels = {
        (w.key, g): mp.choose("flux", SIDE, SIDE, g * GiB, weights=w).level
        for w in (FULL, q4)
        for g in (24, 12, 8)
    }
    # Issue 12's targets: Q4 fits 12 GiB with model offload at most; anything fits 8 GiB
    # with sequential offload.
    assert ORDER.index(levels["Q4_K", 12]) <= ORDER.index("offload")
    assert levels["fp16", 8] == levels["Q4_K", 8] == "sequential"
    # Less free memory never buys a cheaper plan; a smaller format never a dearer one.
    for key in ("fp16", "Q4_K"):
        ranks = [ORDER.index(levels[key, g]) for g in (24, 12, 8)]
        assert ranks == sorted(ranks)
    for g in (24, 12, 8):
        assert ORDER.index(levels["Q4_K", g]) <= ORDER.index(levels["fp16", g])
    # The quantized transformer is what lets a 24 GiB card keep everything resident.
    assert ORDER.index(levels["Q4_K", 24]) < ORDER.index(levels["fp16", 24])


def test_flux_figures_and_formats():
    m = spec_for("flux").memory
    assert not m.cfg_batch  # distilled guidance: one transformer call per step
    one = mp.denoiser_activations("flux", SIDE, SIDE, 1)
    assert mp.denoiser_activations("flux", SIDE, SIDE, 2) == 2 * one
    full = mp.denoiser_bytes("flux")
    assert full == mp.weight_bytes("flux", "denoiser") > 20 * GiB
    # Layerwise casting leaves Flux's norm layers in bf16: fp8 saves less than half.
    fp8 = mp.denoiser_bytes("flux", FP8)
    assert full / 2 < fp8 < full * 0.7
    q4, nf4 = mp.denoiser_bytes("flux", GGUF["Q4_K"]), mp.denoiser_bytes("flux", NF4)
    assert q4 == pytest.approx(full * 4.5 / 16, rel=0.05) and nf4 <= q4
    # SD families never reach sequential offload: their figures name no largest module.
    assert mp.choose("sdxl", SIDE, SIDE, GiB).level == "offload"
    assert mp.choose("flux", SIDE, SIDE, GiB).level == "sequential"


def test_a_full_control_models_second_transformer_moves_the_plan_to_offload():
    # A full Flux Control model (flux1-depth-dev) is a second 11.9 B transformer: resident,
    # it sits on the GPU beside the model's own; offloaded, it stands in for it.
    alone = mp.choose("flux", SIDE, SIDE, None, weights=GGUF["Q4_K"])
    free = int(alone.estimate / mp.HEADROOM) + GiB  # room for the model alone, resident
    assert mp.choose("flux", SIDE, SIDE, free, weights=GGUF["Q4_K"]).level == "full"
    with_control = mp.choose("flux", SIDE, SIDE, free, weights=GGUF["Q4_K"], control_models=1)
    assert with_control.level == "offload"
    second = mp.estimate("flux", SIDE, SIDE, weights=GGUF["Q4_K"], control_models=1)
    assert second - alone.estimate == mp.weight_bytes("flux", "denoiser")
    offload = dict(offload=True, weights=GGUF["Q4_K"])
    assert mp.estimate("flux", SIDE, SIDE, control_models=1, **offload) == mp.estimate(
        "flux", SIDE, SIDE, **offload
    )
