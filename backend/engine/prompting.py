"""Prompt embeddings per denoising step, from the A1111 prompt language.

backend/text_encoding.py turns prompt text into embeddings the way A1111 does (weights,
chunks, BREAK, clip skip, embeddings, prompt editing and alternation schedules); this
module asks it for a pass's schedule and hands the runner the embeddings for each step,
shaped the way diffusers' pipelines carry them inside their loop.
"""

from __future__ import annotations

from typing import Any

import torch

from dreamwire.backend.families import TextEncoding, spec_for
from dreamwire.backend.text_encoding import PromptEncoder, StepConditioning, encode_conditioning
from dreamwire.shared.errors import DreamwireError, ErrorCode

from .planning import hires_prompts, join_regions
from .prompting_clip_t5 import encode_clip_t5
from .prompting_qwen import encode_qwen
from .prompting_qwen3 import encode_qwen3
from .prompting_sd3 import encode_sd3

# cond, uncond (1 x T x D), SDXL pooled, uncond_pooled (1 x P); for a composable (AND)
# prompt also every subprompt's embeddings and weight (conds, pooleds, weights).
StepEmbeds = StepConditioning


class PromptPlan:
    """A CLIP family's (SD1.x/SD2.x/SDXL) embeddings for each step of a pass."""

    def __init__(self, per_step: list[StepEmbeds], pooled: bool = False):
        self.per_step = per_step
        self.pooled = pooled  # SDXL: the second encoder's pooled output goes in too
        self.changes = any(e is not per_step[0] for e in per_step)
        # AND / a weighted prompt: the pass runs through composable.Composer.
        self.composable = bool(per_step[0].weights)

    def at(self, step: int) -> StepEmbeds:
        return self.per_step[min(max(step, 0), len(self.per_step) - 1)]

    def call_kwargs(self, job, prompt_tokens=()) -> dict[str, Any]:
        """The pipeline call's conditioning arguments (the first step's embeddings)."""
        if prompt_tokens:
            # CLIP's 77-token chunks and the negative prompt must keep one shape; only a
            # T5-sequence family (ClipT5Plan) takes tokens after the text.
            raise DreamwireError(
                ErrorCode.MODEL_UNSUPPORTED,
                "this model's text conditioning takes no extra prompt tokens",
            )
        first = self.at(0)
        out = {
            "prompt_embeds": first.cond,
            "negative_prompt_embeds": first.uncond,
            "guidance_scale": job.cfg,
        }
        if self.pooled:
            out["pooled_prompt_embeds"] = first.pooled
            out["negative_pooled_prompt_embeds"] = first.uncond_pooled
        return out

    def tensor_inputs(self) -> list[str]:
        """The callback tensors a schedule swaps (besides the latents)."""
        if not self.changes:
            return []
        return ["prompt_embeds"] + (["add_text_embeds"] if self.pooled else [])

    def loop_tensors(self, step: int, batch: int, cfg: bool) -> dict[str, torch.Tensor]:
        """The callback tensors a pipeline's loop uses, for `step`: with CFG the negative
        half comes first, as diffusers concatenates them."""
        e = self.at(step)
        cond = e.cond.repeat(batch, 1, 1)
        uncond = e.uncond.repeat(batch, 1, 1)
        out = {"prompt_embeds": torch.cat([uncond, cond]) if cfg else cond}
        if self.pooled:
            pooled = e.pooled.repeat(batch, 1)
            upooled = e.uncond_pooled.repeat(batch, 1)
            out["add_text_embeds"] = torch.cat([upooled, pooled]) if cfg else pooled
        return out


def encode(pipe, ctx, executed: int, pass_steps: int, hires_pass: bool = False):
    """The pass's conditioning, by the family's text encoding: a PromptPlan (CLIP families),
    a ClipT5Plan (Flux), a Qwen3Plan (Z-Image), an Sd3Plan (SD3.5) or a QwenPlan
    (Qwen-Image)."""
    spec = spec_for(ctx.model.family)
    job = ctx.job
    prompt, negative = hires_prompts(job) if hires_pass else (job.prompt, job.negative)
    if spec.text_encoding is TextEncoding.QWEN3:
        return encode_qwen3(pipe, spec.chat_text, prompt, negative, job)
    if spec.text_encoding is TextEncoding.CLIP_PAIR_T5:
        return encode_sd3(pipe, prompt, negative, job, ctx.model.arch)
    if spec.text_encoding is TextEncoding.CLIP_T5:
        model, stand_in = ctx.model, bool(ctx.plan and ctx.plan.stands_in_for)
        return encode_clip_t5(pipe, prompt, negative, job, model.family, model.arch, stand_in)
    if spec.text_encoding is TextEncoding.QWEN_VL:
        return encode_qwen(pipe, prompt, negative, job, ctx.plan.mode)
    return encode_clip(pipe, ctx, executed, pass_steps, hires_pass, spec.pooled_text)


def encode_clip(
    pipe, ctx, executed: int, pass_steps: int, hires_pass: bool, pooled: bool
) -> PromptPlan:
    """Embeddings for each of the `executed` sampling steps of a pass.

    As in A1111, schedules are laid out over the job's steps and indexed by the steps
    actually run, counted from 0, so an img2img pass at strength 0.5 sees the first half of
    the schedule. A Hires.fix second pass uses A1111's hires rule (prompt_parser's
    `hires_steps`): its schedule spans the steps the pass runs, a fraction above 1 is a
    point in that pass (`1.5`: half-way) and a whole number counts on from the first pass's
    steps (`12` after 10 steps: its step 2). The hires schedule is laid out over
    `executed`, the steps this pass really takes: all its hires steps, as in A1111, whose
    Hires.fix stretches the sigmas (planning.step_schedule).
    """
    job = ctx.job
    prompt, negative = hires_prompts(job) if hires_pass else (job.prompt, job.negative)
    prompt = join_regions(prompt, job.regions)  # regional prompts: background AND regions
    encoder = _encoder(pipe, ctx)
    schedule = encode_conditioning(
        encoder, prompt, negative, job.steps, max(executed, 1) if hires_pass else None
    )
    ctx.embeddings_used.update(schedule.embeddings_used)
    return PromptPlan(schedule.per_step(max(executed, 1)), pooled)


def _encoder(pipe, ctx) -> PromptEncoder:
    """A prompt encoder for this job. Setting one up reads the whole tokenizer vocabulary
    (tens of ms), so the per-model part is kept with the model; the job's own part (its
    textual-inversion set) is fresh, and nothing computed from weights is reused, since a
    job's LoRA may patch the text encoder."""
    key = (
        "prompt_units",
        ctx.job.clip_skip,
        id(pipe.text_encoder),
        id(getattr(pipe, "text_encoder_2", None)),
    )
    shared = ctx.model.cache.get(key)
    if shared is None:
        base = PromptEncoder.for_pipeline(pipe, clip_skip=ctx.job.clip_skip)
        shared = ctx.model.cache[key] = (tuple(base.units), base.zero_empty_negative)
    units, zero_empty_negative = shared
    return PromptEncoder(
        list(units),
        embeddings=ctx.embeddings,
        zero_empty_negative=zero_empty_negative,
    )
