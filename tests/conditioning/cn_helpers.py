"""diffusers' own ControlNet pipelines around the engine's loaded components."""

from __future__ import annotations

import diffusers
import numpy as np
import torch
from diffusers import MultiControlNetModel

from dreamwire.backend.conditioning import controlnet_files
from dreamwire.backend.samplers import make_scheduler

PROMPT, NEGATIVE = "a red brick wall, moss", "blurry"
BASE = dict(prompt=PROMPT, negative=NEGATIVE, steps=4, cfg=6.0, width=64, height=64, seed=1234)


def load_net(engine, path, model="tiny-sd1"):
    comps = engine.load(model).components
    info = controlnet_files.inspect(path)
    return controlnet_files.load(info, dict(comps["unet"].config), torch.float32, "cpu")


def reference_pipe(engine, cls_name: str, nets, sampler="Euler", model="tiny-sd1"):
    comps = engine.load(model).components
    parts = {k: comps[k] for k in ("vae", "text_encoder", "tokenizer", "unet")}
    parts["scheduler"] = make_scheduler(sampler, comps["scheduler"].config)
    cls = getattr(diffusers, cls_name)
    pipe = cls(
        **parts,
        controlnet=MultiControlNetModel(list(nets)),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run(pipe, seed: int, **kwargs) -> np.ndarray:
    gen = torch.Generator("cpu").manual_seed(seed)
    with torch.inference_mode():
        out = pipe(generator=gen, output_type="np", **kwargs)
    return (out.images[0] * 255).round().astype(np.uint8)


def maxdiff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


def noise_image(seed: int, h: int = 64, w: int = 64, c: int = 3) -> np.ndarray:
    """Blocky random shapes: control images have structure at the latent scale (pixel noise
    averages out in the hint encoder's strided convolutions)."""
    small = np.random.default_rng(seed).integers(0, 256, (h // 8, w // 8, c), dtype=np.uint8)
    return np.ascontiguousarray(small.repeat(8, axis=0).repeat(8, axis=1))
