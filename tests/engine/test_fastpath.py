"""The fast path on CPU: policy per device, module transforms equal to plain, LoRA through
tied fused weights and compiled graphs, the compiled path through the engine (aot_eager
stands in for inductor: same dynamo graphs and guards, no code generation), the off switch,
TAESD previews and the low-VRAM memory plan. No timings here: speed is bench/'s job."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from dreamwire.backend.engine import fastpath as fp
from dreamwire.backend.engine import memory_plan as mp
from dreamwire.backend.engine import taesd
from dreamwire.shared.job import ControlUnit, Job
from tests.support.stack_recorder import StackRecorder

GiB = 2**30


def job(**kw) -> Job:
    base = dict(prompt="weathered stone", sampler="Euler", steps=3, width=64, height=64, seed=5)
    base.update(kw)
    return Job(**base)


def maxdiff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


# -- the policy ------------------------------------------------------------------------------


def test_cuda_gets_everything_at_common_sizes():
    d = fp.decide("cuda", width=512, height=768, batch=2, capability=(8, 9))
    assert d.channels_last and d.fuse_qkv and d.compile and not d.reasons
    assert d.sdpa == ("flash", "efficient", "math")
    assert fp.decide("cuda", capability=(9, 0)).sdpa[0] == "cudnn"  # Hopper
    assert fp.decide("cuda", capability=(9, 0), sdpa_env="efficient, math").sdpa == (
        "efficient",
        "math",
    )


@pytest.mark.parametrize(
    "kw, reason",
    [
        ({"low_vram": True}, "low-VRAM"),
        ({"seamless": True}, "seamless"),
        ({"width": 520}, "multiple of 64"),
        ({"width": 4096}, "larger than"),
        ({"batch": 8}, "batch 8"),
        ({"shapes_compiled": fp.MAX_SHAPES}, "compiled shapes"),
        ({"compile_available": False}, "Triton"),
    ],
)
def test_cuda_falls_back_to_eager_with_a_reason(kw, reason):
    d = fp.decide("cuda", **kw)
    assert not d.compile and d.channels_last
    assert any(reason in r for r in d.reasons), d.reasons
    assert d.fuse_qkv == (not kw.get("low_vram", False))


def test_a_seen_shape_compiles_even_when_the_model_is_full():
    assert fp.decide("cuda", shapes_compiled=fp.MAX_SHAPES, new_shape=False).compile


def test_cpu_mps_and_off():
    cpu = fp.decide("cpu")
    assert not cpu.compile and not cpu.sdpa and "CPU" in cpu.reasons[0]
    assert (cpu.channels_last, cpu.fuse_qkv) == (
        fp.CPU_DEFAULTS["channels_last"],
        fp.CPU_DEFAULTS["fuse_qkv"],
    )
    forced = fp.decide("cpu", cpu_defaults={"channels_last": True, "fuse_qkv": True})
    assert forced.channels_last and forced.fuse_qkv and not forced.compile
    mps = fp.decide("mps")
    assert mps.fuse_qkv and not mps.compile and not mps.channels_last
    off = fp.decide("cuda", enabled=False)
    assert not off.any and off.reasons == ("fast path turned off",)


def test_off_switch_env_and_flag(monkeypatch):
    monkeypatch.delenv(fp.ENV, raising=False)
    assert fp.is_enabled()
    monkeypatch.setenv(fp.ENV, "0")
    assert not fp.is_enabled()
    fp.set_enabled(True)
    try:
        assert fp.is_enabled()  # the command-line flag wins over the environment
    finally:
        fp.set_enabled(None)
    assert not fp.is_enabled()


def test_dtype_choice():
    assert fp.choose_dtype("cpu", True) == torch.float32
    assert fp.choose_dtype("cpu", True, "bf16") == torch.float32
    assert fp.choose_dtype("xpu", True) == torch.float32
    assert fp.choose_dtype("mps", False) == torch.float16
    assert fp.choose_dtype("cuda", True) == torch.float16
    assert fp.choose_dtype("cuda", True, "bf16") == torch.bfloat16
    assert fp.choose_dtype("cuda", False, "bf16") == torch.float16  # pre-Ampere


def test_compile_cache_goes_to_the_dreamwire_cache(monkeypatch, tmp_path):
    monkeypatch.setenv(fp.CACHE_ENV, str(tmp_path))
    assert fp.cache_dir() == tmp_path
    for name in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", "TORCHINDUCTOR_FX_GRAPH_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(fp, "_cache_ready", None)
    monkeypatch.setattr(fp, "_USER_ENV", {})
    folder = fp.setup_compile_cache()
    assert folder == tmp_path / "inductor" and folder.is_dir()
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(folder)
    assert os.environ["TORCHINDUCTOR_FX_GRAPH_CACHE"] == "1"
    assert os.environ["TRITON_CACHE_DIR"].startswith(str(folder))
    # A cache folder the user chose wins.
    monkeypatch.setattr(fp, "_cache_ready", None)
    monkeypatch.setattr(fp, "_USER_ENV", {"TORCHINDUCTOR_CACHE_DIR": "/theirs"})
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/theirs")
    fp.setup_compile_cache(tmp_path / "again")
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == "/theirs"


# -- module transforms on the tiny UNet -------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_pipe(library):
    return library.load_pipeline(library.default_checkpoint(), torch.float32)


@pytest.fixture
def unet(tiny_pipe):
    return copy.deepcopy(tiny_pipe.unet)


def _unet_inputs(unet, batch=2, side=8):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, unet.config.in_channels, side, side, generator=g)
    text = torch.randn(batch, 77, unet.config.cross_attention_dim, generator=g)
    return x, torch.tensor(500), text


@torch.no_grad()
def test_channels_last_and_fused_qkv_equal_plain(unet, tiny_pipe):
    args = _unet_inputs(unet)
    ref = unet(*args).sample
    assert fp.set_channels_last(unet) and not fp.set_channels_last(unet)  # once
    n = fp.fuse_qkv(unet)
    attns = fp._attention_modules(unet)
    assert n == len(attns) > 0 and fp.fuse_qkv(unet) == 0
    assert any(getattr(a, "to_qkv", None) is not None for a in attns)
    assert any(getattr(a, "to_kv", None) is not None for a in attns)  # cross-attention
    out = unet(*args).sample
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    # The VAE decode in channels_last too.
    vae = copy.deepcopy(tiny_pipe.vae)
    lat = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    ref_img = vae.decode(lat).sample
    fp.set_channels_last(vae)
    torch.testing.assert_close(vae.decode(lat).sample, ref_img, rtol=1e-4, atol=1e-5)


@torch.no_grad()
def test_lora_patch_reaches_fused_weights_and_survives_moves(unet, library, tiny_models):
    from dreamwire.backend.conditioning import lora

    lora_file = lora.read(tiny_models / "models" / "Lora" / "tiny_style.safetensors")
    plain = copy.deepcopy(unet)
    fp.fuse_qkv(unet)
    args = _unet_inputs(unet)
    before = unet(*args).sample

    def patched(model):
        patch = lora.apply([(lora_file, 1.0, 1.0)], {"unet": model})
        return patch, model(*args).sample

    p_plain, want = patched(plain)
    p_fused, got = patched(unet)
    assert (want - before).abs().max() > 1e-3  # the LoRA does change this UNet
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    p_fused.restore()
    p_plain.restore()
    torch.testing.assert_close(unet(*args).sample, before, rtol=0, atol=0)

    # A dtype round trip (as offloading's device moves do) unties the views; retie mends them.
    unet.to(torch.float64).to(torch.float32)
    assert fp.retie(unet) > 0 and fp.retie(unet) == 0
    p_fused, got = patched(unet)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    p_fused.restore()


@pytest.fixture
def attention_block(tiny_pipe):
    """One of the UNet's attention blocks (self- and cross-attention): compile_module's
    wrapper works on any module, and dynamo traces this block in a tenth of the UNet's time
    (the whole UNet compiled is the engine tests' below)."""
    return copy.deepcopy(tiny_pipe.unet.down_blocks[0].attentions[0])


def _block_inputs(block, batch=2, side=8):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, block.config.in_channels, side, side, generator=g)
    text = torch.randn(batch, 77, block.config.cross_attention_dim, generator=g)
    return x, text


@torch.no_grad()
def test_compiled_forward_reads_weights_patched_in_place(attention_block):
    import torch._dynamo.utils as dynamo_utils

    block = attention_block
    fp.fuse_qkv(block)
    x, text = _block_inputs(block)

    def forward():
        return block(x, encoder_hidden_states=text, return_dict=False)[0]

    eager = forward()
    wrapper = fp.compile_module(block, backend="aot_eager")
    assert fp.compile_module(block) is wrapper and fp.compiled(block) is wrapper
    graphs = dynamo_utils.counters["stats"]["unique_graphs"]
    torch.testing.assert_close(forward(), eager, rtol=1e-5, atol=1e-6)
    compiled_once = dynamo_utils.counters["stats"]["unique_graphs"]
    assert compiled_once > graphs
    attn = next(a for a in fp._attention_modules(block) if getattr(a, "to_qkv", None) is not None)
    attn.to_v.weight.add_(torch.randn_like(attn.to_v.weight))  # what LoRA does
    out = forward()
    wrapper.active = False
    torch.testing.assert_close(out, forward(), rtol=1e-5, atol=1e-6)
    assert (out - eager).abs().max() > 1e-2
    assert dynamo_utils.counters["stats"]["unique_graphs"] == compiled_once  # no recompile
    # Named modules are untouched (LoRA module tables, ControlNet config reads).
    assert "_orig_mod" not in "".join(n for n, _ in block.named_modules())


@torch.no_grad()
def test_a_failing_compile_falls_back_to_eager(attention_block):
    def broken_backend(gm, example_inputs):
        raise RuntimeError("no kernel for you")

    block = attention_block
    x, text = _block_inputs(block)
    eager = block(x, encoder_hidden_states=text, return_dict=False)[0]
    wrapper = fp.compile_module(block, backend=broken_backend)
    torch.testing.assert_close(
        block(x, encoder_hidden_states=text, return_dict=False)[0], eager, rtol=0, atol=0
    )
    assert "no kernel for you" in wrapper.failed
    assert fp.decide("cuda", compile_available=not wrapper.failed).compile is False


# -- through the engine ------------------------------------------------------------------


@pytest.fixture
def forced_gpu_policy(monkeypatch):
    """The CUDA policy on CPU: compiled (aot_eager), channels_last, fused."""
    real = fp.decide

    def decide(device_type, **kw):
        kw.update(compile_available=True, sdpa_env="math", capability=None)
        return real("cuda", **kw)

    monkeypatch.setattr(fp, "decide", decide)
    monkeypatch.setattr(fp, "COMPILE_BACKEND", "aot_eager")
    monkeypatch.setattr(fp, "save_artifacts", lambda *a, **k: None)
    monkeypatch.setattr(fp, "setup_compile_cache", lambda *a, **k: None)


def test_engine_compiled_path_reports_compiling_once_per_shape(
    library, engine, forced_gpu_policy, monkeypatch
):
    from dreamwire.backend.engine import Engine

    monkeypatch.delenv(fp.ENV, raising=False)
    fast = Engine(library, device="cpu", extensions=[], cache_size=1)
    events: list = []
    a = fast.run(job(), on_progress=events.append).images[0].image
    states = [e.state for e in events]
    assert states.count("compiling") == 1 and states.index("compiling") < states.index("decoding")
    unet = fast.load("tiny-sd1").components["unet"]
    wrapper = fp.compiled(unet)
    assert wrapper is not None and wrapper.shapes == {(64, 64, 1, 0)}
    assert maxdiff(a, engine.run(job()).images[0].image) <= 2

    events.clear()
    b = fast.run(job(), on_progress=events.append).images[0].image
    assert "compiling" not in [e.state for e in events]
    assert maxdiff(a, b) == 0

    events.clear()
    fast.run(job(seamless="both"), on_progress=events.append)  # eager: no compile, no state
    assert "compiling" not in [e.state for e in events]
    assert wrapper.shapes == {(64, 64, 1, 0)}


def test_engine_compiled_path_with_lora_and_controlnet(library, forced_gpu_policy, monkeypatch):
    from dreamwire.backend.conditioning import engine_extensions
    from dreamwire.backend.engine import Engine

    monkeypatch.delenv(fp.ENV, raising=False)
    canny = np.zeros((64, 64, 3), np.uint8)
    canny[16:48, 30:34] = 255
    work = job(
        prompt="weathered stone <lora:tiny_style:0.8>",
        controls=[ControlUnit(type="canny", image=canny, weight=0.8)],
    )
    plain = Engine(library, device="cpu", cache_size=1, extensions=engine_extensions())
    monkeypatch.setenv(fp.ENV, "0")
    want = plain.run(work).images[0].image
    monkeypatch.delenv(fp.ENV)

    seen = StackRecorder()
    fast = Engine(library, device="cpu", cache_size=1, extensions=engine_extensions(seen))
    got = fast.run(work).images[0].image
    assert maxdiff(got, want) <= 2
    nets = seen.stacks["controlnet"].nets
    assert all(fp.compiled(n) is not None for n in nets)
    # Without the LoRA the same compiled graphs give the plain image again (restored weights).
    bare = job(controls=work.controls)
    assert maxdiff(fast.run(bare).images[0].image, plain.run(bare).images[0].image) <= 2


def test_fast_path_off_leaves_the_model_plain(library, forced_gpu_policy, monkeypatch):
    from dreamwire.backend.engine import Engine

    monkeypatch.setenv(fp.ENV, "0")
    eng = Engine(library, device="cpu", extensions=[], cache_size=1)
    events: list = []
    eng.run(job(), on_progress=events.append)
    unet = eng.load("tiny-sd1").components["unet"]
    assert fp.compiled(unet) is None
    assert not any(getattr(a, "to_qkv", None) is not None for a in fp._attention_modules(unet))
    assert not getattr(unet, "_dreamwire_channels_last", False)
    assert "compiling" not in [e.state for e in events]


# -- TAESD previews --------------------------------------------------------------------------


def _tiny_taesd():
    from diffusers import AutoencoderTiny

    torch.manual_seed(3)
    return AutoencoderTiny(
        encoder_block_out_channels=(8,) * 4, decoder_block_out_channels=(8,) * 4
    ).eval()


def _write_taesd(model, folder: Path, name: str, layout: str) -> Path:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    if layout == "original":  # madebyollin/taesd decoder file: Sequential with a leading clamp
        state = {
            f"{int(k.split('.')[2]) + 1}.{k.split('.', 3)[3]}": v
            for k, v in state.items()
            if k.startswith("decoder.layers.")
        }
    path = folder / name
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


@pytest.mark.parametrize("layout", ["original", "diffusers"])
def test_taesd_file_found_loaded_and_decodes_like_the_model(tmp_path, layout):
    model = _tiny_taesd()
    folder = "VAE-approx" if layout == "original" else "vae_approx"
    path = _write_taesd(model, tmp_path / "models" / folder, "taesd_decoder.safetensors", layout)
    assert taesd.find([tmp_path], "sd1") == path
    assert taesd.find([tmp_path], "sdxl") is None  # taesdxl is another file
    loaded = taesd.load(path)
    lat = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(loaded.decoder(lat), model.decoder(lat))
    preview = taesd.TaesdPreview(loaded, max_side=32)(torch.cat([lat, lat]))
    assert preview.dtype == np.uint8 and preview.shape == (32, 32, 3)  # latent shrunk to 4x4


def test_taesd_bad_file_falls_back(tmp_path):
    from safetensors.torch import save_file

    folder = tmp_path / "models" / "VAE-approx"
    folder.mkdir(parents=True)
    save_file({"1.weight": torch.zeros(8, 4, 3, 3)}, str(folder / "taesd_decoder.safetensors"))
    assert taesd.previewer_for([tmp_path], "sd1", "cpu", torch.float32) is None


def test_engine_previews_through_taesd(tiny_models, tmp_path):
    from dreamwire.backend.engine import Engine
    from dreamwire.backend.library import ModelLibrary

    _write_taesd(
        _tiny_taesd(), tmp_path / "models" / "VAE-approx", "taesd_decoder.safetensors", "original"
    )
    eng = Engine(ModelLibrary([tiny_models, tmp_path]), device="cpu", extensions=[])
    events: list = []
    eng.run(job(preview_every=1, steps=2), on_progress=events.append)
    previews = [e.preview for e in events if e.preview is not None]
    # The latent approximation gives 8 x 8 for a 64 x 64 job; TAESD decodes to 64 x 64.
    assert len(previews) == 2 and all(p.shape == (64, 64, 3) for p in previews)


# -- low-VRAM plan ------------------------------------------------------------------------------


def test_memory_plan_fits_the_targets():
    sd15 = mp.choose("sd1", 512, 512, 4 * GiB)
    assert sd15.estimate <= 4 * GiB * mp.HEADROOM
    sdxl = mp.choose("sdxl", 1024, 1024, 8 * GiB)
    assert sdxl.estimate <= 8 * GiB * mp.HEADROOM and sdxl.level in ("tiled", "offload")
    assert mp.choose("sdxl", 1024, 1024, 8 * GiB).low_vram
    for family in ("sd1", "sdxl"):
        tile = mp.decode_tile(family, 4096, 4096, 4 * GiB)
        assert tile is not None and tile <= 1024
        need = mp.weight_bytes(family, "vae") * mp.vae_upcast(family)
        need += mp.decode_bytes(family, 4096, 4096, tile)
        assert need <= 4 * GiB * mp.HEADROOM


def test_memory_plan_big_cards_and_cpu_run_plain():
    assert mp.choose("sdxl", 1024, 1024, 80 * GiB).level == "full"
    assert mp.choose("sd1", 512, 512, None).level == "full"
    assert mp.decode_tile("sd1", 512, 512, None) is None
    assert mp.decode_tile("sd1", 512, 512, 80 * GiB) is None


def test_memory_plan_is_monotonic_in_free_memory():
    order = {"full": 0, "tiled": 1, "offload": 2}
    for family, side in (("sd1", 512), ("sd1", 1024), ("sdxl", 1024)):
        levels = [order[mp.choose(family, side, side, g * GiB).level] for g in range(1, 41)]
        assert levels == sorted(levels, reverse=True), (family, side, levels)


def test_memory_estimate_near_the_measured_reference():
    # shared/bench H200: SD1.5 512x512 whole pipeline 2.4 GiB peak; decode 2048 11.3 GiB.
    assert 2.0 * GiB <= mp.estimate("sd1", 512, 512) <= 3.2 * GiB
    dec = mp.weight_bytes("sd1", "vae") + mp.decode_bytes("sd1", 2048, 2048, None)
    assert 8 * GiB <= dec <= 12 * GiB


def test_no_fast_path_flag_on_serve_and_generate(tiny_models, tmp_path, monkeypatch):
    from dreamwire.backend.cli import build_parser
    from dreamwire.backend.cli import main as cli_main

    parser = build_parser()
    assert parser.parse_args(
        ["serve", "--models", "m", "--out", "o", "--no-fast-path"]
    ).no_fast_path
    assert not parser.parse_args(["serve", "--models", "m", "--out", "o"]).no_fast_path
    monkeypatch.delenv(fp.ENV, raising=False)
    monkeypatch.setattr(fp, "_override", None)
    argv = ["generate", "--prompt", "stone", "--models", str(tiny_models), "--out", str(tmp_path)]
    argv += ["--steps", "1", "--width", "64", "--height", "64", "--device", "cpu"]
    assert cli_main([*argv, "--no-fast-path"]) == 0
    assert not fp.is_enabled()


def test_engine_low_vram_choice_follows_the_memory_plan(monkeypatch):
    from dreamwire.backend.engine import device as dev

    info = dev.DeviceInfo(torch.device("cpu"), torch.float16)
    free = {"bytes": 4 * GiB}
    monkeypatch.setattr(dev, "free_memory", lambda _info: free["bytes"])
    assert not dev.want_low_vram(info, "sd1", None)  # SD1.5 at 512 fits 4 GiB as it is
    free["bytes"] = 2 * GiB
    assert dev.want_low_vram(info, "sd1", None)
    free["bytes"] = 8 * GiB
    assert dev.want_low_vram(info, "sdxl", None)
    assert not dev.want_low_vram(info, "sdxl", False)  # the flag wins
    free["bytes"] = 24 * GiB
    assert not dev.want_low_vram(info, "sdxl", None)
    free["bytes"] = None
    assert not dev.want_low_vram(info, "sdxl", None)
    # Flux in bf16 on 8 GiB: one layer at a time; SDXL never needs that; the artist's own
    # low-VRAM switch means model offload.
    free["bytes"] = 8 * GiB
    assert dev.want_low_vram(info, "flux", None) and dev.want_sequential(info, "flux", None)
    assert not dev.want_sequential(info, "sdxl", None)
    assert not dev.want_sequential(info, "flux", True)


def test_decode_tiles_to_fit_free_gpu_memory(tiny_pipe, monkeypatch):
    from types import SimpleNamespace

    from dreamwire.backend.engine import device as dev
    from dreamwire.backend.engine.vae_fit import decode_fits

    monkeypatch.setattr(dev, "free_memory", lambda _info: 4 * GiB)
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda *_: 0)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda *_: 0)
    vae = copy.deepcopy(tiny_pipe.vae)
    pipe = SimpleNamespace(vae=vae)
    saved = (vae.use_tiling, vae.tile_sample_min_size, vae.tile_latent_min_size)

    c = SimpleNamespace(
        device=dev.DeviceInfo(torch.device("cpu"), torch.float16),
        job=SimpleNamespace(tiled_vae=None),
        plan=SimpleNamespace(seamless="none"),  # the pass's axes
        model=SimpleNamespace(family="sd1"),
    )
    with decode_fits(pipe, c, 4096, 4096):
        tile = mp.decode_tile("sd1", 4096, 4096, 4 * GiB)
        assert vae.use_tiling and vae.tile_sample_min_size == tile
        assert vae.tile_latent_min_size == tile // 8
    assert (vae.use_tiling, vae.tile_sample_min_size, vae.tile_latent_min_size) == saved
    with decode_fits(pipe, c, 512, 512):  # fits whole
        assert vae.use_tiling == saved[0]
    c.job = SimpleNamespace(tiled_vae=False)  # the job said no tiling
    with decode_fits(pipe, c, 4096, 4096):
        assert vae.use_tiling == saved[0]
    c.job, c.plan = SimpleNamespace(tiled_vae=None), SimpleNamespace(seamless="both")
    with decode_fits(pipe, c, 4096, 4096):
        assert vae.use_tiling == saved[0]


def test_engine_compiled_path_with_and_prompt_adapter_and_controlnet(
    library, forced_gpu_policy, monkeypatch
):
    """Composable prompts widen the UNet batch and T2I-Adapters add an input the UNet did
    not have: the compiled path must still give the eager image."""
    from dreamwire.backend.conditioning import engine_extensions
    from dreamwire.backend.engine import Engine

    monkeypatch.delenv(fp.ENV, raising=False)
    canny = np.zeros((64, 64, 3), np.uint8)
    canny[16:48, 30:34] = 255
    depth = np.tile(np.linspace(0, 255, 64, dtype=np.uint8)[:, None, None], (1, 64, 3))
    work = job(
        prompt="weathered stone AND green moss :0.6",
        controls=[
            ControlUnit(type="canny", image=canny, weight=0.8),
            ControlUnit(type="depth", image=depth, model="t2iadapter_depth_sd15v2"),
        ],
    )
    monkeypatch.setenv(fp.ENV, "0")
    plain = Engine(library, device="cpu", cache_size=1, extensions=engine_extensions())
    want = plain.run(work).images[0].image
    monkeypatch.delenv(fp.ENV)
    fast = Engine(library, device="cpu", cache_size=1, extensions=engine_extensions())
    got = fast.run(work).images[0].image
    assert fp.compiled(fast.load("tiny-sd1").components["unet"]) is not None
    assert maxdiff(got, want) <= 2
    # A plain prompt after it runs through the same compiled UNet, unhooked.
    bare = job(controls=work.controls[:1])
    assert maxdiff(fast.run(bare).images[0].image, plain.run(bare).images[0].image) <= 2


# -- previews that never wait for the GPU ----------------------------------------------------


def test_device_fetch_hands_out_finished_copies_newest_first(monkeypatch):
    """The copy/event logic of GPU previews. No GPU here, so the copy is stood in for: a
    'cuda' image whose event reports done only when the test says so."""
    from dreamwire.backend.engine.preview import DeviceFetch

    class Event:
        def __init__(self):
            self.done = False

        def query(self):
            return self.done

    class CudaImage:
        device = torch.device("cuda")

        def __init__(self, value):
            self.value = value

    events = []

    def start_copy(image):
        events.append(Event())
        return torch.full((2, 2, 3), image.value, dtype=torch.uint8), events[-1]

    fetch = DeviceFetch(depth=2)
    monkeypatch.setattr(fetch, "_start_copy", start_copy)
    fetch.submit(CudaImage(1))
    assert fetch.poll() is None  # the copy has not finished: nothing waits for it
    fetch.submit(CudaImage(2))
    events[0].done = True
    assert fetch.poll()[0, 0, 0] == 1 and fetch.poll() is None  # handed out once
    events[1].done = True
    fetch.submit(CudaImage(3))
    fetch.submit(CudaImage(4))  # three in flight: the oldest (2) is dropped, not waited for
    assert len(fetch._pending) == 2
    events[2].done = events[3].done = True
    assert fetch.poll()[0, 0, 0] == 4  # the newest finished one; 3 is superseded
    cpu = torch.zeros((2, 2, 3), dtype=torch.uint8)
    fetch.submit(cpu)
    assert fetch.poll() is not None  # CPU previews are ready at once


def test_previews_are_made_on_the_device_and_equal_the_cpu_map():
    from dreamwire.backend.engine.preview import latents_to_rgb, latents_to_rgb_tensor

    lat = torch.randn(2, 4, 96, 64, generator=torch.Generator().manual_seed(0))
    t = latents_to_rgb_tensor(lat, "sd1", max_side=48)
    assert t.dtype == torch.uint8 and t.shape == (48, 32, 3) and t.device == lat.device
    # The map applied to every second latent pixel, first image only.
    factors = torch.tensor(
        [[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350], [-0.2829, 0.1762, 0.2721],
         [-0.2120, -0.2616, -0.7177]]
    )  # fmt: skip
    ref = ((torch.einsum("chw,ck->hwk", lat[0, :, ::2, ::2], factors) + 1) * 127.5).clamp(0, 255)
    assert np.array_equal(latents_to_rgb(lat, "sd1", 48), ref.to(torch.uint8).numpy())


def test_fused_attention_comes_back_after_an_ip_adapter_job(library, monkeypatch):
    """IP-Adapter puts back the processors it found; if the fast path fused the UNet during
    that job, the plain processors it restores must not stay (the fused weight would idle).
    Fusing is decided apart from compiling, so the policy here fuses without compiling (as
    on MPS): the two compiles the CUDA policy costs (~20 s on CI) test nothing of this."""
    from diffusers.models.attention_processor import FusedAttnProcessor2_0

    from dreamwire.backend.conditioning import engine_extensions
    from dreamwire.backend.engine import Engine

    monkeypatch.delenv(fp.ENV, raising=False)
    monkeypatch.setattr(fp, "CPU_DEFAULTS", {"channels_last": True, "fuse_qkv": True})
    eng = Engine(library, device="cpu", cache_size=1, extensions=engine_extensions())
    ref = np.full((64, 64, 3), 128, np.uint8)
    eng.run(job(controls=[ControlUnit(type="ip-adapter", image=ref, model="ip-adapter_sd15")]))
    eng.run(job())
    unet = eng.load("tiny-sd1").components["unet"]
    fused = [a for a in fp._attention_modules(unet) if fp._fused_groups(a)]
    assert fused and all(isinstance(a.processor, FusedAttnProcessor2_0) for a in fused)


# -- the Flux transformer ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def flux_transformer():
    from dreamwire.backend.tiny.flux import flux_components

    return flux_components()["transformer"]


def _flux_inputs(transformer, side=4, text=6):
    g = torch.Generator().manual_seed(0)
    cfg = transformer.config
    ids = torch.zeros(side, side, 3)
    ids[..., 1] = torch.arange(side)[:, None]
    ids[..., 2] = torch.arange(side)[None, :]
    return dict(
        hidden_states=torch.randn(1, side * side, cfg.in_channels, generator=g),
        encoder_hidden_states=torch.randn(1, text, cfg.joint_attention_dim, generator=g),
        pooled_projections=torch.randn(1, cfg.pooled_projection_dim, generator=g),
        timestep=torch.tensor([0.5]),
        img_ids=ids.reshape(-1, 3),
        txt_ids=torch.zeros(text, 3),
        guidance=torch.tensor([3.5]),
        return_dict=False,
    )


@torch.no_grad()
def test_flux_transformer_fuses_with_diffusers_own_projections(flux_transformer):
    """Flux's attention is not the UNet's Attention class: it fuses through diffusers'
    fuse_projections (to_qkv, and to_added_qkv for the text stream), tied like the UNet's,
    so LoRA's in-place patches reach it and a device or dtype move is mended by retie."""
    plain, fused = copy.deepcopy(flux_transformer), copy.deepcopy(flux_transformer)
    kw = _flux_inputs(plain)
    want = plain(**kw)[0]
    attns = fp._attention_modules(fused)
    assert len(attns) == 3  # 1 double block + 2 single blocks
    assert fp.fuse_qkv(fused) == 3 and all(a.fused_projections for a in attns)
    assert sum(getattr(a, "to_added_qkv", None) is not None for a in attns) == 1
    torch.testing.assert_close(fused(**kw)[0], want, rtol=1e-4, atol=1e-5)
    # channels_last has nothing to reorder in a transformer (no 4-D weights): output unchanged.
    assert fp.set_channels_last(fused)
    torch.testing.assert_close(fused(**kw)[0], want, rtol=1e-4, atol=1e-5)

    def patch(model):  # what LoRA does: in place, on the unfused projections
        for name in ("to_v", "add_k_proj"):
            lin = getattr(model.transformer_blocks[0].attn, name)
            lin.weight.add_(torch.linspace(-0.5, 0.5, lin.weight.numel()).view_as(lin.weight))

    patch(plain), patch(fused)
    patched = plain(**kw)[0]
    assert (patched - want).abs().max() > 1e-3
    torch.testing.assert_close(fused(**kw)[0], patched, rtol=1e-4, atol=1e-5)

    fused.to(torch.float64).to(torch.float32)  # unties the views, as offload's moves do
    assert fp.retie(fused) == 4 and fp.retie(fused) == 0  # to_qkv x3, to_added_qkv x1
    patch(plain), patch(fused)
    torch.testing.assert_close(fused(**kw)[0], plain(**kw)[0], rtol=1e-4, atol=1e-5)


@torch.no_grad()
def test_fast_path_applies_to_the_flux_transformer(flux_transformer, forced_gpu_policy):
    """`applied` finds the denoiser by family: for Flux it fuses and compiles the transformer."""
    from types import SimpleNamespace

    import torch._dynamo.utils as dynamo_utils

    from dreamwire.backend.engine.device import DeviceInfo

    transformer = copy.deepcopy(flux_transformer)
    kw = _flux_inputs(transformer)
    want = transformer(**kw)[0]
    pipe = SimpleNamespace(components={"transformer": transformer})
    ctx = SimpleNamespace(
        device=DeviceInfo(torch.device("cpu"), torch.float32),
        model=SimpleNamespace(family="flux"),
        low_vram=False,
        plan=SimpleNamespace(seamless="none"),
    )
    # diffusers' apply_lora_scale decorator gives the UNet's, ControlNet's and Flux's forward
    # one shared wrapper code object, and dynamo's recompile limit (8) counts per code
    # object: after the other tests' compiles this one ran eager until the fast path raised
    # the limit (no dynamo reset here, so the file's earlier compiles count).
    graphs = dynamo_utils.counters["stats"]["unique_graphs"]
    with fp.applied(pipe, ctx, 64, 64, 1) as decision:
        assert decision.compile and decision.fuse_qkv
        wrapper = fp.compiled(transformer)
        assert wrapper is not None and wrapper.active
        got = transformer(**kw)[0]
    assert wrapper.shapes == {(64, 64, 1, 0)} and not wrapper.failed
    assert dynamo_utils.counters["stats"]["unique_graphs"] > graphs  # it ran compiled
    assert all(a.fused_projections for a in fp._attention_modules(transformer))
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
