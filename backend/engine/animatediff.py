"""An animatediff job: planned (the motion module found, identified and checked against the
checkpoint's family and UNet, the prompt checked for what one batch of frames can take, before
anything loads) and run through diffusers' AnimateDiffPipeline (AnimateDiffControlNetPipeline
with per-frame controls) on SD1.x, AnimateDiffSDXLPipeline on SDXL.

The pipeline is built from the loaded checkpoint's own modules plus the motion module as a
MotionAdapter (diffusers merges the UNet and the adapter into a UNetMotionModel, a copy: the
checkpoint's UNet is left as it was). More frames than one context window run with FreeNoise
(`enable_free_noise(context_length, context_stride)`): the motion module attends within
overlapping windows, blended where they overlap, while the spatial layers see every frame.
diffusers' SDXL pipeline lacks the FreeNoise mixin; it gets it here the way the SD1.5
pipeline has it (the mixin, and FreeNoise's latents when enabled), nothing else changed.
Noise comes from a CPU generator seeded with the job's seed, as every job's does.

Prompts are the A1111 prompt language, as for still images: the engine's own encoding
(prompting.encode_clip: attention weights, BREAK, embeddings, clip skip) hands the pipeline
its embeddings, and the job's LoRAs (its list and the prompt's <lora:...> tags) are patched
into the checkpoint for the job by the LoRA conditioner before the UNet is copied. What one
batch of frames cannot follow (prompt editing and alternation change the prompt between
steps, AND needs composable guidance) is refused at plan time.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image

from dreamwire import catalog
from dreamwire.backend import prompts, samplers
from dreamwire.backend.library import motion_modules as mm
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.infotext import format_hashes, quote
from dreamwire.shared.job import Job
from dreamwire.shared.result import GeneratedImage, JobResult

from . import noise, prompting
from .hooks import JobContext
from .infotext_fields import ti_hashes
from .progress import Reporter

FAMILIES = ("sd1", "sdxl")
FAMILY_NAMES = {"sd1": "SD1.x", "sdxl": "SDXL"}


def offered(library) -> list[str]:
    """welcome.motion_modules: the motion modules in the artist's folders, by name."""
    return mm.names(library.roots)


@dataclass(frozen=True)
class AnimateDiffPlan:
    module: mm.MotionModuleInfo


def plan(job: Job, library, family: str, arch: str) -> AnimateDiffPlan:
    label = job.model or "the default model"
    if family not in FAMILIES:
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"AnimateDiff runs on SD1.x and SDXL checkpoints here; {label} is {family}",
            job.job_id,
        )
    if family == "sdxl" and job.animatediff.controls:
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            "animatediff.controls on SDXL: diffusers has no AnimateDiff SDXL ControlNet "
            "pipeline (AnimateDiffControlNetPipeline is SD1.5's); send the job without "
            "per-frame controls, or on an SD1.x checkpoint",
            job.job_id,
        )
    check_prompt(job)
    info = mm.identify(mm.find(job.animatediff.motion_module, library.roots))
    mm.check_family(info, family, label)
    unet = catalog.config_dir(arch) / "unet" / "config.json"
    if unet.is_file():  # the catalog's architectures all have one; else the run's UNet decides
        mm.check_fits(info, json.loads(unet.read_text()), label)
    return AnimateDiffPlan(info)


def check_prompt(job: Job) -> None:
    """INVALID_PROMPT, naming the syntax, for what one batch of frames cannot follow: every
    frame and step takes one positive and one negative conditioning."""
    text, _ = prompts.extract_extra_networks(job.prompt)  # the tags are LoRAs (planning)
    if prompts.is_composable(prompts.split_subprompts(text)):
        raise DreamwireError(
            ErrorCode.INVALID_PROMPT,
            "an animatediff job takes no AND or subprompt weight (`a:0.5`): composable "
            "guidance is not wired into diffusers' AnimateDiff pipelines; use attention "
            "weights `(word:1.2)` instead",
            job.job_id,
        )
    for field_name, value in (("prompt", text), ("negative", job.negative)):
        if len(prompts.prompt_schedule(value, job.steps)) > 1:
            raise DreamwireError(
                ErrorCode.INVALID_PROMPT,
                f"an animatediff job's {field_name} takes no prompt editing `[from:to:when]` "
                "or alternation `[a|b]`: the frames are sampled with one conditioning for "
                "every step",
                job.job_id,
            )


def pipeline(components: dict, adapter, controlnet=None):
    """diffusers' pipeline over the checkpoint's modules and the adapter (and ControlNet):
    SDXL's when the checkpoint has a second text encoder."""
    from diffusers import AnimateDiffControlNetPipeline, AnimateDiffPipeline

    parts = {k: components[k] for k in ("vae", "text_encoder", "tokenizer", "unet", "scheduler")}
    if components.get("text_encoder_2") is not None:
        second = {k: components[k] for k in ("text_encoder_2", "tokenizer_2")}
        pipe = sdxl_pipeline_class()(**parts, **second, motion_adapter=adapter)
        copy_add_embedding(components["unet"], pipe.unet)
        return pipe
    if controlnet is None:
        return AnimateDiffPipeline(**parts, motion_adapter=adapter)
    return AnimateDiffControlNetPipeline(**parts, motion_adapter=adapter, controlnet=controlnet)


def copy_add_embedding(unet, motion_unet) -> None:
    """SDXL's added conditioning (pooled text and size embedding) into the motion UNet.
    diffusers 0.42's UNetMotionModel.from_unet2d copies every other part of the UNet but
    leaves add_embedding at its random initialisation (left for later in the review of
    diffusers PR #6721), so AnimateDiffSDXLPipeline as built from a loaded SDXL UNet would
    sample with random weights there, a different result on every build."""
    motion_unet.add_embedding.load_state_dict(unet.add_embedding.state_dict())


@functools.cache
def sdxl_pipeline_class():
    """diffusers' AnimateDiffSDXLPipeline with the FreeNoise mixin its SD1.5 sibling has:
    FreeNoise's latents when enabled (as AnimateDiffPipeline.prepare_latents makes them);
    with FreeNoise off it is diffusers' SDXL pipeline unchanged."""
    from diffusers import AnimateDiffSDXLPipeline
    from diffusers.pipelines.free_noise_utils import AnimateDiffFreeNoiseMixin

    class AnimateDiffSDXLFreeNoisePipeline(AnimateDiffSDXLPipeline, AnimateDiffFreeNoiseMixin):
        def prepare_latents(
            self, batch, channels, frames, height, width, dtype, device, gen, latents=None
        ):
            if self.free_noise_enabled:
                latents = self._prepare_latents_free_noise(
                    batch, channels, frames, height, width, dtype, device, gen, latents
                )
            return super().prepare_latents(
                batch, channels, frames, height, width, dtype, device, gen, latents
            )

    return AnimateDiffSDXLFreeNoisePipeline


@runtime_checkable
class FrameControlNets(Protocol):
    """What loads a job's per-frame ControlNets: the ControlNet conditioner the engine is
    given (the engine knows no ControlNet files of its own)."""

    def frame_controlnet(self, library, name: str, kind: str, model, device) -> Any: ...


def _controlnets(job: Job, library, model, device, extensions):
    controls = job.animatediff.controls
    if not controls:
        return None
    loader = next((e for e in extensions if isinstance(e, FrameControlNets)), None)
    if loader is None:
        raise DreamwireError(
            ErrorCode.CONTROLNET_NOT_FOUND, "this backend has no ControlNet support loaded"
        )
    nets = [loader.frame_controlnet(library, c.model, c.type, model, device) for c in controls]
    if len(nets) == 1:
        return nets[0]
    from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel

    return MultiControlNetModel(nets)


def call_args(job: Job, seed: int) -> dict:
    """The pipeline's arguments for the job, the prompts as text (the tests call diffusers
    with the same; the engine swaps the text for its embeddings: `with_embeddings`)."""
    a = job.animatediff
    args = {
        "prompt": job.prompt,
        "negative_prompt": job.negative or None,
        "num_frames": a.frames,
        "width": job.width,
        "height": job.height,
        "num_inference_steps": job.steps,
        "guidance_scale": job.cfg,
        "generator": torch.Generator("cpu").manual_seed(seed),
        "output_type": "np",
    }
    if a.controls:
        frames = [[Image.fromarray(img[..., :3]) for img in c.images] for c in a.controls]
        weights = [c.weight for c in a.controls]
        one = len(frames) == 1
        args["conditioning_frames"] = frames[0] if one else frames
        args["controlnet_conditioning_scale"] = weights[0] if one else weights
    return args


def with_embeddings(pipe, args: dict, prompt_plan: prompting.PromptPlan, job: Job) -> dict:
    """The call's arguments with the engine's prompt embeddings in place of the text.

    FreeNoise (SD1.5) refuses prompt_embeds: it encodes its per-frame prompts itself, through
    the pipeline's encode_prompt. There the pipeline's encode_prompt hands back the engine's
    embeddings, as many rows as asked for, and the text stays (unread) as FreeNoise wants
    a string; diffusers' frame interpolation then runs on them as on its own."""
    free_noise = getattr(pipe, "free_noise_enabled", False)
    if not free_noise or prompt_plan.pooled:  # SDXL's FreeNoise encodes no prompts
        rest = {k: v for k, v in args.items() if k not in ("prompt", "negative_prompt")}
        return {**rest, **prompt_plan.call_kwargs(job)}
    first = prompt_plan.at(0)

    def encode_prompt(prompt, device, num_images_per_prompt, do_classifier_free_guidance, *_, **__):
        rows = (len(prompt) if isinstance(prompt, list) else 1) * num_images_per_prompt
        cond = first.cond.to(device).repeat(rows, 1, 1)
        uncond = first.uncond.to(device).repeat(rows, 1, 1) if do_classifier_free_guidance else None
        return cond, uncond

    pipe.encode_prompt = encode_prompt  # this pipeline object only: built for this job
    return {**args, "prompt": job.prompt, "negative_prompt": job.negative}


def prepare(pipe, job: Job, base_scheduler) -> None:
    """The job's sampler and context windows on a built pipeline."""
    a = job.animatediff
    pipe.scheduler = samplers.make_scheduler(job.sampler, base_scheduler)
    if a.frames > a.context_length:
        pipe.enable_free_noise(context_length=a.context_length, context_stride=a.context_stride)


def run(ctx: JobContext, reporter: Reporter, extensions=()) -> JobResult:
    """The job on ctx's model, with the job's conditioners attached (engine.py: the LoRA
    conditioner has patched the checkpoint, the embeddings conditioner set ctx.embeddings)."""
    job, model, device, library = ctx.job, ctx.model, ctx.device, ctx.library
    ad_plan = ctx.plan.animatediff
    t0 = time.perf_counter()
    seed = noise.resolve_seed(job.seed)
    mm.check_fits(ad_plan.module, dict(model.components["unet"].config), model.name)
    adapter = mm.load_adapter(ad_plan.module).to(device=device.device, dtype=device.dtype)
    pipe = pipeline(
        model.components, adapter, _controlnets(job, library, model, device, extensions)
    )
    prepare(pipe, job, model.components["scheduler"])
    pipe.set_progress_bar_config(disable=True)
    sdxl = model.components.get("text_encoder_2") is not None
    with torch.inference_mode():
        prompt_plan = prompting.encode_clip(pipe, ctx, job.steps, job.steps, False, sdxl)
    args = with_embeddings(pipe, call_args(job, seed), prompt_plan, job)
    reporter.total = job.steps

    def step_end(p, i, t, kwargs):
        reporter.check_cancel()
        reporter.step(i + 1)
        return kwargs

    with torch.inference_mode():
        frames = pipe(**args, callback_on_step_end=step_end).frames[0]
    reporter.finish_pass(job.steps)
    images = [np.clip(np.rint(f * 255), 0, 255).astype(np.uint8) for f in frames]
    info = (
        f"{job.prompt}\nSteps: {job.steps}, Sampler: {job.sampler}, CFG scale: {job.cfg}, "
        f"Seed: {seed}, Size: {job.width}x{job.height}, Model: {model.name}, "
        f"AnimateDiff: {ad_plan.module.name}, Frames: {job.animatediff.frames}, "
        f"Context: {job.animatediff.context_length}/{job.animatediff.context_stride}"
    )
    extra = {**ctx.infotext_extra}
    if used := ti_hashes(ctx):
        extra["TI hashes"] = format_hashes(used)
    info += "".join(f", {k}: {quote(v)}" for k, v in extra.items())
    out = [GeneratedImage(image=img, seed=seed, infotext=info) for img in images]
    result = JobResult(job_id=job.job_id, images=out)
    result.timings["animatediff"] = time.perf_counter() - t0
    return result
