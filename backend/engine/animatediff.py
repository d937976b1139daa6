"""An animatediff job: planned (the motion module found, identified and checked against the
checkpoint's UNet before anything loads) and run through diffusers' AnimateDiffPipeline, or
AnimateDiffControlNetPipeline when the job has per-frame controls.

The pipeline is built from the loaded checkpoint's own modules plus the motion module as a
MotionAdapter (diffusers merges the UNet and the adapter into a UNetMotionModel, a copy: the
checkpoint's UNet is left as it was). More frames than one context window run with FreeNoise
(`enable_free_noise(context_length, context_stride)`): the motion module attends within
overlapping windows, blended where they overlap, while the spatial layers see every frame.
Noise comes from a CPU generator seeded with the job's seed, as every job's does. Prompts
go to the pipeline as text (A1111's attention weights are not parsed here).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image

from dreamwire import catalog
from dreamwire.backend import samplers
from dreamwire.backend.library import motion_modules as mm
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job
from dreamwire.shared.result import GeneratedImage, JobResult

from . import noise
from .progress import Reporter

FAMILIES = ("sd1",)  # diffusers' AnimateDiffSDXLPipeline is not wired in yet


def offered(library) -> list[str]:
    """welcome.motion_modules: the motion modules in the artist's folders, by name."""
    return mm.names(library.roots)


@dataclass(frozen=True)
class AnimateDiffPlan:
    module: mm.MotionModuleInfo


def plan(job: Job, library, family: str, arch: str) -> AnimateDiffPlan:
    if family not in FAMILIES:
        raise DreamwireError(
            ErrorCode.MODEL_UNSUPPORTED,
            f"AnimateDiff runs on SD1.x checkpoints here; {job.model or 'the model'} is {family}",
            job.job_id,
        )
    info = mm.identify(mm.find(job.animatediff.motion_module, library.roots))
    unet = catalog.config_dir(arch) / "unet" / "config.json"
    if unet.is_file():  # the catalog's architectures all have one; else the run's UNet decides
        mm.check_fits(info, json.loads(unet.read_text()), job.model or "the default model")
    return AnimateDiffPlan(info)


def pipeline(components: dict, adapter, controlnet=None):
    """diffusers' pipeline over the checkpoint's modules and the adapter (and ControlNet)."""
    from diffusers import AnimateDiffControlNetPipeline, AnimateDiffPipeline

    parts = {k: components[k] for k in ("vae", "text_encoder", "tokenizer", "unet", "scheduler")}
    if controlnet is None:
        return AnimateDiffPipeline(**parts, motion_adapter=adapter)
    return AnimateDiffControlNetPipeline(**parts, motion_adapter=adapter, controlnet=controlnet)


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
    """The pipeline's arguments for the job (the tests call diffusers with the same)."""
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


def prepare(pipe, job: Job, base_scheduler) -> None:
    """The job's sampler and context windows on a built pipeline."""
    a = job.animatediff
    pipe.scheduler = samplers.make_scheduler(job.sampler, base_scheduler)
    if a.frames > a.context_length:
        pipe.enable_free_noise(context_length=a.context_length, context_stride=a.context_stride)


def run(
    job: Job, ad_plan: AnimateDiffPlan, model, library, device, reporter: Reporter, extensions=()
) -> JobResult:
    t0 = time.perf_counter()
    seed = noise.resolve_seed(job.seed)
    mm.check_fits(ad_plan.module, dict(model.components["unet"].config), model.name)
    adapter = mm.load_adapter(ad_plan.module).to(device=device.device, dtype=device.dtype)
    pipe = pipeline(
        model.components, adapter, _controlnets(job, library, model, device, extensions)
    )
    prepare(pipe, job, model.components["scheduler"])
    pipe.set_progress_bar_config(disable=True)
    reporter.total = job.steps

    def step_end(p, i, t, kwargs):
        reporter.check_cancel()
        reporter.step(i + 1)
        return kwargs

    with torch.inference_mode():
        frames = pipe(**call_args(job, seed), callback_on_step_end=step_end).frames[0]
    reporter.finish_pass(job.steps)
    images = [np.clip(np.rint(f * 255), 0, 255).astype(np.uint8) for f in frames]
    info = (
        f"{job.prompt}\nSteps: {job.steps}, Sampler: {job.sampler}, CFG scale: {job.cfg}, "
        f"Seed: {seed}, Size: {job.width}x{job.height}, Model: {model.name}, "
        f"AnimateDiff: {ad_plan.module.name}, Frames: {job.animatediff.frames}, "
        f"Context: {job.animatediff.context_length}/{job.animatediff.context_stride}"
    )
    out = [GeneratedImage(image=img, seed=seed, infotext=info) for img in images]
    result = JobResult(job_id=job.job_id, images=out)
    result.timings["animatediff"] = time.perf_counter() - t0
    return result
