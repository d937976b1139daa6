"""Prompt embeddings per denoising step, from the A1111 prompt language.

backend/text_encoding.py turns prompt text into embeddings; this module asks it for the
schedule of a job (prompt editing and alternation change the text at given steps) and
hands the runner the embeddings for each step, already shaped the way diffusers'
pipelines carry them inside their loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class StepEmbeds:
    cond: torch.Tensor  # 1 x T x D
    uncond: torch.Tensor  # 1 x T x D
    pooled: torch.Tensor | None = None  # SDXL: 1 x D2
    uncond_pooled: torch.Tensor | None = None


class PromptPlan:
    def __init__(self, per_step: list[StepEmbeds]):
        self.per_step = per_step
        self.changes = any(e is not per_step[0] for e in per_step)

    def at(self, step: int) -> StepEmbeds:
        return self.per_step[min(max(step, 0), len(self.per_step) - 1)]

    def loop_tensors(self, step: int, batch: int, cfg: bool, sdxl: bool) -> dict[str, torch.Tensor]:
        """The callback tensors a pipeline's loop uses, for `step`: with CFG the negative
        half comes first, as diffusers concatenates them."""
        e = self.at(step)
        cond = e.cond.repeat(batch, 1, 1)
        uncond = e.uncond.repeat(batch, 1, 1)
        out = {"prompt_embeds": torch.cat([uncond, cond]) if cfg else cond}
        if sdxl:
            pooled = e.pooled.repeat(batch, 1)
            upooled = e.uncond_pooled.repeat(batch, 1)
            out["add_text_embeds"] = torch.cat([upooled, pooled]) if cfg else pooled
        return out


def encode(pipe, model, job, steps: int, embeddings=None) -> PromptPlan:
    """Embeddings for every one of `steps` sampling steps of `job` (A1111's prompt language,
    textual-inversion names looked up in `embeddings`)."""
    from dreamwire.backend.text_encoding import PromptEncoder, encode_conditioning

    encoder = PromptEncoder.for_pipeline(pipe, clip_skip=job.clip_skip, embeddings=embeddings)
    schedule = encode_conditioning(encoder, job.prompt, job.negative, steps)
    converted: dict[int, StepEmbeds] = {}
    per_step = []
    for s in schedule.per_step(steps):
        # Keep "same embeddings" as the same object: PromptPlan.changes relies on it.
        if id(s) not in converted:
            converted[id(s)] = StepEmbeds(s.cond, s.uncond, s.pooled, s.uncond_pooled)
        per_step.append(converted[id(s)])
    return PromptPlan(per_step)
