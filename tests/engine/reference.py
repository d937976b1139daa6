"""diffusers' own pipelines around the engine's loaded components: the reference."""

from __future__ import annotations

import diffusers
import numpy as np
import torch
from PIL import Image

from dreamwire.backend.samplers import make_scheduler

PROMPT, NEGATIVE = "a red brick wall, moss", "blurry"
SEED = 1234
# The job the reference tests run, and the same settings in diffusers' words.
JOB_BASE = dict(prompt=PROMPT, negative=NEGATIVE, steps=4, cfg=6.0, width=64, height=64, seed=SEED)
PIPE_ARGS = dict(prompt=PROMPT, negative_prompt=NEGATIVE, num_inference_steps=4, guidance_scale=6.0)
SIZE = dict(width=64, height=64)


def reference_pipe(
    engine,
    cls_name: str,
    sampler: str,
    model: str = "tiny-sd1",
    vae: str = "",
    controlnets=None,
):
    comps = engine.load(model, vae).components
    cls = getattr(diffusers, cls_name)
    parts = {k: comps[k] for k in ("vae", "text_encoder", "tokenizer", "unet")}
    parts["scheduler"] = make_scheduler(sampler, comps["scheduler"].config)
    if controlnets is not None:
        parts["controlnet"] = diffusers.MultiControlNetModel(list(controlnets))
    if "XL" in cls_name:
        parts.update(text_encoder_2=comps["text_encoder_2"], tokenizer_2=comps["tokenizer_2"])
        pipe = cls(**parts)
    else:
        pipe = cls(
            **parts, safety_checker=None, feature_extractor=None, requires_safety_checker=False
        )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def to_uint8(images) -> list[np.ndarray]:
    return [(img * 255).round().astype(np.uint8) for img in images]


def run(pipe, seed: int | list[int], **kwargs) -> list[np.ndarray]:
    seeds = seed if isinstance(seed, list) else [seed]
    gens = [torch.Generator("cpu").manual_seed(s) for s in seeds]
    with torch.inference_mode():
        out = pipe(generator=gens if len(gens) > 1 else gens[0], output_type="np", **kwargs)
    return to_uint8(out.images)


def run_job_settings(pipe, seed: int | list[int] = SEED, **kwargs) -> list[np.ndarray]:
    """`run` with JOB_BASE's prompt, steps and guidance; kwargs add to or override them."""
    return run(pipe, seed, **{**PIPE_ARGS, **kwargs})


def pil(a: np.ndarray) -> Image.Image:
    return Image.fromarray(a)


def maxdiff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())
