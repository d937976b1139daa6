"""A CLIP + T5 family's (Flux) conditioning for a pass, in the shape the pass runner hands
to diffusers' Flux pipelines.

The text itself is encoded by backend/clip_t5_encoding.py. Flux dev takes its distilled
guidance (Forge's "Distilled CFG Scale") as a model input, `guidance_scale` in diffusers;
the job's CFG is the real classifier-free guidance (`true_cfg_scale`), which runs a second,
negative-prompt pass only above 1, as in Forge.
"""

from __future__ import annotations

from typing import Any

import torch

from dreamwire import catalog
from dreamwire.backend.clip_t5_encoding import ClipT5Conditioning, encode
from dreamwire.backend.families import spec_for


class FixedPlan:
    """A pass's conditioning that is the same at every step: the transformer families have
    no per-step prompt schedules or AND prompts here (their specs refuse them before
    loading), so nothing is swapped inside the pipeline's loop."""

    changes = False
    composable = False

    def tensor_inputs(self) -> list[str]:
        return []

    def loop_tensors(self, step: int, batch: int, cfg: bool) -> dict[str, torch.Tensor]:
        return {}


class ClipT5Plan(FixedPlan):
    """One Flux pass's conditioning."""

    def __init__(
        self, cond: ClipT5Conditioning, uncond: ClipT5Conditioning | None, guidance: float
    ):
        self.cond = cond
        self.uncond = uncond  # None: real CFG is 1, no negative pass
        self.guidance = guidance  # the distilled guidance input

    def call_kwargs(self, job, prompt_tokens=()) -> dict[str, Any]:
        """The pipeline's conditioning arguments. `prompt_tokens` (the conditioners', e.g.
        Flux Redux's image tokens) follow T5's sequence in the prompt embeddings, as
        diffusers' FluxPriorReduxPipeline concatenates them; the pooled vector and the
        negative prompt stay the text's (ComfyUI's StyleModelApply widens only the
        conditioning it is given)."""
        sequence = self.cond.sequence
        if prompt_tokens:
            extra = [t.to(device=sequence.device, dtype=sequence.dtype) for t in prompt_tokens]
            sequence = torch.cat([sequence, *extra], dim=1)
        out: dict[str, Any] = {
            "prompt_embeds": sequence,
            "pooled_prompt_embeds": self.cond.pooled,
            "guidance_scale": self.guidance,
        }
        if self.uncond is not None:  # real CFG (Fill's pipeline has none: refused earlier)
            out["true_cfg_scale"] = job.cfg
            out["negative_prompt_embeds"] = self.uncond.sequence
            out["negative_pooled_prompt_embeds"] = self.uncond.pooled
        return out


def distilled_cfg(job, family: str, arch: str = "", stand_in: bool = False) -> float:
    """The job's Distilled CFG Scale, or its model's default (the family's, or its
    variant's: Flux Fill was trained at 30). A model the plan runs in place of the job's
    (a Fill model for Flux dev's inpaint) takes its own: the job's is the other model's."""
    if job.distilled_cfg is not None and not stand_in:
        return float(job.distilled_cfg)
    default = spec_for(family).variant(catalog.variant_of(arch)).distilled_cfg
    return float(default if default is not None else 1.0)


def encode_clip_t5(
    pipe, prompt: str, negative: str, job, family: str, arch: str, stand_in: bool = False
) -> ClipT5Plan:
    cond = encode(pipe, prompt)
    # Forge runs the negative prompt only with real CFG above 1 (diffusers: true_cfg_scale).
    uncond = encode(pipe, negative) if job.cfg > 1.0 else None
    return ClipT5Plan(cond, uncond, distilled_cfg(job, family, arch, stand_in))
