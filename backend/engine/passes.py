"""One denoising pass through a diffusers pipeline, with the engine's per-step logic.

The runner describes a pass (mode, size, steps, strength, image, mask); this module
builds the pipeline for it, feeds it the job's embeddings, seeds and scheduler, and hooks
its step callback for progress, previews, cancellation and prompt-editing schedules.
"""

from __future__ import annotations

import inspect
import types
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import torch

from dreamwire.backend.families import spec_for
from dreamwire.shared.job_mode import JobMode

from . import (
    cfg_rescale,
    composable,
    conditioners,
    fastpath,
    masked_content,
    noise,
    pipelines,
    planning,
    preview,
    prompting,
    scheduling,
    taesd,
    vae_fit,
)
from .hooks import JobContext, PassCall
from .lowvram import low_vram
from .progress import Reporter


@dataclass
class PassSpec:
    mode: str  # txt2img | img2img | inpaint
    width: int
    height: int
    steps: int
    strength: float = 1.0
    image: Any = None  # PIL image, or B x 4 x h x w latents for img2img
    mask: Any = None  # PIL "L" image, white = repaint
    output_type: str = "np"  # "np" (B x H x W x 3 floats in 0..1) or "latent"
    hires: bool = False  # the second pass of Hires.fix (prompt schedules follow A1111's rule)
    fixed_steps: bool = False  # A1111's fixed img2img steps (PlannedPass.fixed_steps)
    masked_content: str = "original"  # inpaint: A1111 "Masked content" (masked_content.py)
    extra: dict[str, Any] = field(default_factory=dict)


def step_schedule(spec: PassSpec) -> planning.StepSchedule:
    return planning.step_schedule(spec.mode, spec.steps, spec.strength, spec.fixed_steps)


def executed_steps(spec: PassSpec) -> int:
    return step_schedule(spec).executed


def _start_at(pipe, start: int) -> None:
    """Make this pass's img2img/inpaint pipeline start at index `start` of its schedule, as
    A1111 does (planning.step_schedule), where diffusers' own get_timesteps would start at
    steps - int(steps * strength). The noise it adds to the picture is at that first step's
    timestep, as A1111 adds sigma_sched[0]; the strength keeps its other uses (an inpaint
    pass at strength 1 starts from pure noise)."""

    def get_timesteps(self, num_inference_steps, strength, device, denoising_start=None):
        order = self.scheduler.order
        if hasattr(self.scheduler, "set_begin_index"):
            self.scheduler.set_begin_index(start * order)
        return self.scheduler.timesteps[start * order :], num_inference_steps - start

    pipe.get_timesteps = types.MethodType(get_timesteps, pipe)


def _call_params(pipe) -> frozenset[str]:
    return frozenset(inspect.signature(type(pipe).__call__).parameters)


def _variation_add_noise(scheduler, subseeds: list[int], strength: float) -> None:
    """Make this job's scheduler blend subseed noise into every noise it adds to an image
    (img2img start, inpaint re-noising), since diffusers draws that noise internally."""
    original = scheduler.add_noise

    def add_noise(self, samples, noise_in, timesteps):
        return original(samples, noise.variation_noise(noise_in, subseeds, strength), timesteps)

    scheduler.add_noise = types.MethodType(add_noise, scheduler)


def run_pass(
    ctx: JobContext,
    spec: PassSpec,
    seeds: list[int],
    subseeds: list[int],
    reporter: Reporter,
    extensions=(),
):
    ctx.width, ctx.height = spec.width, spec.height
    # The job's conditioners attached for this pass, the pipeline class chosen from them.
    with conditioners.attached_to_pass(ctx, spec.mode, extensions) as plan:
        return _pass(ctx, spec, plan, seeds, subseeds, reporter)


def _pass(ctx, spec, plan, seeds, subseeds, reporter):
    job, model = ctx.job, ctx.model
    scheduler = scheduling.make(model.family, job.sampler, model.components["scheduler"])
    pipe = pipelines.build(
        plan.pipe_cls, model.family, model.components, scheduler, plan.components
    )
    if spec.mode == "inpaint":
        masked_content.apply(pipe, spec.masked_content, spec.mask, seeds)
    n_exec = executed_steps(spec)
    prompt = planning.pass_prompt(job, spec.hires)
    batch = composable.unet_batch(len(seeds), composable.subprompt_count(prompt))
    if reporter.preview_every and reporter.previewer is None:
        reporter.previewer = taesd.previewer_for_job(ctx)  # else the latent approximation
    with (
        low_vram(pipe, ctx.device, ctx.low_vram, ctx.sequential_offload),
        fastpath.applied(pipe, ctx, spec.width, spec.height, batch, reporter),
        vae_fit.decode_fits(pipe, ctx, spec.width, spec.height),
    ):
        return _run(ctx, spec, pipe, scheduler, plan, n_exec, seeds, subseeds, reporter)


def _run(ctx, spec, pipe, scheduler, plan, n_exec, seeds, subseeds, reporter):
    job, model = ctx.job, ctx.model
    key = ("prompts", n_exec, spec.steps, spec.hires)
    prompts = ctx.prompt_cache.get(key)
    if prompts is None:
        with torch.inference_mode():
            prompts = prompting.encode(pipe, ctx, n_exec, spec.steps, spec.hires)
        ctx.prompt_cache[key] = prompts
    batch = len(seeds)
    # What conditioners hooking the call itself see (AND prompts: composition.py).
    picture = spec.image if spec.mode in ("img2img", "inpaint") else None
    mask = spec.mask if spec.mode == "inpaint" else None
    call = PassCall(pipe, batch, job.cfg, prompts, picture=picture, mask=mask)

    schedule = step_schedule(spec)
    kwargs: dict[str, Any] = {
        **prompts.call_kwargs(job, plan.prompt_tokens),
        "num_inference_steps": schedule.length,
        "num_images_per_prompt": batch,
        "generator": noise.generators(seeds),
        "output_type": spec.output_type,
    }
    takes = _call_params(pipe)
    if job.cfg_rescale > 0 and cfg_rescale.native(pipe):
        # diffusers' rescale_noise_cfg on the guided prediction (eps or v), per image; the
        # pipelines without the argument are rescaled by a hook (cfg_rescale.py).
        kwargs["guidance_rescale"] = job.cfg_rescale
    if spec.mode in ("txt2img", "inpaint") or "height" in takes:
        # SD's img2img pipelines size the result from the image; Flux's take the size and
        # would otherwise sample at their 1024 px default.
        kwargs["width"], kwargs["height"] = spec.width, spec.height
    if "max_area" in takes:
        # Kontext scales any size to 1 MP unless told the artist's own area is the target.
        kwargs["max_area"] = spec.width * spec.height
    if spec.mode in (JobMode.EDIT, JobMode.LAYERS):
        kwargs["image"] = spec.image
        if "_auto_resize" in takes:
            # The job's size is the artist's: Kontext's pipeline would otherwise snap the
            # picture to one of its preferred resolutions.
            kwargs["_auto_resize"] = False
    elif spec.mode != "txt2img":
        kwargs["image"] = spec.image
        kwargs["strength"] = spec.strength
        _start_at(pipe, schedule.start)
    if spec.mode == "inpaint":
        kwargs["mask_image"] = spec.mask
    if spec.mode == "inpaint" and "image" not in takes and "control_mask" in takes:
        # A pipeline that inpaints only through its ControlNet (Qwen-Image's, running
        # InstantX's Inpainting net) takes the picture and mask as the net's control and,
        # repainting from noise, no strength (the plan asked for 1).
        kwargs["control_image"] = kwargs.pop("image")
        kwargs["control_mask"] = kwargs.pop("mask_image")
        del kwargs["strength"]

    if subseeds and job.subseed_strength > 0:
        full_noise = spec.mode == "txt2img" or (spec.mode == "inpaint" and spec.strength >= 1.0)
        if full_noise:
            shape = (
                pipe.vae.config.latent_channels,
                spec.height // pipe.vae_scale_factor,
                spec.width // pipe.vae_scale_factor,
            )
            latents = noise.variation_noise(
                noise.initial_noise(seeds, shape), subseeds, job.subseed_strength
            )
            kwargs["latents"] = latents.to(dtype=ctx.device.dtype)
        else:
            _variation_add_noise(scheduler, subseeds, job.subseed_strength)

    tensor_inputs = ["latents", *prompts.tensor_inputs()]
    family = spec_for(model.family)

    def on_step(pipe_, i: int, t, tensors: dict) -> dict:
        reporter.check_cancel()
        total = max(getattr(pipe_, "num_timesteps", n_exec) or n_exec, 1)
        # Second-order samplers call back once per model evaluation; report sampler steps.
        step = max(1, round((i + 1) * n_exec / total))
        out: dict = {}
        if prompts.changes and i + 1 < total:
            nxt = ((i + 1) * n_exec) // total
            out.update(prompts.loop_tensors(nxt, batch, pipe_.do_classifier_free_guidance))
            call.step = nxt
        for hook in ctx.step_hooks:
            extra = hook(ctx, pipe_, step, n_exec, tensors)
            if extra:
                out.update(extra)
        latents = tensors.get("latents")
        if family.packed_latents and latents is not None:
            # 2x2 patches per token: back to B x C x h x w for the preview.
            latents = preview.unpack_patches(
                latents, spec.height, spec.width, pipe_.vae_scale_factor
            )
        reporter.step(step, latents)
        if i + 1 == total and spec.output_type != "latent":
            reporter.state("decoding")
        return out

    kwargs["callback_on_step_end"] = on_step
    kwargs["callback_on_step_end_tensor_inputs"] = tensor_inputs
    kwargs.update(plan.call_kwargs)
    kwargs.update(spec.extra)
    reporter.check_cancel()
    with torch.inference_mode(), ExitStack() as around:
        for hook in plan.around_call:
            around.enter_context(hook(call))
        out = pipe(**kwargs)
    reporter.finish_pass(n_exec)
    return out.images
