"""Low-VRAM mode fits: the memory plan against the real architectures' allocations.

bench/fake_gpu.py runs SD1.5 and SDXL on fake tensors and counts every allocation;
bench/bench_lowvram.py calibrates that count against plain diffusers' measured peaks on an
H200 and checks the plan. These tests run the same code: the counter itself, the
calibration (the simulation must stay close to the real card), and the issue's targets with
the plan the engine would choose.
"""

from __future__ import annotations

import gc

import pytest
import torch

from bench import bench_lowvram as bl
from bench import fake_gpu as fg
from dreamwire.backend.engine import memory_plan as mp

GiB = 2**30
MiB = 2**20


def test_live_bytes_counts_storages_once_and_frees_them():
    with fg.fake_cuda():
        live = fg.LiveBytes()
        with live:
            a = torch.empty(MiB, dtype=torch.uint8)
            assert live.current == MiB
            view = a.view(1024, 1024)[:10]
            a.add_(1)
            assert live.current == MiB  # views and in-place ops allocate nothing
            b = a + 1
            assert live.current == 2 * MiB and live.peak == 2 * MiB
            del b
            gc.collect()
            assert live.current == MiB and live.peak == 2 * MiB
            tiny = torch.empty(3, dtype=torch.uint8)
            assert live.current == MiB + fg.BLOCK  # the caching allocator's rounding
            del tiny, view
            live.reset_peak()
            assert live.peak == live.current


def test_live_bytes_holds_and_drops_module_weights():
    lin = torch.nn.Linear(256, 256, device="meta").half()
    with fg.fake_cuda():
        lin = fg.on_fake_cuda(lin)
        live = fg.LiveBytes()
        with live:
            held = live.hold(lin)
            assert held == fg._round(256 * 256 * 2) + fg._round(256 * 2)
            assert live.hold(lin) == 0  # already counted
            view = lin.weight.t()  # an operator's view of a held weight adds nothing
            assert live.current == held
            # Weights that leave the GPU (sequential offload) while Python holds them.
            assert live.drop(lin) == held and live.current == 0
            assert live.drop(lin) == 0
            del view
            gc.collect()
            assert live.current == 0  # a dropped storage is not subtracted again


# One Sim per family for the module (building SDXL's fake modules takes seconds), with the
# most ControlNets any test asks for; each test takes the ControlNets it wants via `using`.
@pytest.fixture(scope="module")
def sd1_sim():
    return bl.Sim("sd1", controlnets=1)


@pytest.fixture(scope="module")
def sdxl_sim():
    return bl.Sim("sdxl", controlnets=1)


@pytest.fixture(scope="module")
def calibration(sd1_sim):
    return bl.calibrate(sd1_sim)


def test_simulation_tracks_the_h200_reference(calibration):
    factor, rows = calibration
    # The count sees every tensor an operator returns; what it cannot see (cuDNN/cuBLAS
    # workspaces, fragmentation) is a fraction of the activations, never a multiple.
    assert 1.0 <= factor <= 1.8
    for row in rows:
        assert 0.95 <= row["activation_ratio"] <= 1.8, row
        assert row["simulated_GiB"] <= row["reference_GiB"] * 1.02, row


@pytest.mark.parametrize(
    ("family", "side", "limit", "mode", "nets"),
    [
        ("sd1", 512, 4, "auto", 0),
        ("sd1", 512, 4, "offload", 0),
        ("sd1", 512, 4, "auto", 1),
        ("sdxl", 1024, 8, "auto", 0),
        ("sdxl", 1024, 8, "auto", 1),
        ("sd1", 4096, 4, "decode", 0),
    ],
)
def test_plan_fits_and_its_estimate_covers_the_calibrated_peak(
    request, calibration, family, side, limit, mode, nets
):
    factor, _rows = calibration
    sim = request.getfixturevalue(f"{family}_sim")  # SDXL is built only if a case needs it
    r = bl.plan_peak(family, side, limit * GiB, factor, mode, nets, sim)
    assert r["fits"], r
    assert r["estimate_covers"], r
    # ...without being so far above it that the plan gives up speed for nothing.
    assert r["estimate_GiB"] <= r["peak_GiB"] * 1.25 + 0.25, r


def test_attention_slicing_costs_memory_where_sdpa_is_memory_efficient(sd1_sim):
    sim = sd1_sim.using(0)
    sdpa = sim.unet_stage(1024, resident=[sim.unet])
    sliced = sim.unet_stage(1024, sliced=True, resident=[sim.unet])
    # Why lowvram.py slices only on MPS.
    assert sliced.activations > 3 * sdpa.activations
    assert sdpa.activations <= mp.denoiser_activations("sd1", 1024, 1024, 1)


def test_one_blend_row_stand_in_has_the_same_peak(monkeypatch, sd1_sim):
    import contextlib

    # 3x3 tiles with seams both ways, as at 1024/512, with half the rows the row
    # by row blend walks (fake tensors cost per operator: 512/256 is ~7 s cheaper).
    fast = sd1_sim.decode_stage(512, 256)
    monkeypatch.setattr(bl, "_one_blend_row", lambda vae: contextlib.nullcontext())
    slow = sd1_sim.decode_stage(512, 256)
    assert fast.peak == slow.peak and fast.weights == slow.weights


def test_fake_weights_stay_tied():
    from transformers import T5Config, T5EncoderModel

    cfg = T5Config(d_model=64, d_ff=64, d_kv=8, num_heads=2, num_layers=1, vocab_size=1000)
    with torch.device("meta"):
        t5 = T5EncoderModel(cfg)
    with fg.fake_cuda():
        t5 = fg.on_fake_cuda(t5)
        assert t5.shared.weight is t5.encoder.embed_tokens.weight


@pytest.mark.parametrize("key", ["fp8", "nf4", "Q8_0", "Q5_K", "Q4_K", "Q4_0"])
def test_weight_format_upcast_copies_cover_diffusers_dequantization(key):
    from dreamwire.backend.library.weight_formats import weight_format

    if key.startswith("Q"):
        pytest.importorskip("gguf")
    import weight_sim  # bench/, on the path once bench_lowvram is imported

    measured = weight_sim.upcast_copies(key)
    assert 0.9 <= measured <= weight_format(key).upcast_copies, (key, measured)
