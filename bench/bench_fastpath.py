"""The engine's fast path against plain diffusers: same modules, same device, same process.

    python bench/bench_fastpath.py                     # tiny SD1 on the CPU (the default here)
    python bench/bench_fastpath.py --arch gpu          # SD1.5 then SDXL on a GPU, < 8 minutes
    python bench/bench_fastpath.py --arch sd15         # one architecture
    python bench/bench_fastpath.py --arch flux         # Flux.1 dev, real size (GPU)
    python bench/bench_fastpath.py --arch flux-small   # real widths, 1 double + 2 single blocks

Flux: random-weight FluxTransformer2DModel and 16-channel VAE from models/configs/flux-dev,
one transformer call per step (guidance-distilled, real CFG 1), Euler on the model's shifted
flow-matching schedule, distilled guidance 3.5. "flux-small" keeps every width of the real
model (3072 wide, 24 heads, T5's 4096-wide text input) but only 1 double-stream and 2
single-stream blocks, so that a CPU can run it; its text is 64 tokens (`--text-tokens`),
Flux's real 512 on a GPU.

The real SD1.5 / SDXL architectures are built from the catalog configs in models/ with
random weights (speed does not depend on the values). Text encoders are left out: both sides
get the same random prompt embeddings, so every figure is UNet + scheduler + VAE.

For each architecture and each case (0, 1 and 2 ControlNets) it prints: ms per sampling step
and it/s, the whole 20-step image including the VAE decode, the first image on a new shape
including compilation (cold: empty compile cache, in one subprocess; warm: the cache that
subprocess left on disk, in a second one), peak memory, the ratio to plain diffusers, and
the decoded image's relative difference from plain (||fast - plain|| / ||plain||, < 1e-2).
Also the bare UNet CFG step (batch 2), comparable with shared/bench's reference figures.

Results go to a JSON file (--json) and a table on stdout. The exit status is non-zero when
the fast path is slower than plain diffusers beyond noise (CPU) or an image differs by more
than 1e-2; on a GPU the targets (SD1.5 >= 150 it/s, ControlNet step <= 1.35x plain step,
SDXL >= 2.5x plain eager) are reported as met or not.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ARCHS = {  # bench name -> (catalog config, family, image side, steps)
    "tiny": ("tiny-sd1", "sd1", 64, 20),
    "tiny-xl": ("tiny-sdxl", "sdxl", 64, 20),
    "sd15": ("sd1", "sd1", 512, 20),
    "sdxl": ("sdxl-base", "sdxl", 1024, 20),
    "flux": ("flux-dev", "flux", 1024, 20),
    "flux-small": ("flux-dev", "flux", 128, 4),
}
# The Flux family runs no ControlNets yet (FamilySpec support): the plain case only.
CASES = {
    "tiny": (0, 1, 2),
    "tiny-xl": (0, 1),
    "sd15": (0, 1, 2),
    "sdxl": (0, 1),
    "flux": (0,),
    "flux-small": (0,),
}
# Transformer depth overrides (double, single blocks); real widths everywhere.
FLUX_DEPTH = {"flux-small": (1, 2)}
FLUX_TEXT_TOKENS = {"flux": 512, "flux-small": 64}
FLUX_GUIDANCE = 3.5
# Seconds a cold compile of one architecture may take on an H100/H200 (reference: SD1.5
# 50 s; SDXL about three times the graph). Phases that would overrun the budget are skipped.
COLD_COMPILE_S = {
    "tiny": 60,
    "tiny-xl": 60,
    "sd15": 75,
    "sdxl": 180,
    "flux": 240,  # 57 blocks; a guess until a GPU has run it
    "flux-small": 60,
}
TARGETS = {"sd15_it_s": 150.0, "controlnet_step_ratio": 1.35, "sdxl_speedup": 2.5}
CPU_NOISE = 1.10  # CPU: the fast path may not be more than 10 % slower (shared machine)
MAX_REL_DIFF = 1e-2


# -- models ---------------------------------------------------------------------------------


def _config(arch: str, component: str) -> dict:
    from dreamwire import catalog

    folder = catalog.config_dir(arch) / component
    name = "scheduler_config.json" if component == "scheduler" else "config.json"
    return json.loads((folder / name).read_text())


def is_flux(name: str) -> bool:
    return ARCHS[name][1] == "flux"


def build_flux(name: str, device, dtype):
    """Random-weight Flux transformer (depth per FLUX_DEPTH) and VAE, on `device`. Built in
    `dtype` directly: Flux.1 dev in fp32 would take 48 GiB before the cast."""
    import torch
    from diffusers import AutoencoderKL, FluxTransformer2DModel

    arch = ARCHS[name][0]
    config = _config(arch, "transformer")
    if name in FLUX_DEPTH:
        config["num_layers"], config["num_single_layers"] = FLUX_DEPTH[name]
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            transformer = FluxTransformer2DModel.from_config(config)
            vae = AutoencoderKL.from_config(_config(arch, "vae"))
    finally:
        torch.set_default_dtype(default)
    for m in (transformer, vae):
        m.to(dtype=dtype).eval().requires_grad_(False)
    return transformer, vae, []


def build(name: str, device, dtype, controlnets: int):
    """Random-weight UNet, VAE and ControlNets of the real architecture, on `device`."""
    import torch
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel

    if is_flux(name):
        return build_flux(name, device, dtype)
    arch = ARCHS[name][0]
    torch.manual_seed(0)
    with torch.device(device):
        unet = UNet2DConditionModel.from_config(_config(arch, "unet"))
        vae = AutoencoderKL.from_config(_config(arch, "vae"))
        nets = [ControlNetModel.from_unet(unet) for _ in range(controlnets)]
    for m in (unet, vae, *nets):
        m.to(dtype=dtype).eval().requires_grad_(False)
    return unet, vae, nets


def make_pipe(name: str, unet, vae, nets, sampler: str = "DPM++ 2M Karras"):
    import diffusers

    from dreamwire.backend.samplers import make_scheduler

    family = ARCHS[name][1]
    if family == "flux":
        # The engine's Flux sampling: the model's own scheduler, as scheduling.make builds it.
        scheduler = diffusers.FlowMatchEulerDiscreteScheduler.from_config(
            _config(ARCHS[name][0], "scheduler")
        )
        pipe = diffusers.FluxPipeline(
            transformer=unet,
            vae=vae,
            scheduler=scheduler,
            text_encoder=None,
            tokenizer=None,
            text_encoder_2=None,
            tokenizer_2=None,
        )
        pipe.set_progress_bar_config(disable=True)
        return pipe
    scheduler = make_scheduler(sampler, _config(ARCHS[name][0], "scheduler"))
    xl = family == "sdxl"
    parts = dict(unet=unet, vae=vae, scheduler=scheduler, text_encoder=None, tokenizer=None)
    if xl:
        parts.update(text_encoder_2=None, tokenizer_2=None)
    else:
        parts.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    if nets:
        parts["controlnet"] = nets[0] if len(nets) == 1 else diffusers.MultiControlNetModel(nets)
        cls = "StableDiffusionXLControlNetPipeline" if xl else "StableDiffusionControlNetPipeline"
    else:
        cls = "StableDiffusionXLPipeline" if xl else "StableDiffusionPipeline"
    pipe = getattr(diffusers, cls)(**parts)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def prompt_inputs(name: str, unet, device, dtype, nets, side: int) -> dict:
    import torch

    g = torch.Generator("cpu").manual_seed(1)
    if is_flux(name):  # T5 token embeddings and CLIP's pooled output, guidance-distilled
        cfg = unet.config
        text = torch.randn(1, FLUX_TEXT_TOKENS[name], cfg.joint_attention_dim, generator=g)
        pooled = torch.randn(1, cfg.pooled_projection_dim, generator=g)
        return {
            "prompt_embeds": text.to(device, dtype),
            "pooled_prompt_embeds": pooled.to(device, dtype),
        }
    dim = unet.config.cross_attention_dim
    kw = {
        "prompt_embeds": torch.randn(1, 77, dim, generator=g).to(device, dtype),
        "negative_prompt_embeds": torch.randn(1, 77, dim, generator=g).to(device, dtype),
    }
    if ARCHS[name][1] == "sdxl":
        pooled = (
            unet.config.projection_class_embeddings_input_dim
            - 6 * unet.config.addition_time_embed_dim
        )
        kw["pooled_prompt_embeds"] = torch.randn(1, pooled, generator=g).to(device, dtype)
        kw["negative_pooled_prompt_embeds"] = torch.randn(1, pooled, generator=g).to(device, dtype)
    if nets:
        img = torch.rand(1, 3, side, side, generator=g).to(device, dtype)
        kw["image"] = img if len(nets) == 1 else [img] * len(nets)
    return kw


# -- timing ---------------------------------------------------------------------------------


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_image(pipe, kwargs, steps, side, device, step_times: list | None = None, reporter=None):
    """One whole image (decoded, float numpy); step wall times appended to step_times.
    With `reporter` (an engine Reporter) each step goes through it instead, previews
    included, and nothing waits for the device: the image time shows what previews cost."""
    import torch

    marks: list[float] = []

    def on_step(_pipe, i, t, tensors):
        _sync(device)
        marks.append(time.perf_counter())
        return {}

    def on_step_report(_pipe, i, t, tensors):
        latents = tensors.get("latents")
        if hasattr(pipe, "transformer"):  # as the engine's step callback (passes.py) does
            from dreamwire.backend.engine.preview import unpack_patches

            latents = unpack_patches(latents, side, side, pipe.vae_scale_factor)
        reporter.step(i + 1, latents)
        return {}

    callback = on_step if step_times is not None else None
    if reporter is not None:
        callback = on_step_report

    _sync(device)
    marks.append(time.perf_counter())
    with torch.inference_mode():
        out = pipe(
            **kwargs,
            num_inference_steps=steps,
            # Flux: distilled guidance (an input of the one transformer call); SD: CFG.
            guidance_scale=FLUX_GUIDANCE if hasattr(pipe, "transformer") else 7.0,
            width=side,
            height=side,
            output_type="np",
            generator=torch.Generator("cpu").manual_seed(42),
            callback_on_step_end=callback,
        )
    _sync(device)
    if step_times is not None:
        step_times.extend(b - a for a, b in zip(marks, marks[1:], strict=False))
    return out.images[0]


def flux_step_inputs(transformer, name, side, device, dtype) -> dict:
    """One Flux step's transformer inputs: (side/16)^2 image tokens (8x VAE, 2x2 packing)."""
    import torch

    g = torch.Generator("cpu").manual_seed(3)
    cfg = transformer.config
    n, text = side // 16, FLUX_TEXT_TOKENS[name]
    ids = torch.zeros(n, n, 3)
    ids[..., 1] = torch.arange(n)[:, None]
    ids[..., 2] = torch.arange(n)[None, :]
    return dict(
        hidden_states=torch.randn(1, n * n, cfg.in_channels, generator=g).to(device, dtype),
        encoder_hidden_states=torch.randn(1, text, cfg.joint_attention_dim, generator=g).to(
            device, dtype
        ),
        pooled_projections=torch.randn(1, cfg.pooled_projection_dim, generator=g).to(device, dtype),
        timestep=torch.tensor([0.5], device=device, dtype=dtype),
        img_ids=ids.reshape(-1, 3).to(device, dtype),
        txt_ids=torch.zeros(text, 3, device=device, dtype=dtype),
        guidance=torch.tensor([FLUX_GUIDANCE], device=device, dtype=torch.float32),
        return_dict=False,
    )


def timed_calls(fn, device, iters: int) -> float:
    """Median ms of `iters` calls of fn after 3 warm-up calls."""
    times = []
    for i in range(iters + 3):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        if i >= 3:
            times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def unet_step_ms(unet, name, side, device, dtype, iters: int) -> float:
    """The bare denoiser call of one step, median of `iters`: the UNet's CFG batch of 2,
    Flux's single guidance-distilled call."""
    import torch

    if is_flux(name):
        kw = flux_step_inputs(unet, name, side, device, dtype)
        with torch.inference_mode():
            return timed_calls(lambda: unet(**kw), device, iters)
    g = torch.Generator("cpu").manual_seed(3)
    lat = side // 8
    x = torch.randn(2, unet.config.in_channels, lat, lat, generator=g).to(device, dtype)
    text = torch.randn(2, 77, unet.config.cross_attention_dim, generator=g).to(device, dtype)
    t = torch.tensor([500, 500], device=device)
    extra = {}
    if ARCHS[name][1] == "sdxl":
        pooled = (
            unet.config.projection_class_embeddings_input_dim
            - 6 * unet.config.addition_time_embed_dim
        )
        extra["added_cond_kwargs"] = {
            "text_embeds": torch.randn(2, pooled, generator=g).to(device, dtype),
            "time_ids": torch.tensor([[side, side, 0, 0, side, side]] * 2, device=device).to(dtype),
        }
    with torch.inference_mode():
        return timed_calls(lambda: unet(x, t, text, **extra), device, iters)


def peak_reset(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    # CPU: the process's peak resident set (monotonic over the run; torch's allocations
    # are invisible to tracemalloc), so only an upper bound for the later cases.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def rel_diff(a, b) -> float:
    import numpy as np

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12))


# -- one phase (a subprocess) --------------------------------------------------------------------


def fast_ctx(device_info, family: str):
    """What `fastpath.applied` reads of the engine's JobContext."""
    return SimpleNamespace(
        device=device_info,
        low_vram=False,
        plan=SimpleNamespace(seamless="none"),
        model=SimpleNamespace(family=family),
    )


def phase(args) -> dict:
    """cold: every measurement; warm: first-image latency only, on the cache cold left."""
    import diffusers
    import torch

    from dreamwire.backend.engine import fastpath as fp
    from dreamwire.backend.engine.device import DeviceInfo, pick_device

    diffusers.logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    info = pick_device(args.device)
    device = info.device
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    dtype = fp.choose_dtype(device.type, bf16, os.environ.get("DREAMWIRE_DTYPE"))
    if any(is_flux(a) for a in args.archs) and dtype == torch.float16 and bf16:
        dtype = torch.bfloat16  # Flux's activations overflow fp16; it ships and runs in bf16
    info = DeviceInfo(device, dtype)
    deadline = args.deadline
    out: dict = {"archs": {}}
    if args.text_tokens:
        FLUX_TEXT_TOKENS.update(dict.fromkeys(FLUX_TEXT_TOKENS, args.text_tokens))
    if args.force_compile:
        # Drive the GPU policy's compiled path on this device (inductor's default mode off
        # CUDA: no CUDA graphs) to measure compile cost and the disk cache without a GPU.
        real = fp.decide
        fp.decide = lambda device_type, **kw: real(
            "cuda", **{**kw, "compile_available": True, "sdpa_env": "math"}
        )
        if device.type != "cuda":
            fp.COMPILE_MODE = "default"
        out["forced_compile"] = True
    # Every architecture's plain case first, then the ControlNet cases: when the budget runs
    # out it is the least important figures that are skipped.
    plan = []
    for name in args.archs:
        cases = CASES[name] if args.phase == "cold" else (0,)
        if args.cases is not None:
            cases = tuple(c for c in cases if c in args.cases) or (0,)
        plan += [(name, n) for n in cases]
    plan.sort(key=lambda item: item[1] > 0)
    built: dict[str, tuple] = {}
    for name, n in plan:
        _cfg, family, side, steps = ARCHS[name]
        side, steps = args.size or side, args.steps or steps
        res = out["archs"].setdefault(name, {"side": side, "steps": steps, "cases": {}})
        remaining = deadline - time.time()
        will_compile = fp.decide(device.type).compile
        share = (1.0 if n == 0 else 0.7) if args.phase == "cold" else 0.4
        if will_compile and remaining < COLD_COMPILE_S[name] * share:
            res["cases"][str(n)] = {"skipped": f"time budget ({remaining:.0f} s left)"}
            continue
        if name not in built:
            most = max(c for a, c in plan if a == name)
            unet, vae, nets_all = build(name, device, dtype, most)
            built[name] = ((unet, vae, nets_all), copy.deepcopy((unet, vae, nets_all)))
            res["unet_params_M"] = round(sum(p.numel() for p in unet.parameters()) / 1e6, 1)
        (unet, vae, nets_all), fast_parts = built[name]
        res["cases"][str(n)] = case(
            name, n, args, info, (unet, vae, nets_all[:n]), fast_parts, side, steps, args.runs
        )
        if args.phase == "cold" and n == 0:
            res.update(bare_unet(name, args, info, unet, fast_parts[0], side))
    built.clear()
    if device.type == "cpu" and args.phase == "cold" and "tiny" in args.archs:
        out["cpu_variants"] = cpu_variants(args, info)
    return out


def bare_unet(name, args, info, unet, fast_unet, side) -> dict:
    """The bare UNet CFG step, plain and fast alternating round by round."""
    from dreamwire.backend.engine import fastpath as fp

    family = ARCHS[name][1]
    pipe = make_pipe(name, fast_unet, None, [])
    ms: dict[str, list[float]] = {"plain": [], "fast": []}
    for _ in range(args.runs):
        ms["plain"].append(unet_step_ms(unet, name, side, info.device, info.dtype, args.iters))
        with fp.applied(pipe, fast_ctx(info, family), side, side, 1):
            ms["fast"].append(
                unet_step_ms(fast_unet, name, side, info.device, info.dtype, args.iters)
            )
    return {f"{k}_unet_step_ms": statistics.median(v) for k, v in ms.items()}


def case(name, n, args, info, plain_parts, fast_parts, side, steps, runs) -> dict:
    from dreamwire.backend.engine import fastpath as fp

    device = info.device
    family = ARCHS[name][1]
    unet, vae, nets = plain_parts
    plain = make_pipe(name, unet, vae, nets)
    f_unet, f_vae, f_nets = fast_parts
    fast = make_pipe(name, f_unet, f_vae, f_nets[:n])
    kw = prompt_inputs(name, unet, device, info.dtype, nets, side)
    row: dict = {}

    if args.phase == "warm":
        t0 = time.perf_counter()
        with fp.applied(fast, fast_ctx(info, family), side, side, 1) as decision:
            run_image(fast, kw, steps, side, device)
        row["first_image_s"] = time.perf_counter() - t0
        row["decision"] = fp.describe(decision)
        return row

    t0 = time.perf_counter()
    ref = run_image(plain, kw, steps, side, device)
    row["plain_first_image_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    with fp.applied(fast, fast_ctx(info, family), side, side, 1) as decision:
        run_image(fast, kw, steps, side, device)
        row["first_image_s"] = time.perf_counter() - t0
        if decision.compile:  # CUDA graphs: the second call records, the third replays
            run_image(fast, kw, steps, side, device)
    row["decision"] = fp.describe(decision)

    times: dict[str, list[float]] = {"plain": [], "fast": []}
    steps_ms: dict[str, list[float]] = {"plain": [], "fast": []}
    peaks: dict[str, float] = {}
    images = {}
    # Whole images through the engine's step reporting, with and without a preview every
    # step (latent approximation), neither waiting for the device in the callback.
    report: dict[str, list[float]] = {"quiet": [], "previews": []} if n == 0 else {}
    for _ in range(runs):  # alternate, so drift hits both alike
        for label, pipe in (("plain", plain), ("fast", fast)):
            ctx = (
                fp.applied(pipe, fast_ctx(info, family), side, side, 1)
                if label == "fast"
                else _null()
            )
            with ctx:
                peak_reset(device)
                t0 = time.perf_counter()
                images[label] = run_image(pipe, kw, steps, side, device, steps_ms[label])
                times[label].append(time.perf_counter() - t0)
                peaks[label] = max(peaks.get(label, 0.0), peak_gib(device))
        for label in report:
            with fp.applied(fast, fast_ctx(info, family), side, side, 1):
                rep = reporter_for(family, 1 if label == "previews" else 0)
                t0 = time.perf_counter()
                run_image(fast, kw, steps, side, device, reporter=rep)
                report[label].append(time.perf_counter() - t0)
                if label == "previews":
                    row["previews_received"] = rep.on_progress.previews
    for label in ("plain", "fast"):
        step = 1000 * statistics.median(steps_ms[label])
        row[f"{label}_step_ms"] = step
        row[f"{label}_it_s"] = 1000 / step
        row[f"{label}_image_s"] = statistics.median(times[label])
        row[f"{label}_peak_GiB"] = peaks[label]
    if report:
        row["quiet_image_s"] = statistics.median(report["quiet"])
        row["previews_image_s"] = statistics.median(report["previews"])
        row["preview_cost"] = row["previews_image_s"] / row["quiet_image_s"]  # 1.0: free
    row["step_ratio"] = row["plain_step_ms"] / row["fast_step_ms"]  # > 1: fast is faster
    row["image_ratio"] = row["plain_image_s"] / row["fast_image_s"]
    row["rel_diff"] = rel_diff(images["fast"], ref)
    row["plain_rel_diff"] = rel_diff(images["plain"], ref)  # run-to-run noise of plain
    return row


class _Count:
    """An on_progress that only counts the previews it is handed."""

    def __init__(self):
        self.previews = 0

    def __call__(self, progress) -> None:
        self.previews += progress.preview is not None


def reporter_for(family: str, preview_every: int):
    from dreamwire.backend.engine.progress import Reporter

    return Reporter("bench", on_progress=_Count(), preview_every=preview_every, family=family)


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def cpu_variants(args, info) -> dict:
    """What channels_last and fused QKV each do on the CPU (sets fastpath.CPU_DEFAULTS)."""
    from dreamwire.backend.engine import fastpath as fp

    name, side = "tiny", args.size or ARCHS["tiny"][2]
    unet, _vae, _ = build(name, info.device, info.dtype, 0)
    variants = {}
    for label, cl, fuse in (
        ("plain", False, False),
        ("channels_last", True, False),
        ("fused_qkv", False, True),
        ("both", True, True),
    ):
        m = copy.deepcopy(unet)
        if cl:
            fp.set_channels_last(m)
        if fuse:
            fp.fuse_qkv(m)
        variants[label] = m
    ms: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.runs):
        for label, m in variants.items():
            ms[label].append(unet_step_ms(m, name, side, info.device, info.dtype, args.iters))
    return {k: statistics.median(v) for k, v in ms.items()}


# -- orchestration -------------------------------------------------------------------------------


def run_phase(which: str, args, cache: Path, deadline: float, archs: list[str]) -> dict:
    if not archs:
        return {"archs": {}}
    out_file = cache.parent / f"{which}.json"
    cmd = [sys.executable, __file__, "--phase", which, "--phase-out", str(out_file)]
    cmd += ["--deadline", str(deadline), "--archs", *archs]
    for flag in ("size", "steps", "runs", "iters", "threads", "text_tokens", "device"):
        value = getattr(args, flag)
        if value is not None:
            cmd += [f"--{flag.replace('_', '-')}", str(value)]
    if args.cases is not None:
        cmd += ["--cases", *map(str, args.cases)]
    if args.force_compile:
        cmd.append("--force-compile")
    env = dict(os.environ, DREAMWIRE_CACHE=str(cache))
    for name in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR"):
        env.pop(name, None)  # the bench's own cache folder, empty at the start of "cold"
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env)
    if proc.returncode != 0 or not out_file.is_file():
        return {"error": f"{which} phase exited with {proc.returncode}"}
    data = json.loads(out_file.read_text())
    data["wall_s"] = time.perf_counter() - t0
    return data


def versions() -> dict:
    import diffusers
    import torch

    info = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        pass
    return info


def check(result: dict, device_type: str) -> tuple[list[str], dict]:
    """(failures, targets): failures make the exit status non-zero."""
    failures, targets = [], {}
    cold = result.get("cold", {}).get("archs", {})
    for name, arch in cold.items():
        for n, row in arch.get("cases", {}).items():
            if "rel_diff" not in row:
                continue
            if row["rel_diff"] > MAX_REL_DIFF:
                failures.append(f"{name} {n} CN: image differs by {row['rel_diff']:.2e}")
            if device_type == "cpu" and row["image_ratio"] < 1 / CPU_NOISE:
                failures.append(
                    f"{name} {n} CN: fast path slower than plain "
                    f"({row['fast_image_s']:.3f} s vs {row['plain_image_s']:.3f} s)"
                )
    if device_type == "cuda":
        sd15 = cold.get("sd15", {})
        if "fast_unet_step_ms" in sd15:
            it_s = 1000 / sd15["fast_unet_step_ms"]
            targets["sd15_unet_it_s"] = (round(it_s, 1), it_s >= TARGETS["sd15_it_s"])
        c0, c1 = sd15.get("cases", {}).get("0", {}), sd15.get("cases", {}).get("1", {})
        if "fast_step_ms" in c0 and "fast_step_ms" in c1:
            r = c1["fast_step_ms"] / c0["fast_step_ms"]
            targets["controlnet_step_ratio"] = (round(r, 3), r <= TARGETS["controlnet_step_ratio"])
        xl = cold.get("sdxl", {})
        if "fast_unet_step_ms" in xl:
            s = xl["plain_unet_step_ms"] / xl["fast_unet_step_ms"]
            targets["sdxl_speedup"] = (round(s, 2), s >= TARGETS["sdxl_speedup"])
    return failures, targets


def table(result: dict) -> str:
    cold = result.get("cold", {}).get("archs", {})
    warm = result.get("warm", {}).get("archs", {})
    lines = [
        "| arch | CN | plain ms/step | fast ms/step | plain it/s | fast it/s | step ratio "
        "| plain image s | fast image s | image ratio | first image cold s | first image warm s "
        "| plain peak | fast peak | rel diff |",
        "|" + "---|" * 15,
    ]
    for name, arch in cold.items():
        for n, row in arch.get("cases", {}).items():
            if "skipped" in row:
                lines.append(f"| {name} | {n} | skipped: {row['skipped']} |" + " |" * 12)
                continue
            w = warm.get(name, {}).get("cases", {}).get(n, {}).get("first_image_s")
            lines.append(
                f"| {name} | {n} | {row['plain_step_ms']:.2f} | {row['fast_step_ms']:.2f} "
                f"| {row['plain_it_s']:.1f} | {row['fast_it_s']:.1f} | {row['step_ratio']:.2f}x "
                f"| {row['plain_image_s']:.3f} | {row['fast_image_s']:.3f} "
                f"| {row['image_ratio']:.2f}x | {row['first_image_s']:.2f} "
                f"| {'-' if w is None else f'{w:.2f}'} | {row['plain_peak_GiB']:.2f} "
                f"| {row['fast_peak_GiB']:.2f} | {row['rel_diff']:.1e} |"
            )
    for name, arch in cold.items():
        row = arch.get("cases", {}).get("0", {})
        if "preview_cost" in row:
            lines.append(
                f"\npreviews every step, {name}: image {row['previews_image_s']:.3f} s vs "
                f"{row['quiet_image_s']:.3f} s without ({row['preview_cost']:.3f}x; "
                f"{row['previews_received']} previews received)"
            )
    for name, arch in cold.items():
        if "fast_unet_step_ms" in arch:
            p, f = arch["plain_unet_step_ms"], arch["fast_unet_step_ms"]
            lines.append(
                f"\nbare {'transformer' if is_flux(name) else 'UNet CFG'} step, {name} "
                f"({arch['unet_params_M']} M params, "
                f"{arch['side']}x{arch['side']}): plain {p:.2f} ms ({1000 / p:.1f} it/s), "
                f"fast {f:.2f} ms ({1000 / f:.1f} it/s), {p / f:.2f}x"
            )
    variants = result.get("cold", {}).get("cpu_variants")
    if variants:
        base = variants["plain"]
        lines.append(
            "\nCPU variants, tiny UNet CFG step: "
            + ", ".join(f"{k} {v:.2f} ms ({base / v:.2f}x)" for k, v in variants.items())
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--arch",
        default=None,
        help="tiny | tiny-xl | sd15 | sdxl | flux | flux-small | gpu (= sd15,sdxl); comma-separated",
    )
    p.add_argument("--archs", nargs="*", default=None, help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--runs", type=int, default=None, help="alternating runs per side")
    p.add_argument("--iters", type=int, default=None, help="bare UNet calls timed")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--text-tokens", type=int, default=None, help="Flux T5 tokens (512 / 64)")
    p.add_argument("--device", default=None)
    p.add_argument("--cases", type=int, nargs="+", default=None, help="ControlNet counts")
    p.add_argument(
        "--force-compile",
        action="store_true",
        help="compile even off CUDA (CPU: inductor default mode), to time compile and cache",
    )
    p.add_argument("--budget", type=float, default=420.0, help="seconds for everything")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--phase", choices=("cold", "warm"), help=argparse.SUPPRESS)
    p.add_argument("--phase-out", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.phase:
        args.archs = args.archs or ["tiny"]
        args.runs = args.runs or 3
        args.iters = args.iters or 20
        data = phase(args)
        args.phase_out.write_text(json.dumps(data, indent=1))
        return 0

    import torch

    gpu = torch.cuda.is_available() and (args.device or "cuda").startswith("cuda")
    arch = args.arch or ("gpu" if gpu else "tiny")
    args.archs_list = ["sd15", "sdxl"] if arch == "gpu" else arch.split(",")
    args.runs = args.runs or (3 if gpu else 5)
    deadline = time.time() + args.budget
    started = time.perf_counter()
    result: dict = {"versions": versions(), "args": sys.argv[1:]}
    with tempfile.TemporaryDirectory(prefix="bench-fastpath-") as tmp:
        cache = Path(tmp) / "cache"
        cache.mkdir()
        # The warm phase only needs first-image latencies: it keeps a fifth of the budget.
        result["cold"] = run_phase(
            "cold", args, cache, deadline - 0.2 * args.budget, args.archs_list
        )
        # Warm only what cold compiled: anything else would be a cold compile under that name.
        done = result["cold"].get("archs", {})
        warm = [
            a
            for a in args.archs_list
            if "first_image_s" in done.get(a, {}).get("cases", {}).get("0", {})
        ]
        result["warm"] = run_phase("warm", args, cache, max(deadline, time.time() + 60), warm)
    result["elapsed_s"] = time.perf_counter() - started
    device_type = "cuda" if gpu else "cpu"
    failures, targets = check(result, device_type)
    result["targets"] = targets
    result["failures"] = failures

    v = result["versions"]
    print(
        f"{v.get('gpu', v['cpu'])} | torch {v['torch']} | diffusers {v['diffusers']} | "
        f"{v['date']} | {result['elapsed_s']:.0f} s"
    )
    print(table(result))
    for key, (value, ok) in targets.items():
        print(f"target {key}: {value} {'met' if ok else 'NOT met'}")
    for f in failures:
        print(f"FAIL: {f}")
    out = args.json or Path(tempfile.gettempdir()) / f"bench_fastpath-{device_type}.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"json: {out}")
    return 1 if failures or "error" in result["cold"] else 0


if __name__ == "__main__":
    sys.exit(main())
