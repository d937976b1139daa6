"""Engine overhead against plain diffusers, same random-weight model, same process.

    python bench/bench_engine.py                 # tiny SD1 model on the CPU
    python bench/bench_engine.py --arch sd15     # full SD1.5 architecture, random weights (GPU)
    python bench/bench_engine.py --arch tiny-flux  # tiny Flux.1 dev (CPU)

Both sides run txt2img with the same components, scheduler, seed and size, alternating
run by run so that clock and thermal drift hit both alike. Prints ms/step for each and the
ratio engine / diffusers (1.00 = no overhead). Also checks the two outputs agree.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

PROMPT, NEGATIVE = "a lighthouse on a cliff at dusk, oil painting", "blurry, low quality"


def build_models(arch: str, root: Path) -> str:
    """A models root holding the checkpoint to benchmark; returns its name."""
    if arch == "tiny":
        from dreamwire.backend.tiny import build_all

        build_all(root, conditioning=False)
        return "tiny-sd1"
    if arch == "tiny-flux":
        from dreamwire.backend.tiny.flux import flux_components, write_flux_diffusers_folder

        write_flux_diffusers_folder(flux_components(), root / "models" / "Stable-diffusion" / arch)
        return arch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from dreamwire import catalog
    from dreamwire.backend.tiny.build import write_diffusers_folder

    def config(component: str) -> dict:
        return json.loads((catalog.config_dir("sd1") / component / "config.json").read_text())

    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        parts = {
            "unet": UNet2DConditionModel.from_config(config("unet")),
            "vae": AutoencoderKL.from_config(config("vae")),
            "text_encoder": CLIPTextModel(CLIPTextConfig(**config("text_encoder"))),
        }
    parts = {k: v.to("cpu", torch.float16).eval() for k, v in parts.items()}
    write_diffusers_folder(parts, root / "models" / "Stable-diffusion" / "random-sd15", arch="sd1")
    return "random-sd15"


def diffusers_pipe(arch: str, comps: dict, sampler: str):
    """The plain diffusers pipeline over the engine's own loaded modules, fresh scheduler."""
    import diffusers

    from dreamwire.backend.samplers import make_scheduler

    if arch == "tiny-flux":
        names = ("vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2")
        # Flux runs Euler on the model's own shifted flow-matching schedule.
        scheduler = type(comps["scheduler"]).from_config(comps["scheduler"].config)
        pipe = diffusers.FluxPipeline(
            **{k: comps[k] for k in names}, transformer=comps["transformer"], scheduler=scheduler
        )
    else:
        pipe = diffusers.StableDiffusionPipeline(
            **{k: comps[k] for k in ("vae", "text_encoder", "tokenizer", "unet")},
            scheduler=make_scheduler(sampler, comps["scheduler"].config),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def timed(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t, out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", choices=("tiny", "sd15", "tiny-flux"), default="tiny")
    p.add_argument("--size", type=int, default=None, help="image side (default 64 tiny, 512 sd15)")
    p.add_argument("--steps", type=int, default=None, help="default 10 tiny, 20 sd15")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--sampler", default="Euler")
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    tiny = args.arch in ("tiny", "tiny-flux")
    flux = args.arch == "tiny-flux"
    size = args.size or (64 if tiny else 512)
    steps = args.steps or (10 if tiny else 20)
    # Flux: real CFG 1 (one transformer call a step, no negative) and distilled guidance 3.5,
    # the family's defaults; SD: CFG 7 with the negative prompt.
    cfg = 1.0 if flux else 7.0
    if args.threads:
        torch.set_num_threads(args.threads)

    import diffusers

    from dreamwire.backend.engine import Engine
    from dreamwire.backend.library import ModelLibrary
    from dreamwire.shared.job import Job

    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        name = build_models(args.arch, Path(tmp))
        engine = Engine(ModelLibrary([tmp]), device=args.device, extensions=[], low_vram=False)
        comps = engine.load(name).components
        device = engine.info.device
        pipe = diffusers_pipe(args.arch, comps, args.sampler)
        job = dict(
            prompt=PROMPT,
            negative="" if flux else NEGATIVE,
            sampler=args.sampler,
            steps=steps,
            cfg=cfg,
            width=size,
            height=size,
            seed=42,
            model=name,
        )

        # Flux's guidance_scale is the distilled guidance (the job's default 3.5).
        guidance = (
            {"guidance_scale": 3.5}
            if flux
            else {"negative_prompt": NEGATIVE, "guidance_scale": cfg}
        )

        def run_diffusers():
            with torch.inference_mode():
                out = pipe(
                    PROMPT,
                    num_inference_steps=steps,
                    **guidance,
                    width=size,
                    height=size,
                    output_type="np",
                    generator=torch.Generator("cpu").manual_seed(42),
                )
            return (out.images[0] * 255).round().astype(np.uint8)

        def run_engine():
            return engine.run(Job(**job)).images[0].image

        run_diffusers(), run_engine()  # warm-up: kernels, caches, allocator
        times = {"diffusers": [], "engine": []}
        outs = {}
        for _ in range(args.runs):
            for label, fn in (("diffusers", run_diffusers), ("engine", run_engine)):
                t, outs[label] = timed(fn, device)
                times[label].append(t)
        ms = {k: 1000 * statistics.median(v) / steps for k, v in times.items()}
        diff = int(np.abs(outs["engine"].astype(int) - outs["diffusers"].astype(int)).max())
        print(
            f"device: {engine.info.describe()} ({str(engine.info.dtype).replace('torch.', '')}), "
            f"torch {torch.__version__}, diffusers {diffusers.__version__}, threads {torch.get_num_threads()}"
        )
        print(
            f"model: {args.arch} ({name}), {size}x{size}, {steps} steps, {args.sampler}, "
            f"CFG {cfg:g}{', distilled CFG 3.5' if flux else ''}, "
            f"median of {args.runs} runs each, alternating"
        )
        print(f"diffusers: {ms['diffusers']:.2f} ms/step")
        print(f"engine:    {ms['engine']:.2f} ms/step")
        print(f"ratio engine/diffusers: {ms['engine'] / ms['diffusers']:.3f}")
        print(f"max pixel difference between the two outputs: {diff}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
