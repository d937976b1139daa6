"""Engine overhead against plain diffusers, same random-weight model, same process.

    python bench/bench_engine.py                 # tiny SD1 model on the CPU
    python bench/bench_engine.py --arch sd15     # full SD1.5 architecture, random weights (GPU)

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
    p.add_argument("--arch", choices=("tiny", "sd15"), default="tiny")
    p.add_argument("--size", type=int, default=None, help="image side (default 64 tiny, 512 sd15)")
    p.add_argument("--steps", type=int, default=None, help="default 10 tiny, 20 sd15")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--sampler", default="Euler")
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    size = args.size or (64 if args.arch == "tiny" else 512)
    steps = args.steps or (10 if args.arch == "tiny" else 20)
    if args.threads:
        torch.set_num_threads(args.threads)

    import diffusers

    from dreamwire.backend.engine import Engine
    from dreamwire.backend.library import ModelLibrary
    from dreamwire.backend.samplers import make_scheduler
    from dreamwire.shared.job import Job

    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        name = build_models(args.arch, Path(tmp))
        engine = Engine(ModelLibrary([tmp]), device=args.device, extensions=[], low_vram=False)
        comps = engine.load(name).components
        device = engine.info.device
        pipe = diffusers.StableDiffusionPipeline(
            **{k: comps[k] for k in ("vae", "text_encoder", "tokenizer", "unet")},
            scheduler=make_scheduler(args.sampler, comps["scheduler"].config),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        pipe.set_progress_bar_config(disable=True)
        job = dict(
            prompt=PROMPT,
            negative=NEGATIVE,
            sampler=args.sampler,
            steps=steps,
            cfg=7.0,
            width=size,
            height=size,
            seed=42,
            model=name,
        )

        def run_diffusers():
            with torch.inference_mode():
                out = pipe(
                    PROMPT,
                    negative_prompt=NEGATIVE,
                    num_inference_steps=steps,
                    guidance_scale=7.0,
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
            f"model: {args.arch} ({name}), {size}x{size}, {steps} steps, {args.sampler}, CFG 7, "
            f"median of {args.runs} runs each, alternating"
        )
        print(f"diffusers: {ms['diffusers']:.2f} ms/step")
        print(f"engine:    {ms['engine']:.2f} ms/step")
        print(f"ratio engine/diffusers: {ms['engine'] / ms['diffusers']:.3f}")
        print(f"max pixel difference between the two outputs: {diff}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
