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


def a1111_steps(steps: int, strength: float, *, fixed: bool = False, flow: bool = False) -> dict:
    """num_inference_steps and strength that make diffusers' own img2img/inpaint pipeline
    sample what A1111 samples (its setup_img2img_steps, restated here): t_enc =
    int(min(strength, 0.999) * steps), t_enc + 1 steps over a `steps` schedule; with fixed
    steps (every Hires.fix pass) exactly `steps` steps over an int(steps / min(strength,
    0.999)) schedule. diffusers runs int(n * s) of n (SD) or starts at int(n - n * s) (Flux),
    so s is put half a step inside the interval that gives A1111's count.

    Not for a pass that runs its whole schedule at a strength below 1: s would have to be 1,
    which an inpaint pipeline takes for "start from pure noise", where A1111 adds the noise
    to the picture."""
    denoise = min(strength, 0.999)
    length, run = (int(steps / denoise), steps) if fixed else (steps, int(denoise * steps) + 1)
    if run >= length:
        return {"num_inference_steps": length, "strength": 1.0}
    half = -0.5 if flow else 0.5
    return {"num_inference_steps": length, "strength": (run + half) / length}


def a1111_embeds(pipe, prompt: str, negative: str, steps: int, sdxl: bool) -> dict:
    """The engine's A1111 prompt encoding of `prompt` on the pipeline's text encoders, as
    diffusers' prompt_embeds arguments (the weights, BREAK and clip skip parsed; tags dropped)."""
    from dreamwire.backend.text_encoding import PromptEncoder, encode_conditioning

    encoder = PromptEncoder.for_pipeline(pipe)
    with torch.inference_mode():
        step = encode_conditioning(encoder, prompt, negative, steps).at_step(0)
    out = {"prompt_embeds": step.cond, "negative_prompt_embeds": step.uncond}
    if sdxl:
        out.update(
            pooled_prompt_embeds=step.pooled, negative_pooled_prompt_embeds=step.uncond_pooled
        )
    return out


def fused_lora(engine, model: str, name: str, weight: float):
    """The LoRA added to the loaded model's weights as the engine's LoRA stage adds it (the
    caller restores the returned patch)."""
    from dreamwire.backend.conditioning import lora
    from dreamwire.backend.conditioning.files import library_entries

    loaded = engine.load(model)
    path = lora.resolve(name, library_entries(engine.library, "lora"))
    return lora.apply([(lora.read_cached(path, name), weight, weight)], loaded.components)
