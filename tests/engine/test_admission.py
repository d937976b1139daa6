"""Admission by memory (engine/admission.py): the estimate's shape, what it reads from the
model files, and the engine refusing before it loads anything."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dreamwire.backend.engine import admission as ad
from dreamwire.backend.engine import host_memory
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import ControlUnit, HiresFix, Job, Outpaint, Upscale

GiB = 2**30
SD1 = ad.model_size("sd1", None)
CPU = ad.Device("cpu", 4, ram_free=None)


def total(job: Job, size: ad.ModelSize = SD1, device: ad.Device = CPU, resident=True, tiled=None):
    if tiled is None:
        tiled = job.width * job.height > 1536 * 1536
    # Validated, as the server and the engine estimate them (the mode is resolved then).
    needs = ad.need(size, ad.shape(job.validate(), 512, tiled), device, resident)
    return {n.where: n.total for n in needs}


def ram(job: Job, **kw) -> int:
    return total(job, **kw)["RAM"]


def test_grows_with_every_dimension_of_the_work():
    base = Job(width=512, height=512)
    assert ram(Job(width=1024, height=512)) > ram(base)
    assert ram(Job(width=512, height=1024)) > ram(base)
    assert ram(Job(width=512, height=512, batch=2)) > ram(base)
    assert ram(Job(width=512, height=512, hires=HiresFix(scale=2))) > ram(
        Job(width=512, height=512, hires=HiresFix(scale=1.5))
    )
    assert ram(Job(width=512, height=512, hires=HiresFix(scale=1.5))) > ram(base)
    img = np.zeros((512, 512, 3), np.uint8)
    with_cn = Job(width=512, height=512, init_image=img, controls=[ControlUnit("canny", None)])
    assert ram(with_cn) > ram(Job(width=512, height=512, init_image=img))
    grown = Job(width=512, height=512, init_image=img, outpaint=Outpaint(left=256, right=256))
    assert ram(grown) > ram(Job(width=512, height=512, init_image=img, mask=img[..., 0]))


def test_activations_scale_with_area_and_batch():
    def act(job, **kw):  # the model is resident: what is left is activations and images
        return ram(job, **kw) - ad.RUNTIME_RAM

    for tiled in (False, True):
        small = act(Job(width=2048, height=2048), tiled=tiled)
        large = act(Job(width=4096, height=4096), tiled=tiled)
        assert 3.5 < large / small <= 4.0 + 1e-9, tiled
    one = act(Job(width=512, height=512))
    assert act(Job(width=512, height=512, batch=4)) == pytest.approx(4 * one, rel=0.01)


def test_weights_count_once_unless_loaded_and_fp32_costs_twice_fp16():
    job = Job(width=512, height=512)
    loaded, cold = ram(job), ram(job, resident=False)
    # Weights in fp32, and while loading the fp16 state dict too (before any pass runs).
    assert SD1.params * 4 < cold - loaded <= SD1.params * 6
    mps16 = ad.Device("mps", 2, ram_free=None)
    assert ram(job, device=mps16) < ram(job) <= 2 * ram(job, device=mps16)


def test_tiled_decode_costs_less_for_large_images_and_the_model_size_matters():
    big = Job(width=4096, height=4096)
    assert ram(big, tiled=True) < ram(big, tiled=False)
    tiny = ad.model_size("tiny-sd1", None)
    assert tiny.unet_channels == 32 and SD1.unet_channels == 320
    assert ram(big, size=tiny) < ram(big) / 5


def test_sd1_parts_cover_memory_plans_gpu_calibration():
    # memory_plan.py's fp16 SD1 figures from a real card: the UNet 25 KiB per latent pixel
    # per sample, the VAE decode 2.4 GiB per output megapixel.
    fp16 = ad.Device("mps", 2, ram_free=None)
    (n,) = ad.need(SD1, ad.shape(Job(width=2048, height=2048), 512, False), fp16, True)
    unet = 256 * 256 * 2 * 25 * 1024
    assert unet <= n.sampling <= 1.6 * unet
    vae = 4 * 2.4 * GiB
    assert vae <= n.decode <= 1.6 * vae


def test_the_architectures_widths_come_from_the_catalog():
    xl = ad.model_size("sdxl-base", None)
    assert (xl.unet_channels, xl.vae_channels, xl.vae_tile_px, xl.vae_upcast) == (
        320,
        256,
        1024,
        True,
    )
    # A variant without its own config folder, and an unknown file, fall back sensibly.
    assert ad.model_size("sd1-depth", 5).unet_channels == 320
    assert ad.model_size(None, None).params == pytest.approx(1.066e9, rel=0.01)


def test_plain_upscale_counts_only_its_images():
    img = np.zeros((1024, 1024, 3), np.uint8)
    job = Job(width=64, height=64, init_image=img, upscale=Upscale(scale=8.0, refine=False))
    out = 8192 * 8192 * 3 * 4 * ad.OUTPUT_COPIES
    assert ram(job, resident=False) == pytest.approx(out + ad.RUNTIME_RAM, rel=0.01)


def test_refusal_names_the_estimate_and_what_is_free():
    job = Job(width=8192, height=8192, batch=16)
    device = ad.Device("cpu", 4, ram_free=16 * GiB)
    needs = ad.need(SD1, ad.shape(job, 512, True), device, False)
    err = ad.refusal(job.job_id, needs, device)
    assert err is not None and err.code == ErrorCode.LIMIT_EXCEEDED
    assert err.job_id == job.job_id
    assert f"about {needs[0].total / GiB:.1f} GiB of RAM" in err.message
    assert "16.0 GiB free" in err.message
    small = Job(width=512, height=512)
    fits = ad.need(SD1, ad.shape(small, 512, False), device, False)
    assert ad.refusal(small.job_id, fits, device) is None
    unknown = ad.Device("cpu", 4, ram_free=None)
    assert ad.refusal(job.job_id, needs, unknown) is None


def test_gpu_checks_vram_for_the_passes_and_ram_for_the_images():
    job = Job(width=2048, height=2048, batch=4)
    shp = ad.shape(job, 512, True)
    tight_vram = ad.Device("cuda", 2, ram_free=64 * GiB, vram_free=1 * GiB)
    err = ad.refusal(job.job_id, ad.need(SD1, shp, tight_vram, True), tight_vram)
    assert err is not None and "of VRAM" in err.message and "the GPU has 1.0 GiB" in err.message
    tight_ram = ad.Device("cuda", 2, ram_free=GiB // 4, vram_free=80 * GiB)
    err = ad.refusal(job.job_id, ad.need(SD1, shp, tight_ram, True), tight_ram)
    assert err is not None and "of RAM" in err.message
    roomy = ad.Device("cuda", 2, ram_free=64 * GiB, vram_free=80 * GiB)
    assert ad.refusal(job.job_id, ad.need(SD1, shp, roomy, True), roomy) is None


def test_host_memory_reads_meminfo_and_a_cgroup_limit(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  32000000 kB\nMemAvailable:   2000000 kB\n")
    assert host_memory.available(meminfo, ()) == 2000000 * 1024
    limit, usage = tmp_path / "memory.max", tmp_path / "memory.current"
    limit.write_text(str(GiB))
    usage.write_text(str(GiB // 2))
    (tmp_path / "memory.stat").write_text("anon 1\ninactive_file 1024\n")
    assert host_memory.available(meminfo, ((limit, usage),)) == GiB // 2 + 1024
    limit.write_text("max\n")
    assert host_memory.available(meminfo, ((limit, usage),)) == 2000000 * 1024
    assert host_memory.available(tmp_path / "absent", ()) is None
    live = host_memory.available()
    assert live is None or 0 < live < 2**50


def test_parameter_count_from_headers_is_what_loading_holds(library):
    from dreamwire.backend.engine import Engine
    from dreamwire.backend.library.sizes import checkpoint_params

    # A fresh engine: the shared one's cached models may carry the fast path's fused QKV
    # weights (extra parameters) from an earlier test.
    engine = Engine(library, device="cpu", extensions=[], cache_size=1)
    for name in ("tiny-sd1", "tiny-sd1-diffusers"):
        model = engine.load(name)
        loaded = sum(
            p.numel()
            for key in ("unet", "vae", "text_encoder")
            for p in model.components[key].parameters()
        )
        counted = checkpoint_params(library.find("checkpoint", name))
        # Buffers (position ids) aside, the header holds exactly the loaded parameters.
        assert math.isclose(counted, loaded, rel_tol=0.01), name


def test_ema_weights_in_a_checkpoint_do_not_count(tmp_path, library):
    from safetensors.numpy import save_file

    from dreamwire.backend.library import Format, Kind, ModelEntry
    from dreamwire.backend.library.sizes import checkpoint_params

    path = tmp_path / "m.safetensors"
    save_file(
        {
            "model.diffusion_model.a": np.zeros((10, 10), np.float16),
            "first_stage_model.b": np.zeros(7, np.float16),
            "model_ema.a": np.zeros((10, 10), np.float16),
        },
        str(path),
    )
    entry = ModelEntry(Kind.CHECKPOINT, "m", path, Format.SAFETENSORS)
    assert checkpoint_params(entry) == 107


def test_engine_refuses_before_loading_when_memory_is_short(engine, monkeypatch):
    from dreamwire.backend.engine import engine as engine_module

    job = Job(prompt="x", width=512, height=512, steps=1, sampler="Euler", seed=1)
    engine.check_memory(job)  # this machine has room for it
    # Memory running short between accepting and starting: the only way to cause it here.
    monkeypatch.setattr(engine_module.host_memory, "available", lambda: 8 * 2**20)
    keys = engine.models.keys()
    with pytest.raises(DreamwireError) as err:
        engine.run(Job(**{**job.__dict__, "model": "tiny-sdxl"}))
    assert err.value.code == ErrorCode.LIMIT_EXCEEDED
    assert "0.0 GiB free" in err.value.message
    assert engine.models.keys() == keys  # nothing was loaded for it


def test_memory_a_running_job_holds_counts_as_free_for_the_next(engine, monkeypatch):
    from dreamwire.backend.engine import engine as engine_module

    def job(**kw):
        return Job(prompt="x", width=256, height=256, steps=1, sampler="Euler", seed=1, **kw)

    first, second = job(), job()
    engine.run(job())  # the model is loaded: both estimates count no weights
    (need,) = engine.check_memory(first)
    held = ad.released([need], "RAM")
    assert held == max(need.sampling, need.decode) > 0
    # Free RAM such that the second job fits only once the first has given its memory back.
    ram = int(need.total / ad.HEADROOM) - held // 2
    monkeypatch.setattr(engine_module.host_memory, "available", lambda: ram)
    with pytest.raises(DreamwireError) as idle:
        engine.check_memory(second)
    assert idle.value.code == ErrorCode.LIMIT_EXCEEDED
    seen: list = []

    def admit_second(progress) -> None:
        if not seen:
            seen.append(engine.check_memory(second))  # while the first one runs

    monkeypatch.setattr(engine_module.host_memory, "available", lambda: 1 << 50)
    original = engine.check_memory

    def tight_after_start(j, *plan):  # run() hands over the job's plan
        needs = original(j, *plan)
        monkeypatch.setattr(engine_module.host_memory, "available", lambda: ram)
        return needs

    monkeypatch.setattr(engine, "check_memory", tight_after_start)
    engine.run(first, on_progress=admit_second)
    assert seen and seen[0][0].total == need.total


FLUX_PARAMS = int((11901.4 + 83.8 + 123.1 + 4762.3) * 1e6)  # transformer, VAE, CLIP-L, T5


def test_flux_sampling_follows_the_calibrated_transformer_figures():
    from dreamwire.backend.engine import memory_plan as mp

    flux = ad.model_size("flux-dev", FLUX_PARAMS)
    assert not flux.cfg_batch  # one transformer call per step
    gpu = ad.Device("cuda", 2, ram_free=None, vram_free=None)
    for side in (768, 1024, 2048):
        (vram, _ram) = ad.need(flux, ad.shape(Job(width=side, height=side), 1024, True), gpu, True)
        plan = mp.denoiser_activations("flux", side, side, 1)
        assert plan <= vram.sampling <= 1.1 * plan, side
    # The tiny test model scales with its width, far below the real one.
    tiny = ad.model_size("tiny-flux", 10**6)
    assert tiny.unet_channels < flux.unet_channels / 10


def test_quantized_flux_weights_count_at_their_stored_size():
    from dreamwire.backend.library.weight_formats import FP8, FULL, GGUF

    job = ad.shape(Job(width=1024, height=1024), 1024, True)
    cpu = ad.Device("cpu", 4, ram_free=None)

    def cold(weights):
        size = ad.model_size("flux-dev", FLUX_PARAMS, weights)
        (n,) = ad.need(size, job, cpu, resident=False)
        return size, n

    full, n_full = cold(FULL)
    q4, n_q4 = cold(GGUF["Q4_K"])
    fp8, n_fp8 = cold(FP8)
    # The transformer is 70 % of what Flux loads; Q4_K stores all of it, fp8 (layerwise
    # casting, norm layers left in bf16) 73 % of it.
    assert q4.stored_params == pytest.approx(0.705 * FLUX_PARAMS, rel=0.01)
    assert fp8.stored_params == pytest.approx(0.727 * q4.stored_params, rel=0.01)
    saved = n_full.weights - n_q4.weights
    assert saved == pytest.approx(q4.stored_params * (4 - 4.5 / 8), rel=1e-6)
    assert n_full.loading - n_q4.loading == pytest.approx(q4.stored_params * (2 - 4.5 / 8))
    assert n_q4.weights < n_fp8.weights < n_full.weights


def test_flux_on_an_8_gib_card_is_admitted_through_sequential_offload():
    flux = ad.model_size("flux-dev", FLUX_PARAMS)
    gpu = ad.Device("cuda", 2, ram_free=None, vram_free=8 * GiB)
    job = Job(width=1024, height=1024)
    needs = ad.need(flux, ad.shape(job, 1024, True), gpu, False)
    assert ad.refusal(job.job_id, needs, gpu) is None
    # One module at a time (T5's embedding), not 85 % of 31 GiB of bf16 weights.
    assert needs[0].weights < GiB
    too_small = ad.Device("cuda", 2, ram_free=None, vram_free=GiB)
    assert ad.refusal(job.job_id, needs, too_small) is not None


def test_a_full_control_model_counts_as_a_second_denoiser_not_a_controlnet():
    # Flux.1 dev (16.9 B parameters, 11.9 B of them the transformer) with a full Control
    # model's transformer: counted whole, where a ControlNet share (0.4 of the checkpoint)
    # would under-count it.
    size = ad.model_size("flux-dev", 16_900_000_000)
    second = ad.denoiser_params(size, None)
    assert second == pytest.approx(11.9e9, rel=0.01)
    unit = ControlUnit(type="depth", model="flux1-depth-dev", image=np.zeros((8, 8, 3), np.uint8))
    job = Job(prompt="p", width=1024, height=1024, controls=[unit])
    as_controlnet = ad.shape(job, 1024, False)
    as_denoiser = ad.shape(job, 1024, False, (second,))
    assert (as_controlnet.controlnets, as_denoiser.controlnets) == (1, 0)
    cn = ad.need(size, as_controlnet, CPU, resident=True)[0]
    den = ad.need(size, as_denoiser, CPU, resident=True)[0]
    assert den.weights - ad.RUNTIME_RAM == second * 4
    assert den.weights > cn.weights
    # A machine with room for the ControlNet-share estimate refuses the real one.
    free = int(cn.total / ad.HEADROOM) + GiB
    device = ad.Device("cpu", 4, ram_free=free)
    assert ad.refusal("j", ad.need(size, as_controlnet, device, True), device) is None
    refused = ad.refusal("j", ad.need(size, as_denoiser, device, True), device)
    assert refused is not None and refused.code is ErrorCode.LIMIT_EXCEEDED


def test_a_job_is_estimated_for_another_workers_reported_workplace(engine):
    # The Ray front admits jobs per actor from what each reports (server/worker_memory.py).
    job = Job(prompt="x", width=256, height=256, steps=1, model="tiny-sd1").validate()
    cpu = ad.Device("cpu", 4, ram_free=None)
    (cold,) = engine.memory_needs(job, ad.Workplace(cpu))
    (warm,) = engine.memory_needs(job, ad.Workplace(cpu, models=("tiny-sd1",)))
    assert cold.total > warm.total  # the weights count only where they are not loaded yet
    # That worker's free memory decides, not this process's.
    tight = ad.Device("cpu", 4, ram_free=int(warm.total / ad.HEADROOM) - 2**20)
    roomy = ad.Device("cpu", 4, ram_free=int(warm.total / ad.HEADROOM) + 2**20)
    assert ad.refusal(job.job_id, [warm], tight) is not None
    assert ad.refusal(job.job_id, [warm], roomy) is None
    # A CUDA worker: the passes in VRAM at fp16, the images in RAM, whatever runs here.
    gpu = ad.Device("cuda", 2, ram_free=None, vram_free=8 * GiB)
    assert [n.where for n in engine.memory_needs(job, ad.Workplace(gpu))] == ["VRAM", "RAM"]
    # This engine's own workplace is what its check uses.
    here = engine.workplace()
    assert here.device.kind == "cpu" and here.models == tuple(engine.loaded_models())
