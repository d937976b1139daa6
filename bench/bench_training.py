"""LoRA training steps per second: Dreamwire's loop against a plain diffusers+peft loop.

    python bench/bench_training.py                  # tiny SD1 model on the CPU
    python bench/bench_training.py --arch sd15      # full SD1.5 architecture, random weights (GPU)

Both train the same rank-8 LoRA on to_q/to_k/to_v/to_out.0 of the same loaded UNet, on the
same pictures at the same resolution, with AdamW and gradient clipping at 1.0. The baseline
is diffusers' examples/text_to_image/train_text_to_image_lora.py reduced to its step: the
VAE encodes the picture and the text encoder the caption at every step (that script caches
neither), then noise, a random timestep, the UNet, the MSE, backward, clip, step. Dreamwire
(backend/training/loop.py) encodes each picture and caption once and samples the cached
posterior each step, as kohya's `cache_latents` does. Each side runs in turn, `--runs`
times; the rate of a run is its steps after the first over the time they took (the first
step pays for peft's set-up and, for Dreamwire, the caching). Prints steps/s for each and
the ratio Dreamwire / baseline.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from bench_engine import build_models
from PIL import Image

CAPTION = "a red thing, moss"


def make_dataset(folder: Path, size: int, count: int) -> Path:
    images = folder / "1_thing"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        pixels = (rng.random((size, size, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(images / f"{i}.png")
        (images / f"{i}.txt").write_text(CAPTION, encoding="utf-8")
    return folder


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class Clock:
    """Times of the steps after the first."""

    def __init__(self, device: torch.device):
        self.device = device
        self.marks: list[float] = []

    def mark(self, *_: object) -> None:
        sync(self.device)
        self.marks.append(time.perf_counter())

    def rate(self) -> float:
        return (len(self.marks) - 1) / (self.marks[-1] - self.marks[0])


def plain_loop(comps: dict, dataset, rank: int, steps: int, resolution: int, clock: Clock) -> None:
    """diffusers' train_text_to_image_lora.py step by step, on the same modules."""
    from diffusers import DDPMScheduler
    from peft import LoraConfig

    from dreamwire.backend.training.dataset import load_pixels

    unet, vae, te, tok = comps["unet"], comps["vae"], comps["text_encoder"], comps["tokenizer"]
    sched = DDPMScheduler.from_config(comps["scheduler"].config)
    unet.requires_grad_(False)
    unet.add_adapter(
        LoraConfig(
            r=rank,
            lora_alpha=rank,
            init_lora_weights="gaussian",
            target_modules=["to_q", "to_k", "to_v", "to_out.0"],
        ),
        adapter_name="plain",
    )
    params = [p for p in unet.parameters() if p.requires_grad]
    for p in params:
        p.data = p.data.float()  # diffusers' cast_training_params
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    images = dataset.epoch()
    device, dtype = unet.device, unet.dtype
    unet.train()
    try:
        for step in range(steps):
            img = images[step % len(images)]
            pixels = load_pixels(img.path, resolution).to(device, vae.dtype)
            with torch.no_grad():
                latents = vae.encode(pixels).latent_dist.sample() * vae.config.scaling_factor
                ids = tok(
                    img.caption,
                    padding="max_length",
                    max_length=tok.model_max_length,
                    truncation=True,
                    return_tensors="pt",
                ).input_ids.to(device)
                text = te(ids)[0]
            noise = torch.randn_like(latents)
            t = torch.randint(0, sched.config.num_train_timesteps, (1,), device=device)
            noisy = sched.add_noise(latents, noise, t)
            pred = unet(noisy.to(dtype), t, text.to(dtype)).sample
            loss = F.mse_loss(pred.float(), noise.float())
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            clock.mark()
    finally:
        unet.eval()
        unet.unload_lora()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", choices=("tiny", "sd15"), default="tiny")
    p.add_argument("--resolution", type=int, default=None, help="default 64 tiny, 512 sd15")
    p.add_argument("--steps", type=int, default=None, help="per run; default 30 tiny, 20 sd15")
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    tiny = args.arch == "tiny"
    resolution = args.resolution or (64 if tiny else 512)
    steps = args.steps or (30 if tiny else 20)
    if args.threads:
        torch.set_num_threads(args.threads)

    import diffusers
    import peft

    from dreamwire.backend.engine import Engine
    from dreamwire.backend.library import ModelLibrary
    from dreamwire.backend.training.dataset import read_dataset
    from dreamwire.backend.training.loop import train_lora
    from dreamwire.backend.training.options import LoraTrainOptions

    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        name = build_models(args.arch, Path(tmp) / "models-root")
        engine = Engine(
            ModelLibrary([Path(tmp) / "models-root"]),
            device=args.device,
            extensions=[],
            low_vram=False,
        )
        comps = engine.load(name).components
        device = engine.info.device
        dataset = read_dataset(make_dataset(Path(tmp) / "data", resolution, args.images))
        options = LoraTrainOptions(
            network_dim=args.rank,
            network_alpha=float(args.rank),
            max_train_steps=steps,
            resolution=resolution,
            network_train_unet_only=True,  # as the baseline: the UNet's LoRA only
        )

        def dreamwire(clock: Clock) -> None:
            train_lora(comps, dataset, options, clock.mark)

        def plain(clock: Clock) -> None:
            plain_loop(comps, dataset, args.rank, steps, resolution, clock)

        rates: dict[str, list[float]] = {"plain": [], "dreamwire": []}
        for _ in range(args.runs):
            for label, fn in (("plain", plain), ("dreamwire", dreamwire)):
                clock = Clock(device)
                fn(clock)
                rates[label].append(clock.rate())
        med = {k: statistics.median(v) for k, v in rates.items()}
        print(
            f"device: {engine.info.describe()} ({str(engine.info.dtype).replace('torch.', '')}), "
            f"torch {torch.__version__}, diffusers {diffusers.__version__}, peft "
            f"{peft.__version__}, threads {torch.get_num_threads()}"
        )
        print(
            f"model: {args.arch} ({name}), {resolution}x{resolution}, rank {args.rank}, "
            f"{args.images} pictures, {steps} steps per run, median of {args.runs} runs each, "
            "alternating"
        )
        print(f"plain diffusers+peft: {med['plain']:.2f} steps/s")
        print(f"dreamwire:            {med['dreamwire']:.2f} steps/s")
        print(f"ratio dreamwire/plain: {med['dreamwire'] / med['plain']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
