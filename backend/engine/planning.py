"""A job planned before anything loads: `plan(job, library) -> JobPlan`.

A pure function of the job and what the library's scan already knows (names, headers): no
model is loaded and no tensor made. It raises every refusal it can see that early (the job's
own fields, the sampler, upscaler and LoRA names, hypernetworks) and lays out what the run
will do: the mode, the family of the model, the passes with their sizes and sampling steps,
the LoRAs with their multipliers. The runner and the extensions take these from the plan
instead of working them out again.

Upscale jobs keep their tile grid in sd_upscale.py (sd_upscale.plan, also pure); their plan
here lists no passes.
"""

from __future__ import annotations

from dataclasses import dataclass

from dreamwire.backend import prompts, samplers
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job, LoraRef

from . import family_support, hires
from . import library_adapter as libs


@dataclass(frozen=True)
class PlannedPass:
    mode: str  # txt2img | img2img | inpaint
    width: int  # the size the pass samples at
    height: int
    steps: int  # the job's sampling steps for the pass (A1111's "Steps")
    strength: float = 1.0  # denoising: img2img and inpaint start part-way
    hires: bool = False  # the second pass of Hires.fix

    @property
    def executed_steps(self) -> int:
        return executed_steps(self.mode, self.steps, self.strength)


def executed_steps(mode: str, steps: int, strength: float) -> int:
    """Sampling steps diffusers runs: img2img/inpaint start part-way, as A1111 does."""
    if mode == "txt2img":
        return steps
    return min(int(steps * strength), steps)


@dataclass(frozen=True)
class LoraRequest:
    name: str
    unet: float  # multiplier of the UNet's deltas
    text: float  # multiplier of the text encoders' deltas


@dataclass(frozen=True)
class JobPlan:
    mode: str  # txt2img | img2img | inpaint | upscale
    family: str  # the model's family key ("" for a plain upscale, which loads no model)
    passes: tuple[PlannedPass, ...]
    loras: tuple[LoraRequest, ...]

    @property
    def total_steps(self) -> int:
        return sum(p.executed_steps for p in self.passes)


def plan(job: Job, library) -> JobPlan:
    """The job's plan; DreamwireError with a stable code for anything refusable now."""
    job.validate()
    samplers.sampler_info(job.sampler)  # unknown names fail before any loading
    if job.hires is not None:
        hires.check_upscaler(job, library)
    if job.upscale is not None:
        from .sd_upscale import check_upscaler

        check_upscaler(job, library)
        if not job.upscale.refine:
            return JobPlan("upscale", "", (), ())
    loras = lora_requests(job)
    arch = libs.checkpoint(library, job.model or libs.default_checkpoint(library)).arch
    family = libs.family(arch)
    family_support.check(job, family, arch)  # features, modes and samplers it cannot run
    if job.upscale is not None:
        return JobPlan("upscale", family, (), loras)
    return JobPlan(job.mode, family, _passes(job), loras)


def lora_requests(job: Job) -> tuple[LoraRequest, ...]:
    """The job's LoRAs, then the prompt's `<lora:name:w>` tags (A1111: only the positive
    prompt's tags activate networks); a tag's second weight is the text encoders'."""
    refs: list[LoraRef] = list(job.loras) + _prompt_loras(job.prompt)
    return tuple(
        LoraRequest(r.name, r.weight, r.weight if r.weight_te is None else r.weight_te)
        for r in refs
    )


def _prompt_loras(text: str) -> list[LoraRef]:
    _, nets = prompts.extract_extra_networks(text)
    for net in nets:
        if net.kind == "hypernet":
            raise DreamwireError(
                ErrorCode.MODEL_UNSUPPORTED,
                f"<hypernet:{net.name}>: hypernetworks are a legacy A1111 feature Dreamwire does "
                "not run; use a LoRA instead (<lora:name:weight>)",
            )
    return prompts.lora_refs(nets)


def _passes(job: Job) -> tuple[PlannedPass, ...]:
    if job.mode == "txt2img":
        first = PlannedPass("txt2img", job.width, job.height, job.steps)
        if job.hires is None:
            return (first,)
        w, h = job.hires.plan(job.width, job.height).size
        second = PlannedPass(
            "img2img",
            w,
            h,
            hires.second_pass_steps(job.steps, job.hires),
            strength=job.hires.denoise,
            hires=True,
        )
        return (first, second)
    if job.mode == "img2img":
        return (PlannedPass("img2img", job.width, job.height, job.steps, job.strength),)
    w, h = job.width, job.height
    if job.outpaint.any() and not job.inpaint_full_res:
        from dreamwire.backend.canvas.outpaint import generation_size

        w, h = generation_size(w, h, job.outpaint)
    return (PlannedPass("inpaint", w, h, job.steps, job.strength),)
